"""Exceptions raised by the knowledge-clip data loaders.

Every error about bad input data names *where* the problem is, in the shape ``file:line: field: problem``
(parts that are unknown are left out), so a user can open the file at the right place. All of them derive from
`ValueError`, so code that already guards against bad values keeps working.
"""

from __future__ import annotations

import os

__all__ = [
    "EmptyGraphError",
    "ImageLoadError",
    "ImageTooLarge",
    "KnowledgeCLIPDataError",
    "TruncatedFileError",
    "UnsafePathError",
    "format_location",
]


def format_location(file: str | os.PathLike | None = None, line: int | None = None, field: str | None = None) -> str:
    """Formats a location as ``file:line: field`` (missing parts are left out).

    Args:
        file (`str` or `os.PathLike`, *optional*): The file the problem is in.
        line (`int`, *optional*): The 1-based line (or record) number inside `file`.
        field (`str`, *optional*): The column, key or attribute that holds the bad value.

    Returns:
        `str`: e.g. ``"assertions.csv:12: weight"``, ``"assertions.csv:12"`` or ``""`` when nothing is known.
    """
    where = os.fspath(file) if file is not None else ""
    if line is not None:
        where = f"{where}:{line}" if where else f"line {line}"
    if field:
        where = f"{where}: {field}" if where else field
    return where


class KnowledgeCLIPDataError(ValueError):
    """Base class of the data errors: a problem in an input file, located by file, line and field.

    Args:
        problem (`str`): What is wrong, e.g. ``"expected 5 tab-separated columns, found 3"``.
        file (`str` or `os.PathLike`, *optional*): The file the problem is in.
        line (`int`, *optional*): The 1-based line (or record) number inside `file`.
        field (`str`, *optional*): The column, key or attribute that holds the bad value.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | os.PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
    ):
        self.problem = problem
        self.file = os.fspath(file) if file is not None else None
        self.line = line
        self.field = field
        where = format_location(file, line, field)
        super().__init__(f"{where}: {problem}" if where else problem)

    def __reduce__(self):
        # Keyword-only arguments are not restored by the default pickling of exceptions (which replays
        # `self.args`); errors must survive being sent back from DataLoader worker processes.
        return (_rebuild_error, (type(self), self.problem, self.file, self.line, self.field, self.__dict__))


def _rebuild_error(cls, problem, file, line, field, state):
    error = cls.__new__(cls)
    KnowledgeCLIPDataError.__init__(error, problem, file=file, line=line, field=field)
    error.__dict__.update(state)
    return error


class TruncatedFileError(KnowledgeCLIPDataError):
    """A compressed or structured file ends early (e.g. an interrupted download of a ``.gz`` file)."""


class UnsafePathError(KnowledgeCLIPDataError):
    """A path given by a data file points outside the directory it must stay in (``../``, absolute, symlink)."""


class ImageLoadError(KnowledgeCLIPDataError):
    """An image file is missing, unreadable, corrupt or truncated."""


class ImageTooLarge(ImageLoadError):
    """An image has more pixels than allowed (decompression-bomb guard).

    Args:
        file (`str` or `os.PathLike`): The image file.
        size (`tuple[int, int]`): The image's ``(width, height)`` as declared in its header.
        max_pixels (`int`): The limit that was exceeded.
    """

    def __init__(self, file: str | os.PathLike, size: tuple[int, int], max_pixels: int):
        self.size = tuple(size)
        self.max_pixels = max_pixels
        width, height = self.size
        super().__init__(
            f"image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels} pixels "
            "(possible decompression bomb; raise `max_pixels` if the file is trusted)",
            file=file,
        )


class EmptyGraphError(KnowledgeCLIPDataError):
    """A knowledge graph would have no triplets (usually: every record was filtered out or skipped)."""
