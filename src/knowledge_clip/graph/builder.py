# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""`KnowledgeGraphBuilder`: how every loader in `knowledge_clip.data` makes a `KnowledgeGraph`.

The builder is columnar: each add appends rows (a key, a view, a triplet) to flat columns, repeats included, and
`build` deduplicates once: the views of an entity and the triplets, keeping the first of equal rows in the order they
were added, and counting (never silently dropping) duplicate triplets and self-loops in the graph's `LoadReport`.
Only entity keys are looked up as they come, because an entity's id is what its triplets are added with.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import EmptyGraphError
from .entities import EntityView, ViewKind
from .graph import KnowledgeGraph, LoadReport
from .storage import _VIEW_FIELDS, _views_column

# One row per view added: the entity's id, then the fields of the ``views`` column.
_VIEW_ROWS_SCHEMA = pa.schema([pa.field("entity", pa.int64()), *_VIEW_FIELDS])


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"entity keys are non-empty strings, got {key!r}")


class KnowledgeGraphBuilder:
    """Accumulates entities, relations and triplets, then builds a `KnowledgeGraph`.

    Every add is a row of flat columns, repeats included until `build` drops them: a triplet is 24 bytes of int64
    buffers, a view one row of five columns. Entity keys and texts given in bulk as Arrow arrays
    (`add_text_entities`) stay in Arrow; the keys are read into the key index only if a key is looked up afterwards.
    A builder is single-use.

    Args:
        name (`str`): The graph's name; it namespaces entity keys when graphs are merged.
        root (`str` or `os.PathLike`, *optional*): The directory that IMAGE/REGION view paths are relative to.
    """

    def __init__(self, name: str, root: str | os.PathLike | None = None):
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"graph names are non-empty strings without ':', got {name!r}")
        self.name = name
        self.root = os.fspath(root) if root is not None else None
        # Entity keys in id order: Arrow chunks, then the keys added one by one since the last chunk.
        self._key_chunks: list[pa.Array] = []
        self._new_keys: list[str] = []
        self._num_entities = 0
        # key -> id of every entity; `None` while keys added in bulk are not in it (built again on the next lookup).
        self._key_index: dict[str, int] | None = {}
        # Views, one row per add (repeats included): the TEXT views of bulk entities as (first id, texts) chunks,
        # and the views added one by one as columns. An entity's bulk view is its first: it is new when added.
        self._text_view_chunks: list[tuple[int, pa.Array]] = []
        self._view_entities = array("q")
        self._view_kinds = array("b")
        self._view_texts: list[str | None] = []
        self._view_paths: list[str | None] = []
        self._view_boxes: list[tuple[float, float, float, float] | None] = []
        self._relation_ids: dict[str, int] = {}
        self._relations: list[str] = []
        # Triplets, one row per add (duplicates and self-loops included).
        self._heads = array("q")
        self._relation_column = array("q")
        self._tails = array("q")
        self._built = False

    @property
    def num_entities(self) -> int:
        """`int`: Number of entities added so far."""
        return self._num_entities

    @property
    def num_triplets(self) -> int:
        """`int`: Number of triplets added so far, duplicates and self-loops included (`build` drops them)."""
        return len(self._heads)

    def _check_open(self) -> None:
        if self._built:
            raise RuntimeError(f"builder {self.name!r} was already built; create a new builder")

    def _keys(self) -> pa.Array:
        """Every entity key, in id order, as one Arrow array."""
        if self._new_keys or len(self._key_chunks) != 1:
            keys = [*self._key_chunks, pa.array(self._new_keys, type=pa.string())]
            self._key_chunks, self._new_keys = [pa.concat_arrays(keys)], []
        return self._key_chunks[0]

    def _index(self) -> dict[str, int]:
        """The key -> id index of every entity, read from the keys if bulk adds left it out."""
        if self._key_index is None:
            self._key_index = {key: entity for entity, key in enumerate(self._keys().to_pylist())}
        return self._key_index

    def get_entity_id(self, key: str) -> int | None:
        """Returns the id of the entity with `key`, or `None` if there is none (adds nothing)."""
        return self._index().get(key)

    def get_entity_ids(self, keys: Sequence[str]) -> list[int | None]:
        """Returns the ids of the entities with `keys` (`None` where there is none), in one pass."""
        return list(map(self._index().get, keys))

    def add_text_entities(self, keys: Sequence[str] | pa.Array, texts: Sequence[str] | pa.Array) -> np.ndarray:
        """Adds many entities with one TEXT view each, as `add_entity(key, text=text)` would, but in bulk.

        Args:
            keys (`Sequence[str]` or `pa.Array`): Entity keys.
            texts (`Sequence[str]` or `pa.Array`): The text of each entity (same length as `keys`). Given as Arrow
                string arrays of new, distinct, non-empty keys and non-empty texts, they stay in Arrow until the
                graph is built (for graphs of millions of entities, such as ConceptNet's); any other input is added
                one entity at a time.

        Returns:
            `np.ndarray`: The int64 entity ids, one per key (existing ids for keys already added).
        """
        self._check_open()
        arrow = isinstance(keys, pa.Array) and isinstance(texts, pa.Array)
        if arrow and len(keys) == len(texts) and self._are_new_text_entities(keys, texts):
            first = self._num_entities
            self._key_chunks.append(keys)
            self._text_view_chunks.append((first, texts))
            self._num_entities += len(keys)
            self._key_index = None
            return np.arange(first, self._num_entities, dtype=np.int64)
        keys = keys.to_pylist() if isinstance(keys, pa.Array) else list(keys)
        texts = texts.to_pylist() if isinstance(texts, pa.Array) else list(texts)
        if len(keys) != len(texts):
            raise ValueError(f"got {len(keys)} keys but {len(texts)} texts")
        return np.array([self.add_entity(key, text=text) for key, text in zip(keys, texts)], dtype=np.int64)

    def _are_new_text_entities(self, keys: pa.Array, texts: pa.Array) -> bool:
        """Whether Arrow `keys` and `texts` are strings without nulls, the keys distinct, new and non-empty and the
        texts non-empty: entities that `add_text_entities` may keep in Arrow."""
        if (
            not (pa.types.is_string(keys.type) and pa.types.is_string(texts.type))
            or keys.null_count + texts.null_count
        ):
            return False
        if len(keys) and min(pc.min(pc.binary_length(keys)).as_py(), pc.min(pc.binary_length(texts)).as_py()) == 0:
            return False
        # Distinct and new at once: no key may collide with another one, earlier or not.
        return len(pc.unique(pa.chunked_array([self._keys(), keys]))) == self._num_entities + len(keys)

    def add_entity(self, key: str, views: Sequence[EntityView] = (), text: str | None = None) -> int:
        """Adds an entity, or extends the views of the existing entity with the same key.

        Args:
            key (`str`): Unique key of the entity within this graph (e.g. a ConceptNet URI).
            views (`Sequence[EntityView]`, *optional*): Views to attach; views the entity already has are ignored.
            text (`str`, *optional*): Shortcut for a TEXT view with this text, attached before `views`.

        Returns:
            `int`: The entity id.
        """
        self._check_open()
        index = self._index()
        entity = index.get(key)
        if entity is None:
            _check_key(key)
            entity = index[key] = self._num_entities
            self._new_keys.append(key)
            self._num_entities += 1
        if text is not None:
            self.add_view(entity, EntityView(ViewKind.TEXT, text))
        for view in views:
            self.add_view(entity, view)
        return entity

    def add_view(self, entity: int, view: EntityView) -> None:
        """Attaches a view to an existing entity (a view it already has is ignored).

        Args:
            entity (`int`): The entity id returned by `add_entity`.
            view (`EntityView`): The view to attach.
        """
        self._check_open()
        if not isinstance(view, EntityView):
            raise TypeError(f"views are EntityView instances, got {type(view).__name__}")
        if not 0 <= entity < self._num_entities:
            raise IndexError(f"entity id {entity} out of range [0, {self._num_entities})")
        self._view_entities.append(entity)
        self._view_kinds.append(view.kind)
        self._view_texts.append(view.text)
        self._view_paths.append(view.path)
        self._view_boxes.append(view.box)

    def add_relation(self, text: str) -> int:
        """Adds a relation (by its text, e.g. ``"is a"``) if new and returns its id."""
        self._check_open()
        relation = self._relation_ids.get(text)
        if relation is None:
            _check_key(text)
            relation = self._relation_ids[text] = len(self._relations)
            self._relations.append(text)
        return relation

    def add_triplet(self, head: int, relation: int | str, tail: int) -> None:
        """Adds the triplet (head, relation, tail).

        `build` drops a triplet equal to an earlier one and a self-loop (head == tail), and counts them in the
        report under ``"duplicate triplet"`` and ``"self-loop"``.

        Args:
            head (`int`): Head entity id.
            relation (`int` or `str`): Relation id, or relation text (added to the vocabulary if new).
            tail (`int`): Tail entity id.
        """
        self._check_open()
        if isinstance(relation, str):
            relation = self.add_relation(relation)
        head, relation, tail = int(head), int(relation), int(tail)
        if not (0 <= head < self._num_entities and 0 <= tail < self._num_entities):
            raise IndexError(
                f"triplet ({head}, {relation}, {tail}) refers to an entity outside [0, {self._num_entities})"
            )
        if not 0 <= relation < len(self._relations):
            raise IndexError(f"relation id {relation} out of range [0, {len(self._relations)})")
        self._heads.append(head)
        self._relation_column.append(relation)
        self._tails.append(tail)

    def add_triplets(self, heads: Sequence[int], relations: Sequence[int], tails: Sequence[int]) -> None:
        """Adds many triplets at once, as `add_triplet` does one (relations given as ids).

        Args:
            heads (`Sequence[int]`): Head entity ids.
            relations (`Sequence[int]`): Relation ids.
            tails (`Sequence[int]`): Tail entity ids.
        """
        self._check_open()
        columns = [np.asarray(values, dtype=np.int64).reshape(-1) for values in (heads, relations, tails)]
        if not len(columns[0]) == len(columns[1]) == len(columns[2]):
            raise ValueError("heads, relations and tails must have the same length")
        for values, bound, label in zip(
            columns, (self._num_entities, len(self._relations), self._num_entities), ("entity", "relation", "entity")
        ):
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise IndexError(f"{label} ids must lie in [0, {bound})")
        for buffer, values in zip((self._heads, self._relation_column, self._tails), columns):
            buffer.frombytes(values.tobytes())

    def build(self, report: LoadReport | None = None) -> KnowledgeGraph:
        """Builds the graph (the builder cannot be used afterwards).

        Args:
            report (`LoadReport`, *optional*): The loader's report; duplicate triplets and self-loops are added to
                it and `triplets_loaded` is set. Without one, a report is created with one record per triplet
                added.

        Returns:
            `KnowledgeGraph`: The graph; its `report` is `report`.

        Raises:
            EmptyGraphError: If no triplet is left (a `ValueError` naming the graph and its source).
        """
        self._check_open()
        keys = self._keys()
        kept, rejected = _kept_triplets(*self._triplet_columns())
        if report is None:
            report = LoadReport(source=self.name, records_read=self.num_triplets)
        for reason, rows in rejected.items():
            if rows.size:
                self._report_rejected(report, reason, rows, keys)
        report.triplets_loaded = int(kept.size)
        if kept.size == 0:
            skipped = ", ".join(f"{reason}: {count}" for reason, count in sorted(report.skipped.items()))
            raise EmptyGraphError(
                f"knowledge graph {self.name!r} has no triplets ({report.records_read} records read"
                + (f"; skipped {skipped}" if skipped else "")
                + ")",
                file=report.source,
            )
        heads, relations, tails = self._triplet_columns()
        if kept.size < len(heads):
            heads, relations, tails = heads[kept], relations[kept], tails[kept]
        # Otherwise the triplet columns share the builder's buffers (no copy); the builder is closed, so they never
        # change.
        graph = KnowledgeGraph(
            name=self.name,
            root=self.root,
            entities=pa.table(
                {"key": keys, "source": pa.array(np.zeros(len(keys), dtype=np.int64)), "views": self._views()}
            ),
            sources=[self.name],
            relations=list(self._relations),
            heads=heads,
            relation_ids=relations,
            tails=tails,
            report=report,
        )
        self._built = True
        self._key_chunks, self._new_keys, self._key_index, self._text_view_chunks = [], [], {}, []
        self._view_entities, self._view_kinds = array("q"), array("b")
        self._view_texts, self._view_paths, self._view_boxes = [], [], []
        self._heads, self._relation_column, self._tails = array("q"), array("q"), array("q")
        return graph

    def _triplet_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The head, relation and tail columns of every triplet added, as int64 views of the builder's buffers."""
        return tuple(
            np.frombuffer(column, dtype=np.int64) for column in (self._heads, self._relation_column, self._tails)
        )

    def _report_rejected(self, report: LoadReport, reason: str, rows: np.ndarray, keys: pa.Array) -> None:
        """Counts the triplets `rows` under `reason` in `report`, the first ones as examples while it has room (at
        most `LoadReport.max_examples`)."""
        room = max(0, min(report.max_examples - len(report.examples.get(reason, [])), LoadReport.max_examples))
        heads, relations, tails = (column[rows[:room]].tolist() for column in self._triplet_columns())
        report.skip(reason, count=int(rows.size))
        report.examples.setdefault(reason, []).extend(
            f"{keys[head].as_py()} -[{self._relations[relation]}]-> {keys[tail].as_py()}"
            for head, relation, tail in zip(heads, relations, tails)
        )

    def _view_rows(self) -> pa.Table:
        """Every view added, one row each (`_VIEW_ROWS_SCHEMA`): bulk chunks first, then the views added one by one."""
        box_type = _VIEW_ROWS_SCHEMA.field("box").type
        bulk = [
            pa.table(
                {
                    "entity": np.arange(first, first + len(texts), dtype=np.int64),
                    "kind": np.full(len(texts), ViewKind.TEXT, dtype=np.int8),
                    "text": texts,
                    "path": pa.nulls(len(texts), pa.string()),
                    "box": pa.nulls(len(texts), box_type),
                },
                schema=_VIEW_ROWS_SCHEMA,
            )
            for first, texts in self._text_view_chunks
        ]
        one_by_one = pa.table(
            {
                "entity": np.frombuffer(self._view_entities, dtype=np.int64),
                "kind": np.frombuffer(self._view_kinds, dtype=np.int8),
                "text": self._view_texts,
                "path": self._view_paths,
                "box": self._view_boxes,
            },
            schema=_VIEW_ROWS_SCHEMA,
        )
        return pa.concat_tables([*bulk, one_by_one])

    def _views(self) -> pa.Array:
        """The ``views`` column: each entity's views in the order they were added, a view added again dropped."""
        rows = self._view_rows()
        entities = rows.column("entity").to_numpy()
        # Grouped by entity, each entity's rows in the order they were added: its bulk view (if any) was its first.
        order = np.argsort(entities, kind="stable")
        views_per_entity = np.bincount(entities, minlength=self._num_entities)
        # Only an entity with several rows can hold a view twice.
        shared = np.flatnonzero(views_per_entity[entities[order]] > 1)
        if shared.size:
            keep = np.ones(len(order), dtype=bool)
            shared_rows = _take(rows, order[shared])
            keep[shared] = _first_occurrences(shared_rows.num_rows, _view_codes(shared_rows))
            order = order[keep]
            views_per_entity = np.bincount(entities[order], minlength=self._num_entities)
        offsets = np.zeros(self._num_entities + 1, dtype=np.int64)
        np.cumsum(views_per_entity, out=offsets[1:])
        views = _take(rows, order)
        return _views_column(offsets, [views.column(field.name).combine_chunks() for field in _VIEW_FIELDS])


