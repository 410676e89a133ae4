"""Format stages shared by the image-level and pixel-level classification metrics.

Both produce a :class:`~edgeanomaly.metrics._curve.Split` (positive and negative scores),
so ROC, PR and F1 compute the same way on image scores and on pixels.
"""

from __future__ import annotations

from typing import Any

from edgeanomaly.metrics import _validate
from edgeanomaly.metrics._curve import Split, split

__all__ = ["image_split", "pixel_split"]


def image_split(scores: Any, labels: Any) -> Split:
    """scores: (N,) real, labels: (N,) bool or {0, 1} -> Split of image scores."""
    s = _validate.scores(scores)
    y = _validate.labels(labels)
    _validate.same_length(s, "scores", y, "labels")
    return split(s, y)


def pixel_split(anomaly_maps: Any, masks: Any) -> Split:
    """anomaly_maps: (N, H, W) or (N, 1, H, W), masks: same -> Split of pixel values.

    Memory: one copy of every pixel value in the map dtype (4 bytes a pixel for float32).
    """
    maps = _validate.anomaly_maps(anomaly_maps)
    m = _validate.masks(masks)
    _validate.same_shape(maps, "anomaly_maps", m, "masks")
    return split(maps, m)
