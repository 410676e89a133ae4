"""AUPR (average precision) and the precision-recall curve, image and pixel level.

AUPR here is the step-wise *average precision* (scikit-learn's ``average_precision_score``):
``sum_k (R_k - R_{k-1}) * P_k`` over decreasing thresholds, with ``score >= threshold``. It
does not interpolate precision linearly between points, which would overestimate the area.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeanomaly.metrics._base import Accumulator
from edgeanomaly.metrics._curve import Split, clf_curve, merge_splits
from edgeanomaly.metrics._format import image_split, pixel_split
from edgeanomaly.metrics._results import PRResult
from edgeanomaly.metrics._validate import warn_undefined

__all__ = ["aupr", "pr_curve", "pixel_aupr", "pixel_pr_curve", "AUPR", "PR", "PixelAUPR", "PixelPR"]


def _compute_pr(split: Split) -> PRResult:
    c = clf_curve(split.pos, split.neg)
    if c.n_pos == 0:
        warn_undefined("PR curve", "only negatives are present")
        nan = np.full(c.thresholds.size, np.nan)
        return PRResult(precision=nan, recall=nan, thresholds=c.thresholds)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = c.tp / (c.tp + c.fp)
    # at +inf nothing is predicted; precision 1 there is the usual convention
    precision[0] = 1.0
    return PRResult(precision=precision, recall=c.tp / c.n_pos, thresholds=c.thresholds)


def _compute_aupr(split: Split) -> float:
    if split.pos.size == 0 or split.neg.size == 0:
        return warn_undefined("AUPR", f"only {'negatives' if split.neg.size else 'positives'} are present")
    return _compute_pr(split).average_precision


def aupr(scores: Any, labels: Any) -> float:
    """Area under the precision-recall curve of image scores, as average precision.

    scores: (N,) real; labels: (N,) bool or {0, 1}. Step-wise (see the module docstring),
    exact over every distinct threshold. Warns and returns NaN if one class is missing
    (with positives only, precision is 1 everywhere and the metric says nothing).

    >>> aupr([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.8333333333333333
    """
    return _compute_aupr(image_split(scores, labels))


def pr_curve(scores: Any, labels: Any) -> PRResult:
    """Precision-recall curve of image scores: :class:`PRResult`, decreasing thresholds.

    ``thresholds[0]`` is ``+inf`` (recall 0, precision 1); only corners are listed.

    >>> r = pr_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> r.recall.tolist(), r.average_precision
    ([0.0, 0.5, 0.5, 1.0, 1.0], 0.8333333333333333)
    """
    return _compute_pr(image_split(scores, labels))


def pixel_aupr(anomaly_maps: Any, masks: Any) -> float:
    """Pixel-level AUPR (average precision) over every pixel, exact.

    anomaly_maps: (N, H, W) or (N, 1, H, W) real; masks: same shape, bool or {0, 1}.
    """
    return _compute_aupr(pixel_split(anomaly_maps, masks))


def pixel_pr_curve(anomaly_maps: Any, masks: Any) -> PRResult:
    """Precision-recall curve over every pixel; see :func:`pr_curve`."""
    return _compute_pr(pixel_split(anomaly_maps, masks))


class AUPR(Accumulator[Split, float]):
    """Stateful :func:`aupr`. Memory: the scores."""

    _format = staticmethod(image_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_aupr)


class PR(Accumulator[Split, PRResult]):
    """Stateful :func:`pr_curve`."""

    _format = staticmethod(image_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_pr)


class PixelAUPR(Accumulator[Split, float]):
    """Stateful :func:`pixel_aupr`. Memory: every pixel value once in the map dtype."""

    _format = staticmethod(pixel_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_aupr)


class PixelPR(Accumulator[Split, PRResult]):
    """Stateful :func:`pixel_pr_curve`. Memory: every pixel value once in the map dtype."""

    _format = staticmethod(pixel_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_pr)
