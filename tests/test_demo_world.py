# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The demo world's build (determinism, marker, idempotence, command line) and its scenes (geometry, true
relations, images)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knowledge_clip.data import demo_world
from knowledge_clip.data.demo_world import COLOURS, SHAPES, build_demo_world, spatial_predicates


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # The default size exercises every deliberate quirk; it builds in well under a second.
    return build_demo_world(tmp_path_factory.mktemp("world") / "default", seed=0, size="default")


@pytest.fixture(scope="module")
def scenes(world):
    return world.load_scenes()


def _load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


# Independent re-statement of the predicates, from the boxes as published (x, y, w, h): not the generator's code.
def _holds(predicate: str, subject: dict, obj: dict) -> bool:
    s_right, o_right = subject["x"] + subject["w"], obj["x"] + obj["w"]
    s_bottom, o_bottom = subject["y"] + subject["h"], obj["y"] + obj["h"]
    area_ratio = (subject["w"] * subject["h"]) / (obj["w"] * obj["h"])
    gap_x = max(0, obj["x"] - s_right, subject["x"] - o_right)
    gap_y = max(0, obj["y"] - s_bottom, subject["y"] - o_bottom)
    return {
        "left of": s_right <= obj["x"],
        "right of": subject["x"] >= o_right,
        "above": s_bottom <= obj["y"],
        "below": subject["y"] >= o_bottom,
        "next to": (gap_x**2 + gap_y**2) ** 0.5 <= demo_world.NEXT_TO_MAX_GAP,
        "bigger than": area_ratio >= 2,
        "smaller than": area_ratio <= 0.5,
    }[predicate]


def _box_dict(box):
    return dict(zip("xywh", box))


def _centre_colour(image: Image.Image, box) -> np.ndarray:
    x, y, w, h = box
    return np.asarray(image.convert("RGB"), dtype=np.int64)[y + h // 2, x + w // 2]


# --------------------------------------------------------------------------------------------------------------------
# Determinism, marker and idempotence
# --------------------------------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files_and_other_seed_differs(tmp_path):
    first = build_demo_world(tmp_path / "a", seed=3, size="tiny")
    second = build_demo_world(tmp_path / "b", seed=3, size="tiny")
    other = build_demo_world(tmp_path / "c", seed=4, size="tiny")
    digest = _tree_digest(first.root)
    assert len(digest) > 50
    assert digest == _tree_digest(second.root)
    other_digest = _tree_digest(other.root)
    assert other_digest != digest
    assert (
        other_digest[str(Path("coco", "annotations", "captions_train2017.json"))]
        != digest[str(Path("coco", "annotations", "captions_train2017.json"))]
    )


def test_tiny_world_counts(tmp_path):
    world = build_demo_world(tmp_path / "tiny", size="tiny")
    counts = world.manifest()["counts"]
    assert counts["scenes"] == 20
    assert counts["coco_train_images"] + counts["coco_val_images"] == 20
    assert counts["vg_images"] == counts["coco_train_images"]
    assert counts["zero_shot_images"] == len(world.class_names) == len(COLOURS) * len(SHAPES)


def test_existing_world_is_reused_without_regenerating(tmp_path, monkeypatch):
    out = tmp_path / "world"
    build_demo_world(out, seed=1, size="tiny")
    before = _tree_digest(out)

    def fail(*args, **kwargs):
        raise AssertionError("the world was regenerated")

    monkeypatch.setattr("knowledge_clip.data.demo_world.world._generate", fail)
    world = build_demo_world(out, seed=1, size="tiny")
    assert world.root == out and world.seed == 1 and world.size == "tiny"
    assert _tree_digest(out) == before


def test_world_with_other_parameters_is_replaced_atomically(tmp_path):
    out = tmp_path / "world"
    build_demo_world(out, seed=1, size="tiny")
    world = build_demo_world(out, seed=2, size="tiny")
    assert world.manifest()["seed"] == 2
    assert _tree_digest(out) == _tree_digest(build_demo_world(tmp_path / "fresh", seed=2, size="tiny").root)
    # No staging or retired directories are left next to the world.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "world"]


def test_incomplete_world_is_not_trusted(tmp_path):
    out = tmp_path / "world"
    build_demo_world(out, seed=1, size="tiny")
    (out / demo_world.MARKER_NAME).unlink()  # as if a copy was interrupted before the marker
    with pytest.raises(FileExistsError, match="holds no demo world"):
        build_demo_world(out, seed=1, size="tiny")


def test_foreign_directory_is_left_alone_and_empty_one_is_used(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="foreign"):
        build_demo_world(foreign, size="tiny")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_demo_world(empty, size="tiny").manifest()["size"] == "tiny"


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="huge"):
        build_demo_world(tmp_path / "w", size="huge")
    assert not (tmp_path / "w").exists()


