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

The modules: `scenes` (shapes, colours, sizes, placement, spatial predicates, scene generation), `captions`,
`rendering` (drawing, JPEG bytes, previews), one writer per published format (`coco`, `visual_genome`, `conceptnet`,
`visualsem`, `zero_shot`) with `files` and the fact tables of `facts.json` (read by `facts`), `downstream` (the
fine-tuning tasks in the VQAv2, SNLI-VE, NLVR2 and Karpathy formats), and `world` (the
`DemoWorld` paths, building, the marker and the command line).
"""

from .rendering import save_preview
from .scenes import COLOURS, IMAGE_SIZE, NEXT_TO_MAX_GAP, PREDICATES, SHAPES, SIDE_RANGE, SIZES, spatial_predicates
from .world import FORMAT_VERSION, MARKER_NAME, DemoWorld, build_demo_world, main

__all__ = [
    "COLOURS",
    "DemoWorld",
    "FORMAT_VERSION",
    "IMAGE_SIZE",
    "MARKER_NAME",
    "NEXT_TO_MAX_GAP",
    "PREDICATES",
    "SHAPES",
    "SIDE_RANGE",
    "SIZES",
    "build_demo_world",
    "main",
    "save_preview",
    "spatial_predicates",
]
