"""Tests of the image-text pair loader: COCO captions, imagefolder metadata and WebDataset shards."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from knowledge_clip.data.image_text import CAPTION_OF, IMAGE_OF, expand_braces, load_image_text_pairs
from knowledge_clip.data.images import open_view_image, split_tar_member
from knowledge_clip.errors import EmptyGraphError, ImageLoadError, KnowledgeCLIPDataError, UnsafePathError
from knowledge_clip.graph import EntityView, ViewKind

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 0)]


def save_image(path, color=(255, 0, 0), size=(8, 6), format="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=format)


def png_bytes(color, size=(8, 6)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def pairs(graph):
    """The (image key, caption key) pairs of the "image of" triplets."""
    relation = graph.relations.index(IMAGE_OF)
    return sorted(
        (graph.entity_key(h), graph.entity_key(t))
        for h, r, t in zip(graph.heads.tolist(), graph.relation_ids.tolist(), graph.tails.tolist())
        if r == relation
    )


def assert_both_directions(graph):
    triplets = set(zip(graph.heads.tolist(), graph.relation_ids.tolist(), graph.tails.tolist()))
    image_of, caption_of = graph.relations.index(IMAGE_OF), graph.relations.index(CAPTION_OF)
    assert {(t, caption_of, h) for h, r, t in triplets if r == image_of} == {
        triplet for triplet in triplets if triplet[1] == caption_of
    }


def write_coco(tmp_path, images, annotations, split="train2017"):
    (tmp_path / "annotations").mkdir(exist_ok=True)
    path = tmp_path / "annotations" / f"captions_{split}.json"
    info = {"description": "COCO 2017 Dataset", "year": 2017}
    path.write_text(json.dumps({"info": info, "licenses": [], "images": images, "annotations": annotations}))
    return path


def coco_image(image_id):
    return {"license": 1, "file_name": f"{image_id:012d}.jpg", "height": 6, "width": 8, "id": image_id}


def test_coco_captions(tmp_path):
    for image_id in (42, 43, 44):
        if image_id != 44:  # 44 has no file
            save_image(tmp_path / "train2017" / f"{image_id:012d}.jpg", format="JPEG")
    path = write_coco(
        tmp_path,
        [coco_image(42), coco_image(43), coco_image(44), {**coco_image(45), "file_name": "../escape.jpg"}],
        [
            {"image_id": 43, "id": 1, "caption": "A brown dog resting indoors.\n"},
            {"image_id": 42, "id": 2, "caption": "A dog lying on a couch. "},
            {"image_id": 42, "id": 3, "caption": "A brown dog resting indoors."},  # same text, other image
            {"image_id": 42, "id": 4, "caption": "A dog lying on a couch."},  # duplicate pair
            {"image_id": 44, "id": 5, "caption": "Missing file."},
            {"image_id": 45, "id": 6, "caption": "Escaping path."},
            {"image_id": 99, "id": 7, "caption": "Unknown image."},
            {"image_id": 43, "id": 8, "caption": "   "},
        ],
    )
    graph = load_image_text_pairs(path)
    assert graph.root == str(tmp_path / "train2017")
    image_42, image_43 = "image/000000000042.jpg", "image/000000000043.jpg"
    assert pairs(graph) == [
        (image_42, "caption/A brown dog resting indoors."),
        (image_42, "caption/A dog lying on a couch."),
        (image_43, "caption/A brown dog resting indoors."),
    ]
    assert_both_directions(graph)
    # Three valid pairs, two triplets each; the shared caption is one entity.
    assert graph.num_triplets == 6 and graph.num_entities == 4
    report = graph.report
    assert report.records_read == 8
    assert report.skipped == {
        "duplicate triplet": 2,
        "missing image": 1,
        "path escapes root": 1,
        "unknown image id": 1,
        "empty caption": 1,
    }
    assert "annotations[5]" in report.examples["path escapes root"][0]
    view = graph.entity_views(graph.entity_id(image_42))[0]
    assert view == EntityView(ViewKind.IMAGE, path="000000000042.jpg")


def test_coco_images_root_and_bad_files(tmp_path):
    save_image(tmp_path / "pictures" / "000000000001.jpg")
    path = write_coco(tmp_path, [coco_image(1)], [{"image_id": 1, "id": 1, "caption": "A cat."}], split="val2017")
    with pytest.raises(FileNotFoundError, match="images_root"):
        load_image_text_pairs(path)
    graph = load_image_text_pairs(path, images_root=tmp_path / "pictures", name="coco_val")
    assert graph.num_triplets == 2 and graph.name == "coco_val"
    for content, message in [
        ("", "empty file"),
        ("[]", "the top level is a list, expected an object"),
        ('{"images": [], "annotations": [', "unexpected end of file"),
        ('{"images": []}', "missing key"),
    ]:
        path.write_text(content)
        with pytest.raises(KnowledgeCLIPDataError, match=message) as error:
            load_image_text_pairs(path, images_root=tmp_path / "pictures")
        assert error.value.file == str(path)
    write_coco(tmp_path, [coco_image(1)], [], split="val2017")
    with pytest.raises(EmptyGraphError):
        load_image_text_pairs(path, images_root=tmp_path / "pictures")


def test_imagefolder_jsonl(tmp_path):
    save_image(tmp_path / "train" / "0001.png", COLORS[0])
    save_image(tmp_path / "train" / "sub" / "0002.png", COLORS[1])
    save_image(tmp_path / "outside.png")
    lines = [
        json.dumps({"file_name": "0001.png", "text": "A red square."}),
        json.dumps({"file_name": "sub/0002.png", "text": "A green square."}),
        "{not json",
        json.dumps({"file_name": "../outside.png", "text": "Escapes its folder but not the root."}),
        json.dumps({"file_name": "../../etc/passwd", "text": "Escapes the root."}),
        json.dumps({"file_name": "/etc/passwd", "text": "Absolute."}),
        json.dumps({"file_name": "missing.png", "text": "No file."}),
        "",
    ]
    (tmp_path / "train" / "metadata.jsonl").write_text("\n".join(lines))
    graph = load_image_text_pairs(tmp_path)
    assert graph.root == str(tmp_path)
    assert pairs(graph) == [
        ("image/outside.png", "caption/Escapes its folder but not the root."),
        ("image/train/0001.png", "caption/A red square."),
        ("image/train/sub/0002.png", "caption/A green square."),
    ]
    assert graph.report.records_read == 7
    assert graph.report.skipped == {"bad json (line)": 1, "path escapes root": 2, "missing image": 1}
    assert graph.report.examples["bad json (line)"][0].startswith("train/metadata.jsonl:3:")
    # Given the metadata file itself, the root is its folder and `../outside.png` now escapes it.
    graph = load_image_text_pairs(tmp_path / "train" / "metadata.jsonl")
    assert graph.root == str(tmp_path / "train") and graph.num_triplets == 4


def test_imagefolder_csv_and_errors(tmp_path):
    save_image(tmp_path / "0001.png")
    (tmp_path / "metadata.csv").write_text('file_name,text\n0001.png,"A red square, small."\n')
    graph = load_image_text_pairs(tmp_path, format="imagefolder")
    assert pairs(graph) == [("image/0001.png", "caption/A red square, small.")]
    (tmp_path / "metadata.csv").write_text('image_file_name,text\n0001.png,"A red square."\n')
    assert pairs(load_image_text_pairs(tmp_path)) == [("image/0001.png", "caption/A red square.")]
    (tmp_path / "metadata.csv").write_text("file_name,caption\n0001.png,A red square.\n")
    with pytest.raises(KnowledgeCLIPDataError, match="metadata.csv:2: text: missing column"):
        load_image_text_pairs(tmp_path)
    (tmp_path / "metadata.csv").write_text("file_name,text\n0001.png,A red square.\n")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "metadata.jsonl").write_text(json.dumps({"file_name": "0001.png", "text": "x"}))
    with pytest.raises(KnowledgeCLIPDataError, match="different extensions"):
        load_image_text_pairs(tmp_path)


def write_shard(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_webdataset_shards_and_open_view_image(tmp_path):
    metadata = {"url": "http://x/y.jpg", "caption": "A blue square.", "key": "000010001", "status": "success"}
    write_shard(
        tmp_path / "shards" / "00000.tar",
        [
            ("000000000.png", png_bytes(COLORS[0])),
            ("000000000.txt", b"A red square. "),
            ("000000000.json", b"{}"),
            ("000000001.png", png_bytes(COLORS[1])),
            ("000000001.txt", b"A green square."),
            ("000000002.txt", b"Caption without image."),
            ("__index__", b"metadata member"),
        ],
    )
    write_shard(
        tmp_path / "shards" / "00001.tar",
        [
            ("000010000.jpg", png_bytes(COLORS[2])),  # content is what matters, not the extension
            ("000010000.txt", b"A red square."),  # same caption as in shard 0
            ("000010001.webp", png_bytes(COLORS[3])),
            ("000010001.json", json.dumps(metadata).encode()),  # caption from the json only
            ("000010002.png", png_bytes(COLORS[0])),
            ("000010002.txt", b"\xff\xfe not utf-8"),
            ("000010003.png", png_bytes(COLORS[0])),  # no caption
        ],
    )
    graph = load_image_text_pairs(tmp_path / "shards" / "{00000..00002}.tar")
    assert graph.root == str(tmp_path / "shards")
    assert pairs(graph) == [
        ("image/00000.tar#000000000.png", "caption/A red square."),
        ("image/00000.tar#000000001.png", "caption/A green square."),
        ("image/00001.tar#000010000.jpg", "caption/A red square."),
        ("image/00001.tar#000010001.webp", "caption/A blue square."),
    ]
    assert_both_directions(graph)
    report = graph.report
    assert report.records_read == 7 and report.triplets_loaded == 8
    assert report.skipped == {
        "missing shard": 1,
        "sample without image": 1,
        "invalid caption file": 1,
        "empty caption": 1,
    }
    assert report.examples["missing shard"] == ["00002.tar"]
    for index, key in enumerate(["00000.tar#000000000.png", "00000.tar#000000001.png", "00001.tar#000010000.jpg"]):
        view = graph.entity_views(graph.entity_id(f"image/{key}"))[0]
        image = open_view_image(graph.root, view)
        assert image.mode == "RGB" and image.size == (8, 6)
        assert image.getpixel((3, 3)) == COLORS[index]
    # A folder of shards and a single shard are accepted too.
    assert load_image_text_pairs(tmp_path / "shards").num_triplets == 8
    assert load_image_text_pairs(tmp_path / "shards" / "00000.tar").num_triplets == 4


def test_webdataset_grouping_is_consecutive_and_rejects_duplicates(tmp_path):
    write_shard(
        tmp_path / "00000.tar",
        [
            ("a.png", png_bytes(COLORS[0])),
            ("b.txt", b"Caption of b."),
            ("a.txt", b"Caption of a, separated from its image."),
            ("c.png", png_bytes(COLORS[1])),
            ("c.txt", b"First caption of c."),
            ("c.txt", b"Second caption of c."),
            ("README", b"no extension"),
        ],
    )
    graph = load_image_text_pairs(tmp_path / "00000.tar")
    assert pairs(graph) == [("image/00000.tar#c.png", "caption/First caption of c.")]
    assert graph.report.skipped == {
        "duplicate file name": 1,
        "member without extension": 1,
        "empty caption": 1,
        "sample without image": 2,
    }


def test_open_view_image_regions_and_unsafe_paths(tmp_path):
    root = tmp_path / "root"
    save_image(root / "image.png", COLORS[0], size=(10, 10))
    region = open_view_image(root, EntityView(ViewKind.REGION, path="image.png", box=(2.0, 3.0, 6.0, 9.0)))
    assert region.size == (4, 6)
    assert np.all(np.asarray(region) == COLORS[0])
    # View paths cannot hold `..`; a symbolic link inside the root that points outside it is refused when opened.
    save_image(tmp_path / "outside.png")
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(UnsafePathError):
        open_view_image(root, EntityView(ViewKind.IMAGE, path="link.png"))
    write_shard(root / "s.tar", [("x.png", b"not an image")])
    with pytest.raises(ImageLoadError, match="s.tar#x.png"):
        open_view_image(root, EntityView(ViewKind.IMAGE, path="s.tar#x.png"))
    with pytest.raises(ImageLoadError, match="s.tar#y.png"):
        open_view_image(root, EntityView(ViewKind.IMAGE, path="s.tar#y.png"))
    with pytest.raises(ValueError, match="IMAGE or REGION"):
        open_view_image(root, EntityView(ViewKind.TEXT, text="a"))


def test_helpers_and_format_detection(tmp_path):
    assert expand_braces("s/{00008..00011}.tar") == ["s/00008.tar", "s/00009.tar", "s/00010.tar", "s/00011.tar"]
    assert expand_braces("{a,b}-{1..2}.tar") == ["a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    assert split_tar_member("shards/00000.tar#000.jpg") == ("shards/00000.tar", "000.jpg")
    assert split_tar_member("photos/a#1.jpg") is None
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_image_text_pairs(tmp_path / "nothing.bin")
    with pytest.raises(ValueError, match="format must be one of"):
        load_image_text_pairs(tmp_path, format="parquet")