def test_marker_records_parameters_and_is_complete(world):
    marker = _load(world.root / demo_world.MARKER_NAME)
    assert marker["generator"] == "knowledge_clip.data.demo_world"
    assert (marker["seed"], marker["size"], marker["format_version"]) == (0, "default", demo_world.FORMAT_VERSION)
    assert marker["expected_skips"]["conceptnet"] == {
        "non_english": marker["counts"]["conceptnet_non_english_rows"],
        "external_url": marker["counts"]["conceptnet_external_url_rows"],
    }


def test_command_line_builds_world_and_preview(tmp_path, capsys):
    demo_world.main([str(tmp_path / "cli"), "--size", "tiny", "--seed", "5", "--preview", str(tmp_path / "p.png")])
    assert "scenes" in capsys.readouterr().out
    assert _load(tmp_path / "cli" / demo_world.MARKER_NAME)["seed"] == 5
    with Image.open(tmp_path / "p.png") as preview:
        assert preview.format == "PNG" and preview.width > preview.height > 2 * demo_world.IMAGE_SIZE


# --------------------------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------------------------


def test_spatial_predicates_on_hand_made_boxes():
    small_left = (0, 0, 10, 10)
    big_right = (15, 40, 20, 20)
    assert spatial_predicates(small_left, big_right) == ["left of", "above", "smaller than"]
    assert spatial_predicates(big_right, small_left) == ["right of", "below", "bigger than"]
    assert spatial_predicates((0, 0, 10, 10), (12, 0, 10, 10)) == ["left of", "next to"]
    assert spatial_predicates((0, 0, 10, 10), (0, 30, 10, 10)) == ["above"]


def test_scene_boxes_are_inside_the_image_and_disjoint(scenes):
    size = scenes["image_size"]
    for scene in scenes["scenes"]:
        assert 1 <= len(scene["objects"]) <= 3
        for item in scene["objects"]:
            x, y, w, h = item["box"]
            assert 0 <= x and 0 <= y and x + w <= size and y + h <= size
            assert w == h and demo_world.SIDE_RANGE[item["size"]][0] <= w <= demo_world.SIDE_RANGE[item["size"]][1]
        for i, a in enumerate(scene["objects"]):
            for b in scene["objects"][i + 1 :]:
                assert spatial_predicates(a["box"], b["box"])[0] in ("left of", "right of", "above", "below")


def test_scene_relations_are_exactly_the_true_ones(scenes):
    for scene in scenes["scenes"]:
        objects = [_box_dict(item["box"]) for item in scene["objects"]]
        expected = {
            (i, predicate, j)
            for i in range(len(objects))
            for j in range(len(objects))
            if i != j
            for predicate in scenes["predicates"]
            if _holds(predicate, objects[i], objects[j])
        }
        assert {tuple(relation) for relation in scene["relations"]} == expected
        # Size attributes and "bigger than" agree.
        for i, predicate, j in scene["relations"]:
            if predicate == "bigger than":
                assert (scene["objects"][i]["size"], scene["objects"][j]["size"]) == ("large", "small")


def test_images_show_the_scene(world, scenes):
    checked = 0
    for scene in scenes["scenes"][:60]:
        with Image.open(world.root / scene["coco_file"]) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (96, 96)
            for item in scene["objects"]:
                centre = _centre_colour(image, item["box"])
                assert np.abs(centre - np.array(COLOURS[item["colour"]])).max() <= 40, (scene["scene_id"], item)
                checked += 1
            corner_free = all(item["box"][0] > 1 or item["box"][1] > 1 for item in scene["objects"])
            if corner_free:
                corner = np.asarray(image, dtype=np.int64)[0, 0]
                assert np.abs(corner - np.array(scene["background"])).max() <= 12
    assert checked > 60
