# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Whole evaluation runs: load any CLIP or Knowledge-CLIP checkpoint, evaluate it on the demo world or on a user's
datasets, and render the results as Markdown or for a model card. Used by `examples/evaluate_model.py`,
`examples/pretrain.py` and `examples/reproduce_ablation.py`.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from transformers import AutoModel, AutoProcessor, CLIPModel, CLIPProcessor, PretrainedConfig

from ..data.conceptnet import load_conceptnet
from ..data.demo_world import DemoWorld
from ..data.image_text import load_image_text_pairs
from ..data.json_stream import iter_jsonl_objects
from ..data.visual_genome import load_visual_genome
from ..data.visualsem import load_visualsem
from ..errors import KnowledgeCLIPDataError
from ..graph import KnowledgeGraph
from ..reasoning import is_knowledge_model
from .knowledge import NO_FUSION_ENCODER, link_prediction, relation_prediction
from .metrics import unavailable
from .probes import CaptionProbe, build_demo_world_probes, evaluate_caption_probes
from .retrieval import image_text_retrieval, retrieval_pairs_from_graph
from .zero_shot import DEFAULT_TEMPLATES, zero_shot_classification

KNOWLEDGE_LOADERS = {"conceptnet": load_conceptnet, "visual_genome": load_visual_genome, "visualsem": load_visualsem}
"""Loaders of the knowledge graphs that link and relation prediction run on, by `--kg` kind."""


def load_model_and_processor(name_or_path: str, **kwargs):
    """
    Loads a Knowledge-CLIP or plain CLIP checkpoint with its processor, in eval mode.

    Args:
        name_or_path (`str`): A directory or Hub id. `model_type: knowledge_clip` loads a [`KnowledgeCLIPModel`]
            (through the auto classes `import knowledge_clip` registers), `clip` a `CLIPModel`.
        **kwargs: Passed to `from_pretrained` (e.g. `revision`, `dtype`).

    Returns:
        `tuple`: the model and its processor.
    """
    model_type = PretrainedConfig.get_config_dict(name_or_path)[0].get("model_type")
    if model_type == "clip":
        return CLIPModel.from_pretrained(name_or_path, **kwargs).eval(), CLIPProcessor.from_pretrained(name_or_path)
    if model_type == "knowledge_clip":
        return AutoModel.from_pretrained(name_or_path, **kwargs).eval(), AutoProcessor.from_pretrained(name_or_path)
    raise ValueError(f"{name_or_path}: expected a CLIP or Knowledge-CLIP checkpoint, got model_type {model_type!r}.")