def _take(rows: pa.Table, indices: np.ndarray) -> pa.Table:
    """`rows.take(indices)`, without the copy where that is all the rows in order (views added entity by entity)."""
    return rows if np.array_equal(indices, np.arange(rows.num_rows)) else rows.take(indices)


def _view_codes(rows: pa.Table) -> Iterator[np.ndarray]:
    """Non-negative int64 columns, equal on two view rows exactly where their entities and views are, as
    `EntityView`s compare: the entity, the kind, and codes of the text, the path and each corner of the box. One at a
    time, so that `_packed_keys` holds one of them at once."""
    yield rows.column("entity").to_numpy()
    yield rows.column("kind").to_numpy().astype(np.int64)
    yield _dense_codes(rows.column("text"))
    yield _dense_codes(rows.column("path"))
    if rows.column("box").null_count < rows.num_rows:  # rows without a box are alike in it
        for corner in range(4):
            yield _dense_codes(pc.list_element(rows.column("box"), corner))


def _kept_triplets(
    heads: np.ndarray, relations: np.ndarray, tails: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Which triplet rows a graph keeps: the first of equal rows, self-loops aside.

    Returns:
        `tuple[np.ndarray, dict[str, np.ndarray]]`: The kept rows, and the rejected ones by reason
        (``"duplicate triplet"``, ``"self-loop"``), all in ascending order.
    """
    self_loop = heads == tails
    candidates = np.flatnonzero(~self_loop)
    kept = candidates[
        _first_occurrences(candidates.size, (heads[candidates], relations[candidates], tails[candidates]))
    ]
    duplicate = ~self_loop
    duplicate[kept] = False
    return kept, {"duplicate triplet": np.flatnonzero(duplicate), "self-loop": np.flatnonzero(self_loop)}


def _first_occurrences(num_rows: int, columns: Iterable[np.ndarray]) -> np.ndarray:
    """Boolean mask of the first occurrence of each distinct row of `num_rows` rows of non-negative int64
    `columns`."""
    first = np.zeros(num_rows, dtype=bool)
    if not num_rows:
        return first
    keys = _packed_keys(num_rows, columns)
    # A stable sort puts equal keys side by side, the earliest row first: the first row of each run is a first
    # occurrence. (Sorting needs two int64 arrays; a hash table of the keys needs many times that.)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    run_starts = np.ones(num_rows, dtype=bool)
    run_starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    first[order[run_starts]] = True
    return first


def _packed_keys(num_rows: int, columns: Iterable[np.ndarray]) -> np.ndarray:
    """One int64 key per row, equal on two rows exactly where all the non-negative int64 `columns` are.

    Columns are packed as ``key * bound + column``; where the next column would not fit in int64, the keys so far
    and that column are first replaced by their `_dense_codes`, which are below the number of rows.
    """
    keys, bound = np.zeros(num_rows, dtype=np.int64), 1
    for column in columns:
        column_bound = int(column.max()) + 1
        if bound * column_bound >= 1 << 63:
            keys, column = _dense_codes(pa.array(keys)), _dense_codes(pa.array(column))
            bound = column_bound = len(keys)
        keys, bound = keys * column_bound + column, bound * column_bound
    return keys


def _dense_codes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """int64 codes 0, 1, 2, ... of `values`, equal exactly where the values are (nulls equal each other; 0.0 and
    -0.0 too, as Python compares them): their dense ranks, found by sorting rather than with a hash table of the
    values (strings, for views)."""
    return pc.rank(values, tiebreaker="dense").to_numpy().astype(np.int64) - 1
