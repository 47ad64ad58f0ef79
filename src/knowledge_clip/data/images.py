"""Safe image opening for knowledge-graph entities: any mode to 8-bit RGB, paths confined to a root.

Data files (Visual Genome, VisualSem, captions) name images by paths relative to a dataset root. `open_image`
refuses a path that leaves that root (``../``, absolute paths, symlinks pointing outside), refuses images whose
header declares more pixels than a per-call limit (decompression bombs), turns every failure into an
`ImageLoadError` naming the file, and converts every Pillow mode to 8-bit RGB the way a viewer would show it.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

from ..errors import ImageLoadError, ImageTooLarge, UnsafePathError

__all__ = ["DEFAULT_MAX_PIXELS", "crop_region", "open_image", "resolve_under_root", "to_rgb"]

# 178 megapixels: twice Pillow's default warning threshold, i.e. the size at which Pillow itself refuses an image.
# Large enough for any photo dataset (Visual Genome images are at most a few megapixels).
DEFAULT_MAX_PIXELS = 2 * (1024 * 1024 * 1024 // 4 // 3)

_WHITE = (255, 255, 255)


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


def _composite_on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _gray_array_to_rgb(values: np.ndarray) -> Image.Image:
    return Image.fromarray(values.astype(np.uint8), mode="L").convert("RGB")


def _scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    # Linear map of [low, high] onto [0, 255], rounded; a constant image maps to black.
    span = high - low
    if span <= 0:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - low) * (255.0 / span)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts a Pillow image of any mode to 8-bit RGB.

    Rules:
        - transparency (``RGBA``, ``LA``, ``PA``, ``P`` with a transparent colour, ...) is composited on white;
        - 16-bit grayscale (``I;16``, ``I;16B``, ``I;16L``, ...) is scaled by 255/65535 (not clipped at 255);
        - ``I`` (32-bit integer) is read as 16-bit data when all values lie in [0, 65535] (how Pillow stores
          16-bit PNG/TIFF data), otherwise rescaled linearly from its own [min, max];
        - ``F`` (float) is scaled by 255 when all values lie in [0, 1], otherwise rescaled from its [min, max];
          NaN becomes black;
        - ``LAB`` goes through a colorimetric LAB -> sRGB transform; other modes (``CMYK``, ``YCbCr``, ``HSV``,
          ``1``, ``L``, ``RGBX``) use Pillow's conversion.

    Args:
        image (`PIL.Image.Image`): The image to convert.

    Returns:
        `PIL.Image.Image`: A new RGB image (or `image` itself when it is already RGB).
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "La":
        # Pillow cannot convert premultiplied LA. Over white, premultiplied gray g and alpha a give g + 255 - a.
        premultiplied = np.asarray(image).astype(np.int32)
        return _gray_array_to_rgb(np.clip(premultiplied[..., 0] + 255 - premultiplied[..., 1], 0, 255))
    if mode in ("RGBA", "LA", "PA", "RGBa") or (mode == "P" and "transparency" in image.info):
        return _composite_on_white(image)
    if mode.startswith("I;16"):
        values = np.asarray(image).astype(np.uint32)
        return _gray_array_to_rgb((values * 255 + 32767) // 65535)
    if mode == "I":
        values = np.asarray(image)
        if values.size and values.min() >= 0 and values.max() <= 65535:
            return _gray_array_to_rgb((values.astype(np.uint64) * 255 + 32767) // 65535)
        return _gray_array_to_rgb(_scale_to_uint8(values, float(values.min()), float(values.max())))
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        if low >= 0.0 and high <= 1.0:
            low, high = 0.0, 1.0
        return _gray_array_to_rgb(_scale_to_uint8(values, low, high))
    if mode == "LAB":
        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        return ImageCms.applyTransform(image, transform)
    return image.convert("RGB")


def open_image(
    path: str | os.PathLike,
    root: str | os.PathLike | None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    exif_transpose: bool = True,
) -> Image.Image:
    """Opens an image file as a fully loaded 8-bit RGB image.

    Args:
        path (`str` or `os.PathLike`): The image path, relative to `root` (an absolute path is accepted only when
            it lies inside `root`).
        root (`str` or `os.PathLike`, *optional*): The directory `path` must stay in. `None` disables the check
            (only for paths a user typed, never for paths read from a data file).
        max_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_PIXELS`): Largest accepted ``width * height``, read
            from the header before any pixel is decoded. `None` disables this check (Pillow's own global limit
            then still applies).
        exif_transpose (`bool`, *optional*, defaults to `True`): Apply the EXIF orientation tag, as
            `transformers.image_utils.load_image` does.

    Returns:
        `PIL.Image.Image`: An RGB image, detached from the file (the file is closed).

    Raises:
        UnsafePathError: If `path` escapes `root` (a `ValueError`).
        ImageTooLarge: If the image has more than `max_pixels` pixels.
        ImageLoadError: If the file is missing, not an image, corrupt or truncated.
    """
    file_path = resolve_under_root(path, root) if root is not None else Path(path)
    try:
        with warnings.catch_warnings():
            # The size is checked below against the caller's limit; Pillow's global warning is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file_path) as image:
                if max_pixels is not None and image.width * image.height > max_pixels:
                    raise ImageTooLarge(path, image.size, max_pixels)
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
        raise ImageLoadError(f"refused by Pillow's global size limit: {error}", file=path) from None
    except FileNotFoundError:
        raise ImageLoadError("file not found", file=path) from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError) as error:
        # Pillow reports corrupt and truncated files through all of these (UnidentifiedImageError is an OSError).
        raise ImageLoadError(f"cannot read image: {error}", file=path) from None


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
