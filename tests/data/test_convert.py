"""One image conversion path: arrays handed to the runtime and decoded files follow the same
rules (dtype, range, channels), because both go through ``edgeanomaly.data.to_rgb_uint8``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeanomaly.data import read_image, to_rgb_uint8
from edgeanomaly.errors import ImageReadError

RNG = np.random.default_rng(1)
RGB = RNG.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)


def test_hand_computed_rules() -> None:
    # float in [0, 1] -> round(x * 255); uint16 -> round(x / 257); gray -> 3 equal channels
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[0.0, 0.5, 1.0]], np.float32))[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[0, 128, 257, 65535]], np.uint16))[0, :, 1], [0, 0, 1, 255])
    rgba = np.dstack([RGB, np.zeros(RGB.shape[:2], np.uint8)])
    np.testing.assert_array_equal(to_rgb_uint8(rgba), RGB)  # alpha dropped, not composited
    np.testing.assert_array_equal(to_rgb_uint8(RGB[..., ::-1], "BGR"), RGB)
    np.testing.assert_array_equal(to_rgb_uint8(RGB[..., :1]), np.repeat(RGB[..., :1], 3, axis=2))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.linspace(0, 255, 48, dtype=np.float32).reshape(4, 4, 3), r"float32 values in \[0, 255\]"),
        (np.full((4, 4), np.nan, np.float64), "NaN"),
        (np.zeros((4, 4, 2), np.uint8), r"shape \(H, W\), \(H, W, 1\), \(H, W, 3\) or \(H, W, 4\), got \(4, 4, 2\)"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 3), np.int32), "dtype int32"),
    ],
)
def test_bad_arrays_say_what_was_expected(bad: np.ndarray, match: str) -> None:
    with pytest.raises(ImageReadError, match=match):
        to_rgb_uint8(bad)
    with pytest.raises(TypeError, match="numpy array"):
        to_rgb_uint8([[1, 2]])  # type: ignore[arg-type]


def test_files_and_arrays_agree(tmp_path: Path) -> None:
    """A 16-bit gray file and the same pixels as an array become the same RGB image."""
    gray16 = RNG.integers(0, 65536, size=(9, 11), dtype=np.uint16)
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), gray16)
    np.testing.assert_array_equal(read_image(path), to_rgb_uint8(gray16))


def test_runtime_accepts_float_images_like_the_data_layer() -> None:
    from edgeanomaly.runtime._inputs import as_rgb

    as_float = RGB.astype(np.float32) / 255.0
    np.testing.assert_array_equal(as_rgb(as_float)[0], RGB)


@pytest.mark.parametrize(("shape", "dtype"), [((1100, 700, 4), np.uint16), ((1100, 700, 3), np.uint16), ((1100, 700), np.uint16),
                                              ((1100, 700, 3), np.float32), ((1100, 700, 4), np.float64)])
def test_conversion_of_large_images_is_exact_and_needs_no_full_size_temporaries(shape, dtype) -> None:
    """Issue 20 (serve memory): a 16-bit RGBA image took 40 bytes a pixel to convert (uint32 and
    float copies of the whole image, alpha included). Now the extra memory beyond the RGB result
    is a few MB whatever the size (numpy's allocations are traced by tracemalloc), and the values
    equal the rules computed on the whole image at once (uint16 in float64, float in its own type)."""
    import tracemalloc

    rng = np.random.default_rng(3)
    img = rng.integers(0, 65536, size=shape).astype(dtype) if dtype == np.uint16 else rng.random(shape).astype(dtype)
    three = img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    if dtype == np.uint16:
        want = np.floor(three.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)  # 65535 / 255 = 257, round half up
    else:
        want = np.round(three * 255.0).astype(np.uint8)  # the rule as before: in the array's own float type
    tracemalloc.start()
    try:
        got = to_rgb_uint8(img, "RGB")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, want)
    result = shape[0] * shape[1] * 3
    assert peak <= result + (4 << 20), (peak / 2**20, result / 2**20)
