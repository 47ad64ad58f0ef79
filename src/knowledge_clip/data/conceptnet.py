"""Loader for the ConceptNet 5.7 assertions dump (``conceptnet-assertions-5.7.0.csv.gz``).

The dump is a tab-separated file (despite its name) with no header and five columns: assertion URI, relation URI,
start URI, end URI, and a JSON object with ``dataset``, ``license``, ``sources`` and ``weight`` (plus
``surfaceText``/``surfaceStart``/``surfaceEnd`` when present). It has 34 million rows, about 3.4 million with two
English ends. The loader cuts the file into chunks of complete lines (16 MiB; gzip inflated on the fly), so memory
stays bounded whatever the file size, and parses the chunks in a pool of threads, one per core. A chunk is read by
one compiled pass over its bytes (`_conceptnet_kernels.parse_chunk`, numba, without the GIL): it splits the lines at
tabs and newlines 8 bytes at a time, applies rules 1-4 below to every line, and for the lines that pass reads the
weight from the JSON column and the text segments of the concept URIs while their bytes are in the cache. Nothing is
copied or decoded for the other lines; the kept rows' keys and relations are then cut out of the chunk as Arrow
arrays. No Python code runs per row. Lines end at ``\n`` only, as the dump writes them (a ``\r`` before it is
whitespace of the JSON column). The chunks' results are merged in file order, so entity ids (order of first
appearance), relation ids, line numbers and skip examples do not depend on the chunk size or the thread timing; the
keys of all kept rows are dictionary-encoded once at the end, and the concepts go to the graph builder as Arrow
arrays.

Per row, in this order (each skipped row is counted once, under the first reason that applies):

1. the row must have exactly 5 tab-separated columns (``"wrong column count"``);
2. ``/r/ExternalURL`` rows are skipped (``"ExternalURL"``);
3. both ends must be concepts, ``/c/<lang>/<text>...`` (``"non-concept end"``, e.g. ``/x/`` sub-word terms);
4. both ends must be in `languages`, by exact URI segment, so ``/c/enm/`` (Middle English) is not
   English (``"language"``);
5. the relation must be in `relations` when given (``"relation not selected"``);
6. the 5th column must be a JSON object (``"bad json"``) with a finite numeric ``weight``
   (``"missing or non-numeric weight"``), as Python's `json` reads it; only rows that pass 1-5, which could become
   triplets, are validated as JSON (a strict compiled reader leaves to `json` whatever it does not accept: invalid
   JSON, which `json` then names, and rare forms such as ``NaN``);
7. the weight must be at least `min_weight` when given (``"weight below min_weight"``);
8. the URIs must be valid UTF-8 with a non-empty text segment (``"bad concept uri"``, ``"bad relation uri"``);
9. duplicates (common once senses are collapsed) and self-loops are counted by the graph builder.

So ``report.records_read == report.triplets_loaded + report.total_skipped``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import logging
import mmap
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import TruncatedFileError, format_location
from ..graph import KnowledgeGraph, KnowledgeGraphBuilder, LoadReport
from . import _conceptnet_kernels as kernels

__all__ = ["load_conceptnet", "relation_text", "uri_to_label"]

logger = logging.getLogger(__name__)

# Lines are parsed in chunks of about this many bytes (about 50k rows of the dump), one chunk per thread.
_CHUNK_BYTES = 16 << 20
# Threads parsing chunks: one per core, up to this many (beyond it, gzip inflation in the main thread is the bound).
_MAX_THREADS = 8
_GZIP_MAGIC = b"\x1f\x8b"
_EXTERNAL_URL = b"/r/ExternalURL"
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

    Chunks are slices of the buffers the stream returns (zero-copy from a memory map). A seekable stream is read
    again from the start of the line a read cut; on another one (gzip), that line is copied into a chunk of its
    own, with the start of the next read.
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
        if cut > 0 and stream.seekable():
            stream.seek(stream.tell() - (data.size - cut))
            pending = b""
        else:
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


def _python_json_weight(metadata: bytes) -> tuple[float, str | None]:
    """What Python's `json` makes of a JSON column the compiled reader left to it: the weight (NaN if missing or not
    a number) and the problem of a column that is not a JSON object (`None` if it is one)."""
    try:
        value = json.loads(metadata)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return np.nan, f"invalid JSON ({error})"
    if not isinstance(value, dict):
        return np.nan, f"expected a JSON object, got {type(value).__name__}"
    weight = value.get("weight")
    if isinstance(weight, (int, float)) and not isinstance(weight, bool):
        try:
            return float(weight), None
        except OverflowError:  # an integer beyond float64
            return np.inf, None
    return np.nan, None


def _binary_parts(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The absolute value offsets (n + 1) and the data bytes of a binary or string array, as numpy views."""
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
    data = column.buffers()[2]
    return offsets, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def _byte_ranges(buffer: pa.Buffer, begins: np.ndarray, ends: np.ndarray) -> pa.Array:
    """A binary array of the byte ranges ``buffer[begins[i]:ends[i]]``, which follow each other in the buffer
    (one Arrow take)."""
    count = len(begins)
    if count == 0:
        return pa.array([], type=pa.binary())
    # A binary array over the whole buffer whose values are the ranges and the gaps between them, alternately.
    offsets = np.empty(2 * count, dtype=np.int32)
    offsets[0::2], offsets[1::2] = begins, ends
    ranges_and_gaps = pa.Array.from_buffers(pa.binary(), 2 * count - 1, [None, pa.py_buffer(offsets), buffer])
    return ranges_and_gaps.take(pa.array(np.arange(0, 2 * count, 2)))


