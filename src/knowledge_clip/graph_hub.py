# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The Hub form of a `KnowledgeGraph`: the folder `KnowledgeGraph.push_to_hub` uploads and `KnowledgeGraph.from_hub`
reads back (a local clone of such a dataset repository loads with `load_hub_folder` too).

Layout of the folder (one dataset repository)::

    README.md                                  dataset card: sources and licenses, counts, load report, configs
    knowledge_graph.json                       `save_to_disk`'s metadata, without the local root
    data/triplets/train-00000-of-00001.parquet head, relation, tail (int64)
    data/entities/train-00000-of-00001.parquet key, source, views [{kind, text, path, box}]
    data/relations/train-00000-of-00001.parquet text
    data/images/train-00000-of-00001.parquet   path, image (`datasets.Image`: the file's bytes, unchanged)

Each table is a config of the dataset (`datasets.load_dataset(repo_id, "entities")` reads one), in as many shards as
`max_shard_rows` / `max_shard_bytes` need. Images are embedded rather than referenced: an image view's path is
relative to a root on the machine that built the graph, which another machine does not have, and embedded images are
what the Hub's dataset viewer shows. The ``images`` config is absent when the graph has no image views.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import ImageLoadError, KnowledgeCLIPDataError, UnsafePathError
from .graph import KnowledgeGraph
from .graph.entities import _relative_posix_path
from .graph.storage import _METADATA_FILE, _graph_metadata, _graph_tables, _read_metadata, _table_features

__all__ = ["DATA_FILES_PATTERN", "check_repo_id", "hub_dataset_card", "load_hub_folder", "write_hub_folder"]

CONFIGS = ("triplets", "entities", "relations", "images")
DATA_FILES_PATTERN = "data/*"
"""Every data file of the layout (`fnmatch`'s ``*`` crosses ``/``): what an upload replaces."""

_SHARD_NAME = "train-{index:05d}-of-{count:05d}.parquet"
# The Hub's viewer reads whole row groups; about 100 images per group keeps its pages (and our reads) small.
_IMAGE_ROW_GROUP_ROWS = 100
# Where `load_hub_folder` writes images and the entities' Arrow file inside the folder, by default.
_UNPACKED_DIR = "knowledge_clip"
_ENTITIES_ARROW_FILE = "entities.arrow"


def check_repo_id(repo_id: str, name: str = "repo_id") -> None:
    """Refuses an id that is not ``<namespace>/<name>``: an upload to a bare name would go to a different repository.

    Raises:
        ValueError: naming `name` and the id.
    """
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{name} must be '<namespace>/<name>', got {repo_id!r}.")


def _image_features():
    import datasets

    return datasets.Features({"path": datasets.Value("string"), "image": datasets.Image()})


def _image_paths(entities: pa.Table) -> list[str]:
    """The distinct image paths of the IMAGE and REGION views, in order of first appearance."""
    paths = pc.struct_field(pc.list_flatten(entities.column("views")), "path")
    return pc.unique(paths.drop_null()).to_pylist()


def _shard_bounds(
    num_rows: int, max_rows: int, row_bytes: list[int] | None = None, max_bytes: int | None = None
) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` row ranges of at most `max_rows` rows and, with `row_bytes`, `max_bytes` bytes
    (a row larger than that gets a range of its own). An empty table gets one empty range: its config still has a
    file."""
    if row_bytes is None:
        return [(start, min(start + max_rows, num_rows)) for start in range(0, max(num_rows, 1), max_rows)]
    bounds, start, size = [], 0, 0
    for row, num_bytes in enumerate(row_bytes):
        if row > start and (row - start == max_rows or size + num_bytes > max_bytes):
            bounds.append((start, row))
            start, size = row, 0
        size += num_bytes
    return [*bounds, (start, num_rows)]


def _shard_path(folder: Path, config: str, index: int, count: int) -> Path:
    return folder / "data" / config / _SHARD_NAME.format(index=index, count=count)


def _licenses_by_source(sources: list[str], licenses: str | Mapping[str, str]) -> dict[str, str]:
    if isinstance(licenses, str):
        return dict.fromkeys(sources, licenses)
    missing = [source for source in sources if not licenses.get(source)]
    unknown = sorted(set(licenses) - set(sources))
    if missing or unknown:
        raise ValueError(
            f"licenses must name the license of every source {sources} and nothing else; "
            + (f"missing {missing}" if missing else f"not a source of this graph: {unknown}")
            + " (use 'unknown' for a source whose license you do not know)."
        )
    return {source: licenses[source] for source in sources}


def write_hub_folder(
    graph: KnowledgeGraph,
    folder: str | os.PathLike,
    repo_id: str,
    licenses: str | Mapping[str, str],
    *,
    max_shard_rows: int,
    max_shard_bytes: int,
) -> None:
    """Writes the Hub form of `graph` into `folder` (see the module docstring); `KnowledgeGraph.push_to_hub`
    documents the arguments.

    Raises:
        ImageLoadError: when an image that a view points to cannot be read, naming the file.
    """
    if max_shard_rows < 1 or max_shard_bytes < 1:
        raise ValueError(f"max_shard_rows and max_shard_bytes must be >= 1, got {max_shard_rows}, {max_shard_bytes}")
    license_of_source = _licenses_by_source(graph._sources, licenses)
    folder = Path(folder)
    features = _table_features()
    for config, table in _graph_tables(graph).items():
        table = table.cast(features[config].arrow_schema)  # the schema carries the features for `datasets`
        bounds = _shard_bounds(table.num_rows, max_shard_rows)
        for index, (start, stop) in enumerate(bounds):
            path = _shard_path(folder, config, index, len(bounds))
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.slice(start, stop - start), path)
    image_paths = _image_paths(graph._entities)
    if image_paths:
        _write_image_shards(graph.root, image_paths, folder, max_shard_rows, max_shard_bytes)
    metadata = _graph_metadata(graph, root=None)  # a local root means nothing on another machine
    (folder / _METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8")
    hub_dataset_card(graph, repo_id, license_of_source, len(image_paths)).save(folder / "README.md")


def _write_image_shards(root: str | None, image_paths: list[str], folder: Path, max_rows: int, max_bytes: int) -> None:
    """Embeds the image files in shards, reading one row group of files at a time."""
    if root is None:
        raise ValueError(f"the graph has image views (e.g. {image_paths[0]!r}) but no root to read them from")
    files = [Path(root, path) for path in image_paths]
    try:
        sizes = [file.stat().st_size for file in files]
    except OSError as error:
        raise ImageLoadError(
            f"cannot read an image an entity view points to ({error.strerror})", file=error.filename
        ) from None
    schema = _image_features().arrow_schema
    bounds = _shard_bounds(len(files), max_rows, sizes, max_bytes)
    for index, (start, stop) in enumerate(bounds):
        path = _shard_path(folder, "images", index, len(bounds))
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, schema) as writer:
            for group_start in range(start, stop, _IMAGE_ROW_GROUP_ROWS):
                group = range(group_start, min(group_start + _IMAGE_ROW_GROUP_ROWS, stop))
                try:
                    contents = [files[row].read_bytes() for row in group]
                except OSError as error:
                    raise ImageLoadError(f"cannot read the image ({error.strerror})", file=error.filename) from None
                image = pa.StructArray.from_arrays(
                    [
                        pa.array(contents, type=pa.binary()),
                        pa.array([PurePosixPath(image_paths[row]).name for row in group]),
                    ],
                    names=["bytes", "path"],
                )
                paths = pa.array([image_paths[row] for row in group], type=pa.string())
                writer.write_table(pa.Table.from_arrays([paths, image], schema=schema))


def hub_dataset_card(graph: KnowledgeGraph, repo_id: str, license_of_source: Mapping[str, str], num_images: int):
    """The dataset card of the Hub form of `graph`.

    Its YAML holds `license` (one id, or the sorted list when the sources differ), `configs` (the data files of each
    table, so the Hub and `datasets.load_dataset` find them), `size_categories` (by triplets), tags, and a
    `knowledge_graph` entry with the counts; its text lists the sources with their licenses, the counts and the load
    report.

    Returns:
        `huggingface_hub.DatasetCard`: The card.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    stats = graph.stats()
    licenses = sorted(set(license_of_source.values()))
    counts = {
        "entities": stats["entities"],
        "entities_by_view_kind": stats["entities_by_view_kind"],
        "relations": stats["relations"],
        "triplets": stats["triplets"],
        "images": num_images,
        "sources": stats["sources"],
    }
    configs = [config for config in CONFIGS if config != "images" or num_images]
    data = DatasetCardData(
        license=licenses[0] if len(licenses) == 1 else licenses,
        pretty_name=graph.name,
        size_categories=_size_category(graph.num_triplets),
        tags=["knowledge-graph", "knowledge-clip"],
        configs=[
            {"config_name": config, "data_files": [{"split": "train", "path": f"data/{config}/train-*.parquet"}]}
            for config in configs
        ],
        knowledge_graph=counts,
    )
    sources = "\n".join(
        f"| {source} | {license_of_source[source]} | {count:,} |" for source, count in stats["sources"].items()
    )
    views = stats["entities_by_view_kind"]
    report = str(graph.report) if graph.report is not None else "No load report (the graph was not made by a loader)."
    body = f"""
# {graph.name}

A knowledge graph for [Knowledge-CLIP](https://arxiv.org/abs/2210.08901): entities shown as texts, images or image
regions, text relations and (head, relation, tail) triplets. Load it with

```python
from knowledge_clip.graph import KnowledgeGraph

graph = KnowledgeGraph.from_hub("{repo_id}")
```

## Sources

| source | license | entities |
|---|---|---|
{sources}

## Counts

| | |
|---|---|
| entities | {stats["entities"]:,} (with a text view: {views["text"]:,}, an image: {views["image"]:,}, a region: {views["region"]:,}) |
| relations | {stats["relations"]:,} |
| triplets | {stats["triplets"]:,} |
| images (embedded) | {num_images:,} |

## Load report

What the loaders read and skipped, and why (skips are counted, never silent):

```text
{report}
```

## Layout

Configs: `triplets` (head, relation, tail: ids into `entities` and `relations`, by row), `entities` (key, source:
an index into the sources above, views: a list of {{kind: 0 text / 1 image / 2 region, text, path, box}}),
`relations` (text){", `images` (path: what views point to, image: the file, embedded)" if num_images else ""}.
`knowledge_graph.json` holds the name, sources, counts and load report.
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}")


_SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B")


def _size_category(num_rows: int) -> str:
    """The Hub's `size_categories` value of `num_rows` rows (one category per power of ten from 1,000)."""
    decade = max(0, len(str(num_rows)) - 4)  # 0 below 1,000; 1 from 1,000 to 9,999; ...
    return _SIZE_CATEGORIES[decade] if decade < len(_SIZE_CATEGORIES) else "1B<n<10B"


def load_hub_folder(folder: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> KnowledgeGraph:
    """Reads a folder written by `write_hub_folder` (a downloaded snapshot, or a clone of the repository).

    Shards are read one row group at a time: each group of images is written to files before the next is read, the
    entities go to an Arrow file under `images_dir` that is then memory-mapped, and the triplets straight into their
    int64 arrays, so memory never holds the whole of any table but the relations.

    Args:
        folder (`str` or `os.PathLike`): The folder.
        images_dir (`str` or `os.PathLike`, *optional*): Where the images and the entities' Arrow file are written;
            ``knowledge_clip/`` inside `folder` when omitted. Files are replaced atomically, so processes that load
            the same graph at once (the ranks of a training run) do not see each other's partial files.

    Returns:
        `KnowledgeGraph`: The graph; its root is `images_dir` when it has image views, else `None`.

    Raises:
        KnowledgeCLIPDataError: naming the file (and field) of a missing or malformed part.
    """
    folder = Path(folder)
    metadata = _read_metadata(folder / _METADATA_FILE, f"{folder} is not a knowledge graph uploaded by push_to_hub")
    images_dir = Path(images_dir) if images_dir is not None else folder / _UNPACKED_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    features = _table_features()

    entities_file = images_dir / _ENTITIES_ARROW_FILE
    schema = features["entities"].arrow_schema
    _write_atomically(entities_file, lambda sink: _copy_batches(_shard_files(folder, "entities"), schema, sink))
    entities = pa.ipc.open_file(pa.memory_map(str(entities_file))).read_all()

    relations = [
        text
        for batch in _read_batches(_shard_files(folder, "relations"), features["relations"].arrow_schema)
        for text in batch.column("text").to_pylist()
    ]
    triplets = _read_triplets(folder, metadata["num_triplets"], features["triplets"].arrow_schema)

    referenced = set(_image_paths(entities))
    written = _write_images(folder, images_dir)
    missing = sorted(referenced - written)
    if missing:
        raise KnowledgeCLIPDataError(
            f"{len(missing)} image(s) that entity views point to are not in the images config, e.g. {missing[0]!r}",
            file=folder / "data" / "images",
            field="path",
        )
    return KnowledgeGraph._from_saved(
        metadata,
        root=str(images_dir) if referenced else None,
        entities=entities,
        relations=relations,
        triplets=triplets,
        where=folder,
    )


def _shard_files(folder: Path, config: str) -> list[Path]:
    """The shards of `config` in order; they must be exactly ``train-00000-of-N`` ... ``train-<N-1>-of-N``, which
    catches a missing shard and the leftovers of another upload."""
    directory = folder / "data" / config
    files = sorted(directory.glob("*.parquet"))
    expected = [_shard_path(folder, config, index, len(files)) for index in range(len(files))]
    if not files or files != expected:
        found = [file.name for file in files] or "none"
        raise KnowledgeCLIPDataError(f"expected shards train-00000-of-N.parquet ... , found {found}", file=directory)
    return files


def _read_batches(files: list[Path], schema: pa.Schema, batch_size: int = 65_536):
    """Yields the record batches of `files`, one row group at a time, after checking each file's columns."""
    for file in files:
        parquet = pq.ParquetFile(file)
        if not parquet.schema_arrow.remove_metadata().equals(schema.remove_metadata()):
            raise KnowledgeCLIPDataError(
                f"columns {parquet.schema_arrow.remove_metadata()} differ from {schema.remove_metadata()}",
                file=file,
                field="schema",
            )
        yield from parquet.iter_batches(batch_size=batch_size)


def _copy_batches(files: list[Path], schema: pa.Schema, sink) -> None:
    with pa.ipc.new_file(sink, schema) as writer:
        for batch in _read_batches(files, schema):
            writer.write_batch(batch)


def _read_triplets(folder: Path, num_triplets: int, schema: pa.Schema) -> dict[str, np.ndarray]:
    """The triplet columns, filled batch by batch into arrays of the size the metadata gives (no concatenation)."""
    columns = {name: np.empty(num_triplets, dtype=np.int64) for name in schema.names}
    offset = 0
    for batch in _read_batches(_shard_files(folder, "triplets"), schema):
        if offset + batch.num_rows > num_triplets:
            raise KnowledgeCLIPDataError(
                f"more triplets than the {num_triplets} of {_METADATA_FILE}", file=folder / "data" / "triplets"
            )
        for name in schema.names:
            columns[name][offset : offset + batch.num_rows] = batch.column(name).to_numpy()
        offset += batch.num_rows
    if offset != num_triplets:
        raise KnowledgeCLIPDataError(
            f"{offset} triplets, {_METADATA_FILE} says {num_triplets}", file=folder / "data" / "triplets"
        )
    return columns


def _write_images(folder: Path, images_dir: Path) -> set[str]:
    """Writes each embedded image to ``images_dir/<path>``; returns the paths written."""
    if not (folder / "data" / "images").is_dir():
        return set()
    written = set()
    files = _shard_files(folder, "images")
    for batch in _read_batches(files, _image_features().arrow_schema, batch_size=_IMAGE_ROW_GROUP_ROWS):
        contents = pc.struct_field(batch.column("image"), "bytes").to_pylist()
        for path, content in zip(batch.column("path").to_pylist(), contents):
            try:
                path = _relative_posix_path(path)  # the repository is not trusted to stay inside images_dir
            except (TypeError, AttributeError, ValueError) as error:
                raise UnsafePathError(str(error), file=folder / "data" / "images", field="path") from None
            if content is None:
                raise KnowledgeCLIPDataError(f"no bytes for {path!r}", file=folder / "data" / "images", field="image")
            target = images_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, lambda sink, content=content: sink.write(content))
            written.add(path)
    return written


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Calls `write` on a new temporary file beside `path`, then moves it to `path` in one step."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as sink:
            write(sink)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
