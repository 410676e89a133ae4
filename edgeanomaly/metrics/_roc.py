"""AUROC and the ROC curve, image level (scores, labels) and pixel level (maps, masks)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeanomaly.metrics._base import Accumulator
from edgeanomaly.metrics._curve import Counts, Split, clf_curve, merge_splits
from edgeanomaly.metrics._format import image_split, pixel_split
from edgeanomaly.metrics._results import ROCResult
from edgeanomaly.metrics._validate import warn_undefined

__all__ = ["auroc", "roc_curve", "pixel_auroc", "pixel_roc_curve", "AUROC", "ROC", "PixelAUROC", "PixelROC"]


def _one_class(split: Split, metric: str) -> bool:
    if split.pos.size and split.neg.size:
        return False
    present = "negatives" if split.neg.size else "positives"
    warn_undefined(metric, f"only {present} are present")
    return True


def _compute_auroc(split: Split) -> float:
    if _one_class(split, "AUROC"):
        return math.nan
    c = clf_curve(split.pos, split.neg)
    # counts are integers below 2**53, so the sum is exact until the final division
    twice_area = np.sum(np.diff(c.fp) * (c.tp[1:] + c.tp[:-1]))
    return float(twice_area / (2.0 * c.n_pos * c.n_neg))


def _roc_from_counts(c: Counts) -> ROCResult:
    with np.errstate(invalid="ignore", divide="ignore"):
        return ROCResult(fpr=c.fp / c.n_neg, tpr=c.tp / c.n_pos, thresholds=c.thresholds)


def _compute_roc(split: Split) -> ROCResult:
    c = clf_curve(split.pos, split.neg)
    if _one_class(split, "ROC curve"):
        # the rate of the missing class is undefined; the other one is still meaningful
        nan = np.full(c.thresholds.size, np.nan)
        fpr = nan if c.n_neg == 0 else c.fp / c.n_neg
        tpr = nan if c.n_pos == 0 else c.tp / c.n_pos
        return ROCResult(fpr=fpr, tpr=tpr, thresholds=c.thresholds)
    return _roc_from_counts(c)


def auroc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve of image scores.

    scores: (N,) real, higher = more anomalous; labels: (N,) bool or {0, 1}, 1 = anomalous.
    Equals the Mann-Whitney probability that a random anomalous score is above a random
    normal one, ties counting one half: the trapezoid area of the exact curve (``score >=
    threshold`` convention), with no binning. Warns and returns NaN if one class is missing.

    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    return _compute_auroc(image_split(scores, labels))


def roc_curve(scores: Any, labels: Any) -> ROCResult:
    """ROC curve of image scores: :class:`ROCResult` (fpr, tpr, decreasing thresholds).

    The rates at threshold ``t`` are those of ``score >= t``. ``thresholds[0]`` is ``+inf``
    (the point (0, 0)); only the corners of the curve are listed, the rest lie on segments.

    >>> r = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> r.tpr.tolist(), r.fpr.tolist(), r.auc
    ([0.0, 0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5, 1.0], 0.75)
    """
    return _compute_roc(image_split(scores, labels))


def pixel_auroc(anomaly_maps: Any, masks: Any) -> float:
    """Pixel-level AUROC over every pixel of every image, exact.

    anomaly_maps: (N, H, W) or (N, 1, H, W) real; masks: same shape, bool or {0, 1}.
    Cost: one sort of the background pixels (float32 maps sort as float32).

    >>> maps = np.array([[[0.1, 0.9], [0.2, 0.3]]], dtype=np.float32)
    >>> pixel_auroc(maps, np.array([[[0, 1], [0, 0]]]))
    1.0
    """
    return _compute_auroc(pixel_split(anomaly_maps, masks))


def pixel_roc_curve(anomaly_maps: Any, masks: Any) -> ROCResult:
    """ROC curve over every pixel: :class:`ROCResult`; see :func:`roc_curve`."""
    return _compute_roc(pixel_split(anomaly_maps, masks))


class AUROC(Accumulator[Split, float]):
    """Stateful :func:`auroc`: ``AUROC().update(scores, labels).compute()``.

    Memory: the scores, in their own dtype.

    >>> AUROC().update([0.1, 0.8], [0, 1]).update([0.4, 0.35], [0, 1]).compute()
    0.75
    """

    _format = staticmethod(image_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_auroc)


class ROC(Accumulator[Split, ROCResult]):
    """Stateful :func:`roc_curve`."""

    _format = staticmethod(image_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_roc)


class PixelAUROC(Accumulator[Split, float]):
    """Stateful :func:`pixel_auroc`: ``PixelAUROC().update(maps, masks).compute()``.

    Memory: every pixel value once, in the map dtype (4 bytes a pixel for float32: 26 MB per
    100 maps of 256x256); masks are not kept. ``compute()`` sorts the background pixels.
    """

    _format = staticmethod(pixel_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_auroc)


class PixelROC(Accumulator[Split, ROCResult]):
    """Stateful :func:`pixel_roc_curve`; memory as :class:`PixelAUROC`."""

    _format = staticmethod(pixel_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_roc)
