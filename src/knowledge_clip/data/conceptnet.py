"""Loader for the ConceptNet 5.7 assertions dump (``conceptnet-assertions-5.7.0.csv.gz``).

The dump is a tab-separated file (despite its name) with no header and five columns: assertion URI, relation URI,
start URI, end URI, and a JSON object with ``dataset``, ``license``, ``sources`` and ``weight`` (plus
``surfaceText``/``surfaceStart``/``surfaceEnd`` when present). It has 34 million rows, about 3.4 million with two
English ends. The loader streams it through Arrow's CSV reader in 2 MiB blocks (bounded memory, gzip decompressed
on the fly) and classifies each block's rows with numpy byte tests on the undecoded columns. The rows it keeps are
validated in batches of about 65k (Arrow's JSON reader for the weights, numpy byte slicing at the ``/`` positions
for keys and labels); their entity keys are collected and dictionary-encoded once at the end, so no Python code
runs per row, and per distinct concept only the final bulk dictionary insert. Blocks are parsed in background threads; if a malformed line
shows up (the threaded reader cannot say on which line it was), the file is read again single-threaded so every
skip names its line.

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
# Rows are parsed in blocks of this many bytes (about 7k rows): memory stays bounded whatever the file size.
_BLOCK_BYTES = 1 << 21
# Rows that pass the byte-level filters are validated in batches of at least this many rows (amortises the
# fixed cost of each Arrow call; a batch holds at most this many rows plus one block's).
_CANDIDATE_ROWS = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_EXTERNAL_URL = b"/r/ExternalURL"
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
    # Not memory-mapped, although that parses about 15% faster: the mapped pages of a 10 GB plain-text dump would
    # count in the process's RSS (reclaimable, but indistinguishable from a leak to a user watching memory).
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


def _binary_parts(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The absolute value offsets (n + 1) and the data bytes of a binary or string array, as numpy views."""
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
    data = column.buffers()[2]
    return offsets, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def _slices(data: np.ndarray, begins: np.ndarray, ends: np.ndarray, underscores_to_spaces: bool = False) -> pa.Array:
    """A binary array of the byte ranges ``data[begins[i]:ends[i]]`` (one numpy gather)."""
    lengths = (ends - begins).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = data[np.repeat(begins - offsets[:-1], lengths) + np.arange(offsets[-1])]
    if underscores_to_spaces:
        values[values == ord("_")] = ord(" ")
    buffers = [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(values)]
    return pa.Array.from_buffers(pa.binary(), len(lengths), buffers)


