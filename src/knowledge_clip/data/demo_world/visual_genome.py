# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The Visual Genome writer: image data v1.2, objects and relationships v1.4, attributes and region descriptions v1.2,
and the images split between `VG_100K/` and `VG_100K_2/`.
"""

import random
from pathlib import Path

from .captions import article, object_phrase
from .facts import FACTS
from .files import write_bytes, write_json
from .scenes import IMAGE_SIZE, spatial_predicates

_PREDICATE_SYNSETS = FACTS["visual_genome"]["predicate_synsets"]


def write_visual_genome(root: Path, seed: int, scenes: list[dict], images: list[bytes]) -> dict:
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
        write_bytes(vg / folder / f"{image_id}.jpg", data)
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
            phrase = article(object_phrase(rng, item)) + (" " if rng.random() < 0.2 else "")
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
    write_json(vg / "image_data.json", image_data)
    write_json(vg / "objects.json", objects_file)
    write_json(vg / "relationships.json", relationships_file)
    write_json(vg / "attributes.json", attributes_file)
    write_json(vg / "region_descriptions.json", regions_file)
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
