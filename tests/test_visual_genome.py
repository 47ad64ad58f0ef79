"""Tests of the Visual Genome loader and of the streaming JSON reader it shares with the other JSON loaders."""

import json
import random
import tracemalloc

import pytest
from PIL import Image

from knowledge_clip.data.json_stream import JsonStreamReader, iter_jsonl_lines, iter_jsonl_objects
from knowledge_clip.data.visual_genome import load_visual_genome
from knowledge_clip.errors import EmptyGraphError, KnowledgeCLIPDataError
from knowledge_clip.graph import EntityView, ViewKind

URL = "https://cs.stanford.edu/people/rak248/{folder}/{image_id}.jpg"


def image_record(image_id, folder="VG_100K", width=100, height=80, id_key="image_id"):
    return {id_key: image_id, "url": URL.format(folder=folder, image_id=image_id), "width": width, "height": height,
            "coco_id": None, "flickr_id": None}  # fmt: skip


def obj(object_id, x=0, y=0, w=10, h=10, name="thing", **extra):
    return {"object_id": object_id, "x": x, "y": y, "w": w, "h": h, "name": name, "synsets": [], **extra}


def rel(relationship_id, predicate, subject, object_):
    return {"relationship_id": relationship_id, "predicate": predicate, "synsets": [], "subject": subject,
            "object": object_}  # fmt: skip


def write_vg(root, image_data, relationships, images=(("VG_100K", 1),), attributes=None, suffix=""):
    for folder, image_id in images:
        (root / folder).mkdir(exist_ok=True)
        Image.new("RGB", (4, 4), (200, 10, 10)).save(root / folder / f"{image_id}.jpg")
    (root / f"image_data{suffix}.json").write_text(json.dumps(image_data))
    (root / f"relationships{suffix}.json").write_text(json.dumps(relationships))
    if attributes is not None:
        (root / f"attributes{suffix}.json").write_text(json.dumps(attributes))


def triplet_texts(graph):
    return sorted(
        (graph.entity_key(h), graph.relations[r], graph.entity_key(t))
        for h, r, t in zip(graph.heads.tolist(), graph.relation_ids.tolist(), graph.tails.tolist())
    )


def test_v1_4_shapes_regions_and_predicates(tmp_path):
    write_vg(
        tmp_path,
        [image_record(1, width=100, height=80)],
        [
            {
                "image_id": 1,
                "relationships": [
                    # `name` and `names` forms mixed, as in the released v1.4 file.
                    rel(10, "ON", obj(1, 5, 6, 20, 30, name="cup"), obj(2, 0, 40, 100, 40, names=["table"])),
                    rel(11, "  Next   To ", obj(3, name="plate"), obj(2, 0, 40, 100, 40, names=["table"])),
                ],
            }
        ],
    )
    graph = load_visual_genome(tmp_path)
    assert triplet_texts(graph) == [("object/1", "on", "object/2"), ("object/3", "next to", "object/2")]
    assert graph.relations == ["on", "next to"]
    cup = graph.entity_id("object/1")
    assert graph.entity_views(cup) == [EntityView(ViewKind.REGION, path="VG_100K/1.jpg", box=(5.0, 6.0, 25.0, 36.0))]
    assert graph.report.records_read == 2 and graph.report.triplets_loaded == 2 and graph.report.skipped == {}
    assert graph.root == str(tmp_path)


def test_v1_0_id_keys_and_versioned_file_names(tmp_path):
    v10_object = {"id": 7, "x": 1, "y": 1, "w": 5, "h": 5, "name": "man"}
    write_vg(
        tmp_path,
        [image_record(3, id_key="id")],
        [
            {
                "id": 3,
                "relationships": [
                    {
                        "id": 1,
                        "predicate": "riding",
                        "subject": v10_object,
                        "object": {**v10_object, "id": 8, "name": "horse"},
                    }
                ],
            }
        ],  # fmt: skip
        images=[("VG_100K", 3)],
        suffix="_v1_0",
    )
    with pytest.raises(FileNotFoundError, match="image_data.json"):
        load_visual_genome(tmp_path)
    graph = load_visual_genome(tmp_path, version="1.0")
    assert triplet_texts(graph) == [("object/7", "riding", "object/8")]
    with pytest.raises(ValueError, match="version"):
        load_visual_genome(tmp_path, version="2.0")


def test_image_folder_from_url_with_fallback_and_missing_image(tmp_path):
    relationships = [
        {"image_id": image_id, "relationships": [rel(image_id * 10, "on", obj(image_id * 10), obj(image_id * 10 + 1))]}
        for image_id in (1, 2, 3)
    ]
    # Image 1 is where its url says; image 2's url says VG_100K but the file is in VG_100K_2; image 3 has no file.
    write_vg(
        tmp_path,
        [image_record(1, "VG_100K_2"), image_record(2, "VG_100K"), image_record(3, "VG_100K")],
        relationships,
        images=[("VG_100K_2", 1), ("VG_100K_2", 2), ("VG_100K", 99)],
    )
    graph = load_visual_genome(tmp_path)
    paths = {graph.entity_views(graph.entity_id(f"object/{i}0"))[0].path for i in (1, 2)}
    assert paths == {"VG_100K_2/1.jpg", "VG_100K_2/2.jpg"}
    assert graph.num_triplets == 2
    assert graph.report.skipped == {"missing image": 1, "relationship in a skipped image": 1}
    assert "record 2" in graph.report.examples["missing image"][0]


