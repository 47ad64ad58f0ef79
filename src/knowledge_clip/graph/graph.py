# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""`KnowledgeGraph`, the graph every loader builds and training samples from, and its `LoadReport`.

A `KnowledgeGraph` stores triplets as three int64 arrays and entities as an Arrow table (key, source, views), so a
graph with millions of triplets costs tens of bytes per triplet and saves to / memory-maps from disk through
`datasets`. Adjacency is a CSR index (triplets sorted by tail or head plus offsets), built lazily on first use; the
G2E objective (paper Eqs. 11-13) samples its message-passing subgraph from it with `sample_in_neighbors`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .entities import EntityView, ViewKind, _rebase_view
from .sampling import _sample_in_neighbors
from .storage import (
    DEFAULT_MAX_SHARD_BYTES,
    DEFAULT_MAX_SHARD_ROWS,
    _entities_schema,
    _read_from_disk,
    _save_to_disk,
    _view_from_arrow,
    _views_arrow_type,
)

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclasses.dataclass
class LoadReport:
    """What a loader read and what it skipped, and why.

    Args:
        source (`str`): The file or directory that was read.
        records_read (`int`): Number of input records (lines, JSON entries, ...) read.
        triplets_loaded (`int`): Number of triplets in the resulting graph.
        skipped (`dict[str, int]`): Reason -> number of records skipped for it.
        examples (`dict[str, list[str]]`): Reason -> up to `max_examples` locations (``"file:line: field ..."``).
        max_examples (`int`, *optional*, defaults to 5): How many examples are kept per reason.
    """

    source: str
    records_read: int = 0
    triplets_loaded: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    max_examples: int = 5

    def skip(self, reason: str, where: str | None = None, count: int = 1) -> None:
        """Counts `count` records skipped for `reason`, keeping `where` as an example while there is room.

        Args:
            reason (`str`): Short, stable reason, e.g. ``"non-english end"``.
            where (`str`, *optional*): Where the (first) skipped record is, e.g. ``"assertions.csv:12: end"``.
            count (`int`, *optional*, defaults to 1): Number of records skipped (loaders that count in bulk).
        """
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        if where is not None:
            examples = self.examples.setdefault(reason, [])
            if len(examples) < self.max_examples:
                examples.append(where)

    @property
    def total_skipped(self) -> int:
        """`int`: Number of records skipped, all reasons together."""
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadReport:
        """Rebuilds a report from `to_dict`'s output."""
        return cls(**data)

    def __str__(self) -> str:
        rows = [("records read", self.records_read), ("triplets loaded", self.triplets_loaded)]
        rows += [(f"skipped: {reason}", count) for reason, count in sorted(self.skipped.items())]
        width = max(len(label) for label, _ in rows)
        lines = [f"Load report for {self.source}"]
        lines += [f"  {label:<{width}}  {count:>12,}" for label, count in rows]
        for reason in sorted(self.examples):
            lines += [f"  e.g. ({reason}) {example}" for example in self.examples[reason]]
        return "\n".join(lines)


