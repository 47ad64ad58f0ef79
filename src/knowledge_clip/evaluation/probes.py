# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Caption probes in the spirit of Fig. 1 and Table 7 of Pan et al. (2022): does the image-text score prefer the true
caption of an image over a minimally changed false one?

Each probe is `(image, true caption, false caption, kind)`; a model passes it when
`cos(image, true caption) > cos(image, false caption)` with the CLIP towers (a tie fails). A model blind to the
changed word scores both captions about equally and lands near 50%.

Probe kinds built from the demo world's `scenes.json` (ground truth of every scene):

- `negation`: "there is a red circle" vs "there is no red circle" for a shape in the image, and the reverse for a
  colour-shape pair that is not in the image;
- `colour`: "a picture of a red circle" vs the same shape in a colour it does not have in the image;
- `size`: "a picture of a small red circle" vs "a picture of a large red circle";
- `relation_swap`: "a red circle is left of a blue square" vs the two ends swapped, for asymmetric relations
  (left of, right of, above, below, bigger than, smaller than) that do not also hold the other way;
- `colour_binding`: "a red circle and a blue square" vs the colours swapped between the two shapes, when neither
  swapped pair is in the image.

Users can bring their own probes as a JSON Lines file (see [`load_caption_probes`]).
"""

import json
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.json_stream import iter_jsonl_objects
from ..errors import KnowledgeCLIPDataError
from .encoding import ImageLike, encode_images, encode_texts

PROBE_KINDS = ("negation", "colour", "size", "relation_swap", "colour_binding")
ASYMMETRIC_PREDICATES = ("left of", "right of", "above", "below", "bigger than", "smaller than")


@dataclass(frozen=True)
class CaptionProbe:
    """
    One probe: an image, a caption true of it and a minimally changed false caption.

    Args:
        image (`PIL.Image.Image`, `str` or `os.PathLike`): The image, or its path.
        true_caption (`str`): A caption that describes the image.
        false_caption (`str`): A caption that does not.
        kind (`str`, *optional*, defaults to `"user"`): The probe family the result is reported under.
    """

    image: ImageLike
    true_caption: str
    false_caption: str
    kind: str = "user"


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _phrase(item: dict, with_size: bool = False) -> str:
    phrase = f"{item['colour']} {item['shape']}"
    return f"{item['size']} {phrase}" if with_size else phrase


def _scene_probes(scene: dict, image: Path, colours: Sequence[str], shapes: Sequence[str], rng: random.Random):
    """At most one probe of each kind for one scene."""
    objects = scene["objects"]
    present = {(item["colour"], item["shape"]) for item in objects}
    probes = []
    if objects:
        item = rng.choice(objects)
        there_is, there_is_no = f"there is {_article(_phrase(item))}", f"there is no {_phrase(item)}"
        probes.append(CaptionProbe(image, there_is, there_is_no, "negation"))
        absent = [(c, s) for c in colours for s in shapes if (c, s) not in present]
        colour, shape = rng.choice(absent)
        probes.append(
            CaptionProbe(
                image, f"there is no {colour} {shape}", f"there is {_article(f'{colour} {shape}')}", "negation"
            )
        )

        other_colours = [c for c in colours if (c, item["shape"]) not in present]
        swapped = {**item, "colour": rng.choice(other_colours)}
        probes.append(
            CaptionProbe(
                image,
                f"a picture of {_article(_phrase(item))}",
                f"a picture of {_article(_phrase(swapped))}",
                "colour",
            )
        )
        resized = {**item, "size": "large" if item["size"] == "small" else "small"}
        probes.append(
            CaptionProbe(
                image,
                f"a picture of {_article(_phrase(item, with_size=True))}",
                f"a picture of {_article(_phrase(resized, with_size=True))}",
                "size",
            )
        )

    relations = {(i, predicate, j) for i, predicate, j in scene["relations"]}
    one_way = sorted(
        (i, predicate, j)
        for i, predicate, j in relations
        if predicate in ASYMMETRIC_PREDICATES and (j, predicate, i) not in relations
    )
    if one_way:
        i, predicate, j = rng.choice(one_way)
        subject, obj = _article(_phrase(objects[i])), _article(_phrase(objects[j]))
        probes.append(
            CaptionProbe(image, f"{subject} is {predicate} {obj}", f"{obj} is {predicate} {subject}", "relation_swap")
        )

    pairs = [
        (a, b)
        for a in objects
        for b in objects
        if a["colour"] < b["colour"]
        and a["shape"] != b["shape"]
        and (b["colour"], a["shape"]) not in present
        and (a["colour"], b["shape"]) not in present
    ]
    if pairs:
        a, b = rng.choice(pairs)
        true_caption = f"{_article(_phrase(a))} and {_article(_phrase(b))}"
        false_caption = f"{_article(b['colour'] + ' ' + a['shape'])} and {_article(a['colour'] + ' ' + b['shape'])}"
        probes.append(CaptionProbe(image, true_caption, false_caption, "colour_binding"))
    return probes


def build_demo_world_probes(
    scenes_file: str | os.PathLike, split: str = "val", kinds: Sequence[str] = PROBE_KINDS, seed: int = 0
) -> list[CaptionProbe]:
    """
    Caption probes from the ground truth of a demo world (see the module docstring for the kinds).

    Args:
        scenes_file (`str` or `os.PathLike`): The world's `scenes.json` (`DemoWorld.scenes_file`); scene images are
            read from the `coco_file` paths, relative to its folder.
        split (`str`, *optional*, defaults to `"val"`): `"val"` (scenes held out of training), `"train"` or `"all"`.
        kinds (`Sequence[str]`, *optional*, defaults to `PROBE_KINDS`): The probe kinds to build.
        seed (`int`, *optional*, defaults to 0): Seed of the choices of objects and replacement words.

    Returns:
        `list[CaptionProbe]`: at most one probe per kind per scene (two for `negation`: present and absent).
    """
    unknown = set(kinds) - set(PROBE_KINDS)
    if unknown:
        raise ValueError(f"Unknown probe kinds {sorted(unknown)}; known kinds are {PROBE_KINDS}.")
    if split not in ("val", "train", "all"):
        raise ValueError(f"split must be 'val', 'train' or 'all', got {split!r}.")
    scenes_file = Path(scenes_file)
    world = json.loads(scenes_file.read_text(encoding="utf-8"))
    colours, shapes = list(world["colours"]), list(world["shapes"])
    rng = random.Random(f"knowledge-clip probes:{seed}")
    probes = []
    for scene in world["scenes"]:
        if split != "all" and scene["split"] != split:
            continue
        image = scenes_file.parent / scene["coco_file"]
        probes += [p for p in _scene_probes(scene, image, colours, shapes, rng) if p.kind in kinds]
    return probes


def load_caption_probes(path: str | os.PathLike) -> list[CaptionProbe]:
    """
    Reads user probes from a JSON Lines file, one object per line:
    `{"image": "images/0001.jpg", "true_caption": "...", "false_caption": "...", "kind": "negation"}`.

    `image` is a path relative to the file's folder (or absolute); `kind` is optional (`"user"`). Blank lines are
    ignored.

    Args:
        path (`str` or `os.PathLike`): The `.jsonl` file.

    Returns:
        `list[CaptionProbe]`.

    Raises:
        KnowledgeCLIPDataError: naming the file, line and field of a bad record.
    """
    path = Path(path)
    probes = []
    for line_number, record in iter_jsonl_objects(path):
        for field in ("image", "true_caption", "false_caption"):
            if not isinstance(record.get(field), str) or not record[field].strip():
                raise KnowledgeCLIPDataError(
                    "missing or empty (a non-empty string is required)", file=path, line=line_number, field=field
                )
        kind = record.get("kind", "user")
        if not isinstance(kind, str) or not kind:
            raise KnowledgeCLIPDataError("must be a non-empty string", file=path, line=line_number, field="kind")
        image = Path(record["image"])
        probes.append(
            CaptionProbe(
                image if image.is_absolute() else path.parent / image,
                record["true_caption"],
                record["false_caption"],
                kind,
            )
        )
    return probes


@torch.no_grad()
def evaluate_caption_probes(model, processor, probes: Sequence[CaptionProbe], batch_size: int = 64) -> dict:
    """
    Accuracy of preferring the true caption, per probe kind and overall, with the CLIP towers.

    Args:
        model (`CLIPModel` or [`KnowledgeCLIPModel`]): The model.
        processor: A processor with a `tokenizer` and an `image_processor`.
        probes (`Sequence[CaptionProbe]`): The probes.
        batch_size (`int`, *optional*, defaults to 64): Images or texts per forward pass.

    Returns:
        `dict`: per kind and `"overall"`: `accuracy` (true caption scored strictly higher), `mean_margin` (mean of
        `cos(image, true) - cos(image, false)`) and `count`.
    """
    if not probes:
        raise ValueError("evaluate_caption_probes needs at least one probe.")
    image_embeds = encode_images(model, processor, [probe.image for probe in probes], batch_size)
    # Each distinct caption is encoded once, so a caption shared by a true and a false side scores identically.
    captions = list(dict.fromkeys(c for probe in probes for c in (probe.true_caption, probe.false_caption)))
    caption_embeds = encode_texts(model, processor, captions, batch_size)
    row_of = {caption: row for row, caption in enumerate(captions)}
    true_embeds = caption_embeds[[row_of[probe.true_caption] for probe in probes]]
    false_embeds = caption_embeds[[row_of[probe.false_caption] for probe in probes]]
    margins = (image_embeds * true_embeds).sum(dim=-1) - (image_embeds * false_embeds).sum(dim=-1)
    by_kind = defaultdict(list)
    for probe, margin in zip(probes, margins.tolist()):
        by_kind[probe.kind].append(margin)
    by_kind["overall"] = margins.tolist()
    return {
        kind: {
            "accuracy": sum(m > 0 for m in kind_margins) / len(kind_margins),
            "mean_margin": sum(kind_margins) / len(kind_margins),
            "count": len(kind_margins),
        }
        for kind, kind_margins in by_kind.items()
    }
