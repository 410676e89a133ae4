"""F1 at a threshold and the F1-adaptive threshold, on the shared curve core.

F1 = 2 TP / (2 TP + FP + FN) of the prediction ``score >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgeanomaly.metrics import _validate
from edgeanomaly.metrics._base import Accumulator
from edgeanomaly.metrics._curve import Split, ceil_to_dtype, clf_curve, merge_splits
from edgeanomaly.metrics._format import image_split, pixel_split
from edgeanomaly.metrics._results import AdaptiveThresholdResult
from edgeanomaly.metrics._validate import warn_undefined

__all__ = [
    "f1_score",
    "f1_adaptive_threshold",
    "pixel_f1_adaptive_threshold",
    "F1Score",
    "F1AdaptiveThreshold",
    "PixelF1AdaptiveThreshold",
]


@dataclass(frozen=True, eq=False)
class _F1Counts:
    """The format stage of F1 at a threshold: three counters."""

    tp: int
    fp: int
    n_pos: int


def _f1_counts(split: Split, threshold: float) -> _F1Counts:
    t = ceil_to_dtype(threshold, np.result_type(split.pos, split.neg))
    return _F1Counts(int(np.count_nonzero(split.pos >= t)), int(np.count_nonzero(split.neg >= t)), split.pos.size)


def _merge_f1_counts(chunks: Sequence[_F1Counts]) -> _F1Counts:
    return _F1Counts(sum(c.tp for c in chunks), sum(c.fp for c in chunks), sum(c.n_pos for c in chunks))


def _compute_f1(c: _F1Counts) -> float:
    if c.n_pos == 0:
        return warn_undefined("F1", "only negatives are present")
    return 2.0 * c.tp / (c.tp + c.fp + c.n_pos)


def _compute_adaptive(split: Split) -> AdaptiveThresholdResult:
    if split.pos.size == 0:
        warn_undefined("F1-adaptive threshold", "only negatives are present")
        return AdaptiveThresholdResult(threshold=np.nan, f1=np.nan)
    c = clf_curve(split.pos, split.neg)
    # 2TP + FP + FN = TP + FP + P, never 0 once a positive exists
    f1 = 2.0 * c.tp / (c.tp + c.fp + c.n_pos)
    # among equal maxima the lowest threshold wins (the last one in decreasing order), as in
    # scikit-learn based reference code that takes argmax over increasing thresholds
    best = f1.size - 1 - int(np.argmax(f1[::-1]))
    return AdaptiveThresholdResult(threshold=float(c.thresholds[best]), f1=float(f1[best]))


def f1_score(scores: Any, labels: Any, threshold: float) -> float:
    """F1 of the prediction ``score >= threshold`` on image scores.

    scores: (N,) real; labels: (N,) bool or {0, 1}. The threshold is compared exactly in the
    scores' dtype (never rounded down into a tie). Warns and returns NaN when no positive is
    present (recall undefined).

    >>> f1_score([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], threshold=0.35)
    0.8
    """
    t = _validate.threshold(threshold)
    return _compute_f1(_f1_counts(image_split(scores, labels), t))


def f1_adaptive_threshold(scores: Any, labels: Any) -> AdaptiveThresholdResult:
    """The threshold that maximises F1 on image scores, and that F1.

    scores: (N,) real; labels: (N,) bool or {0, 1}. Returns :class:`AdaptiveThresholdResult`
    with ``.threshold`` (one of the scores; ``score >= threshold`` is anomalous) and ``.f1``.
    Every distinct threshold is considered exactly; among equal maxima the lowest threshold is
    returned. Warns and returns NaN for both when no positive is present.

    >>> r = f1_adaptive_threshold([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> r.threshold, r.f1
    (0.35, 0.8)
    """
    return _compute_adaptive(image_split(scores, labels))


def pixel_f1_adaptive_threshold(anomaly_maps: Any, masks: Any) -> AdaptiveThresholdResult:
    """The pixel threshold that maximises pixel F1; see :func:`f1_adaptive_threshold`.

    anomaly_maps: (N, H, W) or (N, 1, H, W); masks: same shape, bool or {0, 1}.
    """
    return _compute_adaptive(pixel_split(anomaly_maps, masks))


class F1Score(Accumulator[_F1Counts, float]):
    """Stateful :func:`f1_score`: ``F1Score(threshold).update(scores, labels).compute()``.

    Memory: three counters. The shared stage is :func:`_compute_f1` on each batch.
    """

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = _validate.threshold(threshold)

    def update(self, scores: Any, labels: Any) -> F1Score:
        """Add a batch of (N,) scores and (N,) labels; returns ``self``."""
        self._chunks.append(_f1_counts(image_split(scores, labels), self.threshold))
        return self

    _merge = staticmethod(_merge_f1_counts)
    _compute = staticmethod(_compute_f1)


class F1AdaptiveThreshold(Accumulator[Split, AdaptiveThresholdResult]):
    """Stateful :func:`f1_adaptive_threshold`; ``compute()`` has ``.threshold`` and ``.f1``."""

    _format = staticmethod(image_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_adaptive)


class PixelF1AdaptiveThreshold(Accumulator[Split, AdaptiveThresholdResult]):
    """Stateful :func:`pixel_f1_adaptive_threshold`. Memory: every pixel value once."""

    _format = staticmethod(pixel_split)
    _merge = staticmethod(merge_splits)
    _compute = staticmethod(_compute_adaptive)
