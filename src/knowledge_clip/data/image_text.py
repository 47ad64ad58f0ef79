# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Image-text pair loader: COCO captions, Hugging Face `imagefolder` metadata and WebDataset tars.

Knowledge-CLIP (Pan et al., 2022) keeps training on image-text pairs (COCO Captions, CC3M) by turning each pair into
the triplets (image, "image of", caption) and (caption, "caption of", image). The formats read here are described in
`docs/data.md`.
"""

import csv
import json
import os
import re
import tarfile
from collections.abc import Iterator

from ..errors import KnowledgeCLIPDataError
from ..graph import EntityView, KnowledgeGraph, KnowledgeGraphBuilder, LoadReport, ViewKind
from .images import TAR_MEMBER_SEPARATOR
from .json_stream import JsonStreamReader, iter_jsonl_lines

IMAGE_OF = "image of"
CAPTION_OF = "caption of"
FORMATS = ("coco", "imagefolder", "webdataset")
METADATA_FILE_NAMES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")
WEBDATASET_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
WEBDATASET_CAPTION_EXTENSIONS = ("txt", "text", "json")

# WebDataset's split of a member name into sample key (up to the first dot of the basename) and extension.
_KEY_AND_EXTENSION = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_BRACE = re.compile(r"\{([^{}]*)\}")
_NUMERIC_RANGE = re.compile(r"(\d+)\.\.(\d+)")


def expand_braces(pattern: str) -> list[str]:
    """
    Expand the brace notation of shard patterns: `{00000..00009}` (zero-padded numeric range) and `{a,b}` (list).

    Example: `expand_braces("shards/{00000..00002}.tar")` -> `["shards/00000.tar", "shards/00001.tar",
    "shards/00002.tar"]`.
    """
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    numeric_range = _NUMERIC_RANGE.fullmatch(match.group(1))
    if numeric_range is not None:
        start, stop = numeric_range.groups()
        options = [str(number).zfill(len(start)) for number in range(int(start), int(stop) + 1)]
    else:
        options = match.group(1).split(",")
    prefix, suffix = pattern[: match.start()], pattern[match.end() :]
    return [expanded for option in options for expanded in expand_braces(prefix + option + suffix)]


def _normalize_caption(caption: object) -> str:
    return " ".join(caption.split()) if isinstance(caption, str) else ""


def _relative_image_path(file_name: object, base: str) -> str | None:
    """`file_name` joined to `base` (both relative to the graph root) and normalised; None if it leaves the root."""
    if not isinstance(file_name, str) or not file_name or os.path.isabs(file_name):
        return None
    path = os.path.normpath(os.path.join(base, file_name))
    if path == os.pardir or path.startswith(os.pardir + os.sep):
        return None
    return path.replace(os.sep, "/")


class _PairGraphBuilder:
    """Turns image-caption pairs into triplets, with the checks shared by every format."""

    def __init__(self, name: str, root: str, report: LoadReport):
        self.root = root
        self.report = report
        self.builder = KnowledgeGraphBuilder(name, root=root)
        self._listings: dict[str, set[str]] = {}

    def file_exists(self, relative_path: str) -> bool:
        """Whether a file exists under the root, from one directory listing per folder."""
        folder, file_name = os.path.split(relative_path)
        if folder not in self._listings:
            folder_path = os.path.join(self.root, folder)
            self._listings[folder] = set(os.listdir(folder_path)) if os.path.isdir(folder_path) else set()
        return file_name in self._listings[folder]

    def add_file_pair(self, file_name: object, base: str, caption: object, where: str) -> None:
        """Count one record pairing the image file `base/file_name` with `caption`, and add it if valid."""
        self.report.records_read += 1
        path = _relative_image_path(file_name, base)
        if path is None:
            self.report.skip("path escapes root", f"{where}: file_name {file_name!r}")
        elif not self.file_exists(path):
            self.report.skip("missing image", f"{where}: {path}")
        else:
            self.add_pair(EntityView(ViewKind.IMAGE, path=path), caption, where)

    def add_pair(self, image_view: EntityView, caption: object, where: str) -> None:
        text = _normalize_caption(caption)
        if not text:
            self.report.skip("empty caption", f"{where}: caption {caption!r}")
            return
        # A caption is an entity of its own text: the same sentence written for two images is one entity with two
        # edges, so contrastive losses do not push identical texts apart.
        image = self.builder.add_entity(f"image/{image_view.path}", [image_view])
        caption_entity = self.builder.add_entity(f"caption/{text}", [EntityView(ViewKind.TEXT, text=text)])
        # A pair seen twice gives two "duplicate triplet" skips, counted by the builder.
        self.builder.add_triplet(image, IMAGE_OF, caption_entity)
        self.builder.add_triplet(caption_entity, CAPTION_OF, image)

    def build(self) -> KnowledgeGraph:
        return self.builder.build(self.report)


def _coco_images_root(path: str) -> str:
    # captions_train2017.json lives in annotations/, next to the image folder train2017/.
    split = os.path.splitext(os.path.basename(path))[0].removeprefix("captions_")
    annotations_dir = os.path.dirname(os.path.abspath(path))
    for candidate in (os.path.join(annotations_dir, split), os.path.join(os.path.dirname(annotations_dir), split)):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"COCO: no image folder {split!r} next to {path}; pass images_root")


def _load_coco(path: str, images_root: str | None, name: str) -> KnowledgeGraph:
    root = images_root if images_root is not None else _coco_images_root(path)
    report = LoadReport(source=f"coco captions ({path})")
    pairs = _PairGraphBuilder(name, root, report)
    file_label = os.path.basename(path)
    file_name_of_image: dict[int, object] = {}
    annotations: list[tuple[str, object, object]] = []
    seen_keys = set()
    with JsonStreamReader(path) as reader:
        for key in reader.iter_object():
            seen_keys.add(key)
            if key == "images":
                for index, record in enumerate(reader.iter_list(field="images")):
                    if isinstance(record, dict) and isinstance(record.get("id"), int):
                        file_name_of_image[record["id"]] = record.get("file_name")
                    else:
                        report.skip("invalid image record", f"{file_label}:{reader.line_number()}: images[{index}]")
            elif key == "annotations":
                for index, record in enumerate(reader.iter_list(field="annotations")):
                    where = f"{file_label}:{reader.line_number()}: annotations[{index}]"
                    if isinstance(record, dict):
                        annotations.append((where, record.get("image_id"), record.get("caption")))
                    else:
                        report.records_read += 1
                        report.skip("invalid annotation", f"{where}: not an object")
        reader.finish()
    for field in ("images", "annotations"):
        if field not in seen_keys:
            raise KnowledgeCLIPDataError("not a COCO captions file: missing key", file=path, field=field)
    # Annotations are neither grouped nor sorted by image: join them once every image is known.
    for where, image_id, caption in annotations:
        if image_id not in file_name_of_image:
            report.records_read += 1
            report.skip("unknown image id", f"{where}: image_id {image_id!r}")
        else:
            pairs.add_file_pair(file_name_of_image[image_id], "", caption, f"{where} (image_id {image_id})")
    return pairs.build()


def _metadata_rows(path: str, label: str, report: LoadReport) -> Iterator[tuple[int, dict]]:
    """Yield `(line, row)` of one imagefolder metadata file (named `label` in skips); bad JSON lines are skipped."""
    if path.endswith(".jsonl"):
        for line_number, row, problem in iter_jsonl_lines(path):
            if problem is not None:
                report.records_read += 1
                report.skip("bad json (line)", f"{label}:{line_number}: {problem}")
            else:
                yield line_number, row
    elif path.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as file:
            reader = csv.DictReader(file)
            for row in reader:
                yield reader.line_num, row
    else:
        import pyarrow.parquet

        rows = (row for batch in pyarrow.parquet.ParquetFile(path).iter_batches() for row in batch.to_pylist())
        yield from enumerate(rows, start=1)


def _file_name_column(row: dict) -> str | None:
    return "file_name" if "file_name" in row else next((c for c in row if c.endswith("_file_name")), None)


def _load_imagefolder(path: str, name: str) -> KnowledgeGraph:
    if os.path.isfile(path):
        root, metadata_files = os.path.dirname(os.path.abspath(path)), [os.path.abspath(path)]
    else:
        root = path
        metadata_files = sorted(
            os.path.join(folder, name)
            for folder, _, names in os.walk(path)
            for name in names
            if name in METADATA_FILE_NAMES
        )
        if not metadata_files:
            raise FileNotFoundError(f"imagefolder: no {' / '.join(METADATA_FILE_NAMES)} under {path}")
    extensions = sorted({os.path.splitext(file)[1] for file in metadata_files})
    if len(extensions) > 1:
        raise KnowledgeCLIPDataError(
            f"metadata files with different extensions {extensions}: a dataset must use one", file=path
        )
    report = LoadReport(source=f"imagefolder ({path})")
    pairs = _PairGraphBuilder(name, root, report)
    for metadata_file in metadata_files:
        base = os.path.relpath(os.path.dirname(metadata_file), root)
        label = os.path.relpath(metadata_file, root)
        for line_number, row in _metadata_rows(metadata_file, label, report):
            column = _file_name_column(row)
            if column is None or "text" not in row:
                missing = "file_name (or *_file_name)" if column is None else "text"
                raise KnowledgeCLIPDataError("missing column", file=metadata_file, line=line_number, field=missing)
            pairs.add_file_pair(row[column], base, row["text"], f"{label}:{line_number}")
    return pairs.build()


def _shard_paths(path: str) -> tuple[str, list[str]]:
    """The root folder and the shard paths of a `.tar` file, a brace pattern or a folder of `.tar` files."""
    if os.path.isdir(path):
        shards = sorted(os.path.join(path, name) for name in os.listdir(path) if name.endswith(".tar"))
        if not shards:
            raise FileNotFoundError(f"webdataset: no .tar shards in {path}")
        return path, shards
    shards = expand_braces(path)
    return os.path.commonpath([os.path.dirname(os.path.abspath(shard)) for shard in shards]), shards


def _tar_samples(archive: tarfile.TarFile, label: str, report: LoadReport) -> Iterator[tuple[str, dict[str, object]]]:
    """Yield `(key, {extension: bytes (caption files) or member name})` of consecutive members sharing a key."""
    key, sample = None, {}
    for member in archive:
        base_name = os.path.basename(member.name)
        if not member.isfile() or (base_name.startswith("__") and base_name.endswith("__")):
            continue
        match = _KEY_AND_EXTENSION.match(member.name)
        if match is None:
            report.skip("member without extension", f"{label}: {member.name}")
            continue
        member_key, extension = match.group(1), match.group(2).lower()
        if member_key != key:
            if sample:
                yield key, sample
            key, sample = member_key, {}
        if extension in sample:
            report.skip("duplicate file name", f"{label}: {member.name}")
            continue
        if extension in WEBDATASET_CAPTION_EXTENSIONS:
            sample[extension] = archive.extractfile(member).read()
        else:
            sample[extension] = member.name
    if sample:
        yield key, sample


def _sample_caption(sample: dict[str, object]) -> object:
    """The caption of a sample: its `.txt` (or `.text`) file, else the `caption` field of its `.json` file."""
    for extension in ("txt", "text"):
        if extension in sample:
            return sample[extension].decode("utf-8")
    if "json" in sample:
        metadata = json.loads(sample["json"])
        return metadata.get("caption") if isinstance(metadata, dict) else None
    return None


def _load_webdataset(path: str, name: str) -> KnowledgeGraph:
    root, shards = _shard_paths(path)
    report = LoadReport(source=f"webdataset ({path})")
    pairs = _PairGraphBuilder(name, root, report)
    for shard in shards:
        label = os.path.relpath(shard, root).replace(os.sep, "/")
        if not os.path.isfile(shard):
            report.skip("missing shard", label)
            continue
        try:
            # Stream mode: one sequential pass, reading only the small caption files.
            with tarfile.open(shard, mode="r|") as archive:
                for key, sample in _tar_samples(archive, label, report):
                    report.records_read += 1
                    where = f"{label}: {key}"
                    image_extension = next((e for e in WEBDATASET_IMAGE_EXTENSIONS if e in sample), None)
                    if image_extension is None:
                        report.skip("sample without image", where)
                        continue
                    try:
                        caption = _sample_caption(sample)
                    except (UnicodeDecodeError, json.JSONDecodeError) as error:
                        report.skip("invalid caption file", f"{where}: {error}")
                        continue
                    image_path = f"{label}{TAR_MEMBER_SEPARATOR}{sample[image_extension]}"
                    pairs.add_pair(EntityView(ViewKind.IMAGE, path=image_path), caption, where)
        except tarfile.TarError as error:
            report.skip("unreadable shard", f"{label}: {error}")
    return pairs.build()


def _detect_format(path: str) -> str:
    if "{" in path or path.endswith(".tar"):
        return "webdataset"
    if os.path.isfile(path):
        if os.path.basename(path) in METADATA_FILE_NAMES:
            return "imagefolder"
        if path.endswith(".json"):
            return "coco"
    elif os.path.isdir(path):
        return "webdataset" if any(name.endswith(".tar") for name in os.listdir(path)) else "imagefolder"
    raise ValueError(f"cannot tell the format of {path!r}; pass format= one of {FORMATS}")


def load_image_text_pairs(
    path: str | os.PathLike,
    format: str | None = None,
    images_root: str | os.PathLike | None = None,
    name: str = "image_text",
) -> KnowledgeGraph:
    """
    Load image-caption pairs as a knowledge graph, as Knowledge-CLIP does with COCO Captions and CC3M.

    Each pair gives two triplets, (image, `"image of"`, caption) and (caption, `"caption of"`, image). Images are
    IMAGE entities keyed by their path; captions (stripped, internal whitespace collapsed) are TEXT entities keyed by
    their text, so a sentence written for several images is one entity linked to each of them, and a batch never
    treats two copies of one sentence as negatives of each other.

    Formats:

    - `"coco"`: a COCO captions file (`captions_train2017.json`): `annotations[].image_id` joined to `images[].id`,
      the image `file_name` under `images_root`, by default the folder named like the split (`train2017/`) next to
      the file or next to its `annotations/` folder.
    - `"imagefolder"`: a Hugging Face imagefolder dataset, i.e. a folder (or one metadata file) with
      `metadata.jsonl`, `metadata.csv` or `metadata.parquet` files, each row holding `file_name` (or
      `<x>_file_name`), relative to the metadata file's folder, and `text`. All metadata files must share one
      extension.
    - `"webdataset"`: WebDataset / img2dataset tar shards, given as one `.tar`, a brace pattern
      (`shards/{00000..00009}.tar`) or a folder of `.tar` files. Consecutive members sharing a key (the name up to
      the first dot) form a sample; its image is the `.jpg`/`.jpeg`/`.png`/`.webp` member and its caption the
      `.txt` member or the `caption` of the `.json` member. The image stays in the tar: its view path is
      `<shard>.tar#<member>`, opened by [`open_view_image`].

    Counted skips (see `graph.report`): file names escaping the root (`../`, absolute), missing image files, empty
    captions, unknown COCO image ids, bad JSONL lines, samples without image or caption, missing or unreadable
    shards, and the two triplets of a repeated pair ("duplicate triplet"). A file that is not valid JSON, is empty
    or has the wrong top-level type, a metadata file without a `file_name`/`text` column, or metadata files of mixed
    extensions raise [`KnowledgeCLIPDataError`]; no triplet at all raises `EmptyGraphError`.

    Args:
        path (`str` or `os.PathLike`):
            The captions JSON file, the imagefolder folder or metadata file, or the shards.
        format (`str`, *optional*):
            `"coco"`, `"imagefolder"` or `"webdataset"`; detected from `path` when None.
        images_root (`str` or `os.PathLike`, *optional*):
            COCO only: the folder holding the images (the graph's root).
        name (`str`, *optional*, defaults to `"image_text"`):
            The graph's name, which namespaces its entity keys in `KnowledgeGraph.merge`: give COCO and CC3M
            different names to merge them.

    Returns:
        [`KnowledgeGraph`]: the graph, with its [`LoadReport`] as `.report`.
    """
    path = os.fspath(path)
    format = format or _detect_format(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if format != "coco" and images_root is not None:
        raise ValueError("images_root applies to the coco format only")
    if format == "coco":
        return _load_coco(path, os.fspath(images_root) if images_root is not None else None, name)
    if format == "imagefolder":
        return _load_imagefolder(path, name)
    return _load_webdataset(path, name)
