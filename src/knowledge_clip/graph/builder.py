# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""`KnowledgeGraphBuilder`: how every loader in `knowledge_clip.data` makes a `KnowledgeGraph`.

It deduplicates entities by key and triplets exactly, and counts (never silently drops) duplicate triplets and
self-loops in the graph's `LoadReport`.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import EmptyGraphError
from .entities import EntityView, ViewKind
from .graph import KnowledgeGraph, LoadReport
from .storage import _views_arrow_type

# Exact triplet deduplication packs (head, relation, tail) into one Python int: tail in the low 40 bits, relation
# in the next 24, head above. Python ints are unbounded, so this never collides; keys stay below 2**104. Bulk adds
# (`add_triplets`) deduplicate with numpy instead and index their triplets in the set only when a later add needs it.
_TAIL_BITS = 40
_RELATION_BITS = 24


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"entity keys are non-empty strings, got {key!r}")


def _views_to_arrow(views_per_entity: Sequence[Sequence[EntityView] | str]) -> pa.Array:
    """Builds the ``views`` list column; an entry may be a plain string, the compact form of one TEXT view."""
    # Flat child columns plus offsets: much cheaper than building nested Python dicts for millions of entities.
    if set(map(type, views_per_entity)) <= {str}:  # text-only graphs: one column, no Python loop
        return _text_views_to_arrow(pa.array(views_per_entity, type=pa.string()))
    counts, kinds, texts, paths, boxes = [], [], [], [], []
    for views in views_per_entity:
        if isinstance(views, str):
            counts.append(1)
            kinds.append(int(ViewKind.TEXT))
            texts.append(views)
            paths.append(None)
            boxes.append(None)
            continue
        counts.append(len(views))
        for view in views:
            kinds.append(int(view.kind))
            texts.append(view.text)
            paths.append(view.path)
            boxes.append(view.box)
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    struct = pa.StructArray.from_arrays(
        [
            pa.array(kinds, type=pa.int8()),
            pa.array(texts, type=pa.string()),
            pa.array(paths, type=pa.string()),
            pa.array(boxes, type=pa.list_(pa.float64())),
        ],
        names=["kind", "text", "path", "box"],
    )
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=_views_arrow_type())