def _text_segments(uris: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Splits URIs that start with ``/c/`` as ``/c/<lang>/<text>[/...]``, with numpy on the undecoded bytes.

    Returns the data bytes, and per URI: where it begins, where its text segment begins and ends (equal when it
    has no text, or no language), and where it ends.
    """
    offsets, data = _binary_parts(uris)
    begins, ends = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
    slashes = np.flatnonzero(data[offsets[0] : offsets[-1]] == ord("/")) + offsets[0]
    slashes = np.append(slashes, np.iinfo(np.int64).max)  # sentinel: indices below stay in range
    first = np.searchsorted(slashes, begins)  # the slash of "/c/"
    count = np.searchsorted(slashes, ends) - first
    language_end = slashes[np.minimum(first + 2, len(slashes) - 1)]
    has_text = (count >= 3) & (language_end > begins + 3)
    text_begins = np.where(has_text, language_end + 1, ends)
    text_ends = np.where(count >= 4, slashes[np.minimum(first + 3, len(slashes) - 1)], ends)
    text_ends = np.where(has_text, text_ends, ends)
    return data, begins, text_begins, text_ends, ends


def _concept_keys(uris: pa.Array, collapse_senses: bool) -> tuple[pa.Array, np.ndarray]:
    """Entity keys of concept URIs (sense suffix removed when `collapse_senses`) as a string array, and the mask
    of the well-formed ones (non-empty language and text segments, valid UTF-8); only the keys of well-formed URIs
    are meaningful (invalid UTF-8 ones are null)."""
    data, begins, text_begins, text_ends, ends = _text_segments(uris)
    well_formed = text_ends > text_begins
    keys = _slices(data, begins, text_ends) if collapse_senses else uris
    try:
        decoded = keys.cast(pa.string())
    except pa.ArrowInvalid:  # invalid UTF-8 somewhere in the batch (rare): decode row by row
        values = []
        for key in keys.to_pylist():
            try:
                values.append(key.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(None)
        decoded = pa.array(values, type=pa.string())
        well_formed &= _mask(decoded.is_valid())
    return decoded, well_formed


def _mask(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


class _Column:
    """The undecoded values of a binary column seen through numpy: lengths, and the first 8 bytes of each value as
    one little-endian uint64 word (one gather per column; prefix tests are then word compares)."""

    def __init__(self, column: pa.Array):
        offsets, self.data = _binary_parts(column)
        self.starts = offsets[:-1]
        self.lengths = np.diff(offsets)
        self.words = self._words(self.starts)

    def _words(self, starts: np.ndarray) -> np.ndarray:
        # An unaligned uint64 view with a stride of one byte: element i is bytes [i, i + 8) (numpy handles
        # unaligned reads). Bytes past a value's end are never compared (the length is checked first); the few
        # values starting in the last 7 bytes of the buffer are read byte by byte, padded with zeros.
        last = len(self.data) - 8
        if len(starts) and starts.max() <= last:
            view = np.ndarray((last + 1,), dtype="<u8", buffer=self.data, strides=(1,))
            return view[starts]
        words = np.zeros(len(starts), dtype=np.uint64)
        near_end = starts > last
        if last >= 0:
            view = np.ndarray((last + 1,), dtype="<u8", buffer=self.data, strides=(1,))
            words[~near_end] = view[starts[~near_end]]
        for row in np.flatnonzero(near_end).tolist():
            tail = self.data[starts[row] : starts[row] + 8].tobytes()
            words[row] = int.from_bytes(tail.ljust(8, b"\0"), "little")
        return words

    def matches(self, value: bytes, whole: bool = False) -> np.ndarray:
        """Mask of the values starting with `value` (equal to it if `whole`)."""
        mask = self.lengths == len(value) if whole else self.lengths >= len(value)
        head = value[:8]
        pattern = int.from_bytes(head, "little")
        bits = np.uint64((1 << (8 * len(head))) - 1)
        mask &= (self.words & bits) == np.uint64(pattern)
        if len(value) > 8:  # rare (ExternalURL): the rest, 8 bytes at a time, on the remaining rows only
            rows = np.flatnonzero(mask)
            for position in range(8, len(value), 8):
                chunk = value[position : position + 8]
                bits = np.uint64((1 << (8 * len(chunk))) - 1)
                words = self._words(self.starts[rows] + position)
                rows = rows[(words & bits) == np.uint64(int.from_bytes(chunk, "little"))]
            mask = np.zeros(len(self.starts), dtype=bool)
            mask[rows] = True
        return mask

    def matches_any(self, values: tuple[bytes, ...]) -> np.ndarray:
        mask = self.matches(values[0])
        for value in values[1:]:
            mask |= self.matches(value)
        return mask


def _labels(keys: pa.Array) -> pa.Array:
    """Labels of (well-formed) concept keys: the text segment with ``_`` replaced by spaces (``/c/en/ice_cream/n``
    -> "ice cream")."""
    data, _, text_begins, text_ends, _ = _text_segments(keys)
    return _slices(data, text_begins, text_ends, underscores_to_spaces=True).cast(pa.string())


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
        self.bad_relations: dict[bytes, str] = {}  # relation URI -> why it cannot be a relation
        self.line_index = _LineIndex()
        self.malformed_row_seen = False
        # Rows that passed the byte-level filters, waiting to be validated as a batch.
        self.pending: list[tuple[pa.RecordBatch, np.ndarray]] = []
        self.num_pending = 0
        # Kept rows: entity keys (string arrays, per validated batch) and relation ids.
        self.start_keys: list[pa.Array] = []
        self.end_keys: list[pa.Array] = []
        self.relations: list[np.ndarray] = []

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
                self._validate_pending()
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
        self._add_triplets()
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
        relations, starts, ends = (_Column(batch.column(index)) for index in range(3))
        # An empty line reads as one row of empty columns: it has 1 column, not 5.
        empty = (relations.lengths == 0) & (starts.lengths == 0) & (ends.lengths == 0)
        self._skip_rows("wrong column count", empty, batch, ordinals, _explain_empty_line)
        kept = ~empty
        external = kept & relations.matches(_EXTERNAL_URL, whole=True)
        self._skip_rows("ExternalURL", external, batch, ordinals, _explain_external_url)
        kept &= ~external
        concept = starts.matches(b"/c/") & ends.matches(b"/c/")
        self._skip_rows("non-concept end", kept & ~concept, batch, ordinals, _explain_non_concept)
        kept &= concept
        if self.language_prefixes is not None:
            in_languages = starts.matches_any(self.encoded_prefixes) & ends.matches_any(self.encoded_prefixes)
            self._skip_rows("language", kept & ~in_languages, batch, ordinals, self._explain_language)
            kept &= in_languages
        if self.selected_relations is not None:
            selected = _mask(pc.is_in(batch.column(0), value_set=self.selected_relations))
            self._skip_rows("relation not selected", kept & ~selected, batch, ordinals, _explain_relation)
            kept &= selected
        rows = np.flatnonzero(kept)
        if rows.size:
            self.pending.append((batch.take(pa.array(rows)), ordinals[rows]))
            self.num_pending += rows.size
            if self.num_pending >= _CANDIDATE_ROWS:
                self._validate_pending()

    def _validate_pending(self) -> None:
        if self.pending:
            candidates = pa.Table.from_batches([batch for batch, _ in self.pending]).combine_chunks()
            ordinals = np.concatenate([ordinals for _, ordinals in self.pending])
            self.pending, self.num_pending = [], 0
            self._validate(candidates, ordinals)

    def _validate(self, candidates: pa.Table, ordinals: np.ndarray) -> None:
        # Rows that passed the byte-level filters: validate their JSON, keys and relation, and keep the valid ones.
        columns = [column.chunk(0) if column.num_chunks == 1 else column.combine_chunks() for column in candidates]
        candidates = pa.RecordBatch.from_arrays(columns, names=candidates.column_names)
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
        start_keys, start_ok = _concept_keys(candidates.column(1), self.collapse_senses)
        end_keys, end_ok = _concept_keys(candidates.column(2), self.collapse_senses)
        bad_uri = valid & ~(start_ok & end_ok)
        self._skip_rows("bad concept uri", bad_uri, candidates, ordinals, _explain_bad_uri)
        valid &= ~bad_uri
        relations = self._relation_ids(candidates.column(0))
        bad_relation = valid & (relations < 0)
        self._skip_rows("bad relation uri", bad_relation, candidates, ordinals, self._explain_bad_relation)
        valid &= ~bad_relation
        rows = pa.array(np.flatnonzero(valid))
        self.start_keys.append(start_keys.take(rows))
        self.end_keys.append(end_keys.take(rows))
        self.relations.append(relations[valid])

    def _relation_ids(self, column: pa.Array) -> np.ndarray:
        """Relation id of each relation URI of `column`; -1 for URIs that are no relation (see `bad_relations`)."""
        encoded = pc.dictionary_encode(column)
        ids = np.array([self._relation_id(uri) for uri in encoded.dictionary.to_pylist()], dtype=np.int64)
        return ids[encoded.indices.to_numpy(zero_copy_only=False)] if ids.size else ids

    def _relation_id(self, uri: bytes) -> int:
        relation = self.relation_ids.get(uri)
        if relation is None:
            try:
                relation = self.builder.add_relation(relation_text(uri.decode("utf-8")))
            except ValueError as error:  # UnicodeDecodeError is a ValueError; so is an empty relation name
                self.bad_relations[uri] = str(error)
                return -1
            self.relation_ids[uri] = relation
        return relation

    def _explain_bad_relation(self, relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
        return "rel", self.bad_relations[relation_uri]

    def _add_triplets(self) -> None:
        """Turns the kept rows into entities and triplets: the keys of all of them are dictionary-encoded at once
        (the dictionary lists every concept in order of first appearance), so only each distinct concept reaches
        the builder, in one bulk call; the triplets go in as three int64 columns."""
        if not self.relations:
            return
        # Start keys then end keys of each validated batch, in file order: entity ids in order of first appearance.
        keys = pa.chunked_array([key for pair in zip(self.start_keys, self.end_keys) for key in pair], pa.string())
        self.start_keys, self.end_keys = [], []
        encoded = pc.dictionary_encode(keys)
        indices = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks]
        concepts = encoded.chunk(encoded.num_chunks - 1).dictionary  # every chunk shares the whole dictionary
        entities = self.builder.add_text_entities(concepts.to_pylist(), _labels(concepts).to_pylist())
        heads = entities[np.concatenate(indices[0::2])]
        tails = entities[np.concatenate(indices[1::2])]
        relations = np.concatenate(self.relations)
        self.relations = []
        self.builder.add_triplets(heads, relations, tails)


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
