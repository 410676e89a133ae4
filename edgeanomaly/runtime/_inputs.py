"""Turn what a user hands to ``predict`` (a path or an array) into RGB uint8 (H, W, 3)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeanomaly.data import COLORS, to_rgb_uint8

__all__ = ["COLORS", "as_rgb"]


def as_rgb(image: Any, color: str = "RGB") -> tuple[np.ndarray, str | None, float | None]:
    """Return ``(rgb, source, decode_ms)``: files are decoded (and timed), arrays converted.

    ``color`` applies to arrays only (files are decoded to RGB whatever their format); both
    follow :func:`edgeanomaly.data.to_rgb_uint8`.
    """
    if isinstance(image, (str, os.PathLike)):
        from edgeanomaly.data import read_image

        t0 = time.perf_counter()
        rgb = read_image(image)
        return rgb, str(Path(image)), (time.perf_counter() - t0) * 1e3
    return to_rgb_uint8(image, color), None, None