def _concept_keys(chunk: pa.Buffer, begins: np.ndarray, ends: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Entity keys ``chunk[begins[i]:ends[i]]`` as a string array, and the mask of the valid UTF-8 ones (the others
    are null)."""
    keys = _byte_ranges(chunk, begins, ends)
    try:
        return keys.cast(pa.string()), np.ones(len(keys), dtype=bool)
    except pa.ArrowInvalid:  # invalid UTF-8 somewhere in the batch (rare): decode row by row
        values = []
        for key in keys.to_pylist():
            try:
                values.append(key.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(None)
        decoded = pa.array(values, type=pa.string())
        return decoded, _mask(decoded.is_valid())


def _mask(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def _labels(keys: pa.Array) -> pa.Array:
    """Labels of (well-formed) concept keys: the text segment with ``_`` replaced by spaces (``/c/en/ice_cream/n``
    -> "ice cream")."""
    offsets, data = _binary_parts(keys)
    label_offsets, label_bytes = kernels.concept_labels(offsets, data)
    buffers = [None, pa.py_buffer(label_offsets), pa.py_buffer(label_bytes)]
    return pa.Array.from_buffers(pa.string(), len(keys), buffers)


class _ChunkLines:
    """A chunk of lines as `kernels.parse_chunk` leaves it: split at newlines and tabs without copying, rules 1-4
    applied to every line, and the tabs, JSON weight and concept URIs of the lines that pass them (the candidates)
    read. Fields are byte ranges of the chunk; a field of all candidates is one Arrow take."""

    def __init__(self, chunk: pa.Buffer, patterns: np.ndarray):
        self.chunk = chunk
        self.data = np.frombuffer(chunk, dtype=np.uint8)
        # words[i] is bytes [i, i + 8): a uint64 view with a stride of one byte (unaligned reads are fine).
        words = np.ndarray((max(self.data.size - 7, 0),), dtype="<u8", buffer=chunk, strides=(1,))
        capacity = self.data.size // 128 + 16  # ConceptNet's lines are about 300 bytes
        while True:
            line_ends, reasons = np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.uint8)
            candidates = np.empty((capacity, 9), dtype=np.int64)
            json_status, weights = np.empty(capacity, dtype=np.uint8), np.empty(capacity, dtype=np.float64)
            num_lines, num_candidates = kernels.parse_chunk(
                self.data, words, patterns, line_ends, reasons, candidates, json_status, weights
            )
            if num_lines >= 0:
                break
            capacity = int(np.count_nonzero(self.data == ord("\n"))) + 16  # short lines: count them
        self.num_lines = num_lines
        self.line_ends, self.reasons = line_ends[:num_lines], reasons[:num_lines]
        self.candidates = candidates[:num_candidates]
        self.json_status, self.weights = json_status[:num_candidates], weights[:num_candidates]

    def candidate_relations(self) -> pa.Array:
        """The relation URI of every candidate (between its 1st and 2nd tabs), as a binary array."""
        tabs = self.candidates[:, kernels.TABS]
        return _byte_ranges(self.chunk, tabs[:, 0] + 1, tabs[:, 1])

    def line(self, line: int) -> bytes:
        begin = self.line_ends[line - 1] + 1 if line else 0
        return self.data[begin : self.line_ends[line]].tobytes()

    def fields(self, line: int) -> list[bytes]:
        """Fields 1-4 of a line with 5 columns: relation, start, end and JSON."""
        return self.line(line).split(b"\t")[1:]

    def explain_column_count(self, line: int) -> tuple[str, str]:
        text = self.line(line)
        if not text:
            return "columns", "empty line (1 column, expected 5)"
        columns = text.count(b"\t") + 1
        return "columns", f"expected 5 tab-separated columns, found {columns}"


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
        self.patterns = kernels.byte_patterns([_EXTERNAL_URL, b"/c/", *self.encoded_prefixes])
        self.selected_relations = selected_relations
        self.min_weight = min_weight
        self.collapse_senses = collapse_senses
        self.max_examples = max_examples
        self.relation_texts: dict[bytes, str | ValueError] = {}  # relation URI -> text, or why it is none
        # Rules 1-4, applied by `kernels.parse_chunk`: the name of each reason and the explanation of a line.
        self.byte_rules = [
            (kernels.WRONG_COLUMN_COUNT, "wrong column count", None),
            (kernels.EXTERNAL_URL, "ExternalURL", _explain_external_url),
            (kernels.NON_CONCEPT, "non-concept end", _explain_non_concept),
            (kernels.LANGUAGE, "language", self._explain_language),
        ]

    def parse(self, chunk: pa.Buffer) -> _ChunkResult:
        lines = _ChunkLines(chunk, self.patterns)
        skips = _ChunkSkips(self.max_examples)
        counts = np.bincount(lines.reasons, minlength=len(self.byte_rules) + 1)
        for reason, name, explain in self.byte_rules:
            if counts[reason]:
                explain_line = lines.explain_column_count if explain is None else _explained(lines.fields, explain)
                skips.rows(name, lines.reasons == reason, None, explain_line)
        return self._validate(lines, skips)

    def _validate(self, lines: _ChunkLines, skips: _ChunkSkips) -> _ChunkResult:
        """Rules 5-8 on the candidates, the lines that passed rules 1-4: relation, JSON, weight, concept and
        relation URIs."""
        candidates, weights = lines.candidates[:, kernels.LINE], lines.weights
        explained = functools.partial(_explained, lines.fields)  # explain a candidate's line with a function
        relations = lines.candidate_relations()
        valid = np.ones(len(candidates), dtype=bool)
        if self.selected_relations is not None:
            not_selected = ~_mask(pc.is_in(relations, value_set=self.selected_relations))
            skips.rows("relation not selected", not_selected, candidates, explained(_explain_relation))
            valid &= ~not_selected
        for row in np.flatnonzero(valid & (lines.json_status == kernels.JSON_FOR_PYTHON)).tolist():
            weights[row], problem = _python_json_weight(lines.fields(candidates[row])[3])
            if problem is not None:
                valid[row] = False
                skips.located("bad json", int(candidates[row]) + 1, "json", problem)
        missing_weight = valid & ~np.isfinite(weights)
        skips.rows("missing or non-numeric weight", missing_weight, candidates, explained(_explain_weight))
        valid &= ~missing_weight
        if self.min_weight is not None:
            light = valid & (weights < self.min_weight)
            skips.rows("weight below min_weight", light, candidates, explained(self._explain_min_weight))
            valid &= ~light
        # Keys: the whole URI, or up to the end of its text segment when the senses are collapsed. The start URI
        # lies between the line's 2nd and 3rd tabs, the end URI between its 3rd and 4th.
        tabs = lines.candidates[:, kernels.TABS]
        start_text, end_text = lines.candidates[:, kernels.START_TEXT], lines.candidates[:, kernels.END_TEXT]
        if self.collapse_senses:
            start_ends, end_ends = start_text[:, 1], end_text[:, 1]
        else:
            start_ends, end_ends = tabs[:, 2], tabs[:, 3]
        start_keys, start_utf8 = _concept_keys(lines.chunk, tabs[:, 1] + 1, start_ends)
        end_keys, end_utf8 = _concept_keys(lines.chunk, tabs[:, 2] + 1, end_ends)
        has_text = (start_text[:, 1] > start_text[:, 0]) & (end_text[:, 1] > end_text[:, 0])
        bad_uri = valid & ~(has_text & start_utf8 & end_utf8)
        skips.rows("bad concept uri", bad_uri, candidates, explained(_explain_bad_uri))
        valid &= ~bad_uri
        encoded = pc.dictionary_encode(relations)
        is_relation = [isinstance(self._relation_text(uri), str) for uri in encoded.dictionary.to_pylist()]
        bad_relation = valid & ~np.array(is_relation, dtype=bool)[_mask(encoded.indices)]
        skips.rows("bad relation uri", bad_relation, candidates, explained(self._explain_bad_relation))
        valid &= ~bad_relation
        rows = np.flatnonzero(valid)
        kept_relations = pc.dictionary_encode(relations.take(rows))
        # Start and end keys interleaved: the concepts' order of first appearance, whatever the chunk boundaries.
        interleaved = np.stack([rows, rows + len(candidates)], axis=1).ravel()
        return _ChunkResult(
            num_lines=lines.num_lines,
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
            explain: Returns ``(field, problem)`` of a line (its index in the chunk).
        """
        count = int(mask.sum())
        if count:
            examples = []
            for row in np.flatnonzero(mask)[: self.max_examples].tolist():
                line = row if line_indices is None else int(line_indices[row])
                examples.append((line + 1, *explain(line)))
            self.events.append((reason, count, examples))


def _explained(fields: Callable[[int], list[bytes]], explain: Callable[..., tuple[str, str]]):
    """A line's ``(field, problem)``: `explain` called with the relation, start, end and JSON `fields` of the
    line."""
    return lambda line: explain(*fields(line))


class _ConceptNetReader:
    """One pass over an assertions file.

    The file is cut into chunks of complete lines (about `_CHUNK_BYTES` each; gzip inflated on the fly) that
    `_ChunkParser` handles in a pool of threads — the compiled pass, Arrow and numpy release the GIL, so the chunks
    are parsed on every core — and whose results are merged here in file order. At most two chunks per thread are in
    flight: memory stays bounded whatever the file size.
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
        entities = self.builder.add_text_entities(concepts, _labels(concepts))
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
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> KnowledgeGraph:
    """Loads a ConceptNet 5.7 assertions file (``.csv`` or ``.csv.gz``) as a text-only knowledge graph.

    The parsed graph of a file of 16 MiB or more (the published dump inflates to about 10 GB) is cached
    (`KnowledgeGraph.save_to_disk`, Arrow) under `cache_dir`, one entry per file and arguments, stamped with the file's size and modification time and the loader's version: a later load of the same
    file with the same arguments reads the entry instead of parsing (a small fraction of the parse; figures in
    docs/benchmarks.md), and a changed file, or a new loader version, replaces it. The cached graph, its load report
    included, equals the parsed one.

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
        cache_dir (`str` or `os.PathLike`, *optional*): Where parsed graphs are cached; defaults to
            ``$KNOWLEDGE_CLIP_CACHE/conceptnet``, else ``$XDG_CACHE_HOME/knowledge_clip/conceptnet``, else
            ``~/.cache/knowledge_clip/conceptnet``.
        use_cache (`bool`, *optional*, defaults to `True`): Read and write the cache; `False` always parses and
            writes nothing.

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

    def parse() -> KnowledgeGraph:
        return _ConceptNetReader(path, name, language_prefixes, selected_relations, min_weight, collapse_senses).read()

    if not use_cache or path.stat().st_size < _MIN_CACHED_BYTES:
        return parse()
    arguments = {
        "languages": languages,
        "min_weight": min_weight,
        "relations": None if selected_relations is None else [uri.decode() for uri in selected_relations.to_pylist()],
        "collapse_senses": collapse_senses,
        "name": name,
    }
    return _ParsedGraphCache(Path(cache_dir) if cache_dir is not None else _default_cache_dir()).load(
        path, arguments, parse
    )


# Bump when what a load returns for the same file and arguments changes: entries of older versions are re-parsed.
_LOADER_VERSION = 1
_STAMP_FILE = "source_stamp.json"
# Files smaller than one parse chunk are parsed every time: reading a cache entry (the `datasets` import alone takes
# about a second) would cost more than parsing them.
_MIN_CACHED_BYTES = _CHUNK_BYTES


def _default_cache_dir() -> Path:
    if os.environ.get("KNOWLEDGE_CLIP_CACHE"):
        return Path(os.environ["KNOWLEDGE_CLIP_CACHE"]) / "conceptnet"
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "knowledge_clip" / "conceptnet"


class _ParsedGraphCache:
    """
    Parsed graphs, one directory per (resolved file path, arguments), holding `KnowledgeGraph.save_to_disk`'s
    layout and a stamp: the file's size and modification time (ns) and `_LOADER_VERSION`. An entry whose stamp
    differs is stale and replaced, so a file rewritten in place (the demo world's, on every build) keeps one entry.
    The cache is an optimisation: an entry that cannot be read is re-parsed, and a cache that cannot be written is
    reported and skipped; neither fails the load.
    """

    def __init__(self, root: Path):
        self.root = root

    def load(self, path: Path, arguments: dict, parse: Callable[[], KnowledgeGraph]) -> KnowledgeGraph:
        source = path.resolve()
        status = source.stat()  # a missing file raises here, naming it
        key = json.dumps({"path": str(source), **arguments}, sort_keys=True)
        entry = self.root / hashlib.sha256(key.encode()).hexdigest()[:32]
        stamp = {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "loader_version": _LOADER_VERSION}
        cached = self._read(entry, stamp)
        if cached is not None:
            logger.info(f"{path}: read the parsed graph from the cache {entry}")
            return cached
        graph = parse()
        self._write(entry, stamp, graph)
        return graph

    @staticmethod
    def _read(entry: Path, stamp: dict) -> KnowledgeGraph | None:
        try:
            if json.loads((entry / _STAMP_FILE).read_text(encoding="utf-8")) != stamp:
                return None
            return KnowledgeGraph.load_from_disk(entry)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, pa.ArrowException) as error:
            logger.warning(f"{entry}: unreadable cache entry, parsing again ({error})")
            return None

    @staticmethod
    def _write(entry: Path, stamp: dict, graph: KnowledgeGraph) -> None:
        # Written beside the entry and renamed into place, so a reader never sees half an entry.
        partial = entry.with_name(f"{entry.name}.partial-{os.getpid()}")
        try:
            shutil.rmtree(partial, ignore_errors=True)
            graph.save_to_disk(partial)
            (partial / _STAMP_FILE).write_text(json.dumps(stamp), encoding="utf-8")
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(partial, entry)
        except OSError as error:
            logger.warning(f"{entry}: cannot write the cache entry ({error}); the next load parses the file again")
        finally:
            shutil.rmtree(partial, ignore_errors=True)
