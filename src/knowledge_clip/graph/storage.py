# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The Arrow form of a `KnowledgeGraph` and its folder on disk (`save_to_disk` / `load_from_disk`).

Entities are a table (key, source, views), views a list column of structs {kind, text, path, box}; triplets and
relations are tables of their own. A saved graph is one `datasets` Arrow dataset per table plus
``knowledge_graph.json`` (name, root, sources, counts, load report); the Hub form (`knowledge_clip.graph_hub`) holds
the same tables as Parquet shards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..errors import KnowledgeCLIPDataError
from .entities import EntityView, ViewKind

if TYPE_CHECKING:
    from .graph import KnowledgeGraph

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

# The fields of one view in the ``views`` column; a TEXT view has only a text, an IMAGE view only a path.
_VIEW_FIELDS = (
    pa.field("kind", pa.int8()),
    pa.field("text", pa.string()),
    pa.field("path", pa.string()),
    pa.field("box", pa.list_(pa.float64())),
)


def _views_arrow_type() -> pa.DataType:
    return pa.list_(pa.struct(_VIEW_FIELDS))


def _entities_schema() -> pa.Schema:
    return pa.schema([("key", pa.string()), ("source", pa.int64()), ("views", _views_arrow_type())])


def _views_column(offsets: np.ndarray, fields: Sequence[pa.Array]) -> pa.Array:
    """The ``views`` list column: entity i has the views ``offsets[i]:offsets[i + 1]`` of the flat `fields`
    (kind, text, path and box arrays, one row per view)."""
    views = pa.StructArray.from_arrays(list(fields), fields=list(_VIEW_FIELDS))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), views, type=_views_arrow_type())


def _view_from_arrow(record: dict[str, Any]) -> EntityView:
    box = record["box"]
    return EntityView(ViewKind(record["kind"]), record["text"], record["path"], tuple(box) if box else None)


def _table_features() -> dict[str, Any]:
    """The `datasets.Features` of each table of `_graph_tables`, by name."""
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


def _graph_tables(graph: KnowledgeGraph) -> dict[str, pa.Table]:
    """The three tables every saved form holds, by name: ``triplets``, ``entities`` and ``relations``."""
    return {
        "triplets": pa.table({"head": graph.heads, "relation": graph.relation_ids, "tail": graph.tails}),
        "entities": graph._entities,
        "relations": pa.table({"text": pa.array(graph.relations, type=pa.string())}),
    }


def _graph_metadata(graph: KnowledgeGraph, root: str | None) -> dict[str, Any]:
    """The content of ``knowledge_graph.json``, with `root` as the graph's root."""
    return {
        "format_version": _FORMAT_VERSION,
        "name": graph.name,
        "root": root,
        "sources": graph._sources,
        "num_entities": graph.num_entities,
        "num_relations": graph.num_relations,
        "num_triplets": graph.num_triplets,
        "report": graph.report.to_dict() if graph.report is not None else None,
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


def _save_to_disk(graph: KnowledgeGraph, path: str | os.PathLike) -> None:
    """Writes `graph` as `KnowledgeGraph.save_to_disk` documents."""
    import datasets

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    features = _table_features()
    progress_was_enabled = not datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()
    try:
        for part, table in _graph_tables(graph).items():
            dataset = datasets.Dataset(datasets.table.InMemoryTable(table.cast(features[part].arrow_schema)))
            dataset.save_to_disk(str(path / part))
    finally:
        if progress_was_enabled:
            datasets.utils.enable_progress_bars()
    metadata = _graph_metadata(graph, graph.root)
    (path / _METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8")


def _read_from_disk(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a folder written by `_save_to_disk`: the arguments of `KnowledgeGraph._from_saved`."""
    import datasets

    path = Path(path)
    metadata = _read_metadata(path / _METADATA_FILE, f"{path} is not a saved KnowledgeGraph")
    triplets = datasets.load_from_disk(str(path / "triplets")).data.table
    return {
        "metadata": metadata,
        "root": metadata["root"],
        "entities": datasets.load_from_disk(str(path / "entities")).data.table,
        "relations": datasets.load_from_disk(str(path / "relations")).data.table.column("text").to_pylist(),
        "triplets": {name: triplets.column(name).to_numpy() for name in ("head", "relation", "tail")},
        "where": path,
    }
