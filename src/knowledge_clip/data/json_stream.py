# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Streaming JSON reader shared by the JSON-based loaders (Visual Genome, VisualSem, COCO captions).

`JsonStreamReader` decodes one JSON document a container element at a time, so a file much larger than memory is
read with bounded memory, and every syntax error names the file, line and column.
"""

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import KnowledgeCLIPDataError

__all__ = ["JsonStreamReader", "iter_jsonl_lines", "iter_jsonl_objects", "iter_list_records", "iter_object_members"]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_CHARS = re.compile(r"[0-9.eE+-]*")
_JSON_KIND_BY_FIRST_CHAR = {"[": "a list", "{": "an object", '"': "a string", "t": "a boolean", "f": "a boolean"}
# A syntax error this close to the end of the buffered text may be a value cut by the chunk boundary (`tru`, `-`, `\u0`).
_TRUNCATION_MARGIN = 8


def _json_kind(first_char: str) -> str:
    if first_char == "n":
        return "null"
    return _JSON_KIND_BY_FIRST_CHAR.get(first_char, "a number")


class JsonStreamReader:
    """
    Pull parser that reads one JSON document a container element at a time, so that a file much larger than memory
    (Visual Genome's `relationships.json` is about 700 MB on one line) is decoded with bounded memory.

    The reader holds one read chunk plus the element being decoded. Elements are decoded with the standard library's C
    scanner (`json.JSONDecoder.raw_decode`); when an element is cut by the end of the buffered text, the reader reads
    more (doubling the read size, so a large element costs linear time) and decodes it again.

    Example:

    ```python
    with JsonStreamReader("relationships.json") as reader:
        for record in reader.iter_list():  # the top-level list, one image entry at a time
            ...
    with JsonStreamReader("captions_train2017.json") as reader:
        for key in reader.iter_object():  # the top-level object, one key at a time
            if key == "annotations":
                for annotation in reader.iter_list(field="annotations"):
                    ...
            # a value the caller does not read is skipped
    ```

    Every syntax error, an empty file, and a container of the wrong type raise [`KnowledgeCLIPDataError`] naming the
    file, the line and the character offset, and the `field` given to the reading method (the name of the list or
    object read, or of the value's key), where one was.

    Args:
        path (`str` or `os.PathLike`):
            The JSON file, UTF-8 encoded.
        chunk_size (`int`, *optional*, defaults to 1 MiB):
            Number of characters read at a time.
    """

    def __init__(self, path: str | os.PathLike, chunk_size: int = 1 << 20):
        self.path = os.fspath(path)
        self._file = open(self.path, encoding="utf-8")
        self._chunk_size = chunk_size
        self._decoder = json.JSONDecoder()
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self._dropped_chars = 0
        self._dropped_lines = 0
        # Newlines are counted incrementally: `_lines_to_mark` newlines lie before buffer index `_line_mark`.
        self._line_mark = 0
        self._lines_to_mark = 0
        self._started = False

    def __enter__(self) -> "JsonStreamReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def line_number(self, pos: int | None = None) -> int:
        """1-based line of buffer index `pos` (the current position by default)."""
        pos = self._pos if pos is None else pos
        if pos < self._line_mark:
            return self._dropped_lines + self._buffer.count("\n", 0, pos) + 1
        self._lines_to_mark += self._buffer.count("\n", self._line_mark, pos)
        self._line_mark = pos
        return self._dropped_lines + self._lines_to_mark + 1

    def error(self, message: str, field: str | None = None, pos: int | None = None) -> KnowledgeCLIPDataError:
        """A [`KnowledgeCLIPDataError`] for this file at buffer index `pos` (the current position by default)."""
        pos = self._pos if pos is None else pos
        return KnowledgeCLIPDataError(
            f"{message} (character {self._dropped_chars + pos})",
            file=self.path,
            line=self.line_number(pos),
            field=field,
        )

    def _read(self, size: int) -> bool:
        """Append up to `size` characters to the buffer; False at the end of the file."""
        if self._eof:
            return False
        try:
            text = self._file.read(size)
        except UnicodeDecodeError as error:
            raise self.error(f"not UTF-8 text ({error.reason})", pos=len(self._buffer)) from None
        if not text:
            self._eof = True
            return False
        self._buffer += text
        return True

    def _compact(self) -> None:
        """Drop the text before the current position once it exceeds one chunk."""
        if self._pos > self._chunk_size:
            self._dropped_lines = self.line_number(self._pos) - 1
            self._line_mark = self._lines_to_mark = 0
            self._dropped_chars += self._pos
            self._buffer = self._buffer[self._pos :]
            self._pos = 0

    def _peek(self) -> str:
        """Skip whitespace and return the next character, or `""` at the end of the file."""
        while True:
            self._pos = _WHITESPACE.match(self._buffer, self._pos).end()
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            self._compact()
            if not self._read(self._chunk_size):
                return ""

    def _start(self, expected: str) -> None:
        if self._started:
            return
        self._started = True
        first = self._peek()
        if not first:
            raise self.error(f"empty file: expected {_json_kind(expected)}")
        if first != expected:
            raise self.error(f"the top level is {_json_kind(first)}, expected {_json_kind(expected)}")

    def _open_container(self, opening: str, closing: str, field: str | None) -> bool:
        """Consume the opening bracket (and, for an empty container, the closing one): whether elements follow."""
        self._start(opening)
        char = self._peek()
        if not char:
            raise self.error("unexpected end of file", field=field)
        if char != opening:
            raise self.error(f"found {_json_kind(char)}, expected {_json_kind(opening)}", field=field)
        self._pos += 1
        if self._peek() == closing:
            self._pos += 1
            return False
        return True

    def _separator(self, closing: str, field: str | None) -> bool:
        """Consume `,` (True) or the closing bracket (False) after an element."""
        char = self._peek()
        if char == ",":
            self._pos += 1
            return True
        if char == closing:
            self._pos += 1
            return False
        if not char:
            raise self.error("unexpected end of file", field=field)
        raise self.error(f"expected ',' or '{closing}', found {char!r}", field=field)

    def read_value(self, field: str | None = None) -> Any:
        """Decode the value at the current position (any JSON type) and move past it."""
        if not self._peek():
            raise self.error("unexpected end of file", field=field)
        read_size = self._chunk_size
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                maybe_truncated = error.msg.startswith("Unterminated string") or (
                    len(self._buffer) - error.pos <= _TRUNCATION_MARGIN
                )
                if maybe_truncated and self._read(read_size):
                    read_size *= 2
                    continue
                raise self.error(f"invalid JSON: {error.msg}", field=field, pos=error.pos) from None
            # A number that reaches the end of the buffered text (`12`, or `12.` decoded as 12) may continue.
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if is_number and _NUMBER_CHARS.fullmatch(self._buffer, end) and self._read(read_size):
                continue
            self._pos = end
            return value

    def iter_list(self, field: str | None = None) -> Iterator[Any]:
        """Yield the elements of the list at the current position (the top level on first use), one at a time."""
        if not self._open_container("[", "]", field):
            return
        while True:
            yield self.read_value(field)
            self._compact()
            if not self._separator("]", field):
                return

    def iter_object(self, field: str | None = None) -> Iterator[str]:
        """
        Yield the keys of the object at the current position (the top level on first use). After each key the caller
        reads its value with [`~JsonStreamReader.read_value`], `iter_list` or `iter_object`; a value left unread is
        skipped.
        """
        if not self._open_container("{", "}", field):
            return
        while True:
            if self._peek() != '"':
                raise self.error("expected an object key (a string)", field=field)
            key = self.read_value(field)
            if self._peek() != ":":
                raise self.error("expected ':' after an object key", field=key)
            self._pos += 1
            self._peek()
            value_start = self._dropped_chars + self._pos
            yield key
            if self._dropped_chars + self._pos == value_start:
                self.read_value(key)
            self._compact()
            if not self._separator("}", field):
                return

    def finish(self) -> None:
        """Check that only whitespace follows the top-level value."""
        char = self._peek()
        if char:
            raise self.error(f"unexpected content {char!r} after the top-level value")


def iter_list_records(path: str, label: str) -> Iterator[tuple[str, Any]]:
    """Yields ``(where, element)`` for each element of a JSON file's top-level list, `where` being
    ``"<label>:<line>: record <index>"``, then checks that nothing follows the list."""
    with JsonStreamReader(path) as reader:
        for index, record in enumerate(reader.iter_list()):
            yield f"{label}:{reader.line_number()}: record {index}", record
        reader.finish()


def iter_object_members(path: str, label: str) -> Iterator[tuple[str, str, Any]]:
    """Yields ``(where, key, value)`` for each member of a JSON file's top-level object, `where` being
    ``"<label>:<line>: <key>"``, then checks that nothing follows the object."""
    with JsonStreamReader(path) as reader:
        for key in reader.iter_object():
            value = reader.read_value(key)
            yield f"{label}:{reader.line_number()}: {key}", key, value
        reader.finish()


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, dict | None, str | None]]:
    """
    Yields `(line number, object, None)` for each non-blank line of a JSON Lines file that holds a JSON object, and
    `(line number, None, problem)` for one that is not valid JSON or not an object: the caller decides whether a bad
    line is an error or a counted skip.

    Args:
        path (`str` or `os.PathLike`): The `.jsonl` file.
    """
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield line_number, None, f"invalid JSON: {error.msg}"
                continue
            if isinstance(record, dict):
                yield line_number, record, None
            else:
                yield line_number, None, "expected a JSON object"


def iter_jsonl_objects(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """
    Yields `(line number, object)` of a JSON Lines file, blank lines ignored. A line that is not valid JSON, or not
    a JSON object, raises `KnowledgeCLIPDataError` naming the file and line: for inputs where a bad record is an
    error, not a counted skip.

    Args:
        path (`str` or `os.PathLike`): The `.jsonl` file.
    """
    for line_number, record, problem in iter_jsonl_lines(path):
        if problem is not None:
            raise KnowledgeCLIPDataError(problem, file=Path(path), line=line_number)
        yield line_number, record