def _text_views_to_arrow(texts: pa.Array) -> pa.Array:
    """The ``views`` list column of entities with one TEXT view each, from their texts (a string array)."""
    num_entities = len(texts)
    struct = pa.StructArray.from_arrays(
        [
            pa.array(np.full(num_entities, int(ViewKind.TEXT), dtype=np.int8)),
            texts,
            pa.nulls(num_entities, type=pa.string()),
            pa.nulls(num_entities, type=pa.list_(pa.float64())),
        ],
        names=["kind", "text", "path", "box"],
    )
    offsets = pa.array(np.arange(num_entities + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, struct, type=_views_arrow_type())


class KnowledgeGraphBuilder:
    """Accumulates entities, relations and triplets with bounded memory, then builds a `KnowledgeGraph`.

    Memory per triplet is 24 bytes of int64 buffers, plus one packed Python int in the deduplication set (about
    70 bytes with the set's slack) for triplets added one by one; triplets added in bulk (`add_triplets`) are
    deduplicated with numpy and enter the set only if more triplets are added after them. A builder is
    single-use: `build` hands its buffers to the graph without copying.

    Args:
        name (`str`): The graph's name; it namespaces entity keys when graphs are merged.
        root (`str` or `os.PathLike`, *optional*): The directory that IMAGE/REGION view paths are relative to.
    """

    def __init__(self, name: str, root: str | os.PathLike | None = None):
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"graph names are non-empty strings without ':', got {name!r}")
        self.name = name
        self.root = os.fspath(root) if root is not None else None
        self._entity_ids: dict[str, int] = {}
        self._entity_keys: list[str] = []
        # Per entity, a tuple of views, or just the text when the entity has exactly one TEXT view.
        self._entity_views: list[tuple[EntityView, ...] | str] = []
        # Entities added in bulk as Arrow string arrays (keys, texts), after the ones above: they stay in Arrow
        # (a million Python strings cost more than reading them) until an entity is looked up or changed.
        self._arrow_entities: list[tuple[pa.Array, pa.Array]] = []
        self._relation_ids: dict[str, int] = {}
        self._relations: list[str] = []
        self._heads = array("q")
        self._relation_column = array("q")
        self._tails = array("q")
        self._triplet_keys: set[int] = set()
        self._num_indexed = 0  # triplets [0, _num_indexed) have their packed key in _triplet_keys
        self._rejected: dict[str, int] = {"duplicate triplet": 0, "self-loop": 0}
        self._rejected_examples: dict[str, list[str]] = {"duplicate triplet": [], "self-loop": []}
        self._built = False

    @property
    def num_entities(self) -> int:
        """`int`: Number of entities added so far."""
        return len(self._entity_keys) + sum(len(keys) for keys, _ in self._arrow_entities)

    @property
    def num_triplets(self) -> int:
        """`int`: Number of (accepted) triplets added so far."""
        return len(self._heads)

    def _check_open(self) -> None:
        if self._built:
            raise RuntimeError(f"builder {self.name!r} was already built; create a new builder")

    def _python_entities(self) -> None:
        """Moves the entities kept in Arrow into the Python lists and the key index."""
        for keys, texts in self._arrow_entities:
            keys, first = keys.to_pylist(), len(self._entity_keys)
            self._entity_ids.update(zip(keys, range(first, first + len(keys))))
            self._entity_keys.extend(keys)
            self._entity_views.extend(texts.to_pylist())
        self._arrow_entities = []

    def _entity_key(self, entity: int) -> str:
        if entity < len(self._entity_keys):
            return self._entity_keys[entity]
        entity -= len(self._entity_keys)
        for keys, _ in self._arrow_entities:
            if entity < len(keys):
                return keys[entity].as_py()
            entity -= len(keys)
        raise IndexError(f"entity id out of range [0, {self.num_entities})")

    def get_entity_id(self, key: str) -> int | None:
        """Returns the id of the entity with `key`, or `None` if there is none (cheap; adds nothing)."""
        self._python_entities()
        return self._entity_ids.get(key)

    def get_entity_ids(self, keys: Sequence[str]) -> list[int | None]:
        """Returns the ids of the entities with `keys` (`None` where there is none), in one pass."""
        self._python_entities()
        return list(map(self._entity_ids.get, keys))

    def add_text_entities(self, keys: Sequence[str] | pa.Array, texts: Sequence[str] | pa.Array) -> np.ndarray:
        """Adds many entities with one TEXT view each, as `add_entity(key, text=text)` would, but in bulk.

        Args:
            keys (`Sequence[str]` or `pa.Array`): Entity keys.
            texts (`Sequence[str]` or `pa.Array`): The text of each entity (same length as `keys`). Given as Arrow
                string arrays of new, distinct, non-empty keys and non-empty texts, they stay in Arrow until the
                graph is built (for graphs of millions of entities, such as ConceptNet's).

        Returns:
            `np.ndarray`: The int64 entity ids, one per key (existing ids for keys already added).
        """
        self._check_open()
        arrow = isinstance(keys, pa.Array) and isinstance(texts, pa.Array)
        if arrow and len(keys) == len(texts) and self._are_new_text_entities(keys, texts):
            first = self.num_entities
            self._arrow_entities.append((keys, texts))
            return np.arange(first, first + len(keys), dtype=np.int64)
        self._python_entities()
        keys = keys.to_pylist() if isinstance(keys, pa.Array) else list(keys)
        texts = texts.to_pylist() if isinstance(texts, pa.Array) else list(texts)
        if len(keys) != len(texts):
            raise ValueError(f"got {len(keys)} keys but {len(texts)} texts")
        first = len(self._entity_keys)
        # Fast path (new, distinct, non-empty keys and texts): C-level loops only.
        if (
            set(map(type, keys)) <= {str}
            and set(map(type, texts)) <= {str}
            and all(keys)
            and all(texts)
            and len(set(keys)) == len(keys)
            and not any(map(self._entity_ids.__contains__, keys))
        ):
            self._entity_ids.update(zip(keys, range(first, first + len(keys))))
            self._entity_keys.extend(keys)
            self._entity_views.extend(texts)
            return np.arange(first, first + len(keys), dtype=np.int64)
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
        earlier = [pa.array(self._entity_keys, type=pa.string())] + [added for added, _ in self._arrow_entities]
        # Distinct and new at once: no key may collide with another one, earlier or not.
        return len(pc.unique(pa.chunked_array([*earlier, keys], type=pa.string()))) == self.num_entities + len(keys)

    def add_entity(self, key: str, views: Sequence[EntityView] = (), text: str | None = None) -> int:
        """Adds an entity, or extends the views of the existing entity with the same key.

        Args:
            key (`str`): Unique key of the entity within this graph (e.g. a ConceptNet URI).
            views (`Sequence[EntityView]`, *optional*): Views to attach; views the entity already has are ignored.
            text (`str`, *optional*): Shortcut for a TEXT view with this text (stored compactly: text-only graphs
                such as ConceptNet have millions of entities).

        Returns:
            `int`: The entity id.
        """
        self._check_open()
        self._python_entities()
        entity = self._entity_ids.get(key)
        if entity is None:
            _check_key(key)
            entity = len(self._entity_keys)
            self._entity_ids[key] = entity
            self._entity_keys.append(key)
            if text is not None and not views and isinstance(text, str) and text:
                self._entity_views.append(text)
                return entity
            self._entity_views.append(())
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
        self._python_entities()
        if not 0 <= entity < len(self._entity_views):
            raise IndexError(f"entity id {entity} out of range [0, {len(self._entity_views)})")
        views = self._entity_views[entity]
        if isinstance(views, str):  # compact form of a single TEXT view
            views = (EntityView(ViewKind.TEXT, views),)
        if view not in views:
            views += (view,)
        self._entity_views[entity] = views

    def add_relation(self, text: str) -> int:
        """Adds a relation (by its text, e.g. ``"is a"``) if new and returns its id."""
        self._check_open()
        relation = self._relation_ids.get(text)
        if relation is None:
            _check_key(text)
            relation = len(self._relations)
            if relation >= 1 << _RELATION_BITS:
                raise ValueError(f"more than {1 << _RELATION_BITS} relations")
            self._relation_ids[text] = relation
            self._relations.append(text)
        return relation

    def add_triplet(self, head: int, relation: int | str, tail: int) -> bool:
        """Adds the triplet (head, relation, tail) unless it is a duplicate or a self-loop.

        Rejected triplets are counted and reported by `build` under ``"duplicate triplet"`` and ``"self-loop"``.

        Args:
            head (`int`): Head entity id.
            relation (`int` or `str`): Relation id, or relation text (added to the vocabulary if new).
            tail (`int`): Tail entity id.

        Returns:
            `bool`: Whether the triplet was added.
        """
        self._check_open()
        if isinstance(relation, str):
            relation = self.add_relation(relation)
        # Python ints: numpy integers would overflow in the packed key.
        head, relation, tail = int(head), int(relation), int(tail)
        num_entities = self.num_entities
        if not (0 <= head < num_entities and 0 <= tail < num_entities):
            raise IndexError(f"triplet ({head}, {relation}, {tail}) refers to an entity outside [0, {num_entities})")
        if not 0 <= relation < len(self._relations):
            raise IndexError(f"relation id {relation} out of range [0, {len(self._relations)})")
        if head == tail:
            self._reject("self-loop", head, relation, tail)
            return False
        self._index_triplet_keys()
        packed = (((head << _RELATION_BITS) | relation) << _TAIL_BITS) | tail
        if packed in self._triplet_keys:
            self._reject("duplicate triplet", head, relation, tail)
            return False
        self._triplet_keys.add(packed)
        self._num_indexed += 1
        self._heads.append(head)
        self._relation_column.append(relation)
        self._tails.append(tail)
        return True

    def add_triplets(self, heads: Sequence[int], relations: Sequence[int], tails: Sequence[int]) -> np.ndarray:
        """Adds many triplets at once (same rules as `add_triplet`, relations given as ids).

        Args:
            heads (`Sequence[int]`): Head entity ids.
            relations (`Sequence[int]`): Relation ids.
            tails (`Sequence[int]`): Tail entity ids.

        Returns:
            `np.ndarray`: Boolean mask of the triplets that were added.
        """
        self._check_open()
        columns = [np.asarray(values, dtype=np.int64).reshape(-1) for values in (heads, relations, tails)]
        if not len(columns[0]) == len(columns[1]) == len(columns[2]):
            raise ValueError("heads, relations and tails must have the same length")
        for values, bound, label in zip(
            columns, (self.num_entities, len(self._relations), self.num_entities), ("entity", "relation", "entity")
        ):
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise IndexError(f"{label} ids must lie in [0, {bound})")
        heads, relations, tails = columns
        self_loop = heads == tails
        candidates = np.flatnonzero(~self_loop)
        # Within this call: keep the first occurrence of each triplet. Against earlier adds: the packed-key set.
        candidates = candidates[_first_occurrences(heads[candidates], relations[candidates], tails[candidates])]
        if self.num_triplets and candidates.size:
            self._index_triplet_keys()
            packed = _packed_keys(heads[candidates], relations[candidates], tails[candidates])
            seen = np.fromiter(map(self._triplet_keys.__contains__, packed), dtype=bool, count=candidates.size)
            candidates = candidates[~seen]
        added = np.zeros(len(heads), dtype=bool)
        added[candidates] = True
        for reason, rejected in (("self-loop", self_loop), ("duplicate triplet", ~added & ~self_loop)):
            rows = np.flatnonzero(rejected)
            located = rows[: max(LoadReport.max_examples - len(self._rejected_examples[reason]), 0)].tolist()
            self._rejected[reason] += rows.size - len(located)  # `_reject` counts the located ones
            for row in located:
                self._reject(reason, int(heads[row]), int(relations[row]), int(tails[row]))
        for buffer, values in zip((self._heads, self._relation_column, self._tails), columns):
            buffer.frombytes(values[added].tobytes())
        return added

    def _index_triplet_keys(self) -> None:
        """Puts the packed keys of triplets added in bulk (not yet in the deduplication set) into the set."""
        if self._num_indexed == len(self._heads):
            return
        # Copies (slicing an `array` copies): a numpy view would pin the buffers and forbid appending to them.
        columns = [
            np.frombuffer(buffer[self._num_indexed :], dtype=np.int64)
            for buffer in (self._heads, self._relation_column, self._tails)
        ]
        self._triplet_keys.update(_packed_keys(*columns))
        self._num_indexed = len(self._heads)

    def _reject(self, reason: str, head: int, relation: int, tail: int) -> None:
        self._rejected[reason] += 1
        examples = self._rejected_examples[reason]
        if len(examples) < LoadReport.max_examples:
            head_key, tail_key = self._entity_key(head), self._entity_key(tail)
            examples.append(f"{head_key} -[{self._relations[relation]}]-> {tail_key}")

    def build(self, report: LoadReport | None = None) -> KnowledgeGraph:
        """Builds the graph (the builder cannot be used afterwards).

        Args:
            report (`LoadReport`, *optional*): The loader's report; duplicate triplets and self-loops are added to
                it and `triplets_loaded` is set. Without one, a report is created with one record per
                `add_triplet` call.

        Returns:
            `KnowledgeGraph`: The graph; its `report` is `report`.

        Raises:
            EmptyGraphError: If no triplet was added (a `ValueError` naming the graph and its source).
        """
        self._check_open()
        num_triplets = len(self._heads)
        if report is None:
            report = LoadReport(source=self.name, records_read=num_triplets + sum(self._rejected.values()))
        for reason, count in self._rejected.items():
            if count:
                report.skip(reason, count=count)
                room = report.max_examples - len(report.examples.get(reason, []))
                report.examples.setdefault(reason, []).extend(self._rejected_examples[reason][:room])
        report.triplets_loaded = num_triplets
        if num_triplets == 0:
            skipped = ", ".join(f"{reason}: {count}" for reason, count in sorted(report.skipped.items()))
            raise EmptyGraphError(
                f"knowledge graph {self.name!r} has no triplets ({report.records_read} records read"
                + (f"; skipped {skipped}" if skipped else "")
                + ")",
                file=report.source,
            )
        self._built = True
        arrow_keys, arrow_texts = zip(*self._arrow_entities) if self._arrow_entities else ((), ())
        keys = pa.concat_arrays([pa.array(self._entity_keys, type=pa.string()), *arrow_keys])
        views = [_views_to_arrow(self._entity_views), *map(_text_views_to_arrow, arrow_texts)]
        entities = pa.table(
            {
                "key": keys,
                "source": pa.array(np.zeros(len(keys), dtype=np.int64)),
                "views": pa.concat_arrays(views),
            }
        )
        # np.frombuffer shares the array('q') buffers (no copy); the builder is closed, so they never change.
        graph = KnowledgeGraph(
            name=self.name,
            root=self.root,
            entities=entities,
            sources=[self.name],
            relations=list(self._relations),
            heads=np.frombuffer(self._heads, dtype=np.int64),
            relation_ids=np.frombuffer(self._relation_column, dtype=np.int64),
            tails=np.frombuffer(self._tails, dtype=np.int64),
            report=report,
        )
        self._entity_ids, self._entity_keys, self._entity_views, self._triplet_keys = {}, [], [], set()
        self._arrow_entities = []
        self._num_indexed = 0
        return graph