def test_boxes_clipped_and_empty_boxes_skipped(tmp_path):
    write_vg(
        tmp_path,
        [image_record(1, width=100, height=80)],
        [
            {
                "image_id": 1,
                "relationships": [
                    rel(1, "near", obj(1, -10, 70, 50, 50), obj(2, 90, -5, 30, 20)),
                    rel(2, "near", obj(3, 100, 10, 20, 20), obj(2, 90, -5, 30, 20)),  # starts at the right edge
                    rel(3, "near", obj(4, 10, 10, 0, 5), obj(2, 90, -5, 30, 20)),  # zero width
                ],
            }
        ],
    )
    graph = load_visual_genome(tmp_path)
    assert graph.num_triplets == 1
    assert graph.entity_views(graph.entity_id("object/1"))[0].box == (0.0, 70.0, 40.0, 80.0)
    assert graph.entity_views(graph.entity_id("object/2"))[0].box == (90.0, 0.0, 100.0, 15.0)
    assert graph.report.skipped == {"empty box after clipping": 2}
    assert "relationship 2: field subject" in graph.report.examples["empty box after clipping"][0]


def test_relationship_with_missing_or_invalid_object_is_skipped(tmp_path):
    no_box = {"object_id": 5, "name": "ghost", "synsets": []}
    write_vg(
        tmp_path,
        [image_record(1)],
        [
            {
                "image_id": 1,
                "relationships": [
                    rel(1, "on", obj(1), obj(2)),
                    rel(2, "on", obj(1), no_box),
                    {"relationship_id": 3, "predicate": "on", "object": obj(2)},
                    rel(4, "on", {**obj(3), "x": "12"}, obj(2)),
                    rel(5, "", obj(1), obj(3)),
                ],
            }
        ],
    )
    graph = load_visual_genome(tmp_path)
    assert graph.num_triplets == 1
    assert graph.report.records_read == 5
    assert graph.report.skipped == {"missing or invalid object": 3, "missing predicate": 1}
    examples = graph.report.examples["missing or invalid object"]
    assert "relationship 2: field object" in examples[0] and "relationship 3: field subject" in examples[1]
    assert examples[0].startswith("relationships.json:1: record 0 (image 1)")
    # Objects of skipped relationships do not become entities.
    assert graph.num_entities == 2


def test_duplicates_self_loops_and_merged_objects(tmp_path):
    write_vg(
        tmp_path,
        [image_record(1)],
        [
            {
                "image_id": 1,
                "relationships": [
                    # 9003 was merged into 9002 (v1.4), which only says so in a later relationship.
                    rel(1, "on", obj(9001), obj(9003, 1, 1, 5, 5)),
                    rel(2, "ON ", obj(9001), obj(9002, 0, 0, 8, 8, names=["table"], merged_object_ids=[9003])),
                    rel(3, "has", obj(9002, names=["table"], merged_object_ids=[9003]), obj(9003)),  # self-loop
                    rel(4, "on", obj(9001), obj(9001)),  # self-loop
                    rel(5, "under", obj(9002, 0, 0, 8, 8), obj(9001)),
                ],
            }
        ],
    )
    graph = load_visual_genome(tmp_path)
    assert triplet_texts(graph) == [("object/9001", "on", "object/9002"), ("object/9002", "under", "object/9001")]
    assert graph.report.skipped == {"duplicate triplet": 1, "self-loop": 2}
    assert graph.num_entities == 2


def test_attributes(tmp_path):
    attributes = [
        {
            "image_id": 1,
            "attributes": [
                {
                    "object_id": 1,
                    "x": 0,
                    "y": 0,
                    "w": 5,
                    "h": 5,
                    "names": ["cup"],
                    "synsets": [],
                    "attributes": ["White ", "tan  ", "white"],
                },  # fmt: skip
                {"object_id": 3, "x": 2, "y": 2, "w": 5, "h": 5, "names": ["dog"], "synsets": []},  # no attributes
                {"object_id": 4, "x": 2, "y": 2, "w": 5, "h": 5, "names": ["cat"], "attributes": ["white", "  "]},
                {"object_id": 5, "x": 2, "y": 2, "w": 5, "h": 5, "names": ["cat"], "attributes": [""]},
            ],
        }
    ]
    write_vg(tmp_path, [image_record(1)], [{"image_id": 1, "relationships": [rel(1, "on", obj(1), obj(2))]}],
             attributes=attributes)  # fmt: skip
    assert load_visual_genome(tmp_path).num_triplets == 1
    graph = load_visual_genome(tmp_path, use_attributes=True)
    assert triplet_texts(graph) == [
        ("object/1", "has attribute", "attribute/tan"),
        ("object/1", "has attribute", "attribute/white"),
        ("object/1", "on", "object/2"),
        ("object/4", "has attribute", "attribute/white"),
    ]
    # One relationship and six attribute strings were read.
    assert graph.report.records_read == 7
    assert graph.report.skipped == {"duplicate triplet": 1, "empty attribute": 2}
    # An object left without any attribute does not become an entity.
    with pytest.raises(KeyError):
        graph.entity_id("object/5")
    white = graph.entity_id("attribute/white")
    assert graph.entity_views(white) == [EntityView(ViewKind.TEXT, text="white")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ('{"image_id": 1}', "the top level is an object, expected a list"),
        ('[{"image_id": 1, "relationships": [}]', "invalid JSON"),
        ('[{"image_id": 1, "relationships": []} {"image_id": 2}]', "expected ',' or ']'"),
    ],
)
def test_bad_json_raises_naming_the_file(tmp_path, content, message):
    write_vg(tmp_path, [image_record(1)], [])
    (tmp_path / "relationships.json").write_text(content)
    with pytest.raises(KnowledgeCLIPDataError, match=message) as error:
        load_visual_genome(tmp_path)
    assert error.value.file.endswith("relationships.json") and error.value.line == 1


