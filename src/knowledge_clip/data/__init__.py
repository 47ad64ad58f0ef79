"""Loaders that turn published datasets (ConceptNet, Visual Genome, VisualSem, image-text pairs) into knowledge graphs,
the demo world, and the collator that turns sampled triplets into model batches."""

from collections.abc import Callable

from ..graph import KnowledgeGraph
from .collator import KnowledgeCLIPCollator, KnowledgeTripletDataset
from .conceptnet import load_conceptnet
from .demo_world import DemoWorld, build_demo_world
from .image_text import load_image_text_pairs
from .images import crop_region, open_image
from .visual_genome import load_visual_genome
from .visualsem import load_visualsem

LOADERS: dict[str, Callable[..., KnowledgeGraph]] = {
    "conceptnet": load_conceptnet,
    "visual_genome": load_visual_genome,
    "visualsem": load_visualsem,
    "image_text": load_image_text_pairs,
}
"""Loader of each dataset kind, by the name `--dataset kind:path` uses."""

__all__ = [
    "LOADERS",
    "DemoWorld",
    "KnowledgeCLIPCollator",
    "KnowledgeTripletDataset",
    "build_demo_world",
    "crop_region",
    "load_conceptnet",
    "load_image_text_pairs",
    "load_visual_genome",
    "load_visualsem",
    "open_image",
]
