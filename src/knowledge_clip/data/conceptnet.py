"""Loader for the ConceptNet 5.7 assertions dump (``conceptnet-assertions-5.7.0.csv.gz``).

The dump is a tab-separated file (despite its name) with no header and five columns: assertion URI, relation URI,
start URI, end URI, and a JSON object with ``dataset``, ``license``, ``sources`` and ``weight`` (plus
``surfaceText``/``surfaceStart``/``surfaceEnd`` when present). It has 34 million rows, about 3.4 million with two
English ends. The loader streams it through Arrow's CSV reader in 4 MiB blocks (bounded memory, gzip decompressed
on the fly), classifies each block's rows with vectorised byte tests on undecoded columns, and only runs Python
code for the rows it keeps. Blocks are parsed in background threads; if a malformed line shows up (the threaded
reader cannot say on which line it was), the file is read again single-threaded so every skip names its line.

Per row, in this order (each skipped row is counted once, under the first reason that applies):

1. the row must have exactly 5 tab-separated columns (``"wrong column count"``);
2. ``/r/ExternalURL`` rows are skipped (``"ExternalURL"``);
3. both ends must be concepts, ``/c/<lang>/<text>...`` (``"non-concept end"``, e.g. ``/x/`` sub-word terms);
4. both ends must be in `languages`, by exact URI segment, so ``/c/enm/`` (Middle English) is not
   English (``"language"``);
5. the relation must be in `relations` when given (``"relation not selected"``);
6. the 5th column must be a JSON object (``"bad json"``) with a finite numeric ``weight``
   (``"missing or non-numeric weight"``); this column is parsed only for rows that pass 1-5, i.e. only rows that
   would become triplets are validated as JSON;
7. the weight must be at least `min_weight` when given (``"weight below min_weight"``);
8. the URIs must be valid UTF-8 with a non-empty text segment (``"bad concept uri"``, ``"bad relation uri"``);
9. duplicates (common once senses are collapsed) and self-loops are counted by the graph builder.

So ``report.records_read == report.triplets_loaded + report.total_skipped``.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from ..errors import TruncatedFileError, format_location
from ..graph import KnowledgeGraph, KnowledgeGraphBuilder, LoadReport

__all__ = ["load_conceptnet", "relation_text", "uri_to_label"]

_COLUMNS = ("assertion", "rel", "start", "end", "json")
# Rows are parsed in blocks of this many bytes (about 15k rows): memory stays bounded whatever the file size.
_BLOCK_BYTES = 1 << 22
_GZIP_MAGIC = b"\x1f\x8b"
_EXTERNAL_URL = b"/r/ExternalURL"
# A concept URI has a non-empty text segment: /c/<lang>/<text>[/<pos>/...]; the sense suffix follows the text.
_CONCEPT_TEXT = r"^/c/[^/]+/[^/]"
_SENSE_SUFFIX = r"^(/c/[^/]+/[^/]+)/.*$"
_WEIGHT_ONLY = pajson.ParseOptions(
    explicit_schema=pa.schema([("weight", pa.float64())]), unexpected_field_behavior="ignore"
)
_JSON_SINGLE_THREAD = pajson.ReadOptions(use_threads=False)
_CAMEL_CASE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def uri_to_label(uri: str) -> str:
    """Returns the text of a ConceptNet concept URI, as ConceptNet's ``uri_to_label`` does.

    Args:
        uri (`str`): A concept URI, e.g. ``"/c/en/ice_cream/n/wn/food"``.

    Returns:
        `str`: The text segment with ``_`` replaced by spaces, e.g. ``"ice cream"``.
    """
    parts = uri.split("/")
    if len(parts) < 4 or parts[1] != "c" or not parts[3]:
        raise ValueError(f"not a ConceptNet concept URI: {uri!r}")
    return parts[3].replace("_", " ")


def relation_text(uri: str) -> str:
    """Turns a relation URI into the text a text encoder sees.

    Args:
        uri (`str`): A relation URI or name, e.g. ``"/r/IsA"``, ``"/r/dbpedia/genre"``, ``"influencedBy"``.

    Returns:
        `str`: Lower-case words, e.g. ``"is a"``, ``"genre"``, ``"influenced by"``.
    """
    name = uri.removeprefix("/r/").rsplit("/", 1)[-1]
    return _CAMEL_CASE_BOUNDARY.sub(" ", name).lower()


def _relation_uri(name: str) -> bytes:
    name = name.strip()
    if not name or name in ("/r/", "/r") or " " in name:
        raise ValueError(f'relations are given as URIs or names ("/r/IsA", "IsA"), not {name!r}')
    return (name if name.startswith("/r/") else f"/r/{name}").encode("utf-8")


def _shown(value: bytes) -> str:
    return value[:100].decode("utf-8", errors="replace")


class _LineIndex:
    """Maps the ordinal of a row the CSV reader produced to its physical line number.

    The reader drops the (rare) lines with a wrong number of columns; their line numbers are recorded here as they
    are seen, in increasing order, so every later row can still be located in the file.
    """

    def __init__(self):
        self.rejected_lines: list[int] = []

    def line_of(self, ordinal: int) -> int:
        line = ordinal + 1
        while True:
            shifted = ordinal + 1 + bisect.bisect_right(self.rejected_lines, line)
            if shifted == line:
                return line
            line = shifted


def _open_stream(path: Path) -> pa.NativeFile:
    with open(path, "rb") as probe:
        is_gzip = probe.read(2) == _GZIP_MAGIC
    stream = pa.OSFile(os.fspath(path))
    return pa.CompressedInputStream(stream, "gzip") if is_gzip else stream


def _explain_empty_line(relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
    return "columns", "empty line (1 column, expected 5)"


def _explain_external_url(relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
    return "rel", f"{_shown(relation_uri)} links to a web page, not a concept"


def _explain_non_concept(relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
    field, uri = ("start", start) if not start.startswith(b"/c/") else ("end", end)
    return field, f"{_shown(uri)} is not a /c/ concept URI"


def _explain_relation(relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
    return "rel", f"{_shown(relation_uri)} is not in `relations`"


def _explain_weight(relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
    return "weight", f"weight is {json.loads(metadata).get('weight')!r}, not a finite number"


def _explain_bad_uri(relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
    return "start/end", f"malformed concept URI (empty text or invalid UTF-8): {_shown(start)} / {_shown(end)}"


def _parse_weights(metadata_column: pa.Array) -> tuple[np.ndarray, dict[int, str]]:
    """Parses the JSON column of candidate rows; returns their weights (NaN: missing or not a number) and, by row,
    the problem of each row that is not a JSON object.

    The whole column is parsed at once by Arrow's JSON reader; only when that fails (some row is broken) is it
    parsed again row by row to find the culprits.
    """
    if metadata_column.null_count == 0:
        # Every value followed by a newline, as one contiguous buffer: newline-delimited JSON for Arrow's reader.
        lines = pc.binary_join_element_wise(metadata_column, b"", b"\n")
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
        payload = lines.buffers()[2][offsets[0] : offsets[-1]]
        try:
            # Single-threaded: a block's candidates are a few hundred kB, less than a thread pool's start-up cost.
            table = pajson.read_json(
                pa.BufferReader(payload), read_options=_JSON_SINGLE_THREAD, parse_options=_WEIGHT_ONLY
            )
        except pa.ArrowInvalid:
            table = None
        if table is not None and table.num_rows == len(metadata_column):
            weights = table.column("weight").to_numpy().astype(np.float64)
            return weights, {}
    weights = np.full(len(metadata_column), np.nan)
    problems = {}
    for row, value in enumerate(metadata_column.to_pylist()):
        try:
            metadata = json.loads(value)
        except (TypeError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            problems[row] = f"invalid JSON ({error})"
            continue
        if not isinstance(metadata, dict):
            problems[row] = f"expected a JSON object, got {type(metadata).__name__}"
            continue
        weight = metadata.get("weight")
        if isinstance(weight, (int, float)) and not isinstance(weight, bool):
            weights[row] = weight
    return weights, problems


def _concept_keys(uris: pa.Array, collapse_senses: bool) -> list[str | None]:
    """Entity keys of concept URIs (sense suffix removed when `collapse_senses`); `None` for malformed URIs."""
    well_formed = _mask(pc.match_substring_regex(uris, pattern=_CONCEPT_TEXT))
    keys = pc.replace_substring_regex(uris, pattern=_SENSE_SUFFIX, replacement=r"\1") if collapse_senses else uris
    try:
        decoded = keys.cast(pa.string()).to_pylist()
    except pa.ArrowInvalid:  # invalid UTF-8 somewhere in the batch: decode row by row
        decoded = []
        for key in keys.to_pylist():
            try:
                decoded.append(key.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(None)
    return [key if ok else None for key, ok in zip(decoded, well_formed.tolist())]


def _mask(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def _starts_with_any(column: pa.Array, prefixes: tuple[str, ...]) -> np.ndarray:
    matches = _mask(pc.starts_with(column, pattern=prefixes[0]))
    for prefix in prefixes[1:]:
        matches |= _mask(pc.starts_with(column, pattern=prefix))
    return matches


class _RestartSingleThreaded(Exception):
    """Raised when the threaded reader met a malformed line: only the single-threaded reader can locate it."""


class _ConceptNetReader:
    """One pass over an assertions file: filters rows in Arrow batches and feeds the kept ones to a builder.

    With `use_threads`, Arrow parses blocks in background threads while Python handles the kept rows, but it
    cannot say on which line a malformed row was; the first one seen aborts the pass (`_RestartSingleThreaded`)
    and the caller starts over single-threaded, where every line is located exactly.
    """

    def __init__(self, path, name, language_prefixes, selected_relations, min_weight, collapse_senses, use_threads):
        self.source = os.fspath(path)
        self.path = path
        self.language_prefixes = language_prefixes
        self.encoded_prefixes = tuple(prefix.encode() for prefix in language_prefixes or ())
        self.selected_relations = selected_relations
        self.min_weight = min_weight
        self.collapse_senses = collapse_senses
        self.use_threads = use_threads
        self.report = LoadReport(source=self.source)
        self.builder = KnowledgeGraphBuilder(name)
        self.relation_ids: dict[bytes, int] = {}
        self.line_index = _LineIndex()
        self.malformed_row_seen = False

    def read(self) -> KnowledgeGraph:
        columns = list(_COLUMNS)
        read_options = pacsv.ReadOptions(column_names=columns, block_size=_BLOCK_BYTES, use_threads=self.use_threads)
        parse_options = pacsv.ParseOptions(
            delimiter="\t", quote_char=False, ignore_empty_lines=False, invalid_row_handler=self._on_invalid_row
        )
        # Binary columns: nothing is decoded (or UTF-8 checked) until a row is kept.
        convert_options = pacsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.binary()), include_columns=columns[1:]
        )
        first_row = 0
        try:
            with _open_stream(self.path) as stream:
                for batch in pacsv.open_csv(stream, read_options, parse_options, convert_options):
                    if self.malformed_row_seen and self.use_threads:
                        raise _RestartSingleThreaded
                    self._read_batch(batch, first_row + np.arange(batch.num_rows))
                    first_row += batch.num_rows
        except (OSError, EOFError, pa.ArrowException) as error:
            if self.malformed_row_seen and self.use_threads:
                raise _RestartSingleThreaded from None  # locate the lines exactly before reporting
            line = self.line_index.line_of(first_row - 1) if first_row else 0
            raise TruncatedFileError(
                f"cannot read past this line: the file is truncated or corrupt ({error})", file=self.source, line=line
            ) from None
        if self.malformed_row_seen and self.use_threads:
            raise _RestartSingleThreaded
        self.report.records_read = first_row + len(self.line_index.rejected_lines)
        return self.builder.build(self.report)

    def _skip(self, reason: str, ordinal: int, field: str, problem: str) -> None:
        where = format_location(self.source, self.line_index.line_of(ordinal), field)
        self.report.skip(reason, f"{where}: {problem}")

    def _on_invalid_row(self, row) -> str:
        self.malformed_row_seen = True
        if row.number is not None:
            self.line_index.rejected_lines.append(row.number)
            where = format_location(self.source, row.number, "columns")
            problem = f"expected 5 tab-separated columns, found {row.actual_columns}"
            self.report.skip("wrong column count", f"{where}: {problem}")
        return "skip"

    def _skip_rows(self, reason: str, mask: np.ndarray, table: pa.RecordBatch, ordinals: np.ndarray, explain) -> None:
        # Counts every row of `table` selected by `mask`; only the first few are located (for the examples).
        count = int(mask.sum())
        if not count:
            return
        room = self.report.max_examples - len(self.report.examples.get(reason, []))
        located = np.flatnonzero(mask)[: max(room, 0)].tolist()
        for row in located:
            field, problem = explain(*(column[row].as_py() for column in table.columns))
            self._skip(reason, int(ordinals[row]), field, problem)
        if count > len(located):
            self.report.skip(reason, count=count - len(located))

    def _explain_language(self, relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
        field, uri = ("start", start) if not start.startswith(self.encoded_prefixes) else ("end", end)
        languages = tuple(prefix.split("/")[2] for prefix in self.language_prefixes)
        return field, f"{_shown(uri)} is not in languages {languages}"

    def _explain_min_weight(self, relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
        return "weight", f"{json.loads(metadata)['weight']} < min_weight {self.min_weight}"

    def _read_batch(self, batch: pa.RecordBatch, ordinals: np.ndarray) -> None:
        relation_column, start_column, end_column = batch.column(0), batch.column(1), batch.column(2)
        # An empty line reads as one row of empty columns: it has 1 column, not 5.
        empty = _mask(pc.equal(relation_column, b"")) & _mask(pc.equal(start_column, b""))
        empty &= _mask(pc.equal(end_column, b""))
        self._skip_rows("wrong column count", empty, batch, ordinals, _explain_empty_line)
        kept = ~empty
        external = kept & _mask(pc.equal(relation_column, _EXTERNAL_URL))
        self._skip_rows("ExternalURL", external, batch, ordinals, _explain_external_url)
        kept &= ~external
        concept = _starts_with_any(start_column, ("/c/",)) & _starts_with_any(end_column, ("/c/",))
        self._skip_rows("non-concept end", kept & ~concept, batch, ordinals, _explain_non_concept)
        kept &= concept
        if self.language_prefixes is not None:
            in_languages = _starts_with_any(start_column, self.language_prefixes)
            in_languages &= _starts_with_any(end_column, self.language_prefixes)
            self._skip_rows("language", kept & ~in_languages, batch, ordinals, self._explain_language)
            kept &= in_languages
        if self.selected_relations is not None:
            selected = _mask(pc.is_in(relation_column, value_set=self.selected_relations))
            self._skip_rows("relation not selected", kept & ~selected, batch, ordinals, _explain_relation)
            kept &= selected
        rows = np.flatnonzero(kept)
        if rows.size:
            self._add_rows(batch.take(pa.array(rows)), ordinals[rows])

    def _add_rows(self, candidates: pa.RecordBatch, ordinals: np.ndarray) -> None:
        # Rows that passed the byte-level filters: validate their JSON, then turn them into triplets.
        weights, json_problems = _parse_weights(candidates.column(3))
        valid = np.ones(candidates.num_rows, dtype=bool)
        for row, problem in json_problems.items():
            valid[row] = False
            self._skip("bad json", int(ordinals[row]), "json", problem)
        missing_weight = valid & ~np.isfinite(weights)
        self._skip_rows("missing or non-numeric weight", missing_weight, candidates, ordinals, _explain_weight)
        valid &= ~missing_weight
        if self.min_weight is not None:
            light = valid & (weights < self.min_weight)
            self._skip_rows("weight below min_weight", light, candidates, ordinals, self._explain_min_weight)
            valid &= ~light
        start_keys = _concept_keys(candidates.column(1), self.collapse_senses)
        end_keys = _concept_keys(candidates.column(2), self.collapse_senses)
        bad_uri = valid & np.array([start is None or end is None for start, end in zip(start_keys, end_keys)])
        self._skip_rows("bad concept uri", bad_uri, candidates, ordinals, _explain_bad_uri)
        valid &= ~bad_uri
        relations = [
            self._relation_id(uri, int(ordinal))
            for uri, ordinal in zip(candidates.column(0).to_pylist(), ordinals.tolist())
        ]
        valid &= np.array([relation is not None for relation in relations])
        rows = np.flatnonzero(valid).tolist()
        self.builder.add_triplets(
            self._entity_ids([start_keys[row] for row in rows]),
            [relations[row] for row in rows],
            self._entity_ids([end_keys[row] for row in rows]),
        )

    def _entity_ids(self, keys: list[str]) -> list[int]:
        # One C-level dictionary pass for the (mostly known) keys; Python work only for new concepts.
        entities = self.builder.get_entity_ids(keys)
        for index in [index for index, entity in enumerate(entities) if entity is None]:
            key = keys[index]
            label = key.split("/", 4)[3].replace("_", " ")
            entities[index] = self.builder.add_entity(key, text=label)
        return entities

    def _relation_id(self, uri: bytes, ordinal: int) -> int | None:
        relation = self.relation_ids.get(uri)
        if relation is None:
            try:
                relation = self.builder.add_relation(relation_text(uri.decode("utf-8")))
            except ValueError as error:  # UnicodeDecodeError is a ValueError; so is an empty relation name
                self._skip("bad relation uri", ordinal, "rel", str(error))
                return None
            self.relation_ids[uri] = relation
        return relation


def load_conceptnet(
    path: str | os.PathLike,
    languages: Iterable[str] | None = ("en",),
    min_weight: float | None = None,
    relations: Iterable[str] | None = None,
    collapse_senses: bool = True,
    name: str = "conceptnet",
) -> KnowledgeGraph:
    """Loads a ConceptNet 5.7 assertions file (``.csv`` or ``.csv.gz``) as a text-only knowledge graph.

    Every concept becomes an entity keyed by its URI, with one TEXT view, its label (``/c/en/ice_cream/n`` ->
    ``"ice cream"``). Relations become text (``/r/IsA`` -> ``"is a"``, ``/r/dbpedia/genre`` -> ``"genre"``). See the
    module docstring for the exact row rules and the reasons counted in the report.

    Args:
        path (`str` or `os.PathLike`): The assertions file; gzip is detected from the content, not the name.
        languages (`Iterable[str]`, *optional*, defaults to ``("en",)``): Language codes both ends must have
            (exact URI segment). `None` keeps every language.
        min_weight (`float`, *optional*): Drop assertions whose weight is below this (weights range above 1).
        relations (`Iterable[str]`, *optional*): Relations to keep, as URIs (``"/r/IsA"``) or names (``"IsA"``,
            ``"dbpedia/genre"``). `None` keeps all but ``ExternalURL``.
        collapse_senses (`bool`, *optional*, defaults to `True`): Merge ``/c/en/cat/n/...`` into ``/c/en/cat``.
        name (`str`, *optional*, defaults to ``"conceptnet"``): Name of the graph (its namespace when merged).

    Returns:
        `KnowledgeGraph`: The graph; `graph.report` counts the rows read, loaded and skipped by reason.

    Raises:
        TruncatedFileError: If the file (gzip or plain) is truncated or corrupt; names the file and the last line
            read.
        EmptyGraphError: If no row passes the filters.
    """
    path = Path(path)
    if isinstance(languages, str):
        languages = (languages,)
    language_prefixes = None
    if languages is not None:
        languages = tuple(code.strip() for code in languages)
        if not languages or any(not code or "/" in code for code in languages):
            raise ValueError(f"languages must be non-empty ConceptNet language codes, got {languages!r}")
        # The trailing slash makes the test exact: "/c/en/" does not match "/c/enm/...".
        language_prefixes = tuple(f"/c/{code}/" for code in languages)
    selected_relations = None
    if relations is not None:
        selected_relations = pa.array(sorted({_relation_uri(name_) for name_ in relations}), type=pa.binary())
        if len(selected_relations) == 0:
            raise ValueError("`relations` is empty: no assertion could be kept")
    options = (path, name, language_prefixes, selected_relations, min_weight, collapse_senses)
    try:
        return _ConceptNetReader(*options, use_threads=True).read()
    except _RestartSingleThreaded:
        return _ConceptNetReader(*options, use_threads=False).read()
