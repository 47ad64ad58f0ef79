# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Conversion of a Pillow image of any mode to 8-bit RGB, as a viewer would show it.

A flat module of its own because the processor, which is saved as custom code with the model, needs it.
"""

import numpy as np
from PIL import Image, ImageCms

__all__ = ["to_rgb"]

_WHITE = (255, 255, 255)


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
