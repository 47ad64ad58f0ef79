"""Safe image opening for knowledge-graph entities: any mode to 8-bit RGB, paths confined to a root.

Data files (Visual Genome, VisualSem, captions) name images by paths relative to a dataset root. `open_image`
refuses a path that leaves that root (``../``, absolute paths, symlinks pointing outside), refuses images whose
header declares more pixels than a per-call limit (decompression bombs), turns every failure into an
`ImageLoadError` naming the file, and converts every Pillow mode to 8-bit RGB the way a viewer would show it.
"""

from __future__ import annotations

import functools
import io
import math
import os
import tarfile
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

from ..errors import ImageLoadError, ImageTooLarge, UnsafePathError
from ..graph import EntityView, ViewKind
from ..image_conversion import to_rgb

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "TAR_MEMBER_SEPARATOR",
    "crop_region",
    "open_image",
    "open_view_image",
    "resolve_under_root",
    "split_tar_member",
    "to_rgb",
]

# 178 megapixels: twice Pillow's default warning threshold, i.e. the size at which Pillow itself refuses an image.
# Large enough for any photo dataset (Visual Genome images are at most a few megapixels).
DEFAULT_MAX_PIXELS = 2 * (1024 * 1024 * 1024 // 4 // 3)
# An image stored inside a tar shard (WebDataset) is named `<shard path relative to the graph root>#<member name>`.
TAR_MEMBER_SEPARATOR = "#"


def resolve_under_root(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Resolves `path` (relative to `root`) and checks that the result stays inside `root`.

    Symlinks are followed before the check, so a link inside `root` that points outside of it is refused too.

    Args:
        path (`str` or `os.PathLike`): A path relative to `root`, or an absolute path that must lie inside `root`.
        root (`str` or `os.PathLike`): The directory the path must not leave.

    Returns:
        `pathlib.Path`: The resolved, absolute path.

    Raises:
        UnsafePathError: If the resolved path is outside `root`.
    """
    root_resolved = Path(root).resolve()
    resolved = (root_resolved / path).resolve()
    if not resolved.is_relative_to(root_resolved):
        raise UnsafePathError(f"path escapes the root directory {os.fspath(root)!r}", file=path)
    return resolved


def open_image(
    path: str | os.PathLike | BinaryIO,
    root: str | os.PathLike | None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    exif_transpose: bool = True,
    name: str | None = None,
) -> Image.Image:
    """Opens an image file as a fully loaded 8-bit RGB image.

    Args:
        path (`str`, `os.PathLike` or a binary file object): The image path, relative to `root` (an absolute path
            is accepted only when it lies inside `root`), or an open binary file (e.g. `io.BytesIO` of bytes read
            from an archive); `root` is then not used.
        root (`str` or `os.PathLike`, *optional*): The directory `path` must stay in. `None` disables the check
            (only for paths a user typed, never for paths read from a data file).
        max_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_PIXELS`): Largest accepted ``width * height``, read
            from the header before any pixel is decoded. `None` disables this check (Pillow's own global limit
            then still applies).
        exif_transpose (`bool`, *optional*, defaults to `True`): Apply the EXIF orientation tag, as
            `transformers.image_utils.load_image` does.
        name (`str`, *optional*): What errors call the image; defaults to `path` (or the file object's ``name``).

    Returns:
        `PIL.Image.Image`: An RGB image, detached from the file (the file is closed).

    Raises:
        UnsafePathError: If `path` escapes `root` (a `ValueError`).
        ImageTooLarge: If the image has more than `max_pixels` pixels.
        ImageLoadError: If the file is missing, not an image, corrupt or truncated.
    """
    is_file_object = hasattr(path, "read")
    if name is None:
        name = getattr(path, "name", "<image bytes>") if is_file_object else path
    if is_file_object:
        source = path
    else:
        source = resolve_under_root(path, root) if root is not None else Path(path)
    try:
        with warnings.catch_warnings():
            # The size is checked below against the caller's limit; Pillow's global warning is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                if max_pixels is not None and image.width * image.height > max_pixels:
                    raise ImageTooLarge(name, image.size, max_pixels)
                image.load()
                if exif_transpose:
                    image = ImageOps.exif_transpose(image)
                rgb = to_rgb(image)
                # `to_rgb` returns an RGB input unchanged; copy so the result does not depend on the open file.
                return rgb.copy() if rgb is image else rgb
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        # Only reached when `max_pixels` is above Pillow's own hard limit (2 * Image.MAX_IMAGE_PIXELS).
        raise ImageLoadError(f"refused by Pillow's global size limit: {error}", file=name) from None
    except FileNotFoundError:
        raise ImageLoadError("file not found", file=name) from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError) as error:
        # Pillow reports corrupt and truncated files through all of these (UnidentifiedImageError is an OSError).
        raise ImageLoadError(f"cannot read image: {error}", file=name) from None


def split_tar_member(path: str) -> tuple[str, str] | None:
    """Split an image path of the form `<shard>.tar#<member>` into `(shard, member)`; None for a plain file path."""
    shard, separator, member = path.partition(TAR_MEMBER_SEPARATOR)
    if separator and shard.endswith(".tar") and member:
        return shard, member
    return None


@functools.lru_cache(maxsize=64)
def _tar_member_offsets(tar_path: str, modified_ns: int) -> dict[str, tuple[int, int]]:
    """Member name -> (byte offset of its data, size) of an uncompressed tar, read once per process and shard
    version (`modified_ns`, the file's modification time, keys the cache so that a rewritten shard is re-read)."""
    with tarfile.open(tar_path, mode="r:") as archive:
        return {member.name: (member.offset_data, member.size) for member in archive if member.isfile()}


def open_view_image(
    root: str | os.PathLike, view: EntityView, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """
    Open the pixels an IMAGE or REGION view shows, as an 8-bit RGB image (a REGION view is cropped to its box).

    Besides plain files, this opens the `<shard>.tar#<member>` paths that `load_image_text_pairs` gives images
    stored in WebDataset shards: the member is read at its byte offset (each shard is indexed once per process).

    Args:
        root (`str` or `os.PathLike`):
            The graph's root (`graph.root`); the path may not leave it.
        view (`EntityView`):
            An IMAGE or REGION view.
        max_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_PIXELS`):
            Largest accepted `width * height` (decompression-bomb guard); None disables the check.

    Returns:
        `PIL.Image.Image`: the image, or the region crop.

    Raises:
        UnsafePathError: If the path leaves `root`.
        ImageTooLarge: If the image has more than `max_pixels` pixels.
        ImageLoadError: If the file or the tar member is missing, corrupt or truncated.
    """
    if view.kind not in (ViewKind.IMAGE, ViewKind.REGION) or view.path is None:
        raise ValueError(f"expected an IMAGE or REGION view with a path, got {view!r}")
    tar_member = split_tar_member(view.path)
    if tar_member is None:
        image = open_image(view.path, root, max_pixels=max_pixels)
    else:
        shard, member = tar_member
        shard_path = str(resolve_under_root(shard, root))
        try:
            offset, size = _tar_member_offsets(shard_path, os.stat(shard_path).st_mtime_ns)[member]
            with open(shard_path, "rb") as file:
                file.seek(offset)
                data = file.read(size)
        except (OSError, KeyError, tarfile.TarError) as error:
            raise ImageLoadError(f"cannot read tar member: {error!r}", file=view.path) from None
        image = open_image(io.BytesIO(data), None, max_pixels=max_pixels, name=view.path)
    return crop_region(image, view.box) if view.kind == ViewKind.REGION else image


def crop_region(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """Crops a region, clipping the box to the image bounds.

    The box is widened to whole pixels (floor of the top-left, ceil of the bottom-right corner), so a region
    never loses a partially covered pixel.

    Args:
        image (`PIL.Image.Image`): The image to crop.
        box (`tuple[float, float, float, float]`): ``(x0, y0, x1, y1)`` in pixels.

    Returns:
        `PIL.Image.Image`: The cropped region.

    Raises:
        ValueError: If the box is not four finite numbers or is empty after clipping.
    """
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(f"box must be four finite numbers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = box
    width, height = image.size
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if right <= left or bottom <= top:
        raise ValueError(f"box {tuple(box)} is empty inside a {width}x{height} image")
    return image.crop((left, top, right, bottom))
