"""Normalisation statistics: ManualThreshold, MinMax, AnomalyScoreDistribution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgeanomaly.metrics import _validate
from edgeanomaly.metrics._base import Accumulator
from edgeanomaly.metrics._results import MinMaxResult, ScoreDistributionResult
from edgeanomaly.metrics._validate import MetricInputError, MetricTypeError

__all__ = [
    "manual_threshold",
    "min_max",
    "anomaly_score_distribution",
    "ManualThreshold",
    "MinMax",
    "AnomalyScoreDistribution",
]


def manual_threshold(threshold: float) -> float:
    """A threshold set by hand, validated (finite real); ``score >= threshold`` is anomalous.

    >>> manual_threshold(0.5)
    0.5
    """
    return _validate.threshold(threshold)


class ManualThreshold:
    """Stateful twin of :func:`manual_threshold`: ``update()`` ignores the data.

    It exists so that a pipeline can swap it with :class:`~edgeanomaly.metrics.F1AdaptiveThreshold`.

    >>> ManualThreshold(0.5).update([0.2, 0.9], [0, 1]).compute()
    0.5
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = manual_threshold(threshold)

    def update(self, *args: Any) -> ManualThreshold:
        """Accept and ignore a batch; returns ``self``."""
        return self

    def reset(self) -> ManualThreshold:
        """Nothing to forget; returns ``self``."""
        return self

    def compute(self) -> float:
        """The threshold given at construction."""
        return self.threshold


def _finite_values(values: Any, name: str = "values") -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise MetricTypeError(f"Expected {name} as a NumPy array, got {type(values).__name__}") from exc
    if arr.size == 0:
        raise MetricInputError(f"Expected non-empty {name}, got shape {arr.shape}")
    return _validate.scores(arr.reshape(-1), name)


def _format_min_max(values: Any) -> MinMaxResult:
    v = _finite_values(values)
    return MinMaxResult(min=float(v.min()), max=float(v.max()))


def _merge_min_max(chunks: Sequence[MinMaxResult]) -> MinMaxResult:
    return MinMaxResult(min=min(c.min for c in chunks), max=max(c.max for c in chunks))


def _identity(result: Any) -> Any:
    return result


def min_max(values: Any) -> MinMaxResult:
    """Smallest and largest of ``values`` (scores (N,) or maps (N, H, W), any shape), finite.

    >>> r = min_max([[0.2, 0.7], [0.1, 0.3]])
    >>> r.min, r.max
    (0.1, 0.7)
    """
    return _format_min_max(values)


class MinMax(Accumulator[MinMaxResult, MinMaxResult]):
    """Stateful :func:`min_max`. Memory: two floats a batch."""

    _format = staticmethod(_format_min_max)
    _merge = staticmethod(_merge_min_max)
    _compute = staticmethod(_identity)


@dataclass(frozen=True, eq=False)
class _Moments:
    """Count, mean and sum of squared deviations, float64; mergeable exactly enough (Chan)."""

    n: int
    mean: float
    m2: float

    @staticmethod
    def of(values: np.ndarray) -> _Moments:
        if values.size == 0:
            return _Moments(0, 0.0, 0.0)
        mean = float(np.mean(values, dtype=np.float64))
        m2 = float(np.sum(np.square(values - mean, dtype=np.float64)))
        return _Moments(int(values.size), mean, m2)

    def merge(self, other: _Moments) -> _Moments:
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        return _Moments(n, mean, self.m2 + other.m2 + delta * delta * self.n * other.n / n)

    def mean_std(self) -> tuple[float, float]:
        if self.n == 0:
            return math.nan, math.nan
        return self.mean, math.sqrt(self.m2 / self.n)


@dataclass(frozen=True, eq=False)
class _Distribution:
    image: _Moments
    pixel: _Moments


def _format_distribution(scores: Any = None, anomaly_maps: Any = None) -> _Distribution:
    if scores is None and anomaly_maps is None:
        raise MetricInputError("Expected scores, anomaly_maps or both, got neither")
    image = _Moments.of(_validate.scores(scores)) if scores is not None else _Moments(0, 0.0, 0.0)
    pixel = _Moments.of(_validate.anomaly_maps(anomaly_maps)) if anomaly_maps is not None else _Moments(0, 0.0, 0.0)
    return _Distribution(image, pixel)


def _merge_distribution(chunks: Sequence[_Distribution]) -> _Distribution:
    image, pixel = chunks[0].image, chunks[0].pixel
    for c in chunks[1:]:
        image, pixel = image.merge(c.image), pixel.merge(c.pixel)
    return _Distribution(image, pixel)


def _compute_distribution(d: _Distribution) -> ScoreDistributionResult:
    image_mean, image_std = d.image.mean_std()
    pixel_mean, pixel_std = d.pixel.mean_std()
    return ScoreDistributionResult(
        image_mean=image_mean, image_std=image_std, pixel_mean=pixel_mean, pixel_std=pixel_std
    )


def anomaly_score_distribution(scores: Any = None, anomaly_maps: Any = None) -> ScoreDistributionResult:
    """Mean and standard deviation (ddof=0, float64) of image scores and of pixel values.

    scores: (N,) real or None; anomaly_maps: (N, H, W) or (N, 1, H, W) real or None (at least
    one of the two). The part not given is NaN.

    >>> r = anomaly_score_distribution(scores=[1.0, 3.0])
    >>> r.image_mean, r.image_std
    (2.0, 1.0)
    """
    return _compute_distribution(_format_distribution(scores, anomaly_maps))


class AnomalyScoreDistribution(Accumulator[_Distribution, ScoreDistributionResult]):
    """Stateful :func:`anomaly_score_distribution`: ``update(scores=..., anomaly_maps=...)``.

    Memory: three floats per part; batches merge with Chan's pairwise formula.
    """

    _format = staticmethod(_format_distribution)
    _merge = staticmethod(_merge_distribution)
    _compute = staticmethod(_compute_distribution)

    def update(  # type: ignore[override]
        self, scores: Any = None, anomaly_maps: Any = None
    ) -> AnomalyScoreDistribution:
        """Add image scores (N,), maps (N, H, W) or both; returns ``self``."""
        return super().update(scores, anomaly_maps)
