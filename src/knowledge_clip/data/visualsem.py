# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""VisualSem loader.

VisualSem (Alberts et al., 2021) is a multimodal knowledge graph built from BabelNet: each node has a lemma, glosses
and images, and nodes are linked by 13 relation types. Knowledge-CLIP shows each node as one of its images or one of
its text descriptions, which maps onto an entity with several views. The formats read here are described in
`docs/data.md`.
"""

import os
import re
from collections.abc import Sequence
from typing import Any

from ..errors import KnowledgeCLIPDataError
from ..graph import EntityView, KnowledgeGraph, KnowledgeGraphBuilder, LoadReport, ViewKind
from .conceptnet import relation_text as conceptnet_relation_text
from .json_stream import JsonStreamReader, iter_object_members

_IMAGE_ID = re.compile(r"[0-9a-f]{40}")
_WORD_SEPARATORS = re.compile(r"[-_\s]+")


def relation_text(relation: str) -> str:
    """
    Turn a stored relation name into the words a text encoder reads, exactly as the ConceptNet loader does, so that
    the relation vocabularies of both graphs merge: CamelCase is split and lower-cased (`"IsA"` -> `"is a"`,
    `"RelatedTo"` -> `"related to"`); the hyphenated names of the VisualSem README are accepted too
    (`"has-part"` -> `"has part"`).
    """
    return " ".join(conceptnet_relation_text(part) for part in _WORD_SEPARATORS.split(relation.strip()) if part)


def node_lemma(node: dict) -> str | None:
    """The node's name: the lemma of its BabelNet main sense `ms` (`"WN:EN:space_heater"` -> `"space heater"`),
    falling back to its first sense `se[0]`; None when neither is usable."""
    main_sense = node.get("ms")
    if isinstance(main_sense, str) and main_sense.count(":") >= 2:
        lemma = main_sense.split(":", 2)[2]
    else:
        senses = node.get("se")
        lemma = senses[0] if isinstance(senses, list) and senses and isinstance(senses[0], str) else ""
    lemma = " ".join(lemma.replace("_", " ").split())
    return lemma or None


def _first_existing(root: str, names: Sequence[str]) -> str | None:
    return next((os.path.join(root, name) for name in names if os.path.isfile(os.path.join(root, name))), None)


class _VisualSemReader:
    """State of one `load_visualsem` call: the glosses, the image folder listings, the skipped nodes, the report."""

    def __init__(self, root: str, languages: Sequence[str], builder: KnowledgeGraphBuilder, report: LoadReport):
        self.root = root
        self.languages = tuple(languages)
        self.builder = builder
        self.report = report
        self.glosses: dict[str, list[str]] = {}
        self.skipped_nodes: set[str] = set()
        self._image_listings: dict[str, set[str]] = {}

    def read_glosses(self, path: str) -> None:
        file_label = os.path.relpath(path, self.root)
        with JsonStreamReader(path) as reader:
            records = reader.iter_list()
            header = next(records, None)
            available = header.get("available_languages") if isinstance(header, dict) else None
            if not isinstance(available, list):
                raise KnowledgeCLIPDataError(
                    "the first element must be {'available_languages': [...]}",
                    file=path,
                    line=reader.line_number(),
                    field="available_languages",
                )
            if not set(self.languages) & set(available):
                raise ValueError(f"none of the languages {self.languages} is in {path} (available: {available})")
            for index, record in enumerate(records, start=1):
                if not (isinstance(record, dict) and len(record) == 1):
                    self.report.skip("invalid gloss record", f"{file_label}:{reader.line_number()}: record {index}")
                    continue
                ((node_id, by_language),) = record.items()
                if not isinstance(by_language, dict):
                    self.report.skip("invalid gloss record", f"{file_label}:{reader.line_number()}: {node_id}")
                    continue
                texts = [gloss for language in self.languages for gloss in by_language.get(language) or []]
                self.glosses[node_id] = [" ".join(t.split()) for t in texts if isinstance(t, str) and t.strip()]
            reader.finish()

    def image_view(self, image_id: Any, where: str) -> EntityView | None:
        """The IMAGE view `images/<hh>/<sha1>.jpg` (or the extensionless file), or None after a counted skip."""
        if not isinstance(image_id, str) or not _IMAGE_ID.fullmatch(image_id):
            # Only 40-hex ids are accepted, which also keeps every path inside `images/`.
            self.report.skip("invalid image id", f"{where}: ims {image_id!r}")
            return None
        folder = image_id[:2]
        if folder not in self._image_listings:
            folder_path = os.path.join(self.root, "images", folder)
            self._image_listings[folder] = set(os.listdir(folder_path)) if os.path.isdir(folder_path) else set()
        # Files that failed the authors' resize step kept no extension.
        file_name = next((n for n in (f"{image_id}.jpg", image_id) if n in self._image_listings[folder]), None)
        if file_name is None:
            self.report.skip("missing image", f"{where}: images/{folder}/{image_id}.jpg")
            return None
        return EntityView(ViewKind.IMAGE, path=f"images/{folder}/{file_name}")

    def read_nodes(self, path: str) -> None:
        for where, node_id, node in iter_object_members(path, os.path.basename(path)):
            if not isinstance(node, dict):
                self.report.skip("invalid node", f"{where}: not an object")
                self.skipped_nodes.add(node_id)
                continue
            texts = [node_lemma(node)]
            # v1 nodes carry their (English) glosses in `gl`; v2 ships them in the gloss file.
            texts += node.get("gl") if isinstance(node.get("gl"), list) else []
            texts = [" ".join(text.split()) for text in texts if isinstance(text, str)]
            texts += self.glosses.pop(node_id, [])
            views = [EntityView(ViewKind.TEXT, text=text) for text in texts if text]
            images = node.get("ims") if isinstance(node.get("ims"), list) else []
            views += [view for image_id in images if (view := self.image_view(image_id, where))]
            if not views:
                self.report.skip("node without views", f"{where}: no lemma, gloss or image")
                self.skipped_nodes.add(node_id)
                continue
            self.builder.add_entity(node_id, views)

    def read_tuples(self, path: str) -> None:
        for where, tail_id, edges in iter_object_members(path, os.path.basename(path)):
            if not isinstance(edges, list):
                self.report.records_read += 1
                self.report.skip("invalid tuple record", f"{where}: not a list")
                continue
            for edge in edges:
                self.report.records_read += 1
                self._add_edge(edge, tail_id, where)

    def _node_problem(self, node_id: str) -> str | None:
        if self.builder.get_entity_id(node_id) is not None:
            return None
        return "triplet of a skipped node" if node_id in self.skipped_nodes else "unknown node"

    def _add_edge(self, edge: Any, tail_id: str, where: str) -> None:
        head_id = edge.get("s") if isinstance(edge, dict) else None
        relation = edge.get("r") if isinstance(edge, dict) else None
        if not isinstance(head_id, str) or not isinstance(relation, str) or not relation_text(relation):
            self.report.skip("invalid tuple record", f"{where}: fields s, r of {edge!r}")
            return
        problem = self._node_problem(head_id) or self._node_problem(tail_id)
        if problem is not None:
            self.report.skip(problem, f"{where}: ({head_id}, {relation}, {tail_id})")
            return
        # The builder counts self-loops and duplicates.
        head, tail = self.builder.get_entity_id(head_id), self.builder.get_entity_id(tail_id)
        self.builder.add_triplet(head, relation_text(relation), tail)


def load_visualsem(root: str | os.PathLike, languages: Sequence[str] = ("en",)) -> KnowledgeGraph:
    """
    Load VisualSem (v2, or v1) as a multimodal knowledge graph.

    Reads from `root` (the `dataset/` folder of the release): `nodes.v2.json` (or v1 `nodes.json`),
    `tuples.v2.json` (or `tuples.json`), the optional `gloss_files/nodes.glosses.json`, and the images
    `images/<hh>/<sha1>.jpg`. The JSON files are streamed with bounded memory.

    Mapping:

    - Each node is one entity keyed by its BabelNet id, with TEXT views (its lemma from the main sense `ms`, e.g.
      `"space heater"`, falling back to `se[0]`; its glosses in `languages` from the gloss file; the v1 `gl` glosses)
      and IMAGE views (each image of `ims` whose file exists, as `images/<hh>/<sha1>.jpg` or the extensionless file
      that the authors' resize step left behind). As in the paper, a batch shows the node as one of these views.
    - Each tuple `{"s": head, "r": relation}` listed under a tail key is the triplet (head, relation, tail). The
      relation is turned into words as for ConceptNet (`"IsA"` -> `"is a"`), so that both vocabularies merge.

    Counted skips (see `graph.report`): image ids that are not 40 hexadecimal characters (this also refuses paths
    such as `../x`), missing image files (the view only), nodes left without any view and the triplets that name
    them, triplets naming a node absent from the nodes file, malformed records, duplicates and self-loops. Invalid
    JSON, an empty file or a wrong top-level type raise [`KnowledgeCLIPDataError`] naming the file and position.

    Args:
        root (`str` or `os.PathLike`):
            Folder holding the VisualSem files.
        languages (`Sequence[str]`, *optional*, defaults to `("en",)`):
            Languages of the glosses to keep (codes as in the gloss file's `available_languages`).

    Returns:
        [`KnowledgeGraph`]: the graph, named `"visualsem"`, with `root` as its root and its [`LoadReport`] as
        `.report`.
    """
    root = os.fspath(root)
    nodes_path = _first_existing(root, ("nodes.v2.json", "nodes.json"))
    tuples_path = _first_existing(root, ("tuples.v2.json", "tuples.json"))
    if nodes_path is None or tuples_path is None:
        raise FileNotFoundError(f"VisualSem: expected nodes.v2.json (or nodes.json) and tuples.v2.json in {root}")
    glosses_path = _first_existing(root, ("gloss_files/nodes.glosses.json", "gloss_files_v2/nodes.glosses.json"))
    report = LoadReport(source=f"visualsem ({root})")
    builder = KnowledgeGraphBuilder("visualsem", root=root)
    reader = _VisualSemReader(root, languages, builder, report)
    if glosses_path is not None:
        reader.read_glosses(glosses_path)
    reader.read_nodes(nodes_path)
    reader.read_tuples(tuples_path)
    return builder.build(report)
