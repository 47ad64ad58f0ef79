"""Tests of the VisualSem loader on fixtures written in the published v1/v2 shapes."""

import hashlib
import json

import pytest
from PIL import Image

from knowledge_clip.data.visualsem import load_visualsem, node_lemma, relation_text
from knowledge_clip.errors import EmptyGraphError, KnowledgeCLIPDataError
from knowledge_clip.graph import EntityView, ViewKind


def sha1(name):
    return hashlib.sha1(name.encode()).hexdigest()


DOG, CAT, ANIMAL, EMPTY = "bn:00015267n", "bn:00016300n", "bn:00004222n", "bn:00099999n"
DOG_IMAGE, DOG_BARE_IMAGE, CAT_IMAGE, LOST_IMAGE = sha1("dog"), sha1("dog2"), sha1("cat"), sha1("lost")


def write_image(root, image_id, extension=".jpg"):
    folder = root / "images" / image_id[:2]
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (0, 90, 200)).save(folder / f"{image_id}{extension}", format="JPEG")


def write_visualsem(root, nodes, tuples, glosses=None, version="v2"):
    suffix = ".v2" if version == "v2" else ""
    (root / f"nodes{suffix}.json").write_text(json.dumps(nodes))
    (root / f"tuples{suffix}.json").write_text(json.dumps(tuples))
    if glosses is not None:
        (root / "gloss_files").mkdir(exist_ok=True)
        (root / "gloss_files" / "nodes.glosses.json").write_text(json.dumps(glosses, ensure_ascii=False))


def default_dataset(root):
    write_image(root, DOG_IMAGE)
    write_image(root, DOG_BARE_IMAGE, extension="")  # left without extension by the authors' resize step
    write_image(root, CAT_IMAGE)
    nodes = {
        DOG: {"ms": "WN:EN:domestic_dog", "se": ["dog", "Canis_familiaris"], "ims": [DOG_IMAGE, DOG_BARE_IMAGE]},
        CAT: {"ms": "WIKI:EN:Cat", "se": ["cat"], "ims": [CAT_IMAGE, LOST_IMAGE, "../../../etc/passwd"]},
        ANIMAL: {"ms": "WN:EN:animal", "se": ["animal"], "ims": []},
        EMPTY: {"ms": "", "se": [], "ims": [LOST_IMAGE]},  # nothing left to show
    }
    tuples = {
        ANIMAL: [
            {"s": DOG, "r": "IsA", "r_id": 1},
            {"s": CAT, "r": "IsA", "r_id": 2},
            {"s": CAT, "r": "IsA", "r_id": 3},  # duplicate
            {"s": EMPTY, "r": "IsA", "r_id": 4},  # node without views
            {"s": "bn:00000001n", "r": "IsA", "r_id": 5},  # not in the nodes file
        ],
        DOG: [{"s": CAT, "r": "RelatedTo", "r_id": 6}, {"s": DOG, "r": "RelatedTo", "r_id": 7}],  # self-loop
        CAT: [{"s": DOG, "r": "has-part", "r_id": 8}, {"r": "IsA", "r_id": 9}],  # no head
    }
    glosses = [
        {"available_languages": ["en", "de"]},
        {DOG: {"en": ["A member of the genus Canis.", "  "], "de": ["Der Hund."]}},
        {CAT: {"de": ["Die Katze."]}},
        {ANIMAL: {"en": ["A living organism."]}},
    ]
    write_visualsem(root, nodes, tuples, glosses)


def triplet_texts(graph):
    return sorted(
        (graph.entity_key(h), graph.relations[r], graph.entity_key(t))
        for h, r, t in zip(graph.heads.tolist(), graph.relation_ids.tolist(), graph.tails.tolist())
    )


