"""Postprocessing from the bundle's calibration: normalise, threshold, map back to image size.

The normalisation itself is the bundle's (``Calibration.normalize_score`` /
``normalize_map`` / ``label_score``): one implementation for export, validate and runtime.
This module only adds the geometry (model input size -> original image size).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

__all__ = ["map_to_image", "postprocess"]


def map_to_image(
    norm_map: np.ndarray,
    image_hw: tuple[int, int],
    resized_hw: tuple[int, int],
    crop_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """Bring an (h, w) map at model input size back to the original (H, W) image.

    Without a centre crop this is one bilinear resize. With a crop the map covers only the
    centre of the resized image: it is placed there (0 = "normal" elsewhere, since nothing
    outside the crop was inspected) and the whole canvas is resized.

    >>> map_to_image(np.zeros((4, 4), np.float32), (7, 9), (4, 4)).shape
    (7, 9)
    """
    if crop_hw is not None and tuple(crop_hw) != tuple(resized_hw):
        canvas = np.zeros(tuple(resized_hw), dtype=np.float32)
        top = (resized_hw[0] - crop_hw[0]) // 2
        left = (resized_hw[1] - crop_hw[1]) // 2
        canvas[top : top + crop_hw[0], left : left + crop_hw[1]] = norm_map
        norm_map = canvas
    if norm_map.shape == tuple(image_hw):
        return np.ascontiguousarray(norm_map, dtype=np.float32)
    return cv2.resize(norm_map, (int(image_hw[1]), int(image_hw[0])), interpolation=cv2.INTER_LINEAR)


def postprocess(
    calibration: Any,
    raw_score: float,
    raw_map: np.ndarray | None,
    image_hw: tuple[int, int],
    resized_hw: tuple[int, int],
    crop_hw: tuple[int, int] | None = None,
) -> tuple[float, bool, np.ndarray | None, np.ndarray | None]:
    """Raw graph outputs of one image -> ``(score, label, anomaly_map, mask)``.

    Args:
        calibration: the bundle's ``Calibration``.
        raw_score: ``pred_score`` of the image.
        raw_map: (h, w) float32 ``anomaly_map`` at model input size, or None.
        image_hw: original (H, W) of the image.
        resized_hw, crop_hw: the preprocessing geometry (``image_size``, ``center_crop``).

    Returns:
        normalised score, label (``raw_score >= image_threshold``), normalised (H, W) float32
        map and its (H, W) bool mask (``map >= 0.5``), the last two None without a map.
    """
    score = float(calibration.normalize_score(raw_score))
    label = bool(calibration.label_score(raw_score))
    if raw_map is None:
        return score, label, None, None
    small = np.asarray(calibration.normalize_map(raw_map), dtype=np.float32)
    full = map_to_image(small, image_hw, resized_hw, crop_hw)
    return score, label, full, full >= 0.5
