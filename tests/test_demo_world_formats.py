# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The demo world's published formats, key by key, and the truth of their relations, attributes, captions and
images."""

import collections
import gzip
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knowledge_clip.data import demo_world
from knowledge_clip.data.demo_world import COLOURS, SHAPES, build_demo_world

CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z]+$")
SIZE_WORDS = {"small": "small", "little": "small", "large": "large", "big": "large"}
MENTION = re.compile(
    rf"\b(?:({'|'.join(SIZE_WORDS)}) )?({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})\b",
    flags=re.IGNORECASE,
)
RELATION_WORDS = re.compile(r"\b(left|right|above|below|next|beside|bigger|smaller|under|over)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # The default size exercises every deliberate quirk; it builds in well under a second.
    return build_demo_world(tmp_path_factory.mktemp("world") / "default", seed=0, size="default")


@pytest.fixture(scope="module")
def scenes(world):
    return world.load_scenes()


def _load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


def _dominant_colour(image: Image.Image) -> str:
    """The palette colour nearest to most saturated pixels (the background is a near-grey tint)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int64).reshape(-1, 3)
    saturated = pixels[(pixels.max(axis=1) - pixels.min(axis=1)) > 60]
    palette = np.array(list(COLOURS.values()))
    nearest = np.abs(saturated[:, None, :] - palette[None, :, :]).sum(axis=2).argmin(axis=1)
    return list(COLOURS)[np.bincount(nearest, minlength=len(palette)).argmax()]


# --------------------------------------------------------------------------------------------------------------------
# Visual Genome
# --------------------------------------------------------------------------------------------------------------------


def test_visual_genome_image_data_v1_2(world):
    image_data = _load(world.visual_genome / "image_data.json")
    folders = collections.Counter()
    for record in image_data:
        assert set(record) == {"image_id", "url", "width", "height", "coco_id", "flickr_id"}
        assert _is_int(record["image_id"]) and _is_int(record["width"]) and _is_int(record["height"])
        assert _is_int(record["coco_id"]) and record["flickr_id"] is None
        match = re.search(r"(VG_100K(?:_2)?)/([0-9]+\.jpg)$", record["url"])
        assert match and match.group(2) == f"{record['image_id']}.jpg"
        assert (world.visual_genome / match.group(1) / match.group(2)).is_file()
        folders[match.group(1)] += 1
    assert set(folders) == {"VG_100K", "VG_100K_2"} and min(folders.values()) > len(image_data) // 4


def test_visual_genome_objects_v1_4(world):
    objects = _load(world.visual_genome / "objects.json")
    image_ids = [record["image_id"] for record in _load(world.visual_genome / "image_data.json")]
    assert [entry["image_id"] for entry in objects] == image_ids  # same order as image_data.json
    object_ids = set()
    for entry in objects:
        assert set(entry) == {"image_id", "image_url", "objects"}
        for item in entry["objects"]:
            assert set(item) == {"object_id", "x", "y", "w", "h", "names", "synsets", "merged_object_ids"}
            assert all(_is_int(item[key]) for key in ("object_id", "x", "y", "w", "h"))
            assert isinstance(item["names"], list) and len(item["names"]) == 1
            assert item["names"][0].split()[-1] in SHAPES
            object_ids.add(item["object_id"])
    assert len(object_ids) == world.manifest()["counts"]["vg_objects"]


def test_visual_genome_relationships_v1_4_mix_name_forms_and_are_true(world):
    relationships = _load(world.visual_genome / "relationships.json")
    forms = collections.Counter()
    upper = 0
    for entry in relationships:
        assert set(entry) == {"image_id", "relationships"}
        for relationship in entry["relationships"]:
            assert set(relationship) == {"relationship_id", "predicate", "synsets", "subject", "object"}
            assert isinstance(relationship["synsets"], list)
            for role in ("subject", "object"):
                embedded = relationship[role]
                assert {"object_id", "x", "y", "w", "h", "synsets"} <= set(embedded)
                if "names" in embedded:
                    assert "name" not in embedded and isinstance(embedded["merged_object_ids"], list)
                    forms["names"] += 1
                else:
                    assert isinstance(embedded["name"], str) and "merged_object_ids" not in embedded
                    forms["name"] += 1
            predicate = relationship["predicate"]
            upper += predicate.isupper()
            assert predicate.lower() in demo_world.PREDICATES
            assert _holds(predicate.lower(), relationship["subject"], relationship["object"]), relationship
    assert forms["name"] > forms["names"] > 0
    assert upper > 0


