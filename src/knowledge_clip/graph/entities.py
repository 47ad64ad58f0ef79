# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Entities' views: how an entity is shown to an encoder (a text, an image file, a box in an image file)."""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any


class ViewKind(enum.IntEnum):
    """How an entity can be shown to an encoder."""

    TEXT = 0
    IMAGE = 1
    REGION = 2


@functools.lru_cache(maxsize=1 << 16)
def _relative_posix_path(path: str) -> str:
    """Returns `path` in POSIX form; raises if it is absolute or leaves its root (cached: the regions of an image
    share its path, and loaders create millions of views)."""
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(path).is_absolute() or ".." in posix.parts:
        raise ValueError(f"view path {path!r} must be relative and stay inside the graph root")
    return posix.as_posix()


@dataclasses.dataclass(frozen=True, slots=True)
class EntityView:
    """One way to show an entity: a text, an image file, or a box in an image file.

    Args:
        kind (`ViewKind`): TEXT, IMAGE or REGION.
        text (`str`, *optional*): The text of a TEXT view.
        path (`str`, *optional*): For IMAGE and REGION views, the image path relative to the graph's root, in POSIX
            form; never absolute and never leaving the root.
        box (`tuple[float, float, float, float]`, *optional*): For REGION views, ``(x0, y0, x1, y1)`` in pixels,
            already clipped to the image.
    """

    kind: ViewKind
    text: str | None = None
    path: str | None = None
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self):
        kind = self.kind
        if type(kind) is not ViewKind:  # enum lookup is slow; loaders create millions of views
            kind = ViewKind(kind)
            object.__setattr__(self, "kind", kind)
        if kind == ViewKind.TEXT:
            if not isinstance(self.text, str) or not self.text:
                raise ValueError(f"a TEXT view needs a non-empty text, got {self.text!r}")
            if self.path is not None or self.box is not None:
                raise ValueError("a TEXT view has no path or box")
            return
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"an {kind.name} view needs a path relative to the graph root, got {self.path!r}")
        object.__setattr__(self, "path", _relative_posix_path(self.path))
        if kind == ViewKind.IMAGE:
            if self.box is not None:
                raise ValueError("an IMAGE view has no box; use a REGION view")
            return
        if self.box is None or len(self.box) != 4:
            raise ValueError(f"a REGION view needs a box (x0, y0, x1, y1), got {self.box!r}")
        box = tuple(float(v) for v in self.box)
        if not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"a REGION box must be finite with x1 > x0 and y1 > y0, got {box}")
        object.__setattr__(self, "box", box)


def _rebase_view(record: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A view record (`_view_from_arrow`'s input) with its path, if any, under the directory `prefix`."""
    if record["path"] is not None:
        record = dict(record, path=PurePosixPath(Path(prefix).as_posix(), record["path"]).as_posix())
    return record
