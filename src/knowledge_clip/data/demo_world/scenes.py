# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The scenes of the demo world: the shapes, colours and sizes, the size presets, the placement of shapes in an image,
the spatial predicates between them, and the generation of every scene with its true relations and captions.
"""

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from .captions import alt_text_caption

IMAGE_SIZE = 96

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


@dataclass(frozen=True)
class SizeSpec:
    """How much of everything a size preset generates."""

    num_scenes: int
    val_fraction: float
    visualsem_images_per_node: int
    zero_shot_images_per_class: int


SIZE_SPECS = {
    "tiny": SizeSpec(num_scenes=20, val_fraction=0.2, visualsem_images_per_node=1, zero_shot_images_per_class=1),
    "default": SizeSpec(num_scenes=500, val_fraction=0.1, visualsem_images_per_node=3, zero_shot_images_per_class=5),
    "large": SizeSpec(num_scenes=5000, val_fraction=0.1, visualsem_images_per_node=10, zero_shot_images_per_class=25),
}


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


def place_objects(rng: random.Random, specs: Sequence[tuple[str, str, str]]) -> list[dict]:
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


def make_scenes(seed: int, spec: SizeSpec) -> list[dict]:
    """The scenes: objects with their boxes, every true relation, distinct captions; the last ones are held out."""
    rng = random.Random(f"demo-world:{seed}:scenes")
    combos = [(shape, colour) for colour in COLOURS for shape in SHAPES]
    num_val = max(1, round(spec.num_scenes * spec.val_fraction))
    scenes = []
    for index in range(spec.num_scenes):
        count = rng.choices((1, 2, 3), weights=(2, 4, 4))[0]
        specs = [(shape, colour, rng.choice(SIZES)) for shape, colour in rng.sample(combos, count)]
        objects = place_objects(rng, specs)
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
            caption = alt_text_caption(rng, objects)
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