def test_visual_genome_attributes_are_true_and_sometimes_missing(world, scenes):
    truth = {
        item["vg_object_id"]: item
        for scene in scenes["scenes"]
        if scene["split"] == "train"
        for item in scene["objects"]
    }
    missing = 0
    for entry in _load(world.visual_genome / "attributes.json"):
        assert set(entry) == {"image_id", "attributes"}
        for item in entry["attributes"]:
            assert {"object_id", "x", "y", "w", "h", "names", "synsets"} <= set(item)
            if "attributes" not in item:
                missing += 1
                continue
            for attribute in item["attributes"]:
                assert attribute.strip() in (truth[item["object_id"]]["colour"], truth[item["object_id"]]["size"])
    assert missing == world.manifest()["counts"]["vg_objects_without_attributes"] > 0


def test_visual_genome_region_descriptions(world, scenes):
    truth = {scene["vg_image_id"]: scene for scene in scenes["scenes"] if scene["split"] == "train"}
    for entry in _load(world.visual_genome / "region_descriptions.json"):
        assert set(entry) == {"id", "regions"}
        for region in entry["regions"]:
            assert set(region) == {"region_id", "image_id", "phrase", "x", "y", "width", "height"}
            (mention,) = MENTION.findall(region["phrase"])
            item = next(o for o in truth[entry["id"]]["objects"] if o["box"][:2] == [region["x"], region["y"]])
            assert (mention[1], mention[2]) == (item["colour"], item["shape"])


# --------------------------------------------------------------------------------------------------------------------
# COCO captions
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_captions_format(world, split):
    path = world.coco_captions if split == "train" else world.coco_captions_val
    folder = world.coco_images if split == "train" else world.coco_images_val
    captions = _load(path)
    assert set(captions) == {"info", "licenses", "images", "annotations"}
    assert set(captions["info"]) == {"description", "url", "version", "year", "contributor", "date_created"}
    assert all(set(license) == {"url", "id", "name"} for license in captions["licenses"])
    for image in captions["images"]:
        assert set(image) == {
            "license",
            "file_name",
            "coco_url",
            "height",
            "width",
            "date_captured",
            "flickr_url",
            "id",
        }
        assert image["file_name"] == f"{image['id']:012d}.jpg" and (folder / image["file_name"]).is_file()
    per_image = collections.Counter(annotation["image_id"] for annotation in captions["annotations"])
    assert set(per_image) == {image["id"] for image in captions["images"]}
    assert min(per_image.values()) >= 5
    image_order = [annotation["image_id"] for annotation in captions["annotations"]]
    assert image_order != sorted(image_order)
    assert len({annotation["id"] for annotation in captions["annotations"]}) == len(captions["annotations"])


def test_captions_name_every_object_truthfully_and_no_relation(world, scenes):
    by_coco_id = {scene["coco_id"]: scene for scene in scenes["scenes"]}
    annotations = _load(world.coco_captions)["annotations"] + _load(world.coco_captions_val)["annotations"]
    padded = 0
    for annotation in annotations:
        caption = annotation["caption"]
        padded += caption != caption.strip()
        scene = by_coco_id[annotation["image_id"]]
        mentions = MENTION.findall(caption)
        named = collections.Counter((colour.lower(), shape.lower()) for _, colour, shape in mentions)
        assert named == collections.Counter((o["colour"], o["shape"]) for o in scene["objects"]), caption
        for size_word, colour, shape in mentions:
            if size_word:
                item = next(o for o in scene["objects"] if (o["colour"], o["shape"]) == (colour.lower(), shape))
                assert SIZE_WORDS[size_word.lower()] == item["size"], caption
        assert not RELATION_WORDS.search(caption), caption
    assert padded > 0  # like the real file, some captions carry trailing whitespace


