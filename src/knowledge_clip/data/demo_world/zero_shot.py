# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The zero-shot classification writer: held-out single-shape images in Hugging Face `imagefolder` layout."""

import json
import random
from collections.abc import Sequence
from pathlib import Path

from .rendering import draw_shapes, jpeg_bytes
from .scenes import BACKGROUNDS, SIZES, SizeSpec, place_objects


def write_zero_shot(root: Path, seed: int, spec: SizeSpec, class_names: Sequence[str]) -> dict:
    """Writes held-out single-shape images with their class name, `zero_shot/test/metadata.jsonl` (imagefolder)."""
    rng = random.Random(f"demo-world:{seed}:zero_shot")
    folder = root / "zero_shot" / "test"
    folder.mkdir(parents=True)
    rows = []
    for _ in range(spec.zero_shot_images_per_class):
        for name in class_names:
            colour, shape = name.split()
            placed = place_objects(rng, [(shape, colour, rng.choice(SIZES))])
            file_name = f"{len(rows):05d}.jpg"
            (folder / file_name).write_bytes(jpeg_bytes(draw_shapes(placed, rng.choice(BACKGROUNDS))))
            rows.append(json.dumps({"file_name": file_name, "label": name}))
    (folder / "metadata.jsonl").write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return {"zero_shot_images": len(rows)}
