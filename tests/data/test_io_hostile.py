"""Hostile and damaged image files: pixel bombs, corrupt JPEG data, JPEGs with trailing bytes.

The header reader is checked against OpenCV's decoded shapes (the oracle) for every format
and bit depth we accept; the limits and the corruption checks against hand-made files.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeanomaly.data import read_image, read_mask
from edgeanomaly.data._io import decode_image, header_size
from edgeanomaly.errors import ImageReadError

RNG = np.random.default_rng(0)


def _png_bytes(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (insufficient) IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")


def _jpeg(shape: tuple[int, ...] = (96, 128, 3)) -> bytes:
    ok, buf = cv2.imencode(".jpg", RNG.integers(0, 256, size=shape, dtype=np.uint8))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    ("ext", "shape", "dtype"),
    [
        (".png", (17, 23, 3), np.uint8),
        (".png", (17, 23), np.uint16),
        (".png", (5, 300, 4), np.uint8),
        (".jpg", (31, 47, 3), np.uint8),
        (".jpg", (31, 47), np.uint8),
        (".bmp", (19, 29, 3), np.uint8),
        (".tif", (13, 41, 3), np.uint8),
        (".tif", (13, 41), np.uint16),
    ],
)
def test_header_size_matches_the_decoded_image(tmp_path: Path, ext: str, shape: tuple[int, ...], dtype: type) -> None:
    path = tmp_path / f"x{ext}"
    assert cv2.imwrite(str(path), RNG.integers(0, 200, size=shape).astype(dtype))
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert header_size(path.read_bytes()) == (decoded.shape[1], decoded.shape[0])


def test_progressive_jpeg_header(tmp_path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", RNG.integers(0, 256, size=(33, 65, 3), dtype=np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and header_size(buf.tobytes()) == (65, 33)


def test_pixel_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_bytes(25000, 25000))
    with pytest.raises(ImageReadError, match=r"25000x25000 pixels.*625\.0 megapixels.*limit.*EDGEANOMALY_MAX_IMAGE_PIXELS"):
        read_image(bomb)


def test_pixel_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.png"
    assert cv2.imwrite(str(path), np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ImageReadError, match=r"100x100 pixels.*limit of 0\.005 megapixels"):
        decode_image(path.read_bytes(), str(path), max_pixels=5000)
    monkeypatch.setenv("EDGEANOMALY_MAX_IMAGE_PIXELS", "9999")
    with pytest.raises(ImageReadError, match="limit"):
        read_image(path)
    with pytest.raises(ImageReadError, match="limit"):
        read_mask(path)
    monkeypatch.setenv("EDGEANOMALY_MAX_IMAGE_PIXELS", "10000")
    assert read_image(path).shape == (100, 100, 3)
    monkeypatch.setenv("EDGEANOMALY_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="EDGEANOMALY_MAX_IMAGE_PIXELS.*'lots'"):
        read_image(path)


def test_jpeg_cut_in_half_with_an_end_marker_is_refused(tmp_path: Path) -> None:
    data = _jpeg()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    with pytest.raises(ImageReadError, match=r"JPEG file is corrupt.*premature end of data segment.*half\.jpg"):
        read_image(path)


def test_jpeg_with_bytes_after_its_end_marker_is_accepted(tmp_path: Path) -> None:
    data = _jpeg()
    clean, padded = tmp_path / "clean.jpg", tmp_path / "padded.jpg"
    clean.write_bytes(data)
    padded.write_bytes(data + b"camera trailer: exposure=12ms\x00\x01" * 8)
    np.testing.assert_array_equal(read_image(padded), read_image(clean))


def test_truncated_jpeg_without_end_marker_is_still_refused(tmp_path: Path) -> None:
    data = _jpeg()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(path)


def test_other_stderr_output_during_decoding_is_not_swallowed(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Only libjpeg's corruption warnings become errors; decoding a clean JPEG prints nothing."""
    path = tmp_path / "ok.jpg"
    path.write_bytes(_jpeg())
    read_image(path)
    assert capfd.readouterr().err == ""
