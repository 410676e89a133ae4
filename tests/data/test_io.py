from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeanomaly.data import read_image, read_mask
from edgeanomaly.errors import EdgeAnomalyError, ImageReadError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)


def write_bgr(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_formats_round_trip_exactly(tmp_path: Path, ext: str) -> None:
    img = read_image(write_bgr(tmp_path / f"x{ext}", RGB))
    assert img.dtype == np.uint8 and img.shape == (17, 23, 3)
    np.testing.assert_array_equal(img, RGB)


def test_jpeg_is_rgb_not_bgr(tmp_path: Path) -> None:
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    img = read_image(write_bgr(tmp_path / "red.jpg", red))
    assert img[..., 0].mean() > 200 and img[..., 2].mean() < 20


def test_uppercase_extension(tmp_path: Path) -> None:
    np.testing.assert_array_equal(read_image(write_bgr(tmp_path / "X.PNG", RGB)), RGB)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_scaled_to_8bit(tmp_path: Path, ext: str) -> None:
    v16 = np.array([[0, 257, 65535, 32896]], np.uint16)
    assert cv2.imwrite(str(tmp_path / f"g{ext}"), v16)
    img = read_image(tmp_path / f"g{ext}")
    np.testing.assert_array_equal(img[0, :, 0], [0, 1, 255, 128])
    rgb16 = (RGB.astype(np.uint16) * 257)
    assert cv2.imwrite(str(tmp_path / f"c{ext}"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_image(tmp_path / f"c{ext}"), RGB)


def test_grayscale_replicated(tmp_path: Path) -> None:
    gray = RGB[..., 0]
    assert cv2.imwrite(str(tmp_path / "g.png"), gray)
    img = read_image(tmp_path / "g.png")
    assert img.shape == (17, 23, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], gray)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    bgra = np.dstack([cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR), np.full(RGB.shape[:2], 7, np.uint8)])
    assert cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), RGB)


def test_palette_png(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    pal = Image.new("P", (5, 4))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putdata([0, 1] * 10)
    pal.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.shape == (4, 5, 3)
    np.testing.assert_array_equal(img[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(img[0, 1], [0, 255, 0])


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found.*nope.png"):
        read_image(tmp_path / "nope.png")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.*e.png"):
        read_image(tmp_path / "e.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "t.png").write_text("hello, I am text")
    with pytest.raises(ImageReadError, match="Not an image file.*t.png"):
        read_image(tmp_path / "t.png")


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated(tmp_path: Path, ext: str) -> None:
    big = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    full = write_bgr(tmp_path / f"full{ext}", big).read_bytes()
    (tmp_path / f"cut{ext}").write_bytes(full[: len(full) // 2])
    with pytest.raises(ImageReadError, match=f"truncated.*cut{ext}"):
        read_image(tmp_path / f"cut{ext}")


def test_error_is_catchable_as_base_and_builtin(tmp_path: Path) -> None:
    with pytest.raises(EdgeAnomalyError):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ValueError):
        read_image(tmp_path / "missing.png")


def test_masks_0_255_and_0_1(tmp_path: Path) -> None:
    m = np.zeros((6, 7), np.uint8)
    m[2:4, 3:6] = 1
    assert cv2.imwrite(str(tmp_path / "m01.png"), m)
    assert cv2.imwrite(str(tmp_path / "m255.png"), m * 255)
    for name in ("m01.png", "m255.png"):
        out = read_mask(tmp_path / name)
        assert out.dtype == bool
        np.testing.assert_array_equal(out, m.astype(bool))


def test_mask_1bit_png(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    m = np.zeros((6, 9), bool)
    m[1:3, 2:8] = True
    Image.fromarray(m).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png"), m)


def test_mask_all_zero_is_fine_and_soft_mask_rejected(tmp_path: Path) -> None:
    assert cv2.imwrite(str(tmp_path / "z.png"), np.zeros((3, 3), np.uint8))
    assert not read_mask(tmp_path / "z.png").any()
    soft = np.array([[0, 128, 255]], np.uint8)
    assert cv2.imwrite(str(tmp_path / "s.png"), soft)
    with pytest.raises(ImageReadError, match="binary mask.*3 distinct"):
        read_mask(tmp_path / "s.png")


def test_real_mvtec_images_and_1bit_masks(mvtec_root: Path) -> None:
    img = read_image(mvtec_root / "hazelnut" / "test" / "crack" / "000.png")
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    mask = read_mask(mvtec_root / "hazelnut" / "ground_truth" / "crack" / "000_mask.png")
    assert mask.shape == (256, 256) and mask.any() and not mask.all()
