# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Zero-shot evaluation of any CLIP or Knowledge-CLIP checkpoint: what continual knowledge training bought.

- [`zero_shot_classification`]: top-1/top-5 accuracy from class names and prompt templates;
- [`image_text_retrieval`]: image<->text Recall@1/5/10, ranks counted in blocks (never the full similarity matrix);
- [`link_prediction`]: filtered MRR and Hits@1/3/10 of `(h, r, ?)` and `(?, r, t)` with the fusion encoder;
- [`relation_prediction`]: accuracy of the E2R head on held-out triplets;
- [`evaluate_caption_probes`]: does the image-text score prefer the true caption over a negated, colour-, size- or
  relation-swapped one ([`build_demo_world_probes`], [`load_caption_probes`]).

Zero-shot classification, retrieval and probes use the CLIP towers, so a plain `CLIPModel` is evaluated the same way;
the knowledge metrics return `{"available": False, "reason": ...}` for it. The metrics are also shipped as offline
`evaluate` modules: [`load_metric`]`("topk_accuracy" | "retrieval_recall" | "ranking_mrr_hits" | "vqa_accuracy")`.
See docs/evaluation.md.
"""

from .benchmarks import (
    demo_world_card_results,
    demo_world_headline_table,
    evaluate_knowledge_graphs,
    evaluate_on_demo_world,
    evaluate_user_datasets,
    flatten_results,
    held_out_triplets,
    load_model_and_processor,
    read_classification_folder,
    results_to_markdown,
)
from .encoding import ViewImage, encode_images, encode_texts
from .knowledge import graph_entity, link_prediction, relation_prediction
from .metrics import METRIC_NAMES, load_metric
from .probes import (
    PROBE_KINDS,
    CaptionProbe,
    build_demo_world_probes,
    evaluate_caption_probes,
    load_caption_probes,
)
from .retrieval import image_text_retrieval, reranked_retrieval_ranks, retrieval_pairs_from_graph, retrieval_ranks
from .zero_shot import DEFAULT_TEMPLATES, class_embeddings, zero_shot_classification

__all__ = [
    "DEFAULT_TEMPLATES",
    "METRIC_NAMES",
    "PROBE_KINDS",
    "CaptionProbe",
    "ViewImage",
    "build_demo_world_probes",
    "class_embeddings",
    "demo_world_card_results",
    "demo_world_headline_table",
    "encode_images",
    "encode_texts",
    "evaluate_caption_probes",
    "evaluate_knowledge_graphs",
    "evaluate_on_demo_world",
    "evaluate_user_datasets",
    "flatten_results",
    "graph_entity",
    "held_out_triplets",
    "image_text_retrieval",
    "link_prediction",
    "load_caption_probes",
    "load_metric",
    "load_model_and_processor",
    "read_classification_folder",
    "relation_prediction",
    "results_to_markdown",
    "retrieval_pairs_from_graph",
    "reranked_retrieval_ranks",
    "retrieval_ranks",
    "zero_shot_classification",
]
