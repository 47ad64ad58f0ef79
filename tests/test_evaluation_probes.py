"""Caption probes: built true/false from the demo world's ground truth, read from user files, scored correctly."""

import json
import re

import pytest
import torch
from tiny import solid_image, tiny_config, tiny_processor, tiny_tokenizer

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.data.demo_world import build_demo_world
from knowledge_clip.errors import KnowledgeCLIPDataError
from knowledge_clip.evaluation import (
    PROBE_KINDS,
    CaptionProbe,
    build_demo_world_probes,
    encode_images,
    encode_texts,
    evaluate_caption_probes,
    load_caption_probes,
)

PHRASE = r"(?:an? )?(?:(small|large) )?(\w+) (\w+)"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_demo_world(tmp_path_factory.mktemp("world") / "tiny", seed=0, size="tiny")


@pytest.fixture(scope="module")
def scenes(world):
    return {str(world.root / scene["coco_file"]): scene for scene in world.load_scenes()["scenes"]}


def _objects(scene):
    return {(o["colour"], o["shape"]): o for o in scene["objects"]}


def _holds(caption, scene):
    """Whether a probe caption is true of a scene, decided from the ground truth alone."""
    objects = _objects(scene)
    if match := re.fullmatch(r"there is no (\w+) (\w+)", caption):
        return match.groups() not in objects
    if match := re.fullmatch(rf"there is {PHRASE}", caption):
        return match.groups()[1:] in objects
    if match := re.fullmatch(rf"a picture of {PHRASE}", caption):
        size, colour, shape = match.groups()
        return (colour, shape) in objects and size in (None, objects[colour, shape]["size"])
    if match := re.fullmatch(
        rf"{PHRASE} is (left of|right of|above|below|bigger than|smaller than) {PHRASE}", caption
    ):
        _, colour_a, shape_a, predicate, _, colour_b, shape_b = match.groups()
        if (colour_a, shape_a) not in objects or (colour_b, shape_b) not in objects:
            return False
        index = {(o["colour"], o["shape"]): i for i, o in enumerate(scene["objects"])}
        return [index[colour_a, shape_a], predicate, index[colour_b, shape_b]] in scene["relations"]
    if match := re.fullmatch(rf"{PHRASE} and {PHRASE}", caption):
        groups = match.groups()
        return groups[1:3] in objects and groups[4:6] in objects
    raise AssertionError(f"unexpected probe caption {caption!r}")


def test_demo_world_probes_are_true_and_false_as_labelled(world, scenes):
    probes = build_demo_world_probes(world.scenes_file, split="all")
    assert {probe.kind for probe in probes} == set(PROBE_KINDS)
    for probe in probes:
        scene = scenes[str(probe.image)]
        assert _holds(probe.true_caption, scene), probe
        assert not _holds(probe.false_caption, scene), probe
        assert probe.true_caption != probe.false_caption


def test_demo_world_probes_are_deterministic_and_follow_the_split(world):
    first = build_demo_world_probes(world.scenes_file, seed=3)
    assert first == build_demo_world_probes(world.scenes_file, seed=3)
    val_images = {str(world.root / s["coco_file"]) for s in world.load_scenes()["scenes"] if s["split"] == "val"}
    assert first and {str(probe.image) for probe in first} <= val_images
    only = build_demo_world_probes(world.scenes_file, kinds=["size"], split="all")
    assert only and {probe.kind for probe in only} == {"size"}
    with pytest.raises(ValueError, match="Unknown probe kinds"):
        build_demo_world_probes(world.scenes_file, kinds=["smell"])


def test_load_caption_probes(tmp_path):
    solid_image((200, 10, 10)).save(tmp_path / "red.png")
    rows = [
        {"image": "red.png", "true_caption": "a red square", "false_caption": "a blue square", "kind": "colour"},
        {"image": str(tmp_path / "red.png"), "true_caption": "a square", "false_caption": "no square"},
    ]
    (tmp_path / "probes.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    probes = load_caption_probes(tmp_path / "probes.jsonl")
    assert probes == [
        CaptionProbe(tmp_path / "red.png", "a red square", "a blue square", "colour"),
        CaptionProbe(tmp_path / "red.png", "a square", "no square", "user"),
    ]
    (tmp_path / "bad.jsonl").write_text(
        json.dumps(rows[0]) + "\n" + json.dumps({"image": "red.png", "true_caption": "x"})
    )
    with pytest.raises(KnowledgeCLIPDataError, match=r"bad.jsonl:2: false_caption"):
        load_caption_probes(tmp_path / "bad.jsonl")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(KnowledgeCLIPDataError, match=r"broken.jsonl:1"):
        load_caption_probes(tmp_path / "broken.jsonl")


def test_probe_accuracy_equals_a_literal_comparison_and_ties_fail():
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model, processor = KnowledgeCLIPModel(tiny_config(tokenizer)).eval(), tiny_processor(tokenizer)
    images = [solid_image(c) for c in ((220, 30, 30), (30, 30, 220), (30, 200, 30))]
    probes = [
        CaptionProbe(images[0], "a red square", "a blue square", "colour"),
        CaptionProbe(images[1], "a blue circle", "a red circle", "colour"),
        CaptionProbe(images[2], "a green shape", "no green shape", "negation"),
        CaptionProbe(images[2], "a green shape", "a green shape", "negation"),  # a tie never counts as a success
    ]
    result = evaluate_caption_probes(model, processor, probes, batch_size=2)
    image_embeds = encode_images(model, processor, [p.image for p in probes])
    margins = [
        float(image_embeds[i] @ encode_texts(model, processor, [p.true_caption])[0])
        - float(image_embeds[i] @ encode_texts(model, processor, [p.false_caption])[0])
        for i, p in enumerate(probes)
    ]
    assert result["colour"]["accuracy"] == sum(m > 0 for m in margins[:2]) / 2
    assert result["negation"]["accuracy"] == (1.0 if margins[2] > 0 else 0.0) / 2
    assert result["overall"]["count"] == 4
    assert result["overall"]["mean_margin"] == pytest.approx(sum(margins) / 4, abs=1e-6)
    assert evaluate_caption_probes(model.to_clip(), processor, probes, batch_size=2) == result
