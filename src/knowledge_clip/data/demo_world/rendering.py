# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Drawing the demo world: the polygons of the shapes, a scene rendered on its background, its JPEG bytes, and a PNG
preview of a built world.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

from .scenes import COLOURS, IMAGE_SIZE

if TYPE_CHECKING:
    from .world import DemoWorld

JPEG_QUALITY = 90


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


def draw_shapes(objects: Sequence[dict], background: Sequence[int], scale: int = 1) -> Image.Image:
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


def jpeg_bytes(image: Image.Image) -> bytes:
    """The JPEG file of `image`, as every image of the world is stored."""
    buffer = io.BytesIO()
    # 4:4:4 chroma: the default 4:2:0 subsampling smears the colour of small, thin shapes into the background.
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


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
        sheet.paste(draw_shapes(scene["objects"], scene["background"], scale), (pad + index * (side + pad), pad))
    sheet.save(path, format="PNG", optimize=True)