def test_captions_are_distinct_per_image(scenes):
    for scene in scenes["scenes"]:
        assert len({" ".join(caption.split()) for caption in scene["captions"]}) == len(scene["captions"])


# --------------------------------------------------------------------------------------------------------------------
# ConceptNet
# --------------------------------------------------------------------------------------------------------------------


def _conceptnet_rows(world):
    with gzip.open(world.conceptnet, "rt", encoding="utf-8", newline="") as stream:
        text = stream.read()
    assert text.endswith("\n") and "\r" not in text
    return [line.split("\t") for line in text[:-1].split("\n")]


def test_conceptnet_assertions_format(world):
    rows = _conceptnet_rows(world)
    counts = world.manifest()["counts"]
    assert len(rows) == counts["conceptnet_rows"]
    assert ["\t".join(row) for row in rows] == sorted("\t".join(row) for row in rows)
    with_surface = 0
    for uri, relation, start, end, info in rows:
        assert uri == f"/a/[{relation}/,{start}/,{end}/]"
        assert relation.startswith("/r/") and CAMEL_CASE.match(relation[3:])
        assert start.startswith("/c/")
        data = json.loads(info)
        assert (
            {"dataset", "license", "sources", "weight"}
            <= set(data)
            <= {
                "dataset",
                "license",
                "sources",
                "weight",
                "surfaceText",
                "surfaceStart",
                "surfaceEnd",
            }
        )
        assert info == json.dumps(data, ensure_ascii=False, sort_keys=True)
        assert data["license"] in ("cc:by/4.0", "cc:by-sa/4.0") and data["weight"] > 0
        assert isinstance(data["sources"], list) and all(isinstance(source, dict) for source in data["sources"])
        if "surfaceText" in data:
            with_surface += 1
            assert re.fullmatch(r".*\[\[.+\]\].*\[\[.+\]\].*", data["surfaceText"])
    assert 0 < with_surface < len(rows)


def test_conceptnet_deliberate_skips_and_english_rows(world):
    rows = _conceptnet_rows(world)
    expected = world.manifest()["expected_skips"]["conceptnet"]

    def language(uri):
        return uri.split("/")[2] if uri.startswith("/c/") else None

    external = [row for row in rows if row[1] == "/r/ExternalURL"]
    other_language = [
        row for row in rows if row[1] != "/r/ExternalURL" and {language(row[2]), language(row[3])} != {"en"}
    ]
    assert len(external) == expected["external_url"] > 0
    assert len(other_language) == expected["non_english"] > 0
    assert any(language(row[2]) == "enm" or language(row[3]) == "enm" for row in other_language)  # the prefix pitfall
    assert any(not "\t".join(row).isascii() for row in other_language)
    english = [row for row in rows if row not in external and row not in other_language]
    assert len(english) == world.manifest()["counts"]["conceptnet_english_rows"]
    # Collapsed to /c/en/<text>, English rows are distinct triplets without self-loops: no expected loader skip.
    collapsed = [("/".join(row[2].split("/")[:4]), row[1], "/".join(row[3].split("/")[:4])) for row in english]
    assert len(set(collapsed)) == len(collapsed)
    assert all(head != tail for head, _, tail in collapsed)
    for colour in COLOURS:
        assert (f"/c/en/{colour}", "/r/IsA", "/c/en/color") in collapsed
    for shape in SHAPES:
        assert (f"/c/en/{shape}", "/r/IsA", "/c/en/shape") in collapsed
        assert (f"/c/en/red_{shape}", "/r/HasProperty", "/c/en/red") in collapsed
    assert ("/c/en/triangle", "/r/HasA", "/c/en/three_sides") in collapsed
    assert ("/c/en/big", "/r/Antonym", "/c/en/small") in collapsed


# --------------------------------------------------------------------------------------------------------------------
# VisualSem
# --------------------------------------------------------------------------------------------------------------------


