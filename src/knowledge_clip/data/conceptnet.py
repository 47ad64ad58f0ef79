"""Loader for the ConceptNet 5.7 assertions dump (``conceptnet-assertions-5.7.0.csv.gz``).

The dump is a tab-separated file (despite its name) with no header and five columns: assertion URI, relation URI,
start URI, end URI, and a JSON object with ``dataset``, ``license``, ``sources`` and ``weight`` (plus
``surfaceText``/``surfaceStart``/``surfaceEnd`` when present). It has 34 million rows, about 3.4 million with two
English ends. The loader cuts the file into chunks of complete lines (16 MiB; gzip inflated on the fly), so memory
stays bounded whatever the file size, and parses the chunks in a pool of threads, one per core: one numpy scan finds
each chunk's tabs and newlines (the fields are then byte ranges of the chunk: nothing is copied or decoded) and numpy
byte tests classify its rows; only the rows that pass are copied out and validated (Arrow's JSON reader for the
weights, numpy byte slicing at the ``/`` positions for keys and labels). No Python code runs per row. Lines end at
``\n`` only, as the dump writes them (a ``\r`` before it is whitespace of the JSON column). The chunks' results are
merged in file order, so entity ids (order of first appearance), relation ids, line numbers and skip examples do not
depend on the chunk size or the thread timing; the keys of all kept rows are dictionary-encoded once at the end, so
per distinct concept only the final bulk insert runs.

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

import collections
import concurrent.futures
import dataclasses
import json
import mmap
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from ..errors import TruncatedFileError, format_location
from ..graph import KnowledgeGraph, KnowledgeGraphBuilder, LoadReport

__all__ = ["load_conceptnet", "relation_text", "uri_to_label"]

_COLUMNS = ("assertion", "rel", "start", "end", "json")
# Lines are parsed in chunks of about this many bytes (about 50k rows of the dump), one chunk per thread.
_CHUNK_BYTES = 16 << 20
# Threads parsing chunks: one per core, up to this many (beyond it, gzip inflation in the main thread is the bound).
_MAX_THREADS = 8
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


def _line_chunks(stream: pa.NativeFile) -> Iterator[pa.Buffer]:
    """The stream's bytes in chunks of complete lines, about `_CHUNK_BYTES` each (the last may lack its newline).

    Chunks are slices of the buffers the stream returns (zero-copy from a memory map); only a line that straddles
    two reads is copied, into a chunk of its own.
    """
    pending = b""  # the start of a line that the previous read cut
    while True:
        data = stream.read_buffer(_CHUNK_BYTES)
        if data.size == 0:
            if pending:
                yield pa.py_buffer(pending)
            return
        start = 0
        if pending:
            start = _after_newline(data, last=False)
            if start == 0:  # a line longer than a read: it goes on
                pending += data.to_pybytes()
                continue
            yield pa.py_buffer(pending + data.slice(0, start).to_pybytes())
        cut = max(start, _after_newline(data, last=True))
        if cut > start:
            yield data.slice(start, cut - start)
        pending = data.slice(cut).to_pybytes()


def _after_newline(data: pa.Buffer, last: bool) -> int:
    """The offset just after the first (or `last`) newline of `data`, 0 if it has none."""
    view = memoryview(data)
    for window in (1 << 16, data.size):  # lines are short: a newline is nearly always within 64 kB
        if last:
            start = max(0, data.size - window)
            found = bytes(view[start:]).rfind(b"\n")
        else:
            start, found = 0, bytes(view[:window]).find(b"\n")
        if found >= 0:
            return start + found + 1
    return 0


def _open_stream(path: Path) -> tuple[pa.NativeFile, Callable[[pa.Buffer], None]]:
    """The file's bytes as a stream, and a function that hands back the memory of a chunk once it is parsed.

    A gzip file is inflated on the fly. A plain file is memory-mapped, so chunks are zero-copy slices of the map
    (copying them out of the page cache cost a fifth of the load time). Each parsed chunk's pages are then unmapped
    (``madvise(MADV_DONTNEED)``; the file stays in the page cache): the process's resident memory does not grow
    with the file, which it otherwise would by its full size, 10 GB for the plain-text dump.
    """
    with open(path, "rb") as file:
        if file.read(2) == _GZIP_MAGIC:
            return pa.CompressedInputStream(pa.OSFile(os.fspath(path)), "gzip"), _keep
        if os.fstat(file.fileno()).st_size == 0:
            return pa.BufferReader(b""), _keep
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    whole = pa.py_buffer(mapped)
    dont_need = getattr(mmap, "MADV_DONTNEED", None)
    if dont_need is None or not hasattr(mapped, "madvise"):  # no madvise (Windows): pages stay mapped
        return pa.BufferReader(whole), _keep

    def release(chunk: pa.Buffer) -> None:
        offset = chunk.address - whole.address
        if 0 <= offset < whole.size:  # not a straddling line's copy
            start = offset - offset % mmap.PAGESIZE
            mapped.madvise(dont_need, start, offset + chunk.size - start)

    return pa.BufferReader(whole), release


def _keep(chunk: pa.Buffer) -> None:
    """Nothing to hand back: the chunk's memory is freed with it."""


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
            # Single-threaded: a chunk's candidates are a few MB at most, and the chunks already use every core.
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
    """Values of a column as byte ranges of one buffer seen through numpy: lengths, and the first 8 bytes of each
    value as one little-endian uint64 word (one gather per column; prefix tests are then word compares)."""

    def __init__(self, data: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        self.data = data
        self.starts = starts
        self.lengths = ends - starts
        self.words = self._words(starts)

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


class _Lines:
    """A chunk of lines split at tabs and newlines by one numpy scan, without copying.

    Fields are numbered through the chunk; every field and separator is a value of one binary array over the
    chunk's bytes (field k is value 2k), so a column of chosen lines is one Arrow take, and numpy sees the
    fields as byte ranges of the chunk.
    """

    def __init__(self, chunk: pa.Buffer):
        self.data = np.frombuffer(chunk, dtype=np.uint8)
        separators = np.flatnonzero(self.data <= ord("\n"))  # one comparison finds tabs and newlines alike
        kinds = self.data[separators]
        if separators.size and kinds.min() < ord("\t"):  # other control bytes belong to the fields
            separators, kinds = separators[kinds >= ord("\t")], kinds[kinds >= ord("\t")]
        if self.data.size and self.data[-1] != ord("\n"):  # the file's last line, without a newline
            separators, kinds = np.append(separators, self.data.size), np.append(kinds, ord("\n"))
        self.field_ends = separators
        self.field_begins = np.concatenate([[0], separators[:-1] + 1])
        line_ends = np.flatnonzero(kinds == ord("\n"))  # the last field of each line
        self.first_fields = np.concatenate([[0], line_ends[:-1] + 1])
        self.num_columns = line_ends - self.first_fields + 1
        self.num_lines = len(line_ends)
        # Offsets 0, end of field 0, begin of field 1, ...: values alternate fields and separators.
        offsets = np.empty(2 * separators.size + 1, dtype=np.int32)
        offsets[0], offsets[1::2] = 0, separators
        offsets[2::2] = np.minimum(separators + 1, self.data.size)
        self.array = pa.Array.from_buffers(pa.binary(), 2 * separators.size, [None, pa.py_buffer(offsets), chunk])

    def column(self, index: int) -> _Column:
        """Field `index` of every line as a `_Column` (meaningful for lines with more than `index` fields)."""
        fields = np.minimum(self.first_fields + index, self.field_ends.size - 1)
        return _Column(self.data, self.field_begins[fields], self.field_ends[fields])

    def values(self, index: int, lines: np.ndarray) -> pa.Array:
        """Field `index` of the given lines (which have more than `index` fields), as a binary array."""
        return self.array.take(pa.array(2 * (self.first_fields[lines] + index)))

    def fields(self, line: int) -> list[bytes]:
        """Fields 1-4 of a line with 5 fields: relation, start, end and JSON."""
        return [self.array[2 * (self.first_fields[line] + index)].as_py() for index in range(1, 5)]

    def explain_column_count(self, line: int) -> tuple[str, str]:
        if (
            self.num_columns[line] == 1
            and self.field_begins[self.first_fields[line]] == self.field_ends[self.first_fields[line]]
        ):
            return "columns", "empty line (1 column, expected 5)"
        return "columns", f"expected 5 tab-separated columns, found {self.num_columns[line]}"


@dataclasses.dataclass
class _ChunkResult:
    """What one chunk of lines contributed: its line count, its skips, and its kept rows."""

    num_lines: int
    # (reason, count, up to `max_examples` of them as (line within the chunk, field, problem)), in filter order.
    skips: list[tuple[str, int, list[tuple[int, str, str]]]]
    entity_keys: pa.Array  # per kept row, its start key then its end key
    relation_texts: list[str]  # texts of the kept rows' relations, in order of first appearance in the chunk
    relation_indices: np.ndarray  # per kept row, its index in `relation_texts`


class _ChunkParser:
    """Parses, filters and validates one chunk of complete lines; safe to run in several threads at once.

    Everything a chunk yields is returned, with line numbers relative to the chunk: the reader merges the results
    in file order, so entity and relation ids, skip examples and line numbers do not depend on thread timing.
    """

    def __init__(self, language_prefixes, selected_relations, min_weight, collapse_senses, max_examples):
        self.language_prefixes = language_prefixes
        self.encoded_prefixes = tuple(prefix.encode() for prefix in language_prefixes or ())
        self.selected_relations = selected_relations
        self.min_weight = min_weight
        self.collapse_senses = collapse_senses
        self.max_examples = max_examples
        self.relation_texts: dict[bytes, str | ValueError] = {}  # relation URI -> text, or why it is none

    def parse(self, chunk: pa.Buffer) -> _ChunkResult:
        lines = _Lines(chunk)
        skips = _ChunkSkips(self.max_examples)
        wrong = lines.num_columns != len(_COLUMNS)
        skips.rows("wrong column count", wrong, None, lines.explain_column_count)
        candidates, rows = self._filter(lines, ~wrong, skips)
        return self._validate(candidates, rows, skips, num_lines=lines.num_lines)

    def _filter(self, lines: _Lines, kept: np.ndarray, skips: _ChunkSkips) -> tuple[pa.RecordBatch, np.ndarray]:
        """Rules 2-5 of the module docstring, as byte tests on the undecoded fields of the lines with 5 columns:
        the rows that pass (columns 2-5, as binary), and their line indices in the chunk."""
        relations, starts, ends = (lines.column(index) for index in (1, 2, 3))
        external = kept & relations.matches(_EXTERNAL_URL, whole=True)
        skips.rows("ExternalURL", external, None, _explained(lines.fields, _explain_external_url))
        kept &= ~external
        concept = starts.matches(b"/c/") & ends.matches(b"/c/")
        skips.rows("non-concept end", kept & ~concept, None, _explained(lines.fields, _explain_non_concept))
        kept &= concept
        if self.language_prefixes is not None:
            in_languages = starts.matches_any(self.encoded_prefixes) & ends.matches_any(self.encoded_prefixes)
            skips.rows("language", kept & ~in_languages, None, _explained(lines.fields, self._explain_language))
            kept &= in_languages
        if self.selected_relations is not None:
            rows = np.flatnonzero(kept)
            selected = _mask(pc.is_in(lines.values(1, rows), value_set=self.selected_relations))
            not_selected = np.zeros_like(kept)
            not_selected[rows[~selected]] = True
            skips.rows("relation not selected", not_selected, None, _explained(lines.fields, _explain_relation))
            kept &= ~not_selected
        rows = np.flatnonzero(kept)
        columns = [lines.values(index, rows) for index in (1, 2, 3, 4)]
        return pa.RecordBatch.from_arrays(columns, names=list(_COLUMNS[1:])), rows

    def _validate(
        self, candidates: pa.RecordBatch, ordinals: np.ndarray, skips: _ChunkSkips, num_lines: int
    ) -> _ChunkResult:
        """Rules 6-8 on the rows that passed the byte tests: JSON, weight, concept and relation URIs."""
        weights, json_problems = _parse_weights(candidates.column(3))
        fields = _batch_fields(candidates)
        valid = np.ones(candidates.num_rows, dtype=bool)
        for row, problem in json_problems.items():
            valid[row] = False
            skips.located("bad json", int(ordinals[row]) + 1, "json", problem)
        missing_weight = valid & ~np.isfinite(weights)
        skips.rows("missing or non-numeric weight", missing_weight, ordinals, _explained(fields, _explain_weight))
        valid &= ~missing_weight
        if self.min_weight is not None:
            light = valid & (weights < self.min_weight)
            skips.rows("weight below min_weight", light, ordinals, _explained(fields, self._explain_min_weight))
            valid &= ~light
        start_keys, start_ok = _concept_keys(candidates.column(1), self.collapse_senses)
        end_keys, end_ok = _concept_keys(candidates.column(2), self.collapse_senses)
        bad_uri = valid & ~(start_ok & end_ok)
        skips.rows("bad concept uri", bad_uri, ordinals, _explained(fields, _explain_bad_uri))
        valid &= ~bad_uri
        encoded = pc.dictionary_encode(candidates.column(0))
        is_relation = [isinstance(self._relation_text(uri), str) for uri in encoded.dictionary.to_pylist()]
        bad_relation = valid & ~np.array(is_relation, dtype=bool)[_mask(encoded.indices)]
        skips.rows("bad relation uri", bad_relation, ordinals, _explained(fields, self._explain_bad_relation))
        valid &= ~bad_relation
        rows = np.flatnonzero(valid)
        kept_relations = pc.dictionary_encode(candidates.column(0).take(rows))
        # Start and end keys interleaved: the concepts' order of first appearance, whatever the chunk boundaries.
        interleaved = np.stack([rows, rows + candidates.num_rows], axis=1).ravel()
        return _ChunkResult(
            num_lines=num_lines,
            skips=skips.events,
            entity_keys=pa.concat_arrays([start_keys, end_keys]).take(interleaved),
            relation_texts=[self.relation_texts[uri] for uri in kept_relations.dictionary.to_pylist()],
            relation_indices=_mask(kept_relations.indices).astype(np.int64),
        )

    def _relation_text(self, uri: bytes) -> str | ValueError:
        text = self.relation_texts.get(uri)
        if text is None:
            try:
                text = relation_text(uri.decode("utf-8"))
                if not text:
                    raise ValueError(f"{_shown(uri)} names no relation")
            except ValueError as error:  # UnicodeDecodeError is a ValueError
                text = error
            self.relation_texts[uri] = text  # the same value in every thread: no lock needed
        return text

    def _explain_language(self, relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
        field, uri = ("start", start) if not start.startswith(self.encoded_prefixes) else ("end", end)
        languages = tuple(prefix.split("/")[2] for prefix in self.language_prefixes)
        return field, f"{_shown(uri)} is not in languages {languages}"

    def _explain_min_weight(self, relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
        return "weight", f"{json.loads(metadata)['weight']} < min_weight {self.min_weight}"

    def _explain_bad_relation(self, relation_uri: bytes, start: bytes, end: bytes, metadata: bytes) -> tuple[str, str]:
        return "rel", str(self.relation_texts[relation_uri])


class _ChunkSkips:
    """The skips of one chunk, in the order they are found: per reason a count and its first located rows."""

    def __init__(self, max_examples: int):
        self.max_examples = max_examples
        self.events: list[tuple[str, int, list[tuple[int, str, str]]]] = []

    def located(self, reason: str, line: int, field: str, problem: str) -> None:
        self.events.append((reason, 1, [(line, field, problem)]))

    def rows(self, reason: str, mask: np.ndarray, line_indices: np.ndarray | None, explain) -> None:
        """Counts the rows selected by `mask`; only the first few are located and explained (for the examples).

        Args:
            line_indices: The line index in the chunk of each row (`None`: rows are lines).
            explain: Returns ``(field, problem)`` of a row.
        """
        count = int(mask.sum())
        if count:
            examples = []
            for row in np.flatnonzero(mask)[: self.max_examples].tolist():
                line = row if line_indices is None else int(line_indices[row])
                examples.append((line + 1, *explain(row)))
            self.events.append((reason, count, examples))


def _explained(fields: Callable[[int], list[bytes]], explain: Callable[..., tuple[str, str]]):
    """A row's ``(field, problem)``: `explain` called with the relation, start, end and JSON `fields` of the row."""
    return lambda row: explain(*fields(row))


def _batch_fields(batch: pa.RecordBatch) -> Callable[[int], list[bytes]]:
    """The values of a row of `batch` (columns relation, start, end and JSON)."""
    return lambda row: [column[row].as_py() for column in batch.columns]


class _ConceptNetReader:
    """One pass over an assertions file.

    The file is cut into chunks of complete lines (about `_CHUNK_BYTES` each; gzip inflated on the fly) that
    `_ChunkParser` handles in a pool of threads — Arrow's parser and numpy release the GIL, so the chunks are parsed
    on every core — and whose results are merged here in file order. At most two chunks per thread are in flight:
    memory stays bounded whatever the file size.
    """

    def __init__(self, path, name, language_prefixes, selected_relations, min_weight, collapse_senses):
        self.source = os.fspath(path)
        self.path = path
        self.report = LoadReport(source=self.source)
        self.parser = _ChunkParser(
            language_prefixes, selected_relations, min_weight, collapse_senses, self.report.max_examples
        )
        self.builder = KnowledgeGraphBuilder(name)
        self.lines_read = 0
        # Kept rows: entity keys (string arrays, per chunk, start and end key of each row) and relation ids.
        self.entity_keys: list[pa.Array] = []
        self.relations: list[np.ndarray] = []

    def read(self) -> KnowledgeGraph:
        num_threads = max(1, min(_MAX_THREADS, os.cpu_count() or 1))
        read_error = None
        stream, release = _open_stream(self.path)
        with concurrent.futures.ThreadPoolExecutor(num_threads) as pool, stream:
            in_flight: collections.deque[tuple[concurrent.futures.Future, pa.Buffer]] = collections.deque()
            chunks = _line_chunks(stream)
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except (OSError, EOFError, pa.ArrowException) as error:  # truncated or corrupt gzip
                    read_error = error
                    break
                in_flight.append((pool.submit(self.parser.parse, chunk), chunk))
                if len(in_flight) > 2 * num_threads:
                    self._merge(*in_flight.popleft(), release)
            while in_flight:  # after a read error too: the lines before it are located exactly
                self._merge(*in_flight.popleft(), release)
        if read_error is not None:
            raise TruncatedFileError(
                f"cannot read past this line: the file is truncated or corrupt ({read_error})",
                file=self.source,
                line=self.lines_read,
            )
        self.report.records_read = self.lines_read
        self._add_triplets()
        return self.builder.build(self.report)

    def _merge(self, future: concurrent.futures.Future, chunk: pa.Buffer, release) -> None:
        result = future.result()
        release(chunk)
        for reason, count, examples in result.skips:
            for line, field, problem in examples:
                self.report.skip(reason, f"{format_location(self.source, self.lines_read + line, field)}: {problem}")
            if count > len(examples):
                self.report.skip(reason, count=count - len(examples))
        relation_ids = np.array([self.builder.add_relation(text) for text in result.relation_texts], dtype=np.int64)
        self.relations.append(relation_ids[result.relation_indices])
        self.entity_keys.append(result.entity_keys)
        self.lines_read += result.num_lines

    def _add_triplets(self) -> None:
        """Turns the kept rows into entities and triplets: the keys of all of them are dictionary-encoded at once
        (the dictionary lists every concept in order of first appearance), so only each distinct concept reaches
        the builder, in one bulk call; the triplets go in as three int64 columns."""
        if not any(len(relations) for relations in self.relations):
            return
        # Keys in file order (start then end of each row): entity ids in order of first appearance.
        encoded = pc.dictionary_encode(pa.chunked_array(self.entity_keys, pa.string()))
        self.entity_keys = []
        indices = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks])
        concepts = encoded.chunk(encoded.num_chunks - 1).dictionary  # every chunk shares the whole dictionary
        entities = self.builder.add_text_entities(concepts.to_pylist(), _labels(concepts).to_pylist())
        heads, tails = entities[indices[0::2]], entities[indices[1::2]]
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
    return _ConceptNetReader(path, name, language_prefixes, selected_relations, min_weight, collapse_senses).read()