def test_nodes_views_and_triplets(tmp_path):
    default_dataset(tmp_path)
    graph = load_visualsem(tmp_path)
    assert triplet_texts(graph) == sorted(
        [(CAT, "is a", ANIMAL), (CAT, "related to", DOG), (DOG, "has part", CAT), (DOG, "is a", ANIMAL)]
    )
    assert graph.entity_views(graph.entity_id(DOG)) == [
        EntityView(ViewKind.TEXT, text="domestic dog"),
        EntityView(ViewKind.TEXT, text="A member of the genus Canis."),
        EntityView(ViewKind.IMAGE, path=f"images/{DOG_IMAGE[:2]}/{DOG_IMAGE}.jpg"),
        EntityView(ViewKind.IMAGE, path=f"images/{DOG_BARE_IMAGE[:2]}/{DOG_BARE_IMAGE}"),
    ]
    # The German gloss is left out by default.
    assert [view.text for view in graph.entity_views(graph.entity_id(CAT)) if view.kind == ViewKind.TEXT] == ["Cat"]
    report = graph.report
    assert report.records_read == 9 and report.triplets_loaded == 4
    assert report.skipped == {
        "invalid image id": 1,
        "missing image": 2,
        "node without views": 1,
        "triplet of a skipped node": 1,
        "unknown node": 1,
        "duplicate triplet": 1,
        "self-loop": 1,
        "invalid tuple record": 1,
    }
    assert "../../../etc/passwd" in report.examples["invalid image id"][0]
    assert EMPTY in report.examples["node without views"][0]
    with pytest.raises(KeyError):
        graph.entity_id(EMPTY)


def test_gloss_languages(tmp_path):
    default_dataset(tmp_path)
    graph = load_visualsem(tmp_path, languages=("en", "de"))
    texts = [view.text for view in graph.entity_views(graph.entity_id(DOG)) if view.kind == ViewKind.TEXT]
    assert texts == ["domestic dog", "A member of the genus Canis.", "Der Hund."]
    with pytest.raises(ValueError, match="available"):
        load_visualsem(tmp_path, languages=("fr",))


def test_v1_files_with_gl_glosses(tmp_path):
    nodes = {
        DOG: {"ms": "WN:EN:dog", "se": ["dog"], "ims": [], "gl": ["A domesticated canid. "]},
        CAT: {"se": ["house_cat"], "ims": [], "gl": []},  # no main sense: lemma from se[0]
    }
    write_visualsem(tmp_path, nodes, {DOG: [{"s": CAT, "r": "RelatedTo", "r_id": 0}]}, version="v1")
    graph = load_visualsem(tmp_path)
    assert triplet_texts(graph) == [(CAT, "related to", DOG)]
    assert [view.text for view in graph.entity_views(graph.entity_id(DOG))] == ["dog", "A domesticated canid."]
    assert [view.text for view in graph.entity_views(graph.entity_id(CAT))] == ["house cat"]


def test_relation_text_and_lemma():
    assert [relation_text(r) for r in ("IsA", "HasA", "RelatedTo", "AtLocation", "is-a", "GlossRelated")] == [
        "is a",
        "has a",
        "related to",
        "at location",
        "is a",
        "gloss related",
    ]
    assert node_lemma({"ms": "GEONM:EN:Jerusalem_District"}) == "Jerusalem District"
    assert node_lemma({"ms": "bad", "se": ["Canis_familiaris"]}) == "Canis familiaris"
    assert node_lemma({"se": []}) is None


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        ("nodes.v2.json", "", "empty file"),
        ("nodes.v2.json", "[]", "the top level is a list, expected an object"),
        ("tuples.v2.json", '{"bn:1": [{"s": "bn:2", "r": "IsA"}', "invalid JSON: Expecting ','"),
        ("tuples.v2.json", '{"bn:1": [{"s": "bn:2" "r": "IsA"}]}', "invalid JSON"),
        ("gloss_files/nodes.glosses.json", '{"available_languages": ["en"]}', "the top level is an object"),
        ("gloss_files/nodes.glosses.json", '[{"languages": ["en"]}]', "available_languages"),
    ],
)
def test_bad_json_raises_naming_the_file(tmp_path, file_name, content, message):
    default_dataset(tmp_path)
    (tmp_path / file_name).write_text(content)
    with pytest.raises(KnowledgeCLIPDataError, match=message) as error:
        load_visualsem(tmp_path)
    assert error.value.file.endswith(file_name)


def test_missing_files_and_empty_graph(tmp_path):
    with pytest.raises(FileNotFoundError, match="nodes"):
        load_visualsem(tmp_path)
    write_visualsem(tmp_path, {DOG: {"ms": "WN:EN:dog", "ims": []}}, {DOG: [{"s": DOG, "r": "IsA", "r_id": 0}]})
    with pytest.raises(EmptyGraphError, match="self-loop: 1"):
        load_visualsem(tmp_path)
