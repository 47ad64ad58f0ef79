"""Knowledge graphs for Knowledge-CLIP: entities with text/image/region views, text relations, (h, r, t) triplets.

A `KnowledgeGraph` stores triplets as three int64 arrays and entities as an Arrow table (key, source, views), so a
graph with millions of triplets costs tens of bytes per triplet and saves to / memory-maps from disk through
`datasets`. Adjacency is a CSR index (triplets sorted by tail or head plus offsets), built lazily on first use; the
G2E objective (paper Eqs. 11-13) samples its message-passing subgraph from it with `sample_in_neighbors`.

Graphs are made with a `KnowledgeGraphBuilder`, which every loader in `knowledge_clip.data` uses: it deduplicates
entities by key and triplets exactly, and counts (never silently drops) duplicate triplets and self-loops in the
graph's `LoadReport`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import os
import tempfile
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import EmptyGraphError, KnowledgeCLIPDataError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

__all__ = ["EntityView", "KnowledgeGraph", "KnowledgeGraphBuilder", "LoadReport", "ViewKind"]

_FORMAT_VERSION = 1
_METADATA_FILE = "knowledge_graph.json"
# The keys of `_METADATA_FILE`: their types, and how an error names them.
_METADATA_FIELDS = {
    "name": ((str,), "a string"),
    "root": ((str, type(None)), "a string or null"),
    "sources": ((list,), "a list"),
    "num_entities": ((int,), "an integer"),
    "num_relations": ((int,), "an integer"),
    "num_triplets": ((int,), "an integer"),
    "report": ((dict, type(None)), "an object or null"),
}
DEFAULT_MAX_SHARD_ROWS = 1_000_000
DEFAULT_MAX_SHARD_BYTES = 500 * 10**6  # `datasets.config.MAX_SHARD_SIZE`, the size `Dataset.push_to_hub` cuts at

# Exact triplet deduplication packs (head, relation, tail) into one Python int: tail in the low 40 bits, relation
# in the next 24, head above. Python ints are unbounded, so this never collides; keys stay below 2**104. Bulk adds
# (`add_triplets`) deduplicate with numpy instead and index their triplets in the set only when a later add needs it.
_TAIL_BITS = 40
_RELATION_BITS = 24


class ViewKind(enum.IntEnum):
    """How an entity can be shown to an encoder."""

    TEXT = 0
    IMAGE = 1
    REGION = 2


@functools.lru_cache(maxsize=1 << 16)
def _relative_posix_path(path: str) -> str:
    """Returns `path` in POSIX form; raises if it is absolute or leaves its root (cached: the regions of an image
    share its path, and loaders create millions of views)."""
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(path).is_absolute() or ".." in posix.parts:
        raise ValueError(f"view path {path!r} must be relative and stay inside the graph root")
    return posix.as_posix()


@dataclasses.dataclass(frozen=True, slots=True)
class EntityView:
    """One way to show an entity: a text, an image file, or a box in an image file.

    Args:
        kind (`ViewKind`): TEXT, IMAGE or REGION.
        text (`str`, *optional*): The text of a TEXT view.
        path (`str`, *optional*): For IMAGE and REGION views, the image path relative to the graph's root, in POSIX
            form; never absolute and never leaving the root.
        box (`tuple[float, float, float, float]`, *optional*): For REGION views, ``(x0, y0, x1, y1)`` in pixels,
            already clipped to the image.
    """

    kind: ViewKind
    text: str | None = None
    path: str | None = None
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self):
        kind = self.kind
        if type(kind) is not ViewKind:  # enum lookup is slow; loaders create millions of views
            kind = ViewKind(kind)
            object.__setattr__(self, "kind", kind)
        if kind == ViewKind.TEXT:
            if not isinstance(self.text, str) or not self.text:
                raise ValueError(f"a TEXT view needs a non-empty text, got {self.text!r}")
            if self.path is not None or self.box is not None:
                raise ValueError("a TEXT view has no path or box")
            return
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"an {kind.name} view needs a path relative to the graph root, got {self.path!r}")
        object.__setattr__(self, "path", _relative_posix_path(self.path))
        if kind == ViewKind.IMAGE:
            if self.box is not None:
                raise ValueError("an IMAGE view has no box; use a REGION view")
            return
        if self.box is None or len(self.box) != 4:
            raise ValueError(f"a REGION view needs a box (x0, y0, x1, y1), got {self.box!r}")
        box = tuple(float(v) for v in self.box)
        if not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"a REGION box must be finite with x1 > x0 and y1 > y0, got {box}")
        object.__setattr__(self, "box", box)


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


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"entity keys are non-empty strings, got {key!r}")


def _views_arrow_type() -> pa.DataType:
    box = pa.list_(pa.float64())
    return pa.list_(pa.struct([("kind", pa.int8()), ("text", pa.string()), ("path", pa.string()), ("box", box)]))


def _entities_schema() -> pa.Schema:
    return pa.schema([("key", pa.string()), ("source", pa.int64()), ("views", _views_arrow_type())])


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


def _view_from_arrow(record: dict[str, Any]) -> EntityView:
    box = record["box"]
    return EntityView(ViewKind(record["kind"]), record["text"], record["path"], tuple(box) if box else None)


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


def _sample_positions(degrees: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws, for each segment i of length degrees[i], min(k, degrees[i]) distinct positions uniformly.

    Returns (segment index, position inside the segment) pairs, grouped by segment in ascending order.
    """
    small = np.flatnonzero(degrees <= k)
    small_degrees = degrees[small]
    small_segments = np.repeat(small, small_degrees)
    segment_starts = np.repeat(np.cumsum(small_degrees) - small_degrees, small_degrees)
    small_positions = np.arange(small_segments.size, dtype=np.int64) - segment_starts

    # Segments longer than k: Floyd's algorithm, vectorised over segments. Step i draws t uniformly in [0, j]
    # with j = degree - k + i and keeps t, or j if t was already drawn: an exactly uniform k-subset in k steps,
    # with work independent of the degree (hub entities can have 10^5 in-edges).
    large = np.flatnonzero(degrees > k)
    large_degrees = degrees[large]
    chosen = np.empty((large.size, k), dtype=np.int64)
    for i in range(k if large.size else 0):
        upper = large_degrees - k + i
        draw = rng.integers(0, upper + 1)
        taken = (chosen[:, :i] == draw[:, None]).any(axis=1)
        chosen[:, i] = np.where(taken, upper, draw)

    segments = np.concatenate([small_segments, np.repeat(large, k)])
    positions = np.concatenate([small_positions, chosen.reshape(-1)])
    order = np.argsort(segments, kind="stable")
    return segments[order], positions[order]


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
                "views": _views_to_arrow([()] * num_entities),
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
        if num_neighbors < 1 or num_hops < 0:
            raise ValueError(f"need num_neighbors >= 1 and num_hops >= 0, got {num_neighbors}, {num_hops}")
        frontier = np.unique(np.asarray(entities, dtype=np.int64))
        if frontier.size and (frontier[0] < 0 or frontier[-1] >= self.num_entities):
            raise IndexError(f"entity ids must lie in [0, {self.num_entities})")
        order, offsets = self.in_csr
        expanded = frontier
        sampled = []
        for _ in range(num_hops):
            if frontier.size == 0:
                break
            starts = offsets[frontier]
            segments, positions = _sample_positions(offsets[frontier + 1] - starts, num_neighbors, rng)
            triplets = order[starts[segments] + positions]
            sampled.append(triplets)
            frontier = np.setdiff1d(np.unique(self.heads[triplets]), expanded, assume_unique=True)
            expanded = np.union1d(expanded, frontier)
        return np.concatenate(sampled) if sampled else np.empty(0, dtype=np.int64)

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
    def _tables(self) -> dict[str, pa.Table]:
        """The three tables every saved form holds, by name: ``triplets``, ``entities`` and ``relations``."""
        return {
            "triplets": pa.table({"head": self.heads, "relation": self.relation_ids, "tail": self.tails}),
            "entities": self._entities,
            "relations": pa.table({"text": pa.array(self.relations, type=pa.string())}),
        }

    def _metadata(self, root: str | None) -> dict[str, Any]:
        """The content of ``knowledge_graph.json``, with `root` as the graph's root."""
        return {
            "format_version": _FORMAT_VERSION,
            "name": self.name,
            "root": root,
            "sources": self._sources,
            "num_entities": self.num_entities,
            "num_relations": self.num_relations,
            "num_triplets": self.num_triplets,
            "report": self.report.to_dict() if self.report is not None else None,
        }

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
        """Builds a graph from saved tables and their `_metadata`, checking the counts against it.

        Args:
            metadata (`dict`): What `_metadata` wrote (checked by `_read_metadata`).
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
        import datasets

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        features = _table_features()
        progress_was_enabled = not datasets.utils.are_progress_bars_disabled()
        datasets.utils.disable_progress_bars()
        try:
            for part, table in self._tables().items():
                dataset = datasets.Dataset(datasets.table.InMemoryTable(table.cast(features[part].arrow_schema)))
                dataset.save_to_disk(str(path / part))
        finally:
            if progress_was_enabled:
                datasets.utils.enable_progress_bars()
        metadata = self._metadata(self.root)
        (path / _METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8")

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
        import datasets

        path = Path(path)
        metadata = _read_metadata(path / _METADATA_FILE, f"{path} is not a saved KnowledgeGraph")
        triplets = datasets.load_from_disk(str(path / "triplets")).data.table
        return cls._from_saved(
            metadata,
            root=metadata["root"],
            entities=datasets.load_from_disk(str(path / "entities")).data.table,
            relations=datasets.load_from_disk(str(path / "relations")).data.table.column("text").to_pylist(),
            triplets={name: triplets.column(name).to_numpy() for name in ("head", "relation", "tail")},
            where=path,
        )

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

        from .graph_hub import DATA_FILES_PATTERN, check_repo_id, write_hub_folder

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

        from .graph_hub import check_repo_id, load_hub_folder

        check_repo_id(repo_id)
        api = api or HfApi(token=token)
        snapshot = api.snapshot_download(repo_id=repo_id, repo_type="dataset", revision=revision, cache_dir=cache_dir)
        return load_hub_folder(snapshot, images_dir)


def _table_features() -> dict[str, Any]:
    """The `datasets.Features` of each table of `KnowledgeGraph._tables`, by name."""
    import datasets

    views_feature = datasets.List(
        {
            "kind": datasets.Value("int8"),
            "text": datasets.Value("string"),
            "path": datasets.Value("string"),
            "box": datasets.List(datasets.Value("float64")),
        }
    )
    return {
        "triplets": datasets.Features({name: datasets.Value("int64") for name in ("head", "relation", "tail")}),
        "entities": datasets.Features(
            {"key": datasets.Value("string"), "source": datasets.Value("int64"), "views": views_feature}
        ),
        "relations": datasets.Features({"text": datasets.Value("string")}),
    }


def _read_metadata(metadata_file: Path, missing: str) -> dict[str, Any]:
    """Reads ``knowledge_graph.json``, refusing a missing file (the error says `missing`), bad JSON, other format
    versions and missing or mistyped fields with errors that name the file and field."""
    if not metadata_file.is_file():
        raise FileNotFoundError(f"{metadata_file} not found: {missing}")
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise KnowledgeCLIPDataError(f"not valid JSON ({error})", file=metadata_file) from None
    if not isinstance(metadata, dict) or metadata.get("format_version") != _FORMAT_VERSION:
        found = metadata.get("format_version") if isinstance(metadata, dict) else None
        raise KnowledgeCLIPDataError(
            f"unsupported format_version {found!r}; this version of knowledge_clip reads {_FORMAT_VERSION}",
            file=metadata_file,
            field="format_version",
        )
    for key, (types, description) in _METADATA_FIELDS.items():
        if not isinstance(metadata.get(key), types):
            raise KnowledgeCLIPDataError(f"missing or not {description}", file=metadata_file, field=key)
    return metadata


def _rebase_view(record: dict[str, Any], prefix: str) -> dict[str, Any]:
    if record["path"] is not None:
        record = dict(record, path=PurePosixPath(Path(prefix).as_posix(), record["path"]).as_posix())
    return record
