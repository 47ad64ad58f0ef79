# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
A built demo world: the `DemoWorld` paths, `build_demo_world` (generation in a staging directory, the marker file
written last, the atomic install in place) and the command line.
"""

import argparse
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .coco import write_coco
from .conceptnet import write_conceptnet
from .downstream import write_downstream
from .files import write_json
from .rendering import draw_shapes, jpeg_bytes, save_preview
from .scenes import COLOURS, IMAGE_SIZE, PREDICATES, SHAPES, SIZE_SPECS, SIZES, make_scenes
from .visual_genome import write_visual_genome
from .visualsem import write_visualsem
from .zero_shot import write_zero_shot

# 2: the downstream tasks were added (a world of an older version is rebuilt); 3: NLVR2 statements balanced per
# template; 4: SNLI-VE knowledge hypotheses never negated.
FORMAT_VERSION = 4
MARKER_NAME = "demo_world.json"
GENERATOR = "knowledge_clip.data.demo_world"


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
        downstream (`Path`): The downstream tasks on scenes of their own (see `downstream.py`): `vqa/` + `coco/`
            (VQAv2), `snli_ve/` + `flickr30k_images/` (SNLI-VE), `nlvr2/` (NLVR2), `retrieval/dataset_flickr30k.json`
            (Karpathy split), `splits.json` (knowledge and held-out-composition ids) and `scenes.json`.
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
    downstream: Path

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
            downstream=root / "downstream",
        )

    def manifest(self) -> dict:
        """The parameters, file counts and deliberate loader skips recorded in the world's marker file."""
        return json.loads((self.root / MARKER_NAME).read_text(encoding="utf-8"))

    def load_scenes(self) -> dict:
        """The parsed `scenes.json`: vocabularies, class names and the list of scenes."""
        return json.loads(self.scenes_file.read_text(encoding="utf-8"))


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
    spec = SIZE_SPECS[size]
    world = DemoWorld.at(root, seed, size)
    scenes = make_scenes(seed, spec)
    images = [jpeg_bytes(draw_shapes(scene["objects"], scene["background"])) for scene in scenes]
    counts = {"scenes": len(scenes)}
    counts |= write_coco(root, seed, scenes, images)
    counts |= write_visual_genome(root, seed, scenes, images)
    counts |= write_conceptnet(root, seed)
    counts |= write_visualsem(root, seed, spec)
    counts |= write_zero_shot(root, seed, spec, world.class_names)
    counts |= write_downstream(root, seed, size)
    write_json(
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
    write_json(root / MARKER_NAME, marker)


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
    if size not in SIZE_SPECS:
        raise ValueError(f"Unknown demo world size {size!r}; expected one of {sorted(SIZE_SPECS)}.")
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


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: `python -m knowledge_clip.data.demo_world OUT_DIR [--seed 0] [--size default] [--preview PNG]`."""
    # The help text opens with the first line of the package's docstring, which describes the world.
    description = importlib.import_module(__package__).__doc__.strip().splitlines()[0]
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("out_dir", help="directory of the world (missing, empty, or a demo world)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    parser.add_argument("--size", choices=sorted(SIZE_SPECS), default="default", help="size preset")
    parser.add_argument("--preview", help="also save a PNG of the first scenes to this path")
    args = parser.parse_args(argv)
    world = build_demo_world(args.out_dir, seed=args.seed, size=args.size)
    if args.preview:
        save_preview(world, args.preview)
    print(f"demo world (seed={world.seed}, size={world.size}) at {world.root}")
    for key, value in world.manifest()["counts"].items():
        print(f"  {key:<40} {value}")