def read_classification_folder(path: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """
    The images and labels of an `imagefolder` classification split: `metadata.jsonl` rows with `file_name` and
    `label` (the layout of the demo world's `zero_shot/test`).

    Args:
        path (`str` or `os.PathLike`): The folder holding `metadata.jsonl`.

    Returns:
        `tuple[list[Path], list[str]]`: image paths and their class names.
    """
    metadata = Path(path) / "metadata.jsonl"
    images, labels = [], []
    for line_number, row in iter_jsonl_objects(metadata):
        for field in ("file_name", "label"):
            if not isinstance(row.get(field), str) or not row[field]:
                raise KnowledgeCLIPDataError("missing or empty", file=metadata, line=line_number, field=field)
        images.append(metadata.parent / row["file_name"])
        labels.append(row["label"])
    return images, labels


def held_out_triplets(graph: KnowledgeGraph, validation_fraction: float, seed: int) -> np.ndarray:
    """
    The triplets `examples/pretrain.py` holds out of training for a run of `--seed seed`:
    `graph.split(valid=validation_fraction, test=0.0, seed=seed)["valid"]`.
    """
    return graph.split(valid=validation_fraction, test=0.0, seed=seed)["valid"]


def evaluate_knowledge_graphs(
    model,
    processor,
    graphs: dict[str, KnowledgeGraph],
    validation_fraction: float = 0.05,
    split_seed: int = 42,
    max_triplets: int | None = None,
    directions: Sequence[str] = ("tail", "head"),
    batch_size: int = 64,
) -> tuple[dict, dict]:
    """
    Link prediction and relation prediction on the held-out triplets of each graph.

    Args:
        model, processor: The model and its processor.
        graphs (`dict[str, KnowledgeGraph]`): The graphs, by name.
        validation_fraction (`float`, *optional*, defaults to 0.05): Held-out fraction, as in training.
        split_seed (`int`, *optional*, defaults to 42): The training run's `--seed` (it seeds the split).
        max_triplets (`int`, *optional*): Evaluate at most this many held-out triplets per graph (the first ones of a
            seeded permutation).
        directions (`Sequence[str]`, *optional*, defaults to `("tail", "head")`): Link-prediction directions.
        batch_size (`int`, *optional*, defaults to 64): Entities per pass.

    Returns:
        `tuple[dict, dict]`: link-prediction and relation-prediction results by graph name, or a single
        `{"available": False, ...}` each for a model without a fusion encoder.
    """
    if not is_knowledge_model(model):
        reason = NO_FUSION_ENCODER.format(model=type(model).__name__)
        return unavailable(reason), unavailable(reason)
    links, relations = {}, {}
    for name, graph in graphs.items():
        test = held_out_triplets(graph, validation_fraction, split_seed)
        if max_triplets is not None and test.size > max_triplets:
            test = np.sort(np.random.default_rng(split_seed).permutation(test)[:max_triplets])
        if test.size == 0:
            links[name] = relations[name] = unavailable(f"Graph {name!r} has no held-out triplet.")
            continue
        links[name] = link_prediction(model, processor, graph, test, directions=directions, batch_size=batch_size)
        relations[name] = relation_prediction(model, processor, graph, test, batch_size=batch_size)
    return links, relations


def evaluate_on_demo_world(
    model,
    processor,
    world: DemoWorld,
    split_seed: int = 42,
    validation_fraction: float = 0.05,
    max_link_prediction_triplets: int | None = 500,
    probe_seed: int = 0,
    batch_size: int = 64,
) -> dict:
    """
    Every evaluation on a demo world: zero-shot classification (the held-out `zero_shot/test` set), image-text
    retrieval (the held-out COCO val scenes), link and relation prediction (the held-out triplets of the Visual
    Genome, ConceptNet and VisualSem graphs) and the caption probes (the val scenes).

    Args:
        model, processor: Any CLIP or Knowledge-CLIP model and its processor.
        world (`DemoWorld`): The world (`build_demo_world(...)`).
        split_seed (`int`, *optional*, defaults to 42): The training run's `--seed`, which chose its held-out triplets.
        validation_fraction (`float`, *optional*, defaults to 0.05): The training run's `--validation_fraction`.
        max_link_prediction_triplets (`int`, *optional*, defaults to 500): Cap of held-out triplets per graph.
        probe_seed (`int`, *optional*, defaults to 0): Seed of the probe construction.
        batch_size (`int`, *optional*, defaults to 64): Items per forward pass.

    Returns:
        `dict` with `zero_shot`, `retrieval`, `link_prediction`, `relation_prediction` and `probes`.
    """
    images, labels = read_classification_folder(world.zero_shot / "test")
    gallery, captions, caption_image = retrieval_pairs_from_graph(load_image_text_pairs(world.coco_captions_val))
    graphs = {
        "visual_genome": load_visual_genome(world.visual_genome),
        "conceptnet": load_conceptnet(world.conceptnet),
        "visualsem": load_visualsem(world.visualsem),
    }
    links, relations = evaluate_knowledge_graphs(
        model,
        processor,
        graphs,
        validation_fraction,
        split_seed,
        max_triplets=max_link_prediction_triplets,
        batch_size=batch_size,
    )
    probes = build_demo_world_probes(world.scenes_file, split="val", seed=probe_seed)
    return {
        "zero_shot": zero_shot_classification(
            model, processor, images, labels, world.class_names, DEFAULT_TEMPLATES, batch_size=batch_size
        ),
        "retrieval": image_text_retrieval(model, processor, gallery, captions, caption_image, batch_size=batch_size),
        "link_prediction": links,
        "relation_prediction": relations,
        "probes": evaluate_caption_probes(model, processor, probes, batch_size),
    }


def evaluate_user_datasets(
    model,
    processor,
    classification: tuple[str, Sequence[str]] | None = None,
    retrieval: str | None = None,
    knowledge_graphs: dict[str, KnowledgeGraph] | None = None,
    probes: Sequence[CaptionProbe] | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    split_seed: int = 42,
    validation_fraction: float = 0.05,
    max_link_prediction_triplets: int | None = None,
    batch_size: int = 64,
) -> dict:
    """
    The evaluations a user's data allows; each one is skipped when its data is not given.

    Args:
        model, processor: Any CLIP or Knowledge-CLIP model and its processor.
        classification (`tuple[str, Sequence[str]]`, *optional*): An imagefolder split (`metadata.jsonl` with
            `file_name`, `label`) and the class names (all labels of the split when empty).
        retrieval (`str`, *optional*): Image-text pairs for `load_image_text_pairs` (COCO captions JSON,
            imagefolder or WebDataset shards).
        knowledge_graphs (`dict[str, KnowledgeGraph]`, *optional*): Graphs whose held-out triplets are evaluated.
        probes (`Sequence[CaptionProbe]`, *optional*): Caption probes (e.g. from `load_caption_probes`).
        templates (`Sequence[str]`, *optional*): Zero-shot prompt templates.
        split_seed, validation_fraction: How training held triplets out (see [`held_out_triplets`]).
        max_link_prediction_triplets (`int`, *optional*): Cap of held-out triplets per graph.
        batch_size (`int`, *optional*, defaults to 64): Items per forward pass.
    """
    results = {}
    if classification is not None:
        folder, class_names = classification
        images, labels = read_classification_folder(folder)
        class_names = list(class_names) or sorted(set(labels))
        results["zero_shot"] = zero_shot_classification(
            model, processor, images, labels, class_names, templates, batch_size=batch_size
        )
    if retrieval is not None:
        gallery, captions, caption_image = retrieval_pairs_from_graph(load_image_text_pairs(retrieval))
        results["retrieval"] = image_text_retrieval(
            model, processor, gallery, captions, caption_image, batch_size=batch_size
        )
    if knowledge_graphs:
        results["link_prediction"], results["relation_prediction"] = evaluate_knowledge_graphs(
            model,
            processor,
            knowledge_graphs,
            validation_fraction,
            split_seed,
            max_triplets=max_link_prediction_triplets,
            batch_size=batch_size,
        )
    if probes:
        results["probes"] = evaluate_caption_probes(model, processor, probes, batch_size)
    return results


def flatten_results(results: dict, prefix: str = "") -> dict[str, float | int | str]:
    """Nested results as `{"a/b/c": value}`; an unavailable metric becomes one `"unavailable: reason"` entry."""
    flat = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value.get("available") is False:
            flat[name] = f"unavailable: {value['reason']}"
        elif isinstance(value, dict):
            flat |= flatten_results({k: v for k, v in value.items() if k != "available"}, f"{name}/")
        elif isinstance(value, (int, float, str)):
            flat[name] = value
    return flat


def results_to_markdown(results: dict, title: str | None = None) -> str:
    """
    The results as a Markdown table of `metric | value` (numbers to four decimals), with an optional title.

    Args:
        results (`dict`): Nested results, e.g. from [`evaluate_on_demo_world`].
        title (`str`, *optional*): A `#` heading.
    """
    lines = [f"# {title}", ""] if title else []
    lines += ["| metric | value |", "| --- | --- |"]
    for name, value in flatten_results(results).items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {name} | {shown.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


DEMO_WORLD_HEADLINE_METRICS = (
    "zero_shot/top1_accuracy",
    "retrieval/image_to_text/recall@1",
    "retrieval/text_to_image/recall@1",
    "probes/overall/accuracy",
    "link_prediction/conceptnet/both/mrr",
    "relation_prediction/visual_genome/accuracy",
)
"""The flattened demo-world metrics `demo_world_headline_table` shows."""


def demo_world_headline_table(results: dict[str, dict]) -> str:
    """
    The headline numbers of several models' demo-world benchmarks, one line per metric, for a log.

    Args:
        results (`dict[str, dict]`): Model name -> [`flatten_results`] of its [`evaluate_on_demo_world`]. A metric
            a model lacks (a CLIP has no link prediction) is left out of its line.

    Returns:
        `str`: Lines `  metric: name value, name value`.
    """
    lines = []
    for metric in DEMO_WORLD_HEADLINE_METRICS:
        values = {name: flat.get(metric) for name, flat in results.items()}
        shown = ", ".join(f"{name} {value:.3f}" for name, value in values.items() if isinstance(value, float))
        if shown:
            lines.append(f"  {metric}: {shown}")
    return "\n".join(lines)


def demo_world_card_results(benchmarks: dict[str, dict[str, dict]], model_name: str) -> dict[str, dict[str, float]]:
    """
    One model's demo-world benchmarks as the `eval_results` of `knowledge_clip.hub.create_model_card`.

    Args:
        benchmarks (`dict[str, dict[str, dict]]`): World directory -> model name -> [`flatten_results`] of its
            [`evaluate_on_demo_world`].
        model_name (`str`): The model whose numbers go on the card.

    Returns:
        `dict[str, dict[str, float]]`: `{"task/dataset": {metric: value}}`: zero-shot classification, text and image
        retrieval, and the link and relation prediction of each graph, on the dataset `demo-world-<directory name>`.
    """
    card_results = {}
    for world_path, by_model in benchmarks.items():
        world = f"demo-world-{os.path.basename(os.path.normpath(world_path))}"
        for key, value in by_model.get(model_name, {}).items():
            if not isinstance(value, float):
                continue
            parts = key.split("/")
            if parts[0] == "zero_shot":
                task = f"zero_shot_classification/{world}"
            elif parts[0] == "retrieval":
                kind = "text_retrieval" if parts[1] == "image_to_text" else "image_retrieval"
                task = f"{kind}/{world}-captions"
            elif parts[0] in ("link_prediction", "relation_prediction") and parts[-2] in ("both", parts[1]):
                task = f"{parts[0]}/{world}-{parts[1]}"
            else:
                continue
            card_results.setdefault(task, {})[parts[-1]] = value
    return card_results
