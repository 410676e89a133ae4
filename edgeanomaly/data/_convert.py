"""The one set of rules that turns a pixel array into RGB uint8 (H, W, 3).

Decoded files (``read_image``) and arrays handed to the runtime (``Detector.predict``) both
go through :func:`to_rgb_uint8`, so a 16-bit, gray, RGBA or float image means the same
thing whichever way it arrives.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeanomaly._optional import check_choice
from edgeanomaly.errors import ImageReadError

__all__ = ["COLORS", "to_rgb_uint8"]

#: Channel orders of a 3- or 4-channel array (OpenCV decodes and captures BGR).
COLORS = ("RGB", "BGR")


# Depth conversion runs over row bands of about this many values, so its uint32/float
# temporaries stay a few MB whatever the image size (a 16-bit RGBA image converted at once
# took 40 bytes a pixel).
_BAND_VALUES = 1 << 18


def _bands(img: np.ndarray) -> range:
    per_row = max(1, img[0].size)
    return range(0, img.shape[0], max(1, _BAND_VALUES // per_row))


def _to_uint8(img: np.ndarray, name: str) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        out = np.empty(img.shape, np.uint8)
        step = _bands(img).step
        for r in _bands(img):
            band = img[r : r + step].astype(np.uint32)
            band += 128
            band //= 257  # 65535 / 255 = 257 exactly, so this maps 0..65535 onto 0..255 without bias.
            out[r : r + step] = band
        return out
    if img.dtype in (np.float32, np.float64):
        if not np.isfinite(img).all():
            raise ImageReadError(f"Floating-point image contains NaN or inf values: {name}")
        lo, hi = float(img.min()), float(img.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageReadError(
                f"Expected an image of dtype uint8, uint16 or float in [0, 1], got {img.dtype} values in "
                f"[{lo:g}, {hi:g}]: {name}. Scale it with (x / 255) or pass x.round().astype(np.uint8)"
            )
        out = np.empty(img.shape, np.uint8)
        step = _bands(img).step
        for r in _bands(img):
            out[r : r + step] = np.round(img[r : r + step] * 255.0)
        return out
    raise ImageReadError(f"Expected an image of dtype uint8, uint16 or float in [0, 1], got dtype {img.dtype}: {name}")


def to_rgb_uint8(image: np.ndarray, color: str = "RGB", name: str = "image array") -> np.ndarray:
    """Pixels -> RGB uint8 (H, W, 3).

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8, uint16 (scaled by 1/257)
            or float32/float64 in [0, 1] (scaled by 255 and rounded). Gray is replicated to
            three channels; alpha is dropped, not composited (inspection images carry no
            meaningful transparency).
        color: channel order of a 3- or 4-channel ``image``, ``"RGB"`` or ``"BGR"``.
        name: what the image is, for error messages (a file name).

    Raises:
        TypeError: ``image`` is not a numpy array.
        ImageReadError: a shape, dtype or value range outside the rules (a ``ValueError``).

    >>> to_rgb_uint8(np.zeros((2, 3), np.float32)).shape
    (2, 3, 3)
    """
    color = check_choice("color order", str(color).upper(), COLORS)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"Expected an image as a file path or a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ImageReadError(f"Expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}: {name}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageReadError(f"Expected a non-empty image, got shape {image.shape}: {name}")
    # Alpha goes first (a view), so no depth conversion copies it: BGRA -> BGR, RGBA -> RGB.
    img = _to_uint8(image[:, :, :3] if image.ndim == 3 and image.shape[2] == 4 else image, name)
    if img.ndim == 2 or img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2))
    if color == "BGR":
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2RGB)
    return img
