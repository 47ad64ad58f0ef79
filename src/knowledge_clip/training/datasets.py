# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The training mixture: `--dataset kind:path[:weight]` sources, read by the loader registered for their kind (or, for
`hub:<namespace>/<name>[@revision]`, downloaded with `KnowledgeGraph.from_hub`), split into training and validation
triplets.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data import LOADERS
from ..data.demo_world import build_demo_world
from ..graph import KnowledgeGraph
from ..graph_hub import check_repo_id
from .errors import TrainingConfigurationError

__all__ = ["DatasetSpec", "KnowledgeMixture", "load_mixture", "parse_dataset_spec"]

DEMO_KIND = "demo"
HUB_KIND = "hub"


@dataclass(frozen=True)
class DatasetSpec:
    """
    One `--dataset` source.

    Args:
        kind (`str`): A key of `knowledge_clip.data.LOADERS`, `"demo"` (a whole demo world) or `"hub"` (a graph
            uploaded with `KnowledgeGraph.push_to_hub`).
        path (`str`): What the loader reads (file or directory; for `demo`, the world's directory; for `hub`, the
            dataset repository id).
        weight (`float`, *optional*): Relative sampling weight; `None` leaves it to the triplet count.
        revision (`str`, *optional*): For `hub`, the branch, tag or commit; the default branch when `None`.
    """

    kind: str
    path: str
    weight: float | None = None
    revision: str | None = None


def parse_dataset_spec(spec: str) -> DatasetSpec:
    """
    Parses `kind:path[:weight]`, or `hub:<namespace>/<name>[@revision][:weight]` for a graph on the Hub. The weight
    is the part after the last colon when it reads as a number, so paths containing colons still work. A `demo` path
    may be absent (the world is built there); a `hub` one is a repository id (nothing is downloaded here); any other
    must exist.

    Raises:
        TrainingConfigurationError: with a one-line message for an unknown kind, an empty or missing path, a hub id that
            is not `<namespace>/<name>` or a negative weight.
    """
    kind, separator, rest = spec.partition(":")
    kinds = sorted([*LOADERS, DEMO_KIND, HUB_KIND])
    if kind not in kinds:
        raise TrainingConfigurationError(
            f"--dataset {spec!r}: unknown kind {kind!r}; expected one of {kinds} as kind:path[:weight]."
        )
    path, weight = rest, None
    head, _, tail = rest.rpartition(":")
    if head:
        try:
            weight = float(tail)
            path = head
        except ValueError:
            pass
    if not separator or not path:
        raise TrainingConfigurationError(f"--dataset {spec!r}: missing path; expected {kind}:PATH[:WEIGHT].")
    if weight is not None and not weight >= 0:
        raise TrainingConfigurationError(f"--dataset {spec!r}: the weight must be a number >= 0, got {tail}.")
    if kind == HUB_KIND:
        repo_id, _, revision = path.partition("@")
        try:
            check_repo_id(repo_id, "the hub id")
        except ValueError as error:
            raise TrainingConfigurationError(f"--dataset {spec!r}: {error}") from None
        return DatasetSpec(kind, repo_id, weight, revision or None)
    if kind != DEMO_KIND and not os.path.exists(path):
        raise TrainingConfigurationError(f"--dataset {spec!r}: path not found.")
    return DatasetSpec(kind, path, weight)


