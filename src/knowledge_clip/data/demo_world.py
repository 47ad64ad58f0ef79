# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The demo world: a small, deterministic, synthetic universe of coloured shapes, written in the *real published formats*
of every source Knowledge-CLIP trains on (Visual Genome v1.2/v1.4, COCO captions 2017, ConceptNet 5.7 assertions,
VisualSem v2).

Every scene is a small RGB image with one to three shapes (circle, square, triangle, star, cross) in one of eight
colours and two sizes. The same scene is described three ways, as in the paper's motivation:

- COCO captions describe the *objects* like alt-text ("a red circle and a small blue square") and never the relations;
- Visual Genome scene graphs hold the *relations* ("left of", "above", "bigger than", ...), computed from the geometry
  so that they are true of the image;
- ConceptNet and VisualSem hold commonsense about shapes, colours and sizes ("square IsA shape", "triangle HasA three
  sides", "fire truck HasProperty red", "big Antonym small").

The files carry the quirks of the real dumps that a loader must survive (the `name`/`names` mix and inconsistent
predicate case of Visual Genome, missing `attributes` keys, unsorted COCO annotations, non-English, Middle-English
and ExternalURL rows in ConceptNet, extensionless VisualSem images), so the loaders are tested on exactly what they
will meet. The ground truth is also written as `scenes.json`, and a held-out zero-shot classification set
("red circle", ...) is written in Hugging Face `imagefolder` layout.

Build it with `build_demo_world(out_dir)` or `python -m knowledge_clip.data.demo_world OUT_DIR --size default`.
"""

import argparse
import gzip
import hashlib
import io
import json
import math
import os
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = [
    "COLOURS",
    "DemoWorld",
    "PREDICATES",
    "SHAPES",
    "SIZES",
    "build_demo_world",
    "save_preview",
    "spatial_predicates",
]

FORMAT_VERSION = 1
MARKER_NAME = "demo_world.json"
GENERATOR = "knowledge_clip.data.demo_world"
IMAGE_SIZE = 96
JPEG_QUALITY = 90

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "orange": (245, 140, 20),
    "yellow": (240, 210, 30),
    "green": (40, 160, 60),
    "blue": (40, 90, 220),
    "purple": (130, 60, 190),
    "pink": (240, 120, 180),
    "brown": (120, 75, 40),
}
SIZES = ("small", "large")
# Side of a shape's square box in pixels. The ranges make "bigger than" (area ratio >= 2, see `spatial_predicates`)
# hold exactly between a large and a small shape: 31**2 >= 2 * 20**2, while 38**2 < 2 * 31**2 and 20**2 < 2 * 15**2.
SIDE_RANGE = {"small": (15, 20), "large": (31, 38)}
BACKGROUNDS = ((245, 245, 245), (236, 232, 224), (226, 232, 238), (238, 238, 228))
PREDICATES = ("left of", "right of", "above", "below", "next to", "bigger than", "smaller than")
NEXT_TO_MAX_GAP = 12.0
EDGE_MARGIN = 2
MIN_GAP = 3

_PREDICATE_SYNSETS = {
    "left of": "left.r.01",
    "right of": "right.r.04",
    "above": "above.r.01",
    "below": "below.r.01",
    "next to": "next.r.01",
    "bigger than": "big.a.01",
    "smaller than": "small.a.01",
}
_SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
_NUMBER_WORDS = {2: "two", 3: "three"}


@dataclass(frozen=True)
class _SizeSpec:
    """How much of everything a size preset generates."""

    num_scenes: int
    val_fraction: float
    visualsem_images_per_node: int
    zero_shot_images_per_class: int


_SIZE_SPECS = {
    "tiny": _SizeSpec(num_scenes=20, val_fraction=0.2, visualsem_images_per_node=1, zero_shot_images_per_class=1),
    "default": _SizeSpec(num_scenes=500, val_fraction=0.1, visualsem_images_per_node=3, zero_shot_images_per_class=5),
    "large": _SizeSpec(num_scenes=5000, val_fraction=0.1, visualsem_images_per_node=10, zero_shot_images_per_class=25),
}


@dataclass(frozen=True)
class DemoWorld:
    """
    Paths of a built demo world. Every path lies under `root`; the layouts mirror the published datasets.

    Args:
        root (`Path`): Directory of the world.
        seed (`int`): Seed it was generated from.
        size (`str`): `"tiny"`, `"default"` or `"large"`.
        visual_genome (`Path`): Visual Genome root (`image_data.json`, `objects.json`, `relationships.json`,
            `attributes.json`, `region_descriptions.json`, `VG_100K/`, `VG_100K_2/`).
        coco_captions (`Path`): `coco/annotations/captions_train2017.json`.
        coco_captions_val (`Path`): `coco/annotations/captions_val2017.json` (held-out scenes).
        coco_images (`Path`): `coco/train2017/`.
        coco_images_val (`Path`): `coco/val2017/`.
        conceptnet (`Path`): `conceptnet/conceptnet-assertions-5.7.0.csv.gz`.
        visualsem (`Path`): VisualSem root (`nodes.v2.json`, `tuples.v2.json`, `gloss_files/`, `images/`).
        zero_shot (`Path`): Held-out single-shape classification set in `imagefolder` layout
            (`test/metadata.jsonl` with `file_name` and `label`).
        scenes_file (`Path`): `scenes.json`, the ground truth of every scene (objects, boxes, all true relations,
            captions) and the class names.
        class_names (`tuple[str, ...]`): Zero-shot class names, `"<colour> <shape>"`.
    """

    root: Path
    seed: int
    size: str
    visual_genome: Path
    coco_captions: Path
    coco_captions_val: Path
    coco_images: Path
    coco_images_val: Path
    conceptnet: Path
    visualsem: Path
    zero_shot: Path
    scenes_file: Path
    class_names: tuple[str, ...]

    @classmethod
    def at(cls, root: str | os.PathLike, seed: int, size: str) -> "DemoWorld":
        """
        The paths of the world of parameters `seed` and `size` rooted at `root` (nothing is read or written).

        Args:
            root (`str` or `os.PathLike`): Directory of the world.
            seed (`int`): Generation seed.
            size (`str`): Size preset.
        """
        root = Path(root)
        return cls(
            root=root,
            seed=seed,
            size=size,
            visual_genome=root / "visual_genome",
            coco_captions=root / "coco" / "annotations" / "captions_train2017.json",
            coco_captions_val=root / "coco" / "annotations" / "captions_val2017.json",
            coco_images=root / "coco" / "train2017",
            coco_images_val=root / "coco" / "val2017",
            conceptnet=root / "conceptnet" / "conceptnet-assertions-5.7.0.csv.gz",
            visualsem=root / "visualsem",
            zero_shot=root / "zero_shot",
            scenes_file=root / "scenes.json",
            class_names=tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES),
        )

    def manifest(self) -> dict:
        """The parameters, file counts and deliberate loader skips recorded in the world's marker file."""
        return json.loads((self.root / MARKER_NAME).read_text(encoding="utf-8"))

    def load_scenes(self) -> dict:
        """The parsed `scenes.json`: vocabularies, class names and the list of scenes."""
        return json.loads(self.scenes_file.read_text(encoding="utf-8"))


def spatial_predicates(subject: Sequence[int], obj: Sequence[int]) -> list[str]:
    """
    The predicates of `PREDICATES` that hold from `subject` to `obj`, computed from their boxes.

    "left of" means the subject box ends where or before the object box starts (likewise "right of", "above",
    "below"); "next to" means the gap between the boxes is at most `NEXT_TO_MAX_GAP` pixels; "bigger than" means the
    subject's area is at least twice the object's.

    Args:
        subject (`Sequence[int]`): Box `(x, y, w, h)` of the subject in pixels, `(x, y)` the top-left corner.
        obj (`Sequence[int]`): Box `(x, y, w, h)` of the object.
    """
    sx, sy, sw, sh = subject
    ox, oy, ow, oh = obj
    predicates = []
    if sx + sw <= ox:
        predicates.append("left of")
    if sx >= ox + ow:
        predicates.append("right of")
    if sy + sh <= oy:
        predicates.append("above")
    if sy >= oy + oh:
        predicates.append("below")
    gap_x = max(0, ox - (sx + sw), sx - (ox + ow))
    gap_y = max(0, oy - (sy + sh), sy - (oy + oh))
    if math.hypot(gap_x, gap_y) <= NEXT_TO_MAX_GAP:
        predicates.append("next to")
    if sw * sh >= 2 * ow * oh:
        predicates.append("bigger than")
    if 2 * sw * sh <= ow * oh:
        predicates.append("smaller than")
    return predicates


# --------------------------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------------------------


def _shape_polygon(shape: str, x: float, y: float, side: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape inscribed in the square box at `(x, y)` of side `side`."""
    if shape == "triangle":
        return [(x + side / 2, y), (x + side, y + side), (x, y + side)]
    if shape == "star":
        cx, cy, outer = x + side / 2, y + side / 2, side / 2
        points = []
        for k in range(10):
            radius = outer if k % 2 == 0 else outer * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    if shape == "cross":
        a, b = side / 3, 2 * side / 3
        outline = [
            (a, 0),
            (b, 0),
            (b, a),
            (side, a),
            (side, b),
            (b, b),
            (b, side),
            (a, side),
            (a, b),
            (0, b),
            (0, a),
            (a, a),
        ]
        return [(x + px, y + py) for px, py in outline]
    raise ValueError(f"{shape!r} is not a polygonal shape.")


def _draw(objects: Sequence[dict], background: Sequence[int], scale: int = 1) -> Image.Image:
    """Renders shapes (dicts with `shape`, `colour` and `box` = `[x, y, w, h]`) on a solid background."""
    image = Image.new("RGB", (IMAGE_SIZE * scale, IMAGE_SIZE * scale), tuple(background))
    draw = ImageDraw.Draw(image)
    for item in objects:
        x, y, side, _ = (value * scale for value in item["box"])
        fill = COLOURS[item["colour"]]
        if item["shape"] == "circle":
            draw.ellipse((x, y, x + side - 1, y + side - 1), fill=fill)
        elif item["shape"] == "square":
            draw.rectangle((x, y, x + side - 1, y + side - 1), fill=fill)
        else:
            draw.polygon(_shape_polygon(item["shape"], x, y, side - 1), fill=fill)
    return image


def _jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # 4:4:4 chroma: the default 4:2:0 subsampling smears the colour of small, thin shapes into the background.
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def _place_objects(rng: random.Random, specs: Sequence[tuple[str, str, str]]) -> list[dict]:
    """Places `(shape, colour, size)` specs as non-overlapping boxes; a spec that finds no room is dropped."""
    placed = []
    for shape, colour, size in specs:
        side = rng.randint(*SIDE_RANGE[size])
        for _ in range(200):
            x = rng.randint(EDGE_MARGIN, IMAGE_SIZE - EDGE_MARGIN - side)
            y = rng.randint(EDGE_MARGIN, IMAGE_SIZE - EDGE_MARGIN - side)
            if all(
                x + side + MIN_GAP <= o["box"][0]
                or o["box"][0] + o["box"][2] + MIN_GAP <= x
                or y + side + MIN_GAP <= o["box"][1]
                or o["box"][1] + o["box"][3] + MIN_GAP <= y
                for o in placed
            ):
                placed.append({"shape": shape, "colour": colour, "size": size, "box": [x, y, side, side]})
                break
    return placed


# --------------------------------------------------------------------------------------------------------------------
# Scenes and captions
# --------------------------------------------------------------------------------------------------------------------


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _object_phrase(rng: random.Random, item: dict) -> str:
    phrase = f"{item['colour']} {item['shape']}"
    if rng.random() < 0.4:
        phrase = f"{rng.choice(_SIZE_WORDS[item['size']])} {phrase}"
    return phrase


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _caption(rng: random.Random, objects: Sequence[dict]) -> str:
    """One alt-text style caption naming every object's colour and shape (sometimes its size), never a relation."""
    order = list(objects)
    rng.shuffle(order)
    phrases = [_object_phrase(rng, item) for item in order]
    listed = _join([_article(phrase) for phrase in phrases])
    templates = ["{list}", "a picture of {list}", "{list} on a plain background", "clip art of {list}"]
    if len(objects) == 1:
        templates.append("a single " + phrases[0])
    else:
        templates += [_NUMBER_WORDS[len(objects)] + " shapes: {list}", "{bare}"]
    caption = rng.choice(templates).format(list=listed, bare=", ".join(phrases))
    if rng.random() < 0.5:
        caption = caption[0].upper() + caption[1:]
    if rng.random() < 0.4:
        caption += "."
    if rng.random() < 0.08:
        # The real file has trailing spaces and newlines on some captions; loaders must strip them.
        caption += rng.choice([" ", "\n"])
    return caption


def _make_scenes(seed: int, spec: _SizeSpec) -> list[dict]:
    """The scenes: objects with their boxes, every true relation, distinct captions; the last ones are held out."""
    rng = random.Random(f"demo-world:{seed}:scenes")
    combos = [(shape, colour) for colour in COLOURS for shape in SHAPES]
    num_val = max(1, round(spec.num_scenes * spec.val_fraction))
    scenes = []
    for index in range(spec.num_scenes):
        count = rng.choices((1, 2, 3), weights=(2, 4, 4))[0]
        specs = [(shape, colour, rng.choice(SIZES)) for shape, colour in rng.sample(combos, count)]
        objects = _place_objects(rng, specs)
        relations = [
            [i, predicate, j]
            for i, a in enumerate(objects)
            for j, b in enumerate(objects)
            if i != j
            for predicate in spatial_predicates(a["box"], b["box"])
        ]
        num_captions = rng.choices((5, 6, 7), weights=(8, 1, 1))[0]
        # Distinct captions per image (up to whitespace): a repeated pair is a counted skip for the loaders.
        captions: dict[str, str] = {}
        while len(captions) < num_captions:
            caption = _caption(rng, objects)
            captions.setdefault(" ".join(caption.split()), caption)
        scenes.append(
            {
                "scene_id": index,
                "split": "val" if index >= spec.num_scenes - num_val else "train",
                "background": list(rng.choice(BACKGROUNDS)),
                "objects": objects,
                "relations": relations,
                "captions": list(captions.values()),
            }
        )
    return scenes


# --------------------------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------------------------


def _write_json(path: Path, payload, ensure_ascii: bool = True) -> None:
    """Writes one UTF-8 JSON document, spaced like `json.dumps` defaults (as the published files are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=ensure_ascii), encoding="utf-8")


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


_COCO_LICENSES = [
    (1, "Attribution-NonCommercial-ShareAlike License", "http://creativecommons.org/licenses/by-nc-sa/2.0/"),
    (2, "Attribution-NonCommercial License", "http://creativecommons.org/licenses/by-nc/2.0/"),
    (3, "Attribution-NonCommercial-NoDerivs License", "http://creativecommons.org/licenses/by-nc-nd/2.0/"),
    (4, "Attribution License", "http://creativecommons.org/licenses/by/2.0/"),
    (5, "Attribution-ShareAlike License", "http://creativecommons.org/licenses/by-sa/2.0/"),
    (6, "Attribution-NoDerivs License", "http://creativecommons.org/licenses/by-nd/2.0/"),
    (7, "No known copyright restrictions", "http://flickr.com/commons/usage/"),
    (8, "United States Government Work", "http://www.usa.gov/copyright.shtml"),
]


def _write_coco(root: Path, seed: int, scenes: list[dict], images: list[bytes]) -> dict:
    """Writes `coco/annotations/captions_{train,val}2017.json` and the images; sets each scene's `coco_id`."""
    rng = random.Random(f"demo-world:{seed}:coco")
    image_ids = rng.sample(range(1, 581930), len(scenes))
    annotation_ids = iter(rng.sample(range(1, 830000), sum(len(scene["captions"]) for scene in scenes)))
    counts = {}
    for split in ("train", "val"):
        folder = f"{split}2017"
        entries, annotations = [], []
        for scene, image_id, data in zip(scenes, image_ids, images):
            if scene["split"] != split:
                continue
            file_name = f"{image_id:012d}.jpg"
            scene["coco_id"] = image_id
            scene["coco_file"] = f"coco/{folder}/{file_name}"
            _write_bytes(root / scene["coco_file"], data)
            entries.append(
                {
                    "license": rng.randint(1, len(_COCO_LICENSES)),
                    "file_name": file_name,
                    "coco_url": f"http://images.cocodataset.org/{folder}/{file_name}",
                    "height": IMAGE_SIZE,
                    "width": IMAGE_SIZE,
                    "date_captured": f"2013-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                    f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
                    "flickr_url": f"http://farm{rng.randint(1, 9)}.staticflickr.com/{rng.randint(1000, 9999)}/"
                    f"{rng.randint(10**9, 10**10 - 1)}_{rng.getrandbits(40):010x}_z.jpg",
                    "id": image_id,
                }
            )
            annotations += [
                {"image_id": image_id, "id": next(annotation_ids), "caption": c} for c in scene["captions"]
            ]
        # Like the real file, annotations are not grouped or sorted by image.
        rng.shuffle(annotations)
        payload = {
            "info": {
                "description": "knowledge-clip synthetic demo world (COCO 2017 caption format)",
                "url": "https://cocodataset.org/#format-data",
                "version": "1.0",
                "year": 2017,
                "contributor": "knowledge-clip demo world generator",
                "date_created": "2017/09/01",
            },
            "licenses": [{"url": url, "id": i, "name": name} for i, name, url in _COCO_LICENSES],
            "images": entries,
            "annotations": annotations,
        }
        _write_json(root / "coco" / "annotations" / f"captions_{folder}.json", payload)
        counts[f"coco_{split}_images"] = len(entries)
        counts[f"coco_{split}_captions"] = len(annotations)
    return counts


def _write_visual_genome(root: Path, seed: int, scenes: list[dict], images: list[bytes]) -> dict:
    """Writes the training scenes as Visual Genome (image data v1.2, objects/relationships v1.4, attributes v1.2)."""
    rng = random.Random(f"demo-world:{seed}:visual_genome")
    vg = root / "visual_genome"
    image_data, objects_file, relationships_file, attributes_file, regions_file = [], [], [], [], []
    next_object_id, next_relationship_id, next_region_id = 1_000_000, 3_000_000, 5_000_000
    merged: dict[int, list[int]] = {}  # v1.4 `merged_object_ids` of each object (ids of duplicates merged into it)
    counts = {"vg_images": 0, "vg_objects": 0, "vg_relationships": 0, "vg_objects_without_attributes": 0}
    image_id = 0
    for scene, data in zip(scenes, images):
        if scene["split"] != "train":
            continue
        image_id += 1
        folder = rng.choice(("VG_100K", "VG_100K_2"))
        url = f"https://cs.stanford.edu/people/rak248/{folder}/{image_id}.jpg"
        _write_bytes(vg / folder / f"{image_id}.jpg", data)
        scene["vg_image_id"] = image_id
        scene["vg_file"] = f"visual_genome/{folder}/{image_id}.jpg"
        image_data.append(
            {
                "image_id": image_id,
                "url": url,
                "width": IMAGE_SIZE,
                "height": IMAGE_SIZE,
                "coco_id": scene["coco_id"],
                "flickr_id": None,
            }
        )
        vg_objects, vg_attributes, vg_regions = [], [], []
        for item in scene["objects"]:
            next_object_id += rng.randint(1, 5)
            item["vg_object_id"] = next_object_id
            # Real names are mostly bare nouns, sometimes with an adjective ("white plate").
            item["vg_name"] = f"{item['colour']} {item['shape']}" if rng.random() < 0.25 else item["shape"]
            merged[next_object_id] = [next_object_id + 8_000_000] if rng.random() < 0.15 else []
            x, y, w, h = item["box"]
            geometry = {"object_id": next_object_id, "x": x, "y": y, "w": w, "h": h}
            synsets = [f"{item['shape']}.n.01"]
            vg_objects.append(
                geometry
                | {"names": [item["vg_name"]], "synsets": synsets, "merged_object_ids": merged[next_object_id]}
            )
            attribute = geometry | {"names": [item["vg_name"]], "synsets": synsets}
            if rng.random() < 0.3:
                counts["vg_objects_without_attributes"] += 1
            else:
                words = [item["colour"], item["size"]] if rng.random() < 0.6 else [item["colour"]]
                rng.shuffle(words)
                # Some real attribute strings carry trailing spaces ('tan  ').
                attribute["attributes"] = [word + " " if rng.random() < 0.1 else word for word in words]
            vg_attributes.append(attribute)
            next_region_id += rng.randint(1, 5)
            phrase = _article(_object_phrase(rng, item)) + (" " if rng.random() < 0.2 else "")
            vg_regions.append(
                {
                    "region_id": next_region_id,
                    "image_id": image_id,
                    "phrase": phrase,
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                }
            )
        vg_relationships = []
        for i in range(len(scene["objects"])):
            for j in range(i + 1, len(scene["objects"])):
                subject, obj = (scene["objects"][i], scene["objects"][j])
                if rng.random() < 0.5:
                    subject, obj = obj, subject
                for predicate in spatial_predicates(subject["box"], obj["box"]):
                    next_relationship_id += rng.randint(1, 5)
                    vg_relationships.append(
                        {
                            "relationship_id": next_relationship_id,
                            "predicate": predicate.upper() if rng.random() < 0.3 else predicate,
                            "synsets": [_PREDICATE_SYNSETS[predicate]] if rng.random() < 0.7 else [],
                            "subject": _embedded_object(rng, subject, merged),
                            "object": _embedded_object(rng, obj, merged),
                        }
                    )
        objects_file.append({"image_id": image_id, "image_url": url, "objects": vg_objects})
        relationships_file.append({"image_id": image_id, "relationships": vg_relationships})
        attributes_file.append({"image_id": image_id, "attributes": vg_attributes})
        regions_file.append({"id": image_id, "regions": vg_regions})
        counts["vg_images"] += 1
        counts["vg_objects"] += len(vg_objects)
        counts["vg_relationships"] += len(vg_relationships)
    _write_json(vg / "image_data.json", image_data)
    _write_json(vg / "objects.json", objects_file)
    _write_json(vg / "relationships.json", relationships_file)
    _write_json(vg / "attributes.json", attributes_file)
    _write_json(vg / "region_descriptions.json", regions_file)
    return counts


def _embedded_object(rng: random.Random, item: dict, merged: dict[int, list[int]]) -> dict:
    """An object as embedded in a v1.4 relationship: with `name`, or with `names` and `merged_object_ids`."""
    x, y, w, h = item["box"]
    embedded = {"object_id": item["vg_object_id"], "x": x, "y": y, "w": w, "h": h}
    if rng.random() < 0.1:
        embedded |= {"names": [item["vg_name"]], "merged_object_ids": merged[item["vg_object_id"]]}
    else:
        embedded["name"] = item["vg_name"]
    return embedded | {"synsets": [f"{item['shape']}.n.01"]}


# ConceptNet: (relation, start, end, source); the source picks dataset, licence, contributors and weight.
_CONCEPTNET_ENGLISH = [
    ("IsA", "/c/en/shape/n", "/c/en/attribute/n/wn/abstraction", "wordnet"),
    ("RelatedTo", "/c/en/shape", "/c/en/geometry", "verbosity"),
    ("Synonym", "/c/en/colour/n", "/c/en/color/n", "wiktionary/en"),
    ("RelatedTo", "/c/en/color", "/c/en/paint", "conceptnet"),
    ("IsA", "/c/en/size/n", "/c/en/magnitude/n/wn/attribute", "wordnet"),
    ("IsA", "/c/en/square/n/wn/shape", "/c/en/rectangle/n", "wordnet"),
    ("IsA", "/c/en/square/n", "/c/en/polygon/n", "wordnet"),
    ("IsA", "/c/en/triangle/n/wn/shape", "/c/en/polygon", "wordnet"),
    ("IsA", "/c/en/star/n/wn/shape", "/c/en/plane_figure/n", "wordnet"),
    ("HasA", "/c/en/square", "/c/en/four_sides", "conceptnet"),
    ("HasA", "/c/en/square", "/c/en/four_corners", "conceptnet"),
    ("HasA", "/c/en/triangle", "/c/en/three_sides", "conceptnet"),
    ("HasA", "/c/en/triangle", "/c/en/three_corners", "conceptnet"),
    ("HasA", "/c/en/star", "/c/en/five_points", "conceptnet"),
    ("HasA", "/c/en/cross", "/c/en/four_arms", "conceptnet"),
    ("HasProperty", "/c/en/circle", "/c/en/round", "conceptnet"),
    ("NotHasProperty", "/c/en/circle", "/c/en/corners", "conceptnet"),
    ("HasProperty", "/c/en/ball", "/c/en/round", "conceptnet"),
    ("HasProperty", "/c/en/wheel", "/c/en/round", "conceptnet"),
    ("HasProperty", "/c/en/pizza", "/c/en/round", "conceptnet"),
    ("IsA", "/c/en/stop_sign", "/c/en/sign", "conceptnet"),
    ("HasProperty", "/c/en/stop_sign", "/c/en/red", "conceptnet"),
    ("HasProperty", "/c/en/fire_truck", "/c/en/red", "conceptnet"),
    ("HasProperty", "/c/en/strawberry", "/c/en/red", "conceptnet"),
    ("HasProperty", "/c/en/carrot", "/c/en/orange/a", "conceptnet"),
    ("HasProperty", "/c/en/banana", "/c/en/yellow", "conceptnet"),
    ("HasProperty", "/c/en/sun", "/c/en/yellow", "conceptnet"),
    ("HasProperty", "/c/en/grass", "/c/en/green", "conceptnet"),
    ("HasProperty", "/c/en/leaf", "/c/en/green", "conceptnet"),
    ("HasProperty", "/c/en/sky", "/c/en/blue", "conceptnet"),
    ("HasProperty", "/c/en/ocean", "/c/en/blue", "conceptnet"),
    ("HasProperty", "/c/en/violet/n", "/c/en/purple", "conceptnet"),
    ("HasProperty", "/c/en/flamingo", "/c/en/pink", "conceptnet"),
    ("HasProperty", "/c/en/chocolate", "/c/en/brown", "conceptnet"),
    ("HasProperty", "/c/en/elephant", "/c/en/big", "conceptnet"),
    ("HasProperty", "/c/en/mouse/n", "/c/en/small", "conceptnet"),
    ("HasProperty", "/c/en/ant", "/c/en/small", "conceptnet"),
    ("Synonym", "/c/en/big/a", "/c/en/large/a", "wiktionary/en"),
    ("Synonym", "/c/en/small/a", "/c/en/little/a", "wiktionary/en"),
    ("Synonym", "/c/en/next_to", "/c/en/beside", "wiktionary/en"),
    ("Antonym", "/c/en/big/a", "/c/en/small/a", "wiktionary/en"),
    ("Antonym", "/c/en/small/a", "/c/en/big/a", "conceptnet"),
    ("Antonym", "/c/en/large/a", "/c/en/small/a", "wordnet"),
    ("Antonym", "/c/en/left/a", "/c/en/right/a", "wiktionary/en"),
    ("Antonym", "/c/en/above", "/c/en/below", "wiktionary/en"),
    ("Antonym", "/c/en/below", "/c/en/above", "conceptnet"),
    ("Antonym", "/c/en/top/n", "/c/en/bottom/n", "wiktionary/en"),
    ("IsA", "/c/en/left/n", "/c/en/direction/n", "wordnet"),
    ("IsA", "/c/en/right/n", "/c/en/direction/n", "wordnet"),
    ("DistinctFrom", "/c/en/red", "/c/en/green", "conceptnet"),
    ("DistinctFrom", "/c/en/blue", "/c/en/orange/a", "conceptnet"),
    ("DistinctFrom", "/c/en/circle", "/c/en/square", "conceptnet"),
]
# Rows a loader reading English must skip: another language at one end (including Middle English, `/c/enm/`,
# which a prefix test on "/c/en" wrongly accepts) ...
_CONCEPTNET_NON_ENGLISH = [
    ("Synonym", "/c/fr/cercle/n", "/c/en/circle/n", "wiktionary/fr"),
    ("Synonym", "/c/fr/carré/n", "/c/en/square/n", "wiktionary/fr"),
    ("Synonym", "/c/de/dreieck/n", "/c/en/triangle/n", "wiktionary/de"),
    ("Synonym", "/c/de/rot/a", "/c/en/red/a", "wiktionary/de"),
    ("Synonym", "/c/es/rojo/a", "/c/en/red/a", "wiktionary/en"),
    ("Synonym", "/c/ja/赤", "/c/en/red", "wiktionary/en"),
    ("Synonym", "/c/zh/圆", "/c/en/circle", "wiktionary/en"),
    ("Synonym", "/c/it/stella/n", "/c/en/star/n", "wiktionary/en"),
    ("Synonym", "/c/en/blue/a", "/c/fr/bleu/a", "wiktionary/en"),
    ("IsA", "/c/fr/rouge/n", "/c/fr/couleur/n", "wiktionary/fr"),
    ("IsA", "/c/de/kreis/n", "/c/de/form/n", "wiktionary/de"),
    ("Synonym", "/c/enm/reed", "/c/en/red", "wiktionary/en"),
    ("Synonym", "/c/enm/sterre/n", "/c/en/star/n", "wiktionary/en"),
    ("RelatedTo", "/c/en/circle", "/c/enm/cercle", "wiktionary/en"),
]
# ... and links to web pages.
_CONCEPTNET_EXTERNAL_URLS = [
    ("ExternalURL", "/c/en/circle", "http://dbpedia.org/resource/Circle", "dbpedia"),
    ("ExternalURL", "/c/en/red/n", "http://en.wiktionary.org/wiki/red", "wiktionary/en"),
    ("ExternalURL", "/c/en/triangle/n", "http://wordnet-rdf.princeton.edu/wn31/113902318-n", "wordnet"),
]
_CONTRIBUTORS = ("alice", "bob", "carol", "dave", "erin")


def _conceptnet_label(uri: str) -> str:
    return uri.split("/")[3].replace("_", " ")


def _conceptnet_line(rng: random.Random, relation: str, start: str, end: str, source: str) -> str:
    """One assertion row: URI, relation, start, end and the JSON info column, tab separated (ConceptNet 5.7)."""
    rel = f"/r/{relation}"
    info: dict = {}
    if source == "conceptnet":
        num_sources = rng.choice((1, 1, 2, 3))
        info["dataset"], info["license"] = "/d/conceptnet/4/en", "cc:by/4.0"
        info["sources"] = [
            {"activity": "/s/activity/omcs/omcs1_possibly_free_text", "contributor": f"/s/contributor/omcs/{name}"}
            for name in rng.sample(_CONTRIBUTORS, num_sources)
        ]
        info["weight"] = round(2 * math.sqrt(max(num_sources - 1, 1)) + min(num_sources, 2) - 2, 3)
        verb = {"HasA": "has", "NotHasProperty": "does not have", "RelatedTo": "is related to"}.get(relation, "is")
        surface_start, surface_end = _article(_conceptnet_label(start)), _conceptnet_label(end)
        if relation == "IsA":
            surface_end = _article(surface_end)
        if relation in ("DistinctFrom", "Antonym"):
            verb, surface_start = "is not", _conceptnet_label(start)
        info["surfaceEnd"], info["surfaceStart"] = surface_end, surface_start
        info["surfaceText"] = f"[[{surface_start}]] {verb} [[{surface_end}]]"
    elif source == "wordnet":
        info["dataset"], info["license"], info["weight"] = "/d/wordnet/3.1", "cc:by-sa/4.0", 2.0
        info["sources"] = [{"contributor": "/s/resource/wordnet/rdf/3.1"}]
    elif source == "verbosity":
        info["dataset"], info["license"] = "/d/verbosity", "cc:by/4.0"
        info["sources"] = [{"contributor": "/s/resource/verbosity"}]
        info["weight"] = round(rng.uniform(0.1, 1.0), 3)
    elif source == "dbpedia":
        info["dataset"], info["license"], info["weight"] = "/d/dbpedia/en", "cc:by-sa/4.0", 0.5
        info["sources"] = [{"contributor": "/s/resource/dbpedia/2015/en"}]
    else:
        language = source.split("/")[1]
        info["dataset"], info["license"], info["weight"] = f"/d/wiktionary/{language}", "cc:by-sa/4.0", 1.0
        info["sources"] = [{"contributor": f"/s/resource/wiktionary/{language}", "process": "/s/process/wikiparsec/2"}]
    uri = f"/a/[{rel}/,{start}/,{end}/]"
    return "\t".join((uri, rel, start, end, json.dumps(info, ensure_ascii=False, sort_keys=True)))


def _write_conceptnet(root: Path, seed: int) -> dict:
    """Writes `conceptnet/conceptnet-assertions-5.7.0.csv.gz` (gzip, no header, sorted by assertion URI)."""
    rng = random.Random(f"demo-world:{seed}:conceptnet")
    english = list(_CONCEPTNET_ENGLISH)
    english += [("IsA", f"/c/en/{shape}/n", "/c/en/shape/n", "wordnet") for shape in SHAPES]
    english += [("IsA", f"/c/en/{colour}/n", "/c/en/color/n", "wordnet") for colour in COLOURS]
    english += [("IsA", f"/c/en/{size}/a", "/c/en/size/n", "wiktionary/en") for size in ("big", "small", "large")]
    for colour in COLOURS:
        for shape in SHAPES:
            english.append(("IsA", f"/c/en/{colour}_{shape}", f"/c/en/{shape}", "conceptnet"))
            english.append(("HasProperty", f"/c/en/{colour}_{shape}", f"/c/en/{colour}", "conceptnet"))
    rows = english + _CONCEPTNET_NON_ENGLISH + _CONCEPTNET_EXTERNAL_URLS
    lines = sorted(_conceptnet_line(rng, *row) for row in rows)
    path = root / "conceptnet" / "conceptnet-assertions-5.7.0.csv.gz"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as stream:
        stream.write("".join(line + "\n" for line in lines).encode("utf-8"))
    return {
        "conceptnet_rows": len(lines),
        "conceptnet_english_rows": len(english),
        "conceptnet_non_english_rows": len(_CONCEPTNET_NON_ENGLISH),
        "conceptnet_external_url_rows": len(_CONCEPTNET_EXTERNAL_URLS),
    }


_GLOSSES = {
    "shape": {"en": "The spatial arrangement of something as distinct from its substance.", "de": "Die Form."},
    "colour": {"en": "A visual attribute of things that results from the light they emit, transmit or reflect."},
    "size": {"en": "The physical magnitude of something (how big it is)."},
    "circle": {"en": "A plane figure whose boundary consists of points equidistant from the centre.", "fr": "Cercle."},
    "square": {"en": "A plane rectangle with four equal sides and four right angles.", "fr": "Carré."},
    "triangle": {"en": "A three-sided polygon.", "de": "Ein Dreieck."},
    "star": {"en": "A plane figure with five or more points.", "fr": "Étoile."},
    "cross": {"en": "A plane figure made of two bars crossing at right angles."},
    "small": {"en": "Limited or below average in size."},
    "large": {"en": "Above average in size or extent."},
}


def _write_visualsem(root: Path, seed: int, spec: _SizeSpec) -> dict:
    """Writes VisualSem v2: nodes, tail-keyed tuples, glosses, sha1-named images and the image splits."""
    rng = random.Random(f"demo-world:{seed}:visualsem")
    vs = root / "visualsem"
    names = ["shape", "colour", "size", *SHAPES, *COLOURS, *SIZES]
    names += [f"{colour}_{shape}" for colour in COLOURS for shape in SHAPES]
    bnids = {name: f"bn:{number:08d}n" for name, number in zip(names, rng.sample(range(10**5, 10**8), len(names)))}

    # Images of single shapes: each coloured-shape node owns its images; shape, colour, size and the three
    # concept nodes list images of their members, so one file appears in several nodes' `ims` like the real one.
    images: dict[str, bytes] = {}
    ims: dict[str, list[str]] = {name: [] for name in names}
    for colour in COLOURS:
        for shape in SHAPES:
            for _ in range(spec.visualsem_images_per_node):
                size = rng.choice(SIZES)
                placed = _place_objects(rng, [(shape, colour, size)])
                data = _jpeg_bytes(_draw(placed, rng.choice(BACKGROUNDS)))
                digest = hashlib.sha1(data).hexdigest()
                images[digest] = data
                for owner in (f"{colour}_{shape}", shape, colour, size):
                    if digest not in ims[owner]:
                        ims[owner].append(digest)
    for concept, members in (("shape", SHAPES), ("colour", tuple(COLOURS)), ("size", SIZES)):
        pool = sorted({digest for member in members for digest in ims[member]})
        ims[concept] = rng.sample(pool, min(len(pool), 2 * spec.visualsem_images_per_node))
    for name in SHAPES + tuple(COLOURS) + SIZES:
        ims[name] = rng.sample(ims[name], min(len(ims[name]), 2 * spec.visualsem_images_per_node))

    nodes = {}
    for name in names:
        senses = [name, name.capitalize()] + ([name.replace("colour", "color")] if "colour" in name else [])
        rng.shuffle(senses)  # the real `se` comes from a set(): arbitrary order
        nodes[bnids[name]] = {"ms": f"WN:EN:{name}", "se": senses, "ims": ims[name]}

    triplets = [(shape, "IsA", "shape") for shape in SHAPES]
    triplets += [(colour, "IsA", "colour") for colour in COLOURS]
    triplets += [(size, "IsA", "size") for size in SIZES]
    triplets += [("small", "RelatedTo", "large"), ("large", "RelatedTo", "small")]
    for colour in COLOURS:
        for index, shape in enumerate(SHAPES):
            triplets.append((f"{colour}_{shape}", "IsA", shape))
            triplets.append((f"{colour}_{shape}", "HasProperty", colour))
            triplets.append((f"{colour}_{shape}", "RelatedTo", f"{colour}_{SHAPES[(index + 1) % len(SHAPES)]}"))
    tuples: dict[str, list[dict]] = {}
    for r_id, (head, relation, tail) in enumerate(triplets):
        tuples.setdefault(bnids[tail], []).append({"s": bnids[head], "r": relation, "r_id": r_id})
    for entries in tuples.values():
        rng.shuffle(entries)  # deduplicated through a set in the real build: arbitrary order

    _write_json(vs / "nodes.v2.json", nodes)
    _write_json(vs / "tuples.v2.json", tuples)
    _write_glosses(vs / "gloss_files", names, bnids)

    # A few files keep no extension, like the images the real `resizing.py` failed on.
    bare = set(rng.sample(sorted(images), max(1, len(images) // 50)))
    for digest, data in images.items():
        _write_bytes(vs / "images" / digest[:2] / (digest if digest in bare else digest + ".jpg"), data)
    order = sorted(images)
    rng.shuffle(order)
    num_held_out = max(1, len(order) // 10)
    _write_json(vs / "valid_images.json", order[:num_held_out])
    _write_json(vs / "test_images.json", order[num_held_out : 2 * num_held_out])
    _write_json(vs / "train_images.json", order[2 * num_held_out :])
    return {
        "visualsem_nodes": len(nodes),
        "visualsem_tuples": len(triplets),
        "visualsem_images": len(images),
        "visualsem_images_without_extension": len(bare),
    }


def _write_glosses(folder: Path, names: Sequence[str], bnids: dict[str, str]) -> None:
    """Writes `nodes.glosses.json` (a list headed by `available_languages`) and the per-language text files."""
    glosses = {}
    for name in names:
        if name in _GLOSSES:
            glosses[name] = _GLOSSES[name]
        elif name in COLOURS:
            glosses[name] = {"en": f"The colour {name}; the hue of things that look {name}."}
        else:
            colour, shape = name.split("_")
            glosses[name] = {"en": f"A {shape} whose colour is {colour}."}
    languages = sorted({language for per_language in glosses.values() for language in per_language})
    languages.remove("en")
    languages.insert(0, "en")
    entries = [{"available_languages": languages}]
    entries += [{bnids[name]: {lang: [text] for lang, text in glosses[name].items()}} for name in names]
    _write_json(folder / "nodes.glosses.json", entries, ensure_ascii=False)
    for language in languages:
        pairs = [(bnids[name], glosses[name][language]) for name in names if language in glosses[name]]
        (folder / f"glosses.{language}.txt").write_text("".join(f"{g}\n" for _, g in pairs), encoding="utf-8")
        (folder / f"glosses.{language}.txt.bnids").write_text("".join(f"{b}\n" for b, _ in pairs), encoding="utf-8")


def _write_zero_shot(root: Path, seed: int, spec: _SizeSpec, class_names: Sequence[str]) -> dict:
    """Writes held-out single-shape images with their class name, `zero_shot/test/metadata.jsonl` (imagefolder)."""
    rng = random.Random(f"demo-world:{seed}:zero_shot")
    folder = root / "zero_shot" / "test"
    folder.mkdir(parents=True)
    rows = []
    for _ in range(spec.zero_shot_images_per_class):
        for name in class_names:
            colour, shape = name.split()
            placed = _place_objects(rng, [(shape, colour, rng.choice(SIZES))])
            file_name = f"{len(rows):05d}.jpg"
            (folder / file_name).write_bytes(_jpeg_bytes(_draw(placed, rng.choice(BACKGROUNDS))))
            rows.append(json.dumps({"file_name": file_name, "label": name}))
    (folder / "metadata.jsonl").write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return {"zero_shot_images": len(rows)}


# --------------------------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------------------------


def _marker_params(seed: int, size: str) -> dict:
    return {"generator": GENERATOR, "format_version": FORMAT_VERSION, "seed": seed, "size": size}


def _read_marker(root: Path) -> dict | None:
    """The marker of a complete demo world at `root`, or None where there is none (or it is unreadable)."""
    try:
        marker = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("generator") == GENERATOR else None


def _generate(root: Path, seed: int, size: str) -> None:
    """Writes a complete world into the empty directory `root`, the marker last."""
    spec = _SIZE_SPECS[size]
    world = DemoWorld.at(root, seed, size)
    scenes = _make_scenes(seed, spec)
    images = [_jpeg_bytes(_draw(scene["objects"], scene["background"])) for scene in scenes]
    counts = {"scenes": len(scenes)}
    counts |= _write_coco(root, seed, scenes, images)
    counts |= _write_visual_genome(root, seed, scenes, images)
    counts |= _write_conceptnet(root, seed)
    counts |= _write_visualsem(root, seed, spec)
    counts |= _write_zero_shot(root, seed, spec, world.class_names)
    _write_json(
        world.scenes_file,
        {
            "seed": seed,
            "size": size,
            "image_size": IMAGE_SIZE,
            "shapes": list(SHAPES),
            "colours": {name: list(rgb) for name, rgb in COLOURS.items()},
            "sizes": list(SIZES),
            "predicates": list(PREDICATES),
            "class_names": list(world.class_names),
            "scenes": scenes,
        },
    )
    marker = _marker_params(seed, size) | {
        "counts": counts,
        # Rows a correct English-only ConceptNet loader skips on purpose, by reason.
        "expected_skips": {
            "conceptnet": {
                "non_english": counts["conceptnet_non_english_rows"],
                "external_url": counts["conceptnet_external_url_rows"],
            }
        },
    }
    _write_json(root / MARKER_NAME, marker)


def build_demo_world(out_dir: str | os.PathLike, seed: int = 0, size: str = "default") -> DemoWorld:
    """
    Builds the demo world in `out_dir`, or returns the one already there.

    The world is a pure function of `(seed, size)`: the same arguments give byte-identical files. It is generated in a
    temporary sibling directory and renamed into place, so `out_dir` never holds a partial world and concurrent calls
    (one per process of a distributed launch) are safe. A complete world for the same parameters is recognised by its
    marker file and reused; a demo world built with other parameters is replaced.

    Args:
        out_dir (`str` or `os.PathLike`):
            Directory of the world. It must be missing, empty, or hold a demo world.
        seed (`int`, *optional*, defaults to 0):
            Generation seed.
        size (`str`, *optional*, defaults to `"default"`):
            `"tiny"` (20 scenes, for tests), `"default"` (500 scenes, enough to train a small CLIP in minutes) or
            `"large"` (5,000 scenes).

    Returns:
        [`DemoWorld`]: the paths of the world.

    Raises:
        ValueError: if `size` is unknown.
        FileExistsError: if `out_dir` holds other files than a demo world.
    """
    if size not in _SIZE_SPECS:
        raise ValueError(f"Unknown demo world size {size!r}; expected one of {sorted(_SIZE_SPECS)}.")
    out = Path(out_dir)
    params = _marker_params(seed, size)
    world = DemoWorld.at(out, seed, size)
    marker = _read_marker(out)
    if marker is not None and all(marker.get(key) == value for key, value in params.items()):
        return world
    if marker is None and out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no demo world ({MARKER_NAME} missing); not touching it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        staging.chmod(0o755)
        _generate(staging, seed, size)
        _install(staging, out, params)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return world


def _install(staging: Path, out: Path, params: dict) -> None:
    """Renames the finished world `staging` to `out`, replacing a demo world with other parameters."""
    try:
        staging.rename(out)  # atomic; succeeds when `out` is missing or an empty directory
        return
    except OSError:
        marker = _read_marker(out)
        if marker is not None and all(marker.get(key) == value for key, value in params.items()):
            return  # another process finished the same world first
        if marker is None:
            raise
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    out.rename(retired / "world")
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)


def save_preview(world: DemoWorld, path: str | os.PathLike, num_scenes: int = 4, scale: int = 2) -> None:
    """
    Saves the first `num_scenes` scenes of `world` with two or more shapes (the ones with relations) side by side
    as one PNG, redrawn at `scale` times their size.

    Args:
        world ([`DemoWorld`]): A built world.
        path (`str` or `os.PathLike`): Output PNG.
        num_scenes (`int`, *optional*, defaults to 4): Number of scenes shown.
        scale (`int`, *optional*, defaults to 2): Magnification.
    """
    scenes = [scene for scene in world.load_scenes()["scenes"] if len(scene["objects"]) > 1][:num_scenes]
    side, pad = IMAGE_SIZE * scale, 4
    sheet = Image.new("RGB", (len(scenes) * (side + pad) + pad, side + 2 * pad), (255, 255, 255))
    for index, scene in enumerate(scenes):
        sheet.paste(_draw(scene["objects"], scene["background"], scale), (pad + index * (side + pad), pad))
    sheet.save(path, format="PNG", optimize=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: `python -m knowledge_clip.data.demo_world OUT_DIR [--seed 0] [--size default] [--preview PNG]`."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("out_dir", help="directory of the world (missing, empty, or a demo world)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    parser.add_argument("--size", choices=sorted(_SIZE_SPECS), default="default", help="size preset")
    parser.add_argument("--preview", help="also save a PNG of the first scenes to this path")
    args = parser.parse_args(argv)
    world = build_demo_world(args.out_dir, seed=args.seed, size=args.size)
    if args.preview:
        save_preview(world, args.preview)
    print(f"demo world (seed={world.seed}, size={world.size}) at {world.root}")
    for key, value in world.manifest()["counts"].items():
        print(f"  {key:<40} {value}")


if __name__ == "__main__":
    main()
