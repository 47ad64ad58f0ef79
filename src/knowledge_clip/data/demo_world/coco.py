# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The COCO captions 2017 writer: `coco/annotations/captions_{train,val}2017.json` and the images."""

import random
from pathlib import Path

from .facts import FACTS
from .files import write_bytes, write_json
from .scenes import IMAGE_SIZE

_LICENSES = FACTS["coco"]["licenses"]


def write_coco(root: Path, seed: int, scenes: list[dict], images: list[bytes]) -> dict:
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
            write_bytes(root / scene["coco_file"], data)
            entries.append(
                {
                    "license": rng.randint(1, len(_LICENSES)),
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
            "licenses": _LICENSES,
            "images": entries,
            "annotations": annotations,
        }
        write_json(root / "coco" / "annotations" / f"captions_{folder}.json", payload)
        counts[f"coco_{split}_images"] = len(entries)
        counts[f"coco_{split}_captions"] = len(annotations)
    return counts
