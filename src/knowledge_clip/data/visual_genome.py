# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Visual Genome loader.

Visual Genome (Krishna et al., 2017) annotates object regions of 108k images and the relationships between them.
Knowledge-CLIP (Pan et al., 2022) uses it as a knowledge graph whose entities are cropped object regions and whose
relations are the predicates (`"man" riding "horse"`). The formats read here are described in `docs/data.md`.
"""

import os
import re
from collections.abc import Iterator
from typing import Any

from ..graph import EntityView, KnowledgeGraph, KnowledgeGraphBuilder, LoadReport, ViewKind
from .json_stream import iter_list_records

VISUAL_GENOME_VERSIONS = ("1.0", "1.2", "1.4")
IMAGE_FOLDERS = ("VG_100K", "VG_100K_2")
HAS_ATTRIBUTE = "has attribute"
_URL_IMAGE_FOLDER = re.compile(r"(VG_100K(?:_2)?)/[0-9]+\.jpg$")
_NUMBER_TYPES = (int, float)


def normalize_text(text: str) -> str:
    """Lower-case `text`, strip it and collapse internal whitespace (`" ON  top of"` -> `"on top of"`)."""
    return " ".join(text.split()).lower()


def find_annotation_file(root: str, name: str, version: str | None) -> str | None:
    """
    Path of the annotation file `name` (e.g. `"relationships"`) under `root`, or None.

    With `version`, the names of the downloaded zips (`relationships_v1_2.json`) are tried first, from `version` down
    to 1.0 (files a release left unchanged keep their older version), then the unversioned name that every zip
    extracts to.
    """
    candidates = []
    if version is not None:
        older = VISUAL_GENOME_VERSIONS[: VISUAL_GENOME_VERSIONS.index(version) + 1]
        candidates = [f"{name}_v{v.replace('.', '_')}.json" for v in reversed(older)]
    for file_name in [*candidates, f"{name}.json"]:
        path = os.path.join(root, file_name)
        if os.path.isfile(path):
            return path
    return None


def clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[float, float, float, float]:
    """Turn a Visual Genome box (top-left corner, width, height) into `(x0, y0, x1, y1)` clipped to the image."""
    x0, x1 = min(max(x, 0), width), min(max(x + w, 0), width)
    y0, y1 = min(max(y, 0), height), min(max(y + h, 0), height)
    return float(x0), float(y0), float(x1), float(y1)


class _VisualGenomeReader:
    """State of one `load_visual_genome` call: the image index, the object entities and the report."""

    def __init__(self, root: str, builder: KnowledgeGraphBuilder, report: LoadReport):
        self.root = root
        self.builder = builder
        self.report = report
        # image_id -> (path relative to root, width, height), for the images whose file exists.
        self.images: dict[int, tuple[str, int, int]] = {}
        # object id -> id of the object it was merged into (v1.4 `merged_object_ids`), for attributes.json (v1.2 ids).
        self.merged_into: dict[int, int] = {}

    def read_image_data(self, path: str) -> None:
        listings = {}
        for folder in IMAGE_FOLDERS:
            folder_path = os.path.join(self.root, folder)
            listings[folder] = set(os.listdir(folder_path)) if os.path.isdir(folder_path) else set()
        for where, record in iter_list_records(path, os.path.basename(path)):
            if not isinstance(record, dict):
                self.report.skip("invalid image record", f"{where}: not an object")
                continue
            image_id = record.get("image_id", record.get("id"))
            width, height = record.get("width"), record.get("height")
            if not isinstance(image_id, int) or not all(isinstance(v, int) and v > 0 for v in (width, height)):
                self.report.skip("invalid image record", f"{where}: field image_id/id, width or height")
                continue
            file_name = f"{image_id}.jpg"
            url_folder = _URL_IMAGE_FOLDER.search(str(record.get("url", "")))
            preferred = [url_folder.group(1)] if url_folder else []
            folder = next((f for f in (*preferred, *IMAGE_FOLDERS) if file_name in listings[f]), None)
            if folder is None:
                self.report.skip("missing image", f"{where}: no {file_name} in {' or '.join(IMAGE_FOLDERS)}")
                continue
            self.images[image_id] = (f"{folder}/{file_name}", width, height)

    def object_region(self, obj: Any, image: tuple[str, int, int]) -> tuple[int, tuple[float, ...]] | str:
        """The `(object id, clipped box)` of an embedded object record, or the reason it is unusable."""
        if not isinstance(obj, dict):
            return "missing or invalid object"
        object_id = obj.get("object_id", obj.get("id"))
        box_fields = (obj.get("x"), obj.get("y"), obj.get("w"), obj.get("h"))
        # `type(...) in` rather than isinstance: booleans are not coordinates, and this runs millions of times.
        if type(object_id) is not int or not all(type(value) in _NUMBER_TYPES for value in box_fields):
            return "missing or invalid object"
        _, width, height = image
        box = clip_box(*box_fields, width, height)
        if box[2] <= box[0] or box[3] <= box[1]:
            return "empty box after clipping"
        return self.merged_into.get(object_id, object_id), box

    def object_entity(self, object_id: int, image: tuple[str, int, int], box: tuple[float, ...]) -> int:
        """The entity of an object region; an object seen again (e.g. under a merged id) keeps its first box."""
        key = f"object/{object_id}"
        entity = self.builder.get_entity_id(key)
        if entity is None:
            entity = self.builder.add_entity(key, [EntityView(ViewKind.REGION, path=image[0], box=box)])
        return entity

    def read_relationships(self, path: str) -> None:
        for where, image_id, relationships in self._image_entries(path, "relationships"):
            self.report.records_read += len(relationships)
            image = self.images.get(image_id)
            if image is None:
                if relationships:
                    where = f"{where}: image {image_id}"
                    self.report.skip("relationship in a skipped image", where, count=len(relationships))
                continue
            self._read_image_relationships(image, relationships, f"{where} (image {image_id})")

    def _image_entries(self, path: str, field: str) -> Iterator[tuple[str, Any, list]]:
        """Yields ``(where, image id, entry[field])`` for the per-image entries of `path`; skips (and counts) the
        entries that are not objects with a list under `field`."""
        for where, entry in iter_list_records(path, os.path.basename(path)):
            values = entry.get(field) if isinstance(entry, dict) else None
            if not isinstance(values, list):
                self.report.skip("invalid image entry", f"{where}: field {field}")
                continue
            yield where, entry.get("image_id", entry.get("id")), values

    def _read_image_relationships(self, image: tuple[str, int, int], relationships: list, where: str) -> None:
        # v1.4 merged duplicate objects: a relationship may still name an absorbed id, possibly before the merged
        # object (which lists it in `merged_object_ids`) appears, so collect the whole image's merges first.
        for relationship in relationships:
            for role in ("subject", "object") if isinstance(relationship, dict) else ():
                obj = relationship.get(role)
                merged_ids = obj.get("merged_object_ids") if isinstance(obj, dict) else None
                object_id = obj.get("object_id") if isinstance(obj, dict) else None
                if isinstance(merged_ids, list) and isinstance(object_id, int):
                    self.merged_into.update((alias, object_id) for alias in merged_ids if isinstance(alias, int))
        for relationship in relationships:
            if not isinstance(relationship, dict):
                self.report.skip("invalid relationship", f"{where}: not an object")
                continue
            relationship_id = relationship.get("relationship_id", relationship.get("id"))
            record_where = f"{where}, relationship {relationship_id}"
            predicate = relationship.get("predicate")
            predicate = normalize_text(predicate) if isinstance(predicate, str) else ""
            if not predicate:
                self.report.skip("missing predicate", f"{record_where}: field predicate")
                continue
            regions = [self.object_region(relationship.get(role), image) for role in ("subject", "object")]
            problem = next(((role, r) for role, r in zip(("subject", "object"), regions) if isinstance(r, str)), None)
            if problem is not None:
                self.report.skip(problem[1], f"{record_where}: field {problem[0]}")
                continue
            (subject_id, subject_box), (object_id, object_box) = regions
            if subject_id == object_id:
                # Checked before the entity exists, so that a self-loop leaves no isolated entity behind; the
                # builder counts the other self-loops and the duplicates under the same reasons.
                self.report.skip("self-loop", f"{record_where}: subject and object are object {subject_id}")
                continue
            head = self.object_entity(subject_id, image, subject_box)
            self.builder.add_triplet(head, predicate, self.object_entity(object_id, image, object_box))

    def read_attributes(self, path: str) -> None:
        for where, image_id, objects in self._image_entries(path, "attributes"):
            image = self.images.get(image_id)
            for obj in objects:
                self._read_object_attributes(obj, image, f"{where} (image {image_id})")

    def _read_object_attributes(self, obj: Any, image: tuple[str, int, int] | None, where: str) -> None:
        # Many objects carry no "attributes" key at all: that is normal and not a skip.
        attributes = obj.get("attributes", []) if isinstance(obj, dict) else None
        if not isinstance(attributes, list):
            self.report.records_read += 1
            self.report.skip("invalid attribute record", f"{where}: field attributes")
            return
        self.report.records_read += len(attributes)
        if not attributes:
            return
        object_where = f"{where}, object {obj.get('object_id', obj.get('id'))}"
        if image is None:
            self.report.skip("attribute in a skipped image", object_where, count=len(attributes))
            return
        region = self.object_region(obj, image)
        if isinstance(region, str):
            self.report.skip(region, f"{object_where}: box fields", count=len(attributes))
            return
        texts = []
        for attribute in attributes:
            text = normalize_text(attribute) if isinstance(attribute, str) else ""
            if text:
                texts.append(text)
            else:
                self.report.skip("empty attribute", f"{object_where}: attribute {attribute!r}")
        if not texts:
            return
        object_id, box = region
        head = self.object_entity(object_id, image, box)
        for text in texts:
            key = f"attribute/{text}"
            tail = self.builder.get_entity_id(key)
            if tail is None:
                tail = self.builder.add_entity(key, [EntityView(ViewKind.TEXT, text=text)])
            self.builder.add_triplet(head, HAS_ATTRIBUTE, tail)


def load_visual_genome(
    root: str | os.PathLike, version: str | None = None, use_attributes: bool = False
) -> KnowledgeGraph:
    """
    Load Visual Genome as a knowledge graph whose entities are object regions, as in Knowledge-CLIP.

    Reads `image_data.json` and `relationships.json` (and `attributes.json` with `use_attributes`) from `root`, with
    the images in `root/VG_100K/` and `root/VG_100K_2/`. The record shapes of v1.0 (`id` keys), v1.2 and v1.4
    (subjects and objects with `name` or `names` plus `merged_object_ids`, mixed in one file) are all accepted; the
    large files are streamed with bounded memory.

    Mapping:

    - An entity is one object region, identified by its `object_id` (an id listed in another object's
      `merged_object_ids` is the merged object), with one REGION view: the image path relative to `root` and the box
      `(x, y, x + w, y + h)` clipped to the image size given by `image_data.json`. The paper uses the cropped
      regions as the entities, so the object name (`name`/`names`) is not a view of the entity: it would turn the
      region into a text entity half of the time, which the paper does not do.
    - A relation is the predicate, lower-cased, stripped, with internal whitespace collapsed (`"ON "` -> `"on"`).
    - A triplet is (subject region, predicate, object region). Repeated triplets and self-loops (subject and object
      the same object) are counted skips.
    - With `use_attributes`, each attribute string (normalised like predicates) becomes a TEXT entity keyed by its
      text and shared across objects, and each object gets the triplet (region, `"has attribute"`, attribute).

    Counted skips (see `graph.report`): image records without a file in either folder ("missing image") and the
    relationships of such images, relationships whose subject or object is missing or has no box ("missing or
    invalid object"), boxes with zero area after clipping, missing predicates, duplicates and self-loops. Invalid JSON,
    an empty file or a top level that is not a list raise [`KnowledgeCLIPDataError`] naming the file and position.
    Images are only looked up here (one directory listing per folder); decoding errors surface when a batch opens
    them.

    Args:
        root (`str` or `os.PathLike`):
            Folder holding the annotation files and the image folders.
        version (`str`, *optional*):
            `"1.0"`, `"1.2"` or `"1.4"`: prefer the files named as in that release's zips (`relationships_v1_2.json`)
            when several releases live in `root`. By default the unversioned names (`relationships.json`) are read.
        use_attributes (`bool`, *optional*, defaults to `False`):
            Also read `attributes.json` into (region, "has attribute", attribute text) triplets.

    Returns:
        [`KnowledgeGraph`]: the graph, named `"visual_genome"`, with `root` as its root and its [`LoadReport`] as
        `.report`.
    """
    if version is not None and version not in VISUAL_GENOME_VERSIONS:
        raise ValueError(f"version must be one of {VISUAL_GENOME_VERSIONS} or None, got {version!r}")
    root = os.fspath(root)
    paths = {}
    for name in ("image_data", "relationships", *(("attributes",) if use_attributes else ())):
        paths[name] = find_annotation_file(root, name, version)
        if paths[name] is None:
            raise FileNotFoundError(f"Visual Genome: no {name}.json in {root}")
    report = LoadReport(source=f"visual_genome ({root})")
    builder = KnowledgeGraphBuilder("visual_genome", root=root)
    reader = _VisualGenomeReader(root, builder, report)
    reader.read_image_data(paths["image_data"])
    reader.read_relationships(paths["relationships"])
    if use_attributes:
        reader.read_attributes(paths["attributes"])
    return builder.build(report)