def test_empty_graph_raises(tmp_path):
    write_vg(tmp_path, [image_record(1)], [{"image_id": 1, "relationships": [rel(1, "on", obj(1), obj(1))]}])
    with pytest.raises(EmptyGraphError, match="self-loop: 1"):
        load_visual_genome(tmp_path)


def random_json_value(rng, depth=0):
    choice = rng.randrange(7 if depth < 3 else 4)
    if choice == 0:
        return rng.choice([rng.randint(-(10**9), 10**9), rng.random() * 1e6, True, False, None])
    if choice in (1, 2):
        return "".join(rng.choice('ab "\\\n\u00e9\u4e2d\U0001f600') for _ in range(rng.randrange(8)))
    if choice == 3:
        return rng.randint(0, 10**12)
    if choice in (4, 5):
        return [random_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": random_json_value(rng, depth + 1) for i in range(rng.randrange(4))}


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64])
def test_stream_reader_matches_json_load_across_chunk_boundaries(tmp_path, chunk_size):
    rng = random.Random(chunk_size)
    path = tmp_path / "values.json"
    for indent in (None, 2):
        values = [random_json_value(rng) for _ in range(200)]
        path.write_text(json.dumps(values, indent=indent, ensure_ascii=False), encoding="utf-8")
        with JsonStreamReader(path, chunk_size=chunk_size) as reader:
            assert list(reader.iter_list()) == values
            reader.finish()


def test_stream_reader_nested_object_and_skipped_values(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"info": {"year": 2017}, "images": [1, 2], "annotations": [{"a": 1}], "end": 3.5}))
    read = {}
    with JsonStreamReader(path, chunk_size=4) as reader:
        for key in reader.iter_object():
            if key == "images":
                read[key] = list(reader.iter_list(field=key))
            elif key == "end":
                read[key] = reader.read_value(key)
        reader.finish()
    assert read == {"images": [1, 2], "end": 3.5}


def test_stream_reader_error_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n{"a": 1},\n{"a": tru},\n{"a": 2}\n]')
    # Line 3, character 18 (the `t` of `tru`), as json.loads reports it.
    with pytest.raises(KnowledgeCLIPDataError, match=r"bad.json:3: invalid JSON: Expecting value \(character 18\)"):
        with JsonStreamReader(path, chunk_size=2) as reader:
            list(reader.iter_list())


def test_stream_reader_memory_is_bounded(tmp_path):
    path = tmp_path / "large.json"
    record = {"image_id": 1, "relationships": [{"predicate": "on", "subject": {"x": 1}, "object": {"y": 2}}] * 20}
    path.write_text(json.dumps([record] * 4000))  # about 4 MB
    assert path.stat().st_size > 4_000_000
    tracemalloc.start()
    try:
        with JsonStreamReader(path, chunk_size=1 << 16) as reader:
            count = sum(1 for _ in reader.iter_list())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 4000
    assert peak < 1_000_000


def test_stream_reader_rejects_invalid_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"name": "caf\u00e9"}]'.encode("latin-1"))
    with pytest.raises(KnowledgeCLIPDataError, match="not UTF-8 text") as error:
        with JsonStreamReader(path) as reader:
            list(reader.iter_list())
    assert error.value.file == str(path)


def test_jsonl_lines_report_bad_lines_and_objects_raise_at_the_first(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"a": 1}\n\n{not json\n[1, 2]\n{"b": 2}\n', encoding="utf-8")
    lines = list(iter_jsonl_lines(path))
    assert [(number, record) for number, record, _ in lines] == [(1, {"a": 1}), (3, None), (4, None), (5, {"b": 2})]
    assert lines[0][2] is None and lines[1][2].startswith("invalid JSON: ") and lines[2][2] == "expected a JSON object"
    records = iter_jsonl_objects(path)
    assert next(records) == (1, {"a": 1})
    with pytest.raises(KnowledgeCLIPDataError, match="invalid JSON") as error:
        next(records)
    assert error.value.file == str(path) and error.value.line == 3
