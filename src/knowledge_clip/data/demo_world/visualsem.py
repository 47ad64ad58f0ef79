# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The VisualSem v2 writer: nodes, tail-keyed tuples, glosses, images of single shapes named by their SHA-1, and the
image splits.
"""

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

from .facts import FACTS
from .files import write_bytes, write_json
from .rendering import draw_shapes, jpeg_bytes
from .scenes import BACKGROUNDS, COLOURS, SHAPES, SIZES, SizeSpec, place_objects

_GLOSSES = FACTS["visualsem"]["glosses"]


def write_visualsem(root: Path, seed: int, spec: SizeSpec) -> dict:
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
                placed = place_objects(rng, [(shape, colour, size)])
                data = jpeg_bytes(draw_shapes(placed, rng.choice(BACKGROUNDS)))
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

    write_json(vs / "nodes.v2.json", nodes)
    write_json(vs / "tuples.v2.json", tuples)
    _write_glosses(vs / "gloss_files", names, bnids)

    # A few files keep no extension, like the images the real `resizing.py` failed on.
    bare = set(rng.sample(sorted(images), max(1, len(images) // 50)))
    for digest, data in images.items():
        write_bytes(vs / "images" / digest[:2] / (digest if digest in bare else digest + ".jpg"), data)
    order = sorted(images)
    rng.shuffle(order)
    num_held_out = max(1, len(order) // 10)
    write_json(vs / "valid_images.json", order[:num_held_out])
    write_json(vs / "test_images.json", order[num_held_out : 2 * num_held_out])
    write_json(vs / "train_images.json", order[2 * num_held_out :])
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
    write_json(folder / "nodes.glosses.json", entries, ensure_ascii=False)
    for language in languages:
        pairs = [(bnids[name], glosses[name][language]) for name in names if language in glosses[name]]
        (folder / f"glosses.{language}.txt").write_text("".join(f"{g}\n" for _, g in pairs), encoding="utf-8")
        (folder / f"glosses.{language}.txt.bnids").write_text("".join(f"{b}\n" for b, _ in pairs), encoding="utf-8")