def _visualsem_image(world, digest: str) -> Path:
    folder = world.visualsem / "images" / digest[:2]
    return folder / f"{digest}.jpg" if (folder / f"{digest}.jpg").is_file() else folder / digest


def test_visualsem_nodes_and_images(world):
    nodes = _load(world.visualsem / "nodes.v2.json")
    assert len(nodes) == world.manifest()["counts"]["visualsem_nodes"]
    listed = collections.Counter()
    for bnid, node in nodes.items():
        assert re.fullmatch(r"bn:\d{8}n", bnid)
        assert set(node) == {"ms", "se", "ims"}
        assert re.fullmatch(r"WN:EN:[a-z_]+", node["ms"])
        assert node["ms"].split(":", 2)[2] in node["se"] and all(isinstance(s, str) for s in node["se"])
        assert node["ims"] and len(set(node["ims"])) == len(node["ims"])
        listed.update(node["ims"])
    for digest in listed:
        path = _visualsem_image(world, digest)
        assert hashlib.sha1(path.read_bytes()).hexdigest() == digest
    on_disk = [p for p in (world.visualsem / "images").rglob("*") if p.is_file()]
    assert {p.name.removesuffix(".jpg") for p in on_disk} == set(listed)
    assert sum(p.suffix == "" for p in on_disk) == world.manifest()["counts"]["visualsem_images_without_extension"] > 0
    assert max(listed.values()) > 1  # one file in several nodes' ims, like the real data
    splits = [set(_load(world.visualsem / f"{split}_images.json")) for split in ("train", "valid", "test")]
    assert set().union(*splits) == set(listed) and sum(map(len, splits)) == len(listed)


def test_visualsem_node_images_show_their_node(world):
    nodes = _load(world.visualsem / "nodes.v2.json")
    for node in nodes.values():
        name = node["ms"].split(":", 2)[2]
        if "_" not in name:
            continue
        colour, shape = name.split("_")
        for digest in node["ims"]:
            with Image.open(_visualsem_image(world, digest)) as image:
                assert _dominant_colour(image) == colour, name


def test_visualsem_tuples_and_glosses(world):
    nodes = _load(world.visualsem / "nodes.v2.json")
    tuples = _load(world.visualsem / "tuples.v2.json")
    r_ids = []
    for tail, entries in tuples.items():
        assert tail in nodes
        for entry in entries:
            assert set(entry) == {"s", "r", "r_id"} and entry["s"] in nodes and entry["s"] != tail
            assert CAMEL_CASE.match(entry["r"]) and _is_int(entry["r_id"])
            r_ids.append(entry["r_id"])
    assert sorted(r_ids) == list(range(world.manifest()["counts"]["visualsem_tuples"]))
    glosses = _load(world.visualsem / "gloss_files" / "nodes.glosses.json")
    languages = glosses[0]["available_languages"]
    assert set(glosses[0]) == {"available_languages"} and languages[0] == "en"
    assert all(len(entry) == 1 for entry in glosses[1:])
    assert {next(iter(entry)) for entry in glosses[1:]} == set(nodes)
    for language in languages:
        folder = world.visualsem / "gloss_files"
        lines = (folder / f"glosses.{language}.txt").read_text(encoding="utf-8").splitlines()
        bnids = (folder / f"glosses.{language}.txt.bnids").read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(bnids) > 0 and set(bnids) <= set(nodes)


# --------------------------------------------------------------------------------------------------------------------
# Zero-shot set
# --------------------------------------------------------------------------------------------------------------------


def test_zero_shot_set_is_an_imagefolder_with_true_labels(world, scenes):
    assert tuple(scenes["class_names"]) == world.class_names
    folder = world.zero_shot / "test"
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == world.manifest()["counts"]["zero_shot_images"]
    assert collections.Counter(row["label"] for row in rows) == {name: 5 for name in world.class_names}
    for row in rows:
        assert set(row) == {"file_name", "label"}
        colour, shape = row["label"].split()
        assert colour in COLOURS and shape in SHAPES
        with Image.open(folder / row["file_name"]) as image:
            assert _dominant_colour(image) == colour, row
