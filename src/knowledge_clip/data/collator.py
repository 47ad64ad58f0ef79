# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Training batches from knowledge graphs: a sampler-like dataset of triplet references and the collator.

`KnowledgeTripletDataset` draws light `(graph_index, triplet_index)` references from one or more graphs with
mixture weights; `KnowledgeCLIPCollator` turns a list of them into the knowledge batch of
[`KnowledgeCLIPModel`]: it shows every entity as one of its views (a text, an image or an image region), samples
the in-edges that G2E message passing runs over (paper Eqs. 11-13), and calls
`KnowledgeCLIPProcessor.encode_knowledge` once per batch.

Both are reproducible without any state carried between batches: the dataset's draws depend only on
`(seed, epoch, index)`, and the collator's random choices only on `(seed, the batch's references)`, so a run resumed
mid-epoch (accelerate's `skip_first_batches`) sees exactly the batches of an uninterrupted run. See
`docs/collator.md`.
"""

import collections
import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import torch
from transformers import BatchFeature

from ..errors import KnowledgeCLIPDataError
from ..graph import EntityView, KnowledgeGraph, ViewKind
from ..processing_knowledge_clip import Entity, KnowledgeCLIPProcessor
from .images import DEFAULT_MAX_PIXELS, open_view_image

__all__ = ["KnowledgeCLIPCollator", "KnowledgeTripletDataset"]

logger = logging.getLogger(__name__)

_UINT64_MASK = (1 << 64) - 1
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on a uint64 array (arithmetic wraps modulo 2**64): a fast, well-mixed hash."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _stream_key(seed: int, epoch: int) -> int:
    """The key of the random stream of `(seed, epoch)`: both hashed, so nearby seeds and epochs give unrelated streams."""
    seed_hash = _splitmix64(np.array([seed & _UINT64_MASK], dtype=np.uint64) + _GOLDEN_GAMMA)
    return int(_splitmix64(seed_hash ^ np.uint64(epoch & _UINT64_MASK))[0])


def _uniform(key: int, counters: np.ndarray) -> np.ndarray:
    """Counter-based uniform floats in [0, 1): the SplitMix64 stream of `key` read at positions `counters`."""
    states = np.uint64(key) + (counters.astype(np.uint64) + np.uint64(1)) * _GOLDEN_GAMMA
    return (_splitmix64(states) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _as_graph_list(graphs: KnowledgeGraph | Sequence[KnowledgeGraph]) -> list[KnowledgeGraph]:
    graphs = [graphs] if isinstance(graphs, KnowledgeGraph) else list(graphs)
    if not graphs:
        raise ValueError("need at least one KnowledgeGraph")
    for index, graph in enumerate(graphs):
        if not isinstance(graph, KnowledgeGraph):
            raise TypeError(f"graphs[{index}] must be a KnowledgeGraph, got {type(graph).__name__}")
    return graphs


class KnowledgeTripletDataset(torch.utils.data.Dataset):
    """Training triplets of one or more knowledge graphs, drawn with mixture weights, as light references.

    Item `i` of epoch `e` is a `(graph_index, triplet_index)` pair drawn independently of every other item: the
    graph with probability `weights[graph_index]`, then a triplet uniformly (with replacement) among that graph's
    allowed triplets. The draw is a pure function of `(seed, epoch, i)` (a counter-based hash, no generator state),
    so the order is reproducible, any index can be read in any order by any DataLoader worker, and resuming
    mid-epoch gives the same items. Only triplet counts and index arrays are kept, never the graphs, so the dataset
    is cheap to pickle into workers; hand the same graphs, in the same order, to `KnowledgeCLIPCollator`.

    Args:
        graphs (`KnowledgeGraph` or `Sequence[KnowledgeGraph]`):
            The graphs to draw from; `graph_index` is a position in this sequence.
        triplet_indices (`Sequence[np.ndarray | None]`, *optional*):
            Per graph, the triplet indices that may be drawn; `None` (for the whole argument or one graph) allows
            every triplet of that graph. Not a way to hold triplets out: the collator samples G2E edges from its whole
            graphs, so pass training subgraphs (`graph.subgraph(split["train"])`) to both instead.
        weights (`Sequence[float]`, *optional*):
            Per graph, the relative probability of drawing from it (normalised here). Defaults to the number of
            allowed triplets of each graph, so that every triplet is equally likely.
        num_samples (`int`, *optional*):
            Items per epoch (`len(dataset)`). Defaults to the total number of allowed triplets.
        seed (`int`, *optional*, defaults to 0):
            Seed of the draws.
    """

    def __init__(
        self,
        graphs: KnowledgeGraph | Sequence[KnowledgeGraph],
        triplet_indices: Sequence[np.ndarray | None] | None = None,
        weights: Sequence[float] | None = None,
        num_samples: int | None = None,
        seed: int = 0,
    ):
        graphs = _as_graph_list(graphs)
        if triplet_indices is None:
            triplet_indices = [None] * len(graphs)
        if len(triplet_indices) != len(graphs):
            raise ValueError(f"got {len(triplet_indices)} triplet_indices entries for {len(graphs)} graphs")
        self.triplet_indices: list[np.ndarray | None] = []
        for index, (graph, allowed) in enumerate(zip(graphs, triplet_indices)):
            if allowed is not None:
                allowed = np.asarray(allowed, dtype=np.int64)
                if allowed.ndim != 1:
                    raise ValueError(f"triplet_indices[{index}] must be 1-d, got shape {allowed.shape}")
                if allowed.size and (allowed.min() < 0 or allowed.max() >= graph.num_triplets):
                    raise IndexError(
                        f"triplet_indices[{index}] must lie in [0, {graph.num_triplets}) (graph {graph.name!r})"
                    )
            self.triplet_indices.append(allowed)
        self.num_triplets = np.array(
            [
                graph.num_triplets if allowed is None else allowed.size
                for graph, allowed in zip(graphs, self.triplet_indices)
            ],
            dtype=np.int64,
        )

        weights = np.asarray(self.num_triplets if weights is None else weights, dtype=np.float64)
        if weights.shape != (len(graphs),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"weights must be {len(graphs)} finite numbers >= 0, got {weights.tolist()}")
        if weights.sum() <= 0:
            raise ValueError("at least one graph needs a positive weight and at least one triplet")
        empty = [graphs[i].name for i in np.flatnonzero((weights > 0) & (self.num_triplets == 0))]
        if empty:
            raise ValueError(f"graphs {empty} have a positive weight but no triplet to draw")
        self.weights = weights / weights.sum()
        # Graph g is drawn when a uniform u falls in [cumulative[g - 1], cumulative[g]).
        self._cumulative_weights = np.cumsum(self.weights)

        self.num_samples = int(self.num_triplets.sum()) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose draws `__getitem__` returns (accelerate calls this on prepared DataLoaders).

        DataLoader workers copy the dataset when an iterator is created: call this before iterating (with
        `persistent_workers=True` the workers would keep the epoch they started with).

        Args:
            epoch (`int`): The epoch, >= 0.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[int, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[int, int]]:
        """Draws the references of several items at once (the DataLoader's batched fetch).

        Args:
            indices (`Sequence[int]`): Item indices in `[0, len(self))`.

        Returns:
            `list[tuple[int, int]]`: One `(graph_index, triplet_index)` per index.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_samples):
            raise IndexError(f"indices must lie in [0, {self.num_samples})")
        stream_key = _stream_key(self.seed, self.epoch)
        # Two independent uniforms per item: positions 2i (graph) and 2i + 1 (triplet) of the epoch's stream.
        graph_draws = _uniform(stream_key, 2 * indices)
        triplet_draws = _uniform(stream_key, 2 * indices + 1)
        graph_indices = np.minimum(
            np.searchsorted(self._cumulative_weights, graph_draws, side="right"), len(self.weights) - 1
        )
        positions = np.minimum(
            (triplet_draws * self.num_triplets[graph_indices]).astype(np.int64), self.num_triplets[graph_indices] - 1
        )
        references = []
        for graph_index, position in zip(graph_indices.tolist(), positions.tolist()):
            allowed = self.triplet_indices[graph_index]
            references.append((graph_index, position if allowed is None else int(allowed[position])))
        return references


class KnowledgeCLIPCollator:
    """Builds `KnowledgeCLIPModel` knowledge batches from `(graph_index, triplet_index)` references.

    For each referenced triplet (h, r, t), h and t are shown as ONE of their views, drawn at random (as the paper
    does for VisualSem: a node is one of its images or one of its texts); an entity met several times in a batch
    (as a head, a tail or a neighbour) is shown once, with one view. TEXT views give their text, IMAGE views their
    image, REGION views the crop of their box. For G2E, up to `num_neighbors` in-edges per entity and hop are sampled
    around the batch's tails, for `num_hops` hops (`KnowledgeGraph.sample_in_neighbors`), and their entities join the
    batch.

    Entity ids (the processor's `entity_ids`, used to mask false negatives) are `graph_offset + entity id`, where a
    graph's offset is the number of entities of the graphs before it: unique across the graphs passed, and equal in
    every process that passes the same graphs in the same order. Relations are passed by text, so graphs may share a
    relation vocabulary; every relation must be in `processor.relation_vocab`.

    Randomness: each batch draws from a generator seeded with `seed` and a hash of the batch's references, so a batch
    does not depend on what this collator (or DataLoader worker) produced before. Same references and seed give an
    identical batch, in any process and after a resume.

    Bad images never stop training: a view that cannot be loaded (missing, corrupt, too large, unsafe path, empty
    crop) is replaced by another view of the entity, tried in random order; an entity with no loadable view drops
    its triplets and graph edges from the batch. Entities are shown in the order they first appear (triplet by
    triplet, head before tail, then the sampled edges likewise), and only those of the kept triplets and edges join
    the batch. Drops are counted in `skipped` (per process: each DataLoader worker
    counts its own) and logged on the first and every `warn_every`-th failed view. A batch whose triplets are all
    dropped raises `KnowledgeCLIPDataError`.

    Args:
        graphs (`KnowledgeGraph` or `Sequence[KnowledgeGraph]`):
            The graphs the references point into, in the order used by `KnowledgeTripletDataset`. Pass training
            subgraphs (`graph.subgraph(split["train"])`) so that held-out triplets never appear as G2E edges.
        processor (`KnowledgeCLIPProcessor`):
            Encodes the batch (called once per batch).
        num_neighbors (`int`, *optional*, defaults to 4):
            In-edges sampled per entity and hop (k); match `config.graph_num_neighbors`.
        num_hops (`int`, *optional*, defaults to 2):
            Hops of the sampled in-neighbourhood; match `config.graph_num_layers`.
        seed (`int`, *optional*, defaults to 0):
            Seed of the view and neighbour choices.
        sample_graph_edges (`bool`, *optional*, defaults to `True`):
            Whether to sample `graph_edges` (G2E); without them the model computes no `g2e_loss`.
        image_max_pixels (`int`, *optional*, defaults to `images.DEFAULT_MAX_PIXELS`):
            Largest accepted `width * height` of an image file (decompression-bomb guard); `None` disables it.
        warn_every (`int`, *optional*, defaults to 100):
            Log a warning on the first failed view and then once every `warn_every` failures.
    """

    def __init__(
        self,
        graphs: KnowledgeGraph | Sequence[KnowledgeGraph],
        processor: KnowledgeCLIPProcessor,
        num_neighbors: int = 4,
        num_hops: int = 2,
        seed: int = 0,
        sample_graph_edges: bool = True,
        image_max_pixels: int | None = DEFAULT_MAX_PIXELS,
        warn_every: int = 100,
    ):
        self.graphs = _as_graph_list(graphs)
        if num_neighbors < 1 or num_hops < 0:
            raise ValueError(f"need num_neighbors >= 1 and num_hops >= 0, got {num_neighbors}, {num_hops}")
        if warn_every < 1:
            raise ValueError(f"warn_every must be >= 1, got {warn_every}")
        known_relations = set(processor.relation_vocab)
        for graph in self.graphs:
            missing = [relation for relation in graph.relations if relation not in known_relations]
            if missing:
                raise ValueError(
                    f"graph {graph.name!r} has relations missing from processor.relation_vocab: {missing[:10]}"
                    + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                )
        self.processor = processor
        self.num_neighbors = num_neighbors
        self.num_hops = num_hops
        self.seed = int(seed)
        self.sample_graph_edges = sample_graph_edges
        self.image_max_pixels = image_max_pixels
        self.warn_every = warn_every
        self.entity_offsets = np.concatenate([[0], np.cumsum([graph.num_entities for graph in self.graphs])[:-1]])
        self._relation_texts = [np.asarray(graph.relations, dtype=object) for graph in self.graphs]
        self.skipped: collections.Counter[str] = collections.Counter()
        if sample_graph_edges and num_hops > 0:
            # Build the adjacency index once here, so that forked DataLoader workers share it.
            for graph in self.graphs:
                graph.in_csr  # noqa: B018

    def batch_generator(self, references: np.ndarray) -> np.random.Generator:
        """The generator of a batch's random choices: a function of `seed` and the references only.

        Args:
            references (`np.ndarray`): int64 array of shape `(batch_size, 2)`.

        Returns:
            `np.random.Generator`: A fresh generator.
        """
        digest = hashlib.blake2b(references.astype("<i8").tobytes(), digest_size=16).digest()
        return np.random.default_rng([self.seed, int.from_bytes(digest, "little")])

    def __call__(self, references: Sequence[tuple[int, int]]) -> BatchFeature:
        """Encodes a batch.

        Args:
            references (`Sequence[tuple[int, int]]`): `(graph_index, triplet_index)` pairs, e.g. items of
                `KnowledgeTripletDataset`.

        Returns:
            [`BatchFeature`]: The fields of `KnowledgeCLIPProcessor.encode_knowledge`, with `graph_edges` when
            `sample_graph_edges` is set and at least one edge survived.

        Raises:
            KnowledgeCLIPDataError: If no triplet of the batch has two loadable entities.
        """
        references = np.asarray(references, dtype=np.int64).reshape(-1, 2)
        if references.shape[0] == 0:
            raise ValueError("cannot collate an empty batch")
        self._check_references(references)
        rng = self.batch_generator(references)
        # Global entity id -> the entity as shown in this batch (None: no loadable view). Insertion order is the
        # order in which entities are met, which makes the random choices deterministic.
        shown: dict[int, Entity | None] = {}

        triplets, kept = self._resolve(references, shown, rng)
        self.skipped["triplet"] += int((~kept).sum())
        if not kept.any():
            raise KnowledgeCLIPDataError(
                f"all {len(references)} triplets of the batch were dropped: none has a head and a tail with a "
                "loadable view (see the warnings above for the failing files)"
            )
        rows = [part[kept] for part in triplets]

        edge_rows = None
        if self.sample_graph_edges:
            edge_parts = []
            for graph_index in np.unique(references[kept, 0]).tolist():
                graph = self.graphs[graph_index]
                tails = graph.tails[references[kept & (references[:, 0] == graph_index), 1]]
                sampled = graph.sample_in_neighbors(tails, self.num_neighbors, self.num_hops, rng)
                edges, edge_kept = self._resolve(
                    np.stack([np.full_like(sampled, graph_index), sampled], 1), shown, rng
                )
                self.skipped["graph edge"] += int((~edge_kept).sum())
                edge_parts.append([part[edge_kept] for part in edges])
            # An empty edge list would give G2E no targets; without edges the model skips g2e_loss for this batch.
            if sum(len(heads) for heads, _, _ in edge_parts):
                edge_rows = [np.concatenate(columns) for columns in zip(*edge_parts)]

        # The batch's entities: those of its kept triplets and edges, in the order they were met.
        used = np.concatenate([rows[0], rows[2]] + ([edge_rows[0], edge_rows[2]] if edge_rows else []))
        used = set(np.unique(used).tolist())
        entity_ids = np.array([entity_id for entity_id in shown if entity_id in used], dtype=np.int64)
        by_id = np.argsort(entity_ids)

        def positions(heads: np.ndarray, relations: np.ndarray, tails: np.ndarray) -> list[tuple[int, str, int]]:
            head_positions = by_id[np.searchsorted(entity_ids, heads, sorter=by_id)]
            tail_positions = by_id[np.searchsorted(entity_ids, tails, sorter=by_id)]
            return list(zip(head_positions.tolist(), relations.tolist(), tail_positions.tolist()))

        return self.processor.encode_knowledge(
            [shown[entity_id] for entity_id in entity_ids.tolist()],
            positions(*rows),
            positions(*edge_rows) if edge_rows is not None else None,
            entity_ids.tolist(),
        )

    def _check_references(self, references: np.ndarray) -> None:
        graph_indices, triplet_indices = references[:, 0], references[:, 1]
        bad_graphs = (graph_indices < 0) | (graph_indices >= len(self.graphs))
        if bad_graphs.any():
            raise IndexError(f"graph index {graph_indices[bad_graphs][0]} out of range [0, {len(self.graphs)})")
        num_triplets = np.array([graph.num_triplets for graph in self.graphs])[graph_indices]
        bad_triplets = np.flatnonzero((triplet_indices < 0) | (triplet_indices >= num_triplets))
        if bad_triplets.size:
            graph = self.graphs[graph_indices[bad_triplets[0]]]
            raise IndexError(
                f"triplet index {triplet_indices[bad_triplets[0]]} out of range [0, {graph.num_triplets}) "
                f"in graph {graph.name!r}"
            )

    def _resolve(
        self, references: np.ndarray, shown: dict[int, Entity | None], rng: np.random.Generator
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """
        `(global head ids, relation texts, global tail ids)` of the referenced triplets, showing the entities not
        shown yet (in order of first appearance, each triplet's head before its tail), and which triplets have two
        loadable ends.
        """
        heads, tails = np.empty((2, len(references)), dtype=np.int64)
        relations = np.empty(len(references), dtype=object)
        graph_of_end = np.repeat(references[:, 0], 2)
        for graph_index in np.unique(references[:, 0]).tolist():
            graph, rows = self.graphs[graph_index], references[:, 0] == graph_index
            triplet_indices = references[rows, 1]
            heads[rows] = self.entity_offsets[graph_index] + graph.heads[triplet_indices]
            tails[rows] = self.entity_offsets[graph_index] + graph.tails[triplet_indices]
            relations[rows] = self._relation_texts[graph_index][graph.relation_ids[triplet_indices]]
        ends = np.stack([heads, tails], axis=1).reshape(-1)
        _, first_positions = np.unique(ends, return_index=True)
        for position in np.sort(first_positions).tolist():
            entity_id = int(ends[position])
            if entity_id not in shown:
                graph_index = int(graph_of_end[position])
                local_id = entity_id - int(self.entity_offsets[graph_index])
                shown[entity_id] = self._show_entity(self.graphs[graph_index], local_id, rng)
        failed = [entity_id for entity_id, entity in shown.items() if entity is None]
        loadable = ~np.isin(ends, failed).reshape(-1, 2).any(axis=1)
        return (heads, relations, tails), loadable

    def _show_entity(self, graph: KnowledgeGraph, entity: int, rng: np.random.Generator) -> Entity | None:
        """One view of the entity drawn at random, falling back to its other views in random order."""
        views = graph.entity_views(entity)
        if not views:
            self.skipped["entity without views"] += 1
            self._warn(f"entity {graph.entity_key(entity)!r} of graph {graph.name!r} has no view")
            return None
        for view_index in rng.permutation(len(views)).tolist():
            shown = self._load_view(graph, views[view_index])
            if shown is not None:
                return shown
        return None

    def _load_view(self, graph: KnowledgeGraph, view: EntityView) -> Entity | None:
        if view.kind == ViewKind.TEXT:
            return view.text
        if graph.root is None:
            self.skipped["image view"] += 1
            self._warn(f"graph {graph.name!r} has image views but no root directory ({view.path})")
            return None
        try:
            return open_view_image(graph.root, view, max_pixels=self.image_max_pixels)
        except ValueError as error:
            # Every data problem of `open_view_image` is a ValueError: ImageLoadError (missing, corrupt, truncated),
            # ImageTooLarge, UnsafePathError, and an empty REGION crop.
            self.skipped["image view"] += 1
            self._warn(f"cannot load an image view of graph {graph.name!r}: {error}")
            return None

    def _warn(self, message: str) -> None:
        failures = self.skipped["image view"] + self.skipped["entity without views"]
        if failures == 1 or failures % self.warn_every == 0:
            logger.warning(
                "%s. So far this process skipped %d image views and %d entities without views, dropping %d "
                "triplets and %d graph edges.",
                message,
                self.skipped["image view"],
                self.skipped["entity without views"],
                self.skipped["triplet"],
                self.skipped["graph edge"],
            )
