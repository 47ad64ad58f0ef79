# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Every loader reads the demo world completely: no skip except the deliberate ones, whose counts are exact."""

import json
from pathlib import Path

import pytest

from knowledge_clip.data.conceptnet import load_conceptnet
from knowledge_clip.data.demo_world import NEXT_TO_MAX_GAP, build_demo_world
from knowledge_clip.data.image_text import load_image_text_pairs
from knowledge_clip.data.visual_genome import load_visual_genome
from knowledge_clip.data.visualsem import load_visualsem
from knowledge_clip.graph import ViewKind


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_demo_world(tmp_path_factory.mktemp("world") / "default", seed=0, size="default")


def _load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _holds(predicate: str, subject: tuple, obj: tuple) -> bool:
    """The predicate between two `(x0, y0, x1, y1)` boxes, restated independently of the generator."""
    gap_x = max(0, obj[0] - subject[2], subject[0] - obj[2])
    gap_y = max(0, obj[1] - subject[3], subject[1] - obj[3])
    ratio = ((subject[2] - subject[0]) * (subject[3] - subject[1])) / ((obj[2] - obj[0]) * (obj[3] - obj[1]))
    return {
        "left of": subject[2] <= obj[0],
        "right of": subject[0] >= obj[2],
        "above": subject[3] <= obj[1],
        "below": subject[1] >= obj[3],
        "next to": (gap_x**2 + gap_y**2) ** 0.5 <= NEXT_TO_MAX_GAP,
        "bigger than": ratio >= 2,
        "smaller than": ratio <= 0.5,
    }[predicate]


def test_conceptnet_skips_exactly_the_deliberate_rows(world):
    graph = load_conceptnet(world.conceptnet)
    manifest = world.manifest()
    expected = manifest["expected_skips"]["conceptnet"]
    # One reason for the web links, one for the other languages; the reason names are the loader's.
    skipped = dict(graph.report.skipped)
    (url_reason,) = [reason for reason in skipped if "url" in reason.lower()]
    assert skipped.pop(url_reason) == expected["external_url"]
    assert list(skipped.values()) == [expected["non_english"]]
    assert graph.report.records_read == manifest["counts"]["conceptnet_rows"]
    assert graph.num_triplets == graph.report.triplets_loaded == manifest["counts"]["conceptnet_english_rows"]
    triplets = {
        (graph.entity_key(h), graph.relations[r], graph.entity_key(t))
        for h, r, t in zip(graph.heads, graph.relation_ids, graph.tails)
    }
    assert any("red" in h and "circle" in h and r == "is a" and "circle" in t for h, r, t in triplets)
    assert not any("enm" in h or "enm" in t for h, _, t in triplets)


@pytest.mark.parametrize("use_attributes", [False, True])
def test_visual_genome_reads_every_relationship_and_attribute(world, use_attributes):
    graph = load_visual_genome(world.visual_genome, use_attributes=use_attributes)
    counts = world.manifest()["counts"]
    attributes = sum(
        len(item.get("attributes", []))
        for entry in _load(world.visual_genome / "attributes.json")
        for item in entry["attributes"]
    )
    assert graph.report.skipped == {}
    assert graph.num_triplets == counts["vg_relationships"] + (attributes if use_attributes else 0)
    relations = set(graph.relations)
    assert {"left of", "right of", "above", "below", "next to", "bigger than", "smaller than"} <= relations
    assert relations - {"has attribute"} <= {
        "left of",
        "right of",
        "above",
        "below",
        "next to",
        "bigger than",
        "smaller than",
    }
    # The loaded regions still make every spatial triplet true.
    for head, relation_id, tail in zip(graph.heads, graph.relation_ids, graph.tails):
        relation = graph.relations[relation_id]
        if relation == "has attribute":
            continue
        (subject,) = graph.entity_views(int(head))
        (obj,) = graph.entity_views(int(tail))
        assert subject.kind == obj.kind == ViewKind.REGION and subject.path == obj.path
        assert (Path(graph.root) / subject.path).is_file()
        assert _holds(relation, subject.box, obj.box), (relation, subject, obj)


def test_visualsem_reads_every_node_tuple_and_image(world):
    graph = load_visualsem(world.visualsem)
    nodes = _load(world.visualsem / "nodes.v2.json")
    assert graph.report.skipped == {}
    assert graph.num_triplets == world.manifest()["counts"]["visualsem_tuples"]
    assert graph.num_entities == len(nodes)
    image_views = [
        view
        for entity in range(graph.num_entities)
        for view in graph.entity_views(entity)
        if view.kind == ViewKind.IMAGE
    ]
    assert len(image_views) == sum(len(node["ims"]) for node in nodes.values())
    # The deliberately extensionless files are found too.
    assert any(not view.path.endswith(".jpg") for view in image_views)
    assert set(graph.relations) == {"is a", "has property", "related to"}


@pytest.mark.parametrize("split", ["train", "val"])
def test_image_text_reads_every_coco_caption(world, split):
    path = world.coco_captions if split == "train" else world.coco_captions_val
    graph = load_image_text_pairs(path)
    num_captions = world.manifest()["counts"][f"coco_{split}_captions"]
    assert graph.report.skipped == {}
    assert graph.report.records_read == num_captions
    assert graph.num_triplets == 2 * num_captions
    images = [e for e in range(graph.num_entities) if graph.entity_views(e)[0].kind == ViewKind.IMAGE]
    assert len(images) == world.manifest()["counts"][f"coco_{split}_images"]