@dataclass
class KnowledgeMixture:
    """
    The loaded graphs of a run with their sampling weights and validation split.

    Args:
        graphs (`list[KnowledgeGraph]`): Every graph, whole (the validation batches read their triplets here).
        train_graphs (`list[KnowledgeGraph]`): The same graphs restricted to their training triplets: what the
            training batches and every G2E neighbourhood are drawn from, so held-out triplets never leak in as edges.
        train_triplets, valid_triplets (`list[np.ndarray]`): Per graph, the triplet indices of each split.
        weights (`list[float] | None`): Per graph, the sampling weight; `None` samples every triplet equally.
    """

    graphs: list[KnowledgeGraph]
    train_graphs: list[KnowledgeGraph]
    train_triplets: list[np.ndarray]
    valid_triplets: list[np.ndarray]
    weights: list[float] | None

    @property
    def relation_vocab(self) -> list[str]:
        """The union of the graphs' relations, in order of first appearance (the E2R classes)."""
        return list(dict.fromkeys(relation for graph in self.graphs for relation in graph.relations))

    def summary(self) -> str:
        """One line per graph: name, entities, relations, train/validation triplets and sampling weight."""
        lines = []
        for index, graph in enumerate(self.graphs):
            weight = "by size" if self.weights is None else f"{self.weights[index]:g}"
            lines.append(
                f"{graph.name}: {graph.num_entities} entities, {graph.num_relations} relations, "
                f"{self.train_triplets[index].size} train / {self.valid_triplets[index].size} validation triplets, "
                f"weight {weight}"
            )
        return "\n".join(lines)


def load_mixture(
    specs: Sequence[DatasetSpec],
    validation_fraction: float,
    seed: int,
    demo_size: str = "default",
    demo_seed: int = 0,
) -> KnowledgeMixture:
    """
    Reads every source and splits each graph's triplets into training and validation.

    A `demo` source builds the world at its path when absent and contributes its four graphs (Visual Genome, COCO
    captions, ConceptNet, VisualSem), each with the source's weight. When no source has a weight, graphs are sampled
    in proportion to their triplets; otherwise a source without a weight counts 1.

    Args:
        specs (`list[DatasetSpec]`): The sources.
        validation_fraction (`float`): Fraction of each graph's triplets held out.
        seed (`int`): Seed of the splits.
        demo_size (`str`, *optional*, defaults to `"default"`): Size of demo worlds to build.
        demo_seed (`int`, *optional*, defaults to 0): Seed of demo worlds to build.

    Raises:
        TrainingConfigurationError: with a one-line message for a missing path or a source a loader rejects.
    """
    if not 0 <= validation_fraction < 1:
        raise TrainingConfigurationError(f"--validation_fraction must be in [0, 1), got {validation_fraction}.")
    graphs, weights = [], []
    for spec in specs:
        if spec.kind == DEMO_KIND:
            world = _build_world(spec.path, demo_seed, demo_size)
            loaded = [
                LOADERS["visual_genome"](world.visual_genome),
                LOADERS["image_text"](world.coco_captions),
                LOADERS["conceptnet"](world.conceptnet),
                LOADERS["visualsem"](world.visualsem),
            ]
        else:
            loaded = [_read_graph(spec)]
        graphs.extend(loaded)
        weights.extend([spec.weight] * len(loaded))
    mixture_weights = None if all(w is None for w in weights) else [1.0 if w is None else w for w in weights]

    train_graphs, train_triplets, valid_triplets = [], [], []
    for graph in graphs:
        split = graph.split(valid=validation_fraction, test=0.0, seed=seed)
        train_graphs.append(graph.subgraph(split["train"]))
        train_triplets.append(split["train"])
        valid_triplets.append(split["valid"])
    return KnowledgeMixture(graphs, train_graphs, train_triplets, valid_triplets, mixture_weights)


def _read_graph(spec: DatasetSpec) -> KnowledgeGraph:
    try:
        if spec.kind == HUB_KIND:
            return KnowledgeGraph.from_hub(spec.path, revision=spec.revision)
        return LOADERS[spec.kind](spec.path)
    except (ValueError, OSError) as error:  # huggingface_hub's errors (not found, offline, ...) are OSErrors
        where = spec.path + (f"@{spec.revision}" if spec.revision else "")
        raise TrainingConfigurationError(f"--dataset {spec.kind}:{where}: {_one_line(error)}") from None


def _build_world(path: str, seed: int, size: str):
    try:
        return build_demo_world(path, seed=seed, size=size)
    except (ValueError, OSError) as error:
        raise TrainingConfigurationError(f"--dataset demo:{path}: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
