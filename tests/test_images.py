"""Tests for knowledge_clip.data.images: safe paths, every Pillow mode to RGB, size guard, broken files."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from knowledge_clip import image_conversion
from knowledge_clip.data.images import crop_region, open_image, to_rgb
from knowledge_clip.errors import ImageLoadError, ImageTooLarge, KnowledgeCLIPDataError, UnsafePathError


def _save(image: Image.Image, root, name: str, **kwargs) -> str:
    image.save(root / name, **kwargs)
    return name


def _pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def test_rgb_roundtrip_and_file_closed(tmp_path):
    values = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    name = _save(Image.fromarray(values), tmp_path, "rgb.png")
    image = open_image(name, tmp_path)
    np.testing.assert_array_equal(_pixels(image), values)
    # The result does not depend on the file any more.
    os.remove(tmp_path / name)
    np.testing.assert_array_equal(_pixels(image), values)


def test_grayscale_l_to_rgb(tmp_path):
    name = _save(Image.fromarray(np.array([[0, 128, 255]], dtype=np.uint8), mode="L"), tmp_path, "l.png")
    np.testing.assert_array_equal(_pixels(open_image(name, tmp_path))[0], [[0, 0, 0], [128, 128, 128], [255] * 3])


def test_cmyk_to_rgb(tmp_path):
    cyan = Image.new("CMYK", (2, 2), (255, 0, 0, 0))
    name = _save(cyan, tmp_path, "cmyk.jpg", quality=100)
    red, green, blue = _pixels(open_image(name, tmp_path))[0, 0].astype(int)
    assert red < 20 and green > 235 and blue > 235


def test_palette_with_transparency_composited_on_white(tmp_path):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    palette_image.putpixel((0, 0), 0)
    palette_image.putpixel((1, 0), 1)
    palette_image.info["transparency"] = 1
    name = _save(palette_image, tmp_path, "p.png", transparency=1)
    assert Image.open(tmp_path / name).mode == "P"
    np.testing.assert_array_equal(_pixels(open_image(name, tmp_path))[0], [[255, 0, 0], [255, 255, 255]])


def test_palette_without_transparency(tmp_path):
    palette_image = Image.new("P", (1, 1))
    palette_image.putpalette([10, 20, 30] + [0] * (256 * 3 - 3))
    name = _save(palette_image, tmp_path, "p_opaque.png")
    np.testing.assert_array_equal(_pixels(open_image(name, tmp_path))[0, 0], [10, 20, 30])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_composited_on_white(tmp_path, mode):
    values = np.zeros((1, 3, len(mode)), dtype=np.uint8)
    values[0, :, 0] = 200  # colour (or gray) channel(s)
    if mode == "RGBA":
        values[0, :, 1:3] = 200
    values[0, :, -1] = [0, 128, 255]  # transparent, half, opaque
    name = _save(Image.fromarray(values, mode=mode), tmp_path, f"{mode}.png")
    gray = _pixels(open_image(name, tmp_path))[0, :, 0].astype(int)
    assert gray[0] == 255  # fully transparent -> white background
    assert abs(gray[1] - round(200 * 128 / 255 + 255 * 127 / 255)) <= 1
    assert gray[2] == 200


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_gray_is_scaled_not_clipped(tmp_path, mode):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    dtype = ">u2" if mode == "I;16B" else "<u2"
    image = Image.frombytes(mode, (values.shape[1], values.shape[0]), values.astype(dtype).tobytes())
    assert image.mode == mode
    expected = [0, 1, 128, 255]  # v * 255 / 65535, rounded; a clip would give 255 for all but 0
    np.testing.assert_array_equal(to_rgb(image).getchannel(0), np.array([expected], dtype=np.uint8))
    name = _save(Image.fromarray(values), tmp_path, "gray16.png")
    np.testing.assert_array_equal(_pixels(open_image(name, tmp_path))[..., 1], [expected])


def test_32_bit_integer_and_float_modes():
    as_16_bit = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), mode="I")
    np.testing.assert_array_equal(np.asarray(to_rgb(as_16_bit))[0, :, 0], [0, 255])
    wide = Image.fromarray(np.array([[-255, -155, 0]], dtype=np.int32), mode="I")  # rescaled from [min, max]
    np.testing.assert_array_equal(np.asarray(to_rgb(wide))[0, :, 0], [0, 100, 255])
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    np.testing.assert_array_equal(np.asarray(to_rgb(unit))[0, :, 0], [0, 128, 255])
    with_nan = Image.fromarray(np.array([[np.nan, 1.0]], dtype=np.float32), mode="F")
    np.testing.assert_array_equal(np.asarray(to_rgb(with_nan))[0, :, 0], [0, 255])


def test_decompression_bomb_guard_names_file_size_and_limit(tmp_path):
    name = _save(Image.new("L", (100, 50)), tmp_path, "big.png")
    with pytest.raises(ImageTooLarge) as error:
        open_image(name, tmp_path, max_pixels=4999)
    assert error.value.size == (100, 50) and error.value.max_pixels == 4999
    assert "big.png" in str(error.value) and "5000" in str(error.value) and "4999" in str(error.value)
    assert isinstance(error.value, ImageLoadError) and isinstance(error.value, ValueError)
    assert open_image(name, tmp_path, max_pixels=5000).size == (100, 50)


def test_file_objects_are_opened_with_the_same_guards():
    buffer = io.BytesIO()
    Image.new("LA", (3, 2), (0, 0)).save(buffer, format="PNG")
    image = open_image(io.BytesIO(buffer.getvalue()), None)
    assert image.mode == "RGB" and image.size == (3, 2)
    np.testing.assert_array_equal(_pixels(image)[0, 0], [255, 255, 255])  # transparent: composited on white
    with pytest.raises(ImageTooLarge, match="shard.tar#a.png"):
        open_image(io.BytesIO(buffer.getvalue()), None, max_pixels=5, name="shard.tar#a.png")
    with pytest.raises(ImageLoadError, match="shard.tar#b.png"):
        open_image(io.BytesIO(b"not an image"), None, name="shard.tar#b.png")


def test_to_rgb_is_the_processor_conversion():
    assert to_rgb is image_conversion.to_rgb  # one implementation, shared with the saved processor code


def test_path_escaping_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    _save(Image.new("RGB", (1, 1)), tmp_path, "outside.png")
    for escaping in ("../outside.png", str(tmp_path / "outside.png"), "sub/../../outside.png"):
        with pytest.raises(UnsafePathError) as error:
            open_image(escaping, root)
        assert escaping in str(error.value)
        assert isinstance(error.value, ValueError)


def test_absolute_path_inside_root_is_accepted(tmp_path):
    _save(Image.new("RGB", (1, 1)), tmp_path, "inside.png")
    assert open_image(tmp_path / "inside.png", tmp_path).size == (1, 1)


def test_symlink_escaping_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    _save(Image.new("RGB", (1, 1)), tmp_path, "secret.png")
    os.symlink(tmp_path / "secret.png", root / "link.png")
    with pytest.raises(UnsafePathError, match="link.png"):
        open_image("link.png", root)


def test_corrupt_truncated_and_missing_files(tmp_path):
    (tmp_path / "garbage.png").write_bytes(b"this is not an image")
    with pytest.raises(ImageLoadError, match="garbage.png"):
        open_image("garbage.png", tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg"):
        open_image("cut.jpg", tmp_path)
    with pytest.raises(ImageLoadError, match="missing.png: file not found"):
        open_image("missing.png", tmp_path)


def test_errors_format_and_pickle():
    import pickle

    error = KnowledgeCLIPDataError("bad value", file="data.csv", line=12, field="weight")
    assert str(error) == "data.csv:12: weight: bad value"
    assert (error.file, error.line, error.field) == ("data.csv", 12, "weight")
    copy = pickle.loads(pickle.dumps(ImageTooLarge("x.png", (10, 10), 5)))
    assert (
        isinstance(copy, ImageTooLarge)
        and copy.size == (10, 10)
        and str(copy) == str(ImageTooLarge("x.png", (10, 10), 5))
    )


def test_crop_region_clips_and_refuses_empty_boxes():
    image = Image.new("RGB", (10, 8))
    assert crop_region(image, (2.5, 1.2, 5.1, 4.0)).size == (4, 3)  # floor/ceil to whole pixels
    assert crop_region(image, (-5, -5, 100, 100)).size == (10, 8)
    for box in ((5, 5, 5, 7), (20, 0, 30, 5), (3, 3, 1, 1), (0, 0, float("nan"), 2)):
        with pytest.raises(ValueError):
            crop_region(image, box)