class KnowledgeGraph:
    """A knowledge graph: entities with views, a relation vocabulary and (head, relation, tail) triplets.

    Made by `KnowledgeGraphBuilder.build`, `merge`, `subgraph` or `load_from_disk`; not constructed directly.

    Attributes:
        name (`str`): The graph's name (namespace of its keys when merged).
        root (`str` or `None`): Directory that IMAGE/REGION view paths are relative to.
        report (`LoadReport` or `None`): What the loader read and skipped.
        relations (`list[str]`): Relation vocabulary; index = relation id.
        heads, relation_ids, tails (`np.ndarray`): Read-only int64 arrays of length `num_triplets`.
    """

    def __init__(
        self,
        *,
        name: str,
        root: str | None,
        entities: pa.Table,
        sources: list[str],
        relations: list[str],
        heads: np.ndarray,
        relation_ids: np.ndarray,
        tails: np.ndarray,
        report: LoadReport | None = None,
    ):
        self.name = name
        self.root = root
        self.report = report
        self.relations = list(relations)
        self._entities = entities
        self._sources = list(sources)
        self.heads, self.relation_ids, self.tails = (
            self._validated_ids(array_, label, bound)
            for array_, label, bound in (
                (heads, "heads", entities.num_rows),
                (relation_ids, "relation ids", len(self.relations)),
                (tails, "tails", entities.num_rows),
            )
        )
        if not len(self.heads) == len(self.relation_ids) == len(self.tails):
            raise ValueError("heads, relation_ids and tails must have the same length")
        self._in_csr: tuple[np.ndarray, np.ndarray] | None = None
        self._out_csr: tuple[np.ndarray, np.ndarray] | None = None
        self._key_index: dict[str, int] | None = None

    @classmethod
    def from_arrays(
        cls,
        name: str,
        entity_keys: Sequence[str],
        relations: Sequence[str],
        heads: np.ndarray,
        relation_ids: np.ndarray,
        tails: np.ndarray,
        root: str | os.PathLike | None = None,
    ) -> KnowledgeGraph:
        """Makes a graph straight from arrays (no deduplication; for synthetic graphs and tests).

        Args:
            name (`str`): The graph's name.
            entity_keys (`Sequence[str]`): One key per entity; entities get no views.
            relations (`Sequence[str]`): The relation vocabulary.
            heads, relation_ids, tails (`np.ndarray`): int64 arrays of equal length.
            root (`str` or `os.PathLike`, *optional*): Root directory of image paths.

        Returns:
            `KnowledgeGraph`: The graph (no report).
        """
        num_entities = len(entity_keys)
        entities = pa.table(
            {
                "key": pa.array(entity_keys, type=pa.string()),
                "source": pa.array(np.zeros(num_entities, dtype=np.int64)),
                "views": pa.array([[]] * num_entities, type=_views_arrow_type()),
            }
        )
        return cls(
            name=name,
            root=os.fspath(root) if root is not None else None,
            entities=entities,
            sources=[name],
            relations=list(relations),
            heads=heads,
            relation_ids=relation_ids,
            tails=tails,
        )

    @staticmethod
    def _validated_ids(values: np.ndarray, label: str, bound: int) -> np.ndarray:
        values = np.asarray(values, dtype=np.int64)
        if values.ndim != 1:
            raise ValueError(f"{label} must be a 1-d array")
        if values.size and (values.min() < 0 or values.max() >= bound):
            raise ValueError(f"{label} must lie in [0, {bound}), found [{values.min()}, {values.max()}]")
        values.flags.writeable = False  # the CSR caches assume triplets never change
        return values

    # ----------------------------------------------------------------------------------------------- entities
    @property
    def num_entities(self) -> int:
        """`int`: Number of entities."""
        return self._entities.num_rows

    @property
    def num_relations(self) -> int:
        """`int`: Size of the relation vocabulary."""
        return len(self.relations)

    @property
    def num_triplets(self) -> int:
        """`int`: Number of triplets."""
        return len(self.heads)

    def _check_entity(self, entity: int) -> int:
        entity = int(entity)
        if not 0 <= entity < self.num_entities:
            raise IndexError(f"entity id {entity} out of range [0, {self.num_entities})")
        return entity

    def entity_key(self, entity: int) -> str:
        """Returns the key of entity `entity` (e.g. ``"/c/en/cat"``, or ``"conceptnet:/c/en/cat"`` once merged)."""
        return self._entities.column("key")[self._check_entity(entity)].as_py()

    def entity_id(self, key: str) -> int:
        """Returns the id of the entity with `key` (an index of all keys is built on first call).

        Raises:
            KeyError: If no entity has this key.
        """
        if self._key_index is None:
            keys = self._entities.column("key").to_pylist()
            self._key_index = {key_: index for index, key_ in enumerate(keys)}
        return self._key_index[key]

    def entity_views(self, entity: int) -> list[EntityView]:
        """Returns the views of entity `entity` (TEXT, IMAGE and REGION, in the order they were added)."""
        records = self._entities.column("views")[self._check_entity(entity)].as_py()
        return [_view_from_arrow(record) for record in records]

    def entity_source(self, entity: int) -> str:
        """Returns the name of the graph the entity comes from (the graph's own name unless merged)."""
        return self._sources[self._entities.column("source")[self._check_entity(entity)].as_py()]

    # ---------------------------------------------------------------------------------------------- adjacency
    def _csr(self, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Triplet indices sorted by entity (stable: triplets of one entity keep file order) + per-entity offsets.
        order = np.argsort(ends, kind="stable")
        offsets = np.zeros(self.num_entities + 1, dtype=np.int64)
        np.cumsum(np.bincount(ends, minlength=self.num_entities), out=offsets[1:])
        order.flags.writeable = False
        offsets.flags.writeable = False
        return order, offsets

    @property
    def in_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """`tuple[np.ndarray, np.ndarray]`: ``(order, offsets)``; the in-edges of entity e are
        ``order[offsets[e]:offsets[e + 1]]``. Built once, on first use."""
        if self._in_csr is None:
            self._in_csr = self._csr(self.tails)
        return self._in_csr

    @property
    def out_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """`tuple[np.ndarray, np.ndarray]`: Same as `in_csr`, for out-edges (by head)."""
        if self._out_csr is None:
            self._out_csr = self._csr(self.heads)
        return self._out_csr

    def in_edges(self, entity: int) -> np.ndarray:
        """Returns the indices of the triplets whose tail is `entity`."""
        order, offsets = self.in_csr
        entity = self._check_entity(entity)
        return order[offsets[entity] : offsets[entity + 1]]

    def out_edges(self, entity: int) -> np.ndarray:
        """Returns the indices of the triplets whose head is `entity`."""
        order, offsets = self.out_csr
        entity = self._check_entity(entity)
        return order[offsets[entity] : offsets[entity + 1]]

    def sample_in_neighbors(
        self, entities: np.ndarray, num_neighbors: int, num_hops: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Samples the multi-hop in-neighbourhood that G2E message passing runs over (paper Eqs. 11-13).

        Hop 1 takes up to `num_neighbors` in-edges of each given entity, uniformly without replacement; hop 2 does
        the same for every head found in hop 1 that has not been expanded yet, and so on. Every entity is
        expanded at most once, so no triplet is returned twice.

        Args:
            entities (`np.ndarray`): Entity ids to start from (duplicates are ignored).
            num_neighbors (`int`): Largest number of in-edges sampled per entity and hop (k).
            num_hops (`int`): Number of hops (L, the number of message-passing layers).
            rng (`np.random.Generator`): Source of randomness; equal generator states give equal samples.

        Returns:
            `np.ndarray`: int64 triplet indices, hop by hop, and within a hop grouped by tail entity in ascending
            id order.
        """
        return _sample_in_neighbors(self.in_csr, self.heads, entities, num_neighbors, num_hops, rng)

    # ------------------------------------------------------------------------------------ splits, subgraphs
    def split(self, valid: float = 0.05, test: float = 0.05, seed: int = 0) -> dict[str, np.ndarray]:
        """Splits the triplets at random into train / valid / test (a transductive link-prediction split).

        The split depends only on `seed` and `num_triplets`. Entities are shared between the parts.

        Args:
            valid (`float`, *optional*, defaults to 0.05): Fraction of triplets for validation.
            test (`float`, *optional*, defaults to 0.05): Fraction of triplets for test.
            seed (`int`, *optional*, defaults to 0): Seed of the permutation.

        Returns:
            `dict[str, np.ndarray]`: ``{"train", "valid", "test"}`` -> sorted, disjoint triplet indices that
            together cover all triplets.
        """
        if valid < 0 or test < 0 or valid + test > 1:
            raise ValueError(f"need valid, test >= 0 and valid + test <= 1, got {valid}, {test}")
        permutation = np.random.default_rng(seed).permutation(self.num_triplets)
        num_test = round(self.num_triplets * test)
        num_valid = round(self.num_triplets * valid)
        return {
            "train": np.sort(permutation[num_test + num_valid :]),
            "valid": np.sort(permutation[num_test : num_test + num_valid]),
            "test": np.sort(permutation[:num_test]),
        }

    def subgraph(self, triplet_indices: np.ndarray) -> KnowledgeGraph:
        """Returns a graph with the same entities and relation vocabulary, keeping only the given triplets.

        Args:
            triplet_indices (`np.ndarray`): Indices into this graph's triplets, kept in the given order.

        Returns:
            `KnowledgeGraph`: The subgraph (its `report` is `None`; entity ids are unchanged).
        """
        indices = np.asarray(triplet_indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_triplets):
            raise IndexError(f"triplet indices must lie in [0, {self.num_triplets})")
        return KnowledgeGraph(
            name=self.name,
            root=self.root,
            entities=self._entities,
            sources=self._sources,
            relations=self.relations,
            heads=self.heads[indices],
            relation_ids=self.relation_ids[indices],
            tails=self.tails[indices],
        )

    @classmethod
    def merge(cls, graphs: Sequence[KnowledgeGraph], name: str = "merged") -> KnowledgeGraph:
        """Merges graphs into one: entities side by side, relation vocabularies unioned.

        Entity keys become ``"<graph.name>:<key>"``, so equal keys from different graphs stay different entities
        (link them with explicit triplets). Relations with the same text become one relation. The merged root is
        the deepest directory containing every input root; image paths are rewritten relative to it.

        Args:
            graphs (`Sequence[KnowledgeGraph]`): Graphs with distinct names.
            name (`str`, *optional*, defaults to ``"merged"``): Name of the merged graph.

        Returns:
            `KnowledgeGraph`: The merged graph; its report sums the inputs' reports, reasons prefixed by graph name.
        """
        names = [graph.name for graph in graphs]
        if not graphs or len(set(names)) != len(names):
            raise ValueError(f"merge needs at least one graph and distinct graph names, got {names}")
        roots = [os.path.abspath(graph.root) for graph in graphs if graph.root is not None]
        root = os.path.commonpath(roots) if roots else None

        relations: dict[str, int] = {}
        tables, heads, relation_ids, tails = [], [], [], []
        report = LoadReport(source=", ".join(names))
        offset = 0
        for source_id, graph in enumerate(graphs):
            relation_map = np.array([relations.setdefault(text, len(relations)) for text in graph.relations])
            heads.append(graph.heads + offset)
            relation_ids.append(relation_map[graph.relation_ids] if graph.num_triplets else graph.relation_ids)
            tails.append(graph.tails + offset)
            offset += graph.num_entities
            views = graph._entities.column("views")
            prefix = os.path.relpath(os.path.abspath(graph.root), root) if graph.root is not None else "."
            if prefix != ".":
                views = pa.array(
                    [[_rebase_view(record, prefix) for record in records] for records in views.to_pylist()],
                    type=_views_arrow_type(),
                )
            keys = pc.binary_join_element_wise(f"{graph.name}:", graph._entities.column("key"), "")
            tables.append(
                pa.table(
                    {
                        "key": keys.cast(pa.string()),
                        "source": pa.array(np.full(graph.num_entities, source_id, dtype=np.int64)),
                        "views": views,
                    }
                )
            )
            if graph.report is not None:
                report.records_read += graph.report.records_read
                for reason, count in graph.report.skipped.items():
                    report.skip(f"{graph.name}: {reason}", count=count)
                    report.examples[f"{graph.name}: {reason}"] = list(graph.report.examples.get(reason, []))
        report.triplets_loaded = sum(graph.num_triplets for graph in graphs)
        return cls(
            name=name,
            root=root,
            entities=pa.concat_tables([table.cast(_entities_schema()) for table in tables]),
            sources=names,
            relations=list(relations),
            heads=np.concatenate(heads),
            relation_ids=np.concatenate(relation_ids),
            tails=np.concatenate(tails),
            report=report,
        )

    # --------------------------------------------------------------------------------------------- statistics
    def stats(self) -> dict[str, Any]:
        """Returns counts and degree statistics.

        Returns:
            `dict`: ``name``, ``entities``, ``relations``, ``triplets``, ``views_by_kind`` (number of views of
            each kind), ``entities_by_view_kind`` (entities having at least one view of each kind),
            ``triplets_per_relation`` (relation text -> count), ``in_degree`` / ``out_degree`` (mean, median, max),
            ``isolated_entities`` (entities in no triplet) and ``sources`` (entities per source graph).
        """
        views = self._entities.column("views")
        kinds = pc.struct_field(pc.list_flatten(views), "kind").to_numpy(zero_copy_only=False).astype(np.int64)
        owners = pc.list_parent_indices(views).to_numpy(zero_copy_only=False)
        views_by_kind, entities_by_view_kind = {}, {}
        for kind in ViewKind:
            mask = kinds == kind
            views_by_kind[kind.name.lower()] = int(mask.sum())
            entities_by_view_kind[kind.name.lower()] = int(np.unique(owners[mask]).size)
        relation_counts = np.bincount(self.relation_ids, minlength=self.num_relations)
        in_degree = np.bincount(self.tails, minlength=self.num_entities)
        out_degree = np.bincount(self.heads, minlength=self.num_entities)
        source_counts = np.bincount(self._entities.column("source").to_numpy(), minlength=len(self._sources))

        def summary(degrees: np.ndarray) -> dict[str, float]:
            if degrees.size == 0:
                return {"mean": 0.0, "median": 0.0, "max": 0}
            return {"mean": float(degrees.mean()), "median": float(np.median(degrees)), "max": int(degrees.max())}

        return {
            "name": self.name,
            "entities": self.num_entities,
            "relations": self.num_relations,
            "triplets": self.num_triplets,
            "views_by_kind": views_by_kind,
            "entities_by_view_kind": entities_by_view_kind,
            "triplets_per_relation": {text: int(n) for text, n in zip(self.relations, relation_counts)},
            "in_degree": summary(in_degree),
            "out_degree": summary(out_degree),
            "isolated_entities": int(((in_degree + out_degree) == 0).sum()),
            "sources": {source: int(n) for source, n in zip(self._sources, source_counts)},
        }

    def __repr__(self) -> str:
        return (
            f"KnowledgeGraph(name={self.name!r}, entities={self.num_entities}, relations={self.num_relations}, "
            f"triplets={self.num_triplets})"
        )

    # ----------------------------------------------------------------------------------------- save and load
    @classmethod
    def _from_saved(
        cls,
        metadata: dict[str, Any],
        *,
        root: str | None,
        entities: pa.Table,
        relations: list[str],
        triplets: dict[str, np.ndarray],
        where: str | os.PathLike,
    ) -> KnowledgeGraph:
        """Builds a graph from saved tables and their metadata (``knowledge_graph.json``), checking the counts.

        Args:
            metadata (`dict`): The metadata, as `storage._read_metadata` returns it.
            root (`str`, *optional*): The graph's root.
            entities (`pa.Table`): The entities table.
            relations (`list[str]`): The relation vocabulary.
            triplets (`dict[str, np.ndarray]`): The ``head``, ``relation`` and ``tail`` columns.
            where (`str` or `os.PathLike`): What was read, named in errors.
        """
        graph = cls(
            name=metadata["name"],
            root=root,
            entities=entities,
            sources=metadata["sources"],
            relations=relations,
            heads=triplets["head"],
            relation_ids=triplets["relation"],
            tails=triplets["tail"],
            report=LoadReport.from_dict(metadata["report"]) if metadata["report"] is not None else None,
        )
        counts = (graph.num_entities, graph.num_relations, graph.num_triplets)
        expected = (metadata["num_entities"], metadata["num_relations"], metadata["num_triplets"])
        if counts != expected:
            raise ValueError(f"{where}: tables hold {counts} entities/relations/triplets, metadata says {expected}")
        return graph

    def save_to_disk(self, path: str | os.PathLike) -> None:
        """Saves the graph as `datasets` Arrow datasets plus a JSON metadata file.

        Layout: ``triplets/`` (head, relation, tail), ``entities/`` (key, source, views as a list of
        {kind, text, path, box}), ``relations/`` (text), and ``knowledge_graph.json`` (name, root, sources,
        counts, load report). Each folder can also be opened on its own with `datasets.load_from_disk`.

        Args:
            path (`str` or `os.PathLike`): Directory to write (created if needed).
        """
        _save_to_disk(self, path)

    @classmethod
    def load_from_disk(cls, path: str | os.PathLike) -> KnowledgeGraph:
        """Loads a graph written by `save_to_disk`.

        The entities table stays memory-mapped. The triplet columns are copied once into contiguous int64 arrays
        (24 bytes per triplet), because `datasets` stores them in 1,000-row record batches.

        Args:
            path (`str` or `os.PathLike`): Directory written by `save_to_disk`.

        Returns:
            `KnowledgeGraph`: The graph, equal to the one saved.
        """
        return cls._from_saved(**_read_from_disk(path))

    def push_to_hub(
        self,
        repo_id: str,
        *,
        licenses: str | Mapping[str, str],
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        token: str | None = None,
        max_shard_rows: int = DEFAULT_MAX_SHARD_ROWS,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        api: HfApi | None = None,
    ) -> str:
        """Uploads the graph to a Hub dataset repository: Parquet shards, images embedded, and a dataset card.

        The repository holds four configs, each ``data/<config>/train-XXXXX-of-YYYYY.parquet``: ``triplets``
        (head, relation, tail), ``entities`` (key, source, views), ``relations`` (text) and ``images`` (path,
        image): every image file that an IMAGE or REGION view points to, its bytes unchanged, as a `datasets.Image`
        column, so the dataset is self-contained (a path on this machine means nothing on another) and the Hub's
        viewer shows the pictures. ``knowledge_graph.json`` is `save_to_disk`'s metadata without the local root,
        and ``README.md`` a dataset card naming the sources with their licenses, the counts and the load report.
        Data files of an earlier upload to the same revision are deleted by the upload, so a graph that
        shrank leaves none behind. The repository is created if needed (`private` applies to a new one only) and
        so is the branch `revision`.

        Args:
            repo_id (`str`): The dataset repository, ``"<namespace>/<name>"``.
            licenses (`str` or `Mapping[str, str]`): The license of each source graph (see `stats()["sources"]`),
                as Hub license ids (``"cc-by-4.0"``, ``"cc-by-sa-4.0"``, ``"other"``, ``"unknown"``); one id
                for all of them as a `str`. The card's `license` is that id, or the list of them when sources
                differ. Graphs carry no license, so there is no default.
            private (`bool`, *optional*): Whether a newly created repository is private (the Hub's default
                when `None`).
            revision (`str`, *optional*): The branch to commit to, created from the default branch if needed;
                the default branch when omitted.
            commit_message (`str`, *optional*): The commit message; ``"Upload knowledge graph <name>"`` when
                omitted.
            token (`str`, *optional*): A Hub token, given to `HfApi` only (never written or logged); `HfApi`'s
                own lookup (`HF_TOKEN`, the login cache) when omitted.
            max_shard_rows (`int`, *optional*, defaults to 1,000,000): Most rows per Parquet file.
            max_shard_bytes (`int`, *optional*, defaults to 500 MB): Most image bytes per Parquet file of the
                ``images`` config (`datasets`' own shard size).
            api (`huggingface_hub.HfApi`, *optional*): The client; ``HfApi(token=token)`` when omitted.

        Returns:
            `str`: The URL of the commit.
        """
        from huggingface_hub import HfApi

        from ..graph_hub import DATA_FILES_PATTERN, check_repo_id, write_hub_folder

        check_repo_id(repo_id)
        api = api or HfApi(token=token)
        with tempfile.TemporaryDirectory() as folder:
            write_hub_folder(
                self, folder, repo_id, licenses, max_shard_rows=max_shard_rows, max_shard_bytes=max_shard_bytes
            )
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=folder,
                revision=revision,
                commit_message=commit_message or f"Upload knowledge graph {self.name}",
                delete_patterns=DATA_FILES_PATTERN,
            )
        return str(getattr(commit, "commit_url", commit))

    @classmethod
    def from_hub(
        cls,
        repo_id: str,
        *,
        revision: str | None = None,
        token: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        images_dir: str | os.PathLike | None = None,
        api: HfApi | None = None,
    ) -> KnowledgeGraph:
        """Downloads a graph uploaded by `push_to_hub` and writes its images to local files.

        The repository is downloaded to the Hugging Face cache (`snapshot_download`); then the Parquet shards are
        read one row group at a time, so memory holds one row group of images, never the whole graph: images
        are written to files as they come, the entities go to an Arrow file that is memory-mapped (as
        `load_from_disk` does) and the triplets straight into their int64 arrays.

        Args:
            repo_id (`str`): The dataset repository, ``"<namespace>/<name>"``.
            revision (`str`, *optional*): Branch, tag or commit; the default branch when omitted.
            token (`str`, *optional*): A Hub token, given to `HfApi` only; `HfApi`'s own lookup when omitted.
            cache_dir (`str` or `os.PathLike`, *optional*): The Hugging Face cache to download to.
            images_dir (`str` or `os.PathLike`, *optional*): Where the image files and the entities' Arrow file
                are written; ``knowledge_clip/`` inside the downloaded snapshot when omitted (one per commit, so
                it is removed with the snapshot by ``hf cache delete``).
            api (`huggingface_hub.HfApi`, *optional*): The client; ``HfApi(token=token)`` when omitted.

        Returns:
            `KnowledgeGraph`: The graph, equal to the one uploaded; its `root` is `images_dir` when it has image
            views, else `None`.
        """
        from huggingface_hub import HfApi

        from ..graph_hub import check_repo_id, load_hub_folder

        check_repo_id(repo_id)
        api = api or HfApi(token=token)
        snapshot = api.snapshot_download(repo_id=repo_id, repo_type="dataset", revision=revision, cache_dir=cache_dir)
        return load_hub_folder(snapshot, images_dir)
