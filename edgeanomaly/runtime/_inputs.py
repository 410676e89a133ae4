"""Turn what a user hands to ``predict`` (a path or an array) into RGB uint8 (H, W, 3)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeanomaly._optional import check_choice

__all__ = ["COLORS", "as_rgb"]

#: Channel orders accepted for array inputs. Files are always decoded to RGB.
COLORS = ("RGB", "BGR")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        # Same mapping as edgeanomaly.data.read_image: 65535 / 255 = 257 exactly.
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise ValueError(
        f"Expected an image array of dtype uint8 (or uint16), got {array.dtype}; "
        "scale float images with (x * 255).round().astype(np.uint8)"
    )


def array_to_rgb(array: np.ndarray, color: str = "RGB") -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8/uint16 in ``color`` order -> RGB uint8 (H, W, 3).

    >>> array_to_rgb(np.zeros((2, 3, 3), np.uint8), "BGR").shape
    (2, 3, 3)
    """
    color = check_choice("color order", str(color).upper(), COLORS)
    if not isinstance(array, np.ndarray):
        raise TypeError(f"Expected an image as a file path or a numpy array, got {type(array).__name__}")
    if array.ndim in (2, 3) and 0 in array.shape[:2]:
        raise ValueError(f"Expected an image array of at least 1x1 pixels, got shape {array.shape}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        gray = _to_uint8(array)
        return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2RGB)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"Expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    array = _to_uint8(array)
    if array.shape[2] == 4:
        code = cv2.COLOR_BGRA2RGB if color == "BGR" else cv2.COLOR_RGBA2RGB
        return cv2.cvtColor(np.ascontiguousarray(array), code)
    if color == "BGR":
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_BGR2RGB)
    return array


def as_rgb(image: Any, color: str = "RGB") -> tuple[np.ndarray, str | None, float | None]:
    """Return ``(rgb, source, decode_ms)``: files are decoded (and timed), arrays converted.

    ``color`` applies to arrays only (files are decoded to RGB whatever their format).
    """
    if isinstance(image, (str, os.PathLike)):
        from edgeanomaly.data._io import read_image

        t0 = time.perf_counter()
        rgb = read_image(image)
        return rgb, str(Path(image)), (time.perf_counter() - t0) * 1e3
    return array_to_rgb(image, color), None, None
