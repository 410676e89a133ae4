"""Turn what a user hands to ``predict`` (a path or an array) into RGB uint8 (H, W, 3)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeanomaly.data import COLORS, read_image, to_rgb_uint8
from edgeanomaly.errors import ImageReadError

__all__ = ["COLORS", "MIN_IMAGE_SIDE", "as_rgb", "check_image_size", "min_image_side"]

#: No image is scored whose shorter side is below this many pixels, whatever the model.
MIN_IMAGE_SIDE = 16
#: ... nor below this fraction of the model's shorter input side: the image would be
#: upsampled more than 8x, and each feature of the backbone's stride-16/32 layers would see
#: one or two real pixels. A 1x1 image used to be scored (0.86, anomalous) without a word.
_MAX_UPSAMPLING = 8


def min_image_side(input_hw: tuple[int, int]) -> int:
    """The smallest shorter side (pixels) of an image scored by a model of input ``(h, w)``:
    an eighth of the model's shorter side, and at least :data:`MIN_IMAGE_SIDE`.

    >>> min_image_side((256, 256)), min_image_side((64, 80))
    (32, 16)
    """
    return max(MIN_IMAGE_SIDE, -(-min(int(input_hw[0]), int(input_hw[1])) // _MAX_UPSAMPLING))


def check_image_size(hw: tuple[int, int], input_hw: tuple[int, int], name: str | None = None) -> None:
    """Raise ImageReadError when an image of ``(h, w)`` is too small to score (see :func:`min_image_side`)."""
    need = min_image_side(input_hw)
    h, w = int(hw[0]), int(hw[1])
    if min(h, w) < need:
        raise ImageReadError(
            f"Image is {w}x{h} pixels, too small to score: this model ({input_hw[1]}x{input_hw[0]} input) needs "
            f"at least {need} pixels on the shorter side (an eighth of its input, at least {MIN_IMAGE_SIDE}); "
            f"it would be upsampled {max(input_hw) / max(min(h, w), 1):.0f}x"
            + (f": {name}" if name else "")
        )


def as_rgb(image: Any, color: str = "RGB") -> tuple[np.ndarray, str | None, float | None]:
    """Return ``(rgb, source, decode_ms)``: files are decoded (and timed), arrays converted.

    ``color`` applies to arrays only (files are decoded to RGB whatever their format); both
    follow :func:`edgeanomaly.data.to_rgb_uint8`.
    """
    if isinstance(image, (str, os.PathLike)):
        t0 = time.perf_counter()
        rgb = read_image(image)
        return rgb, str(Path(image)), (time.perf_counter() - t0) * 1e3
    return to_rgb_uint8(image, color), None, None