def _first_occurrences(heads: np.ndarray, relations: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """Boolean mask of the first occurrence of each distinct (head, relation, tail) row."""
    first = np.zeros(len(heads), dtype=bool)
    if not len(heads):
        return first
    bounds = [int(values.max()) + 1 for values in (heads, relations, tails)]
    if bounds[0] * bounds[1] * bounds[2] < 1 << 63:  # one int64 key per row
        keys = (heads * bounds[1] + relations) * bounds[2] + tails
        # Arrow numbers distinct values in order of first appearance: a row is a first occurrence where its
        # number exceeds every number before it.
        numbers = pc.dictionary_encode(pa.array(keys)).indices.to_numpy()
        first[0] = True
        first[1:] = numbers[1:] > np.maximum.accumulate(numbers)[:-1]
    else:
        _, indices = np.unique(np.stack([heads, relations, tails], axis=1), axis=0, return_index=True)
        first[indices] = True
    return first


def _packed_keys(heads: np.ndarray, relations: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """The deduplication set's keys (Python ints, see `_TAIL_BITS`) of int64 triplet columns, as an object array."""
    heads, relations, tails = (values.astype(object) for values in (heads, relations, tails))
    return (((heads << _RELATION_BITS) | relations) << _TAIL_BITS) | tails
