"""Result dataclasses: they check their own consistency and save/load as JSON.

Arrays keep their dtype through a round trip (``to_dict`` -> JSON -> ``from_dict``); floats
that are not finite (NaN for undefined values, ``+inf`` for the first curve threshold) are
written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` so that the files stay standard JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, TypeVar

import numpy as np

from edgeanomaly.metrics._integrate import clipped_trapezoid
from edgeanomaly.metrics._validate import MetricInputError

__all__ = [
    "ROCResult",
    "PRResult",
    "PROResult",
    "PIMOResult",
    "AUPIMOResult",
    "AdaptiveThresholdResult",
    "MinMaxResult",
    "ScoreDistributionResult",
]

_R = TypeVar("_R", bound="_Result")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode_float(v: float) -> float | str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _as_floats(result: Any, *names: str) -> None:
    """Make the named fields of a frozen result plain Python floats (from NumPy scalars, ints)."""
    for name in names:
        object.__setattr__(result, name, float(getattr(result, name)))


def _decode_float(v: Any) -> float:
    return _NONFINITE[v] if isinstance(v, str) else float(v)


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        flat = [_encode_float(v) if value.dtype.kind == "f" else v for v in value.ravel().tolist()]
        return {"dtype": value.dtype.str, "shape": list(value.shape), "data": flat}
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _encode_float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"dtype", "shape", "data"}:
        dtype = np.dtype(value["dtype"])
        data = [_decode_float(v) for v in value["data"]] if dtype.kind == "f" else value["data"]
        return np.asarray(data, dtype=dtype).reshape(value["shape"])
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    return value


def _fail(cls: type, message: str) -> None:
    raise MetricInputError(f"Inconsistent {cls.__name__}: {message}")


def _check_1d(cls: type, **arrays: np.ndarray) -> int:
    lengths = {name: a.shape for name, a in arrays.items()}
    if any(a.ndim != 1 for a in arrays.values()) or len(set(lengths.values())) != 1:
        _fail(cls, f"expected 1-D arrays of one length, got shapes {lengths}")
    return next(iter(arrays.values())).size


def _check_rate(cls: type, name: str, values: np.ndarray, nondecreasing: bool = True) -> None:
    if np.isnan(values).all():
        return
    if np.isnan(values).any() or values.min() < 0.0 or values.max() > 1.0 + 1e-9:
        _fail(cls, f"{name} must lie in [0, 1]")
    if nondecreasing and np.any(np.diff(values) < 0):
        _fail(cls, f"{name} must not decrease as the threshold decreases")


def _check_thresholds(cls: type, thresholds: np.ndarray) -> None:
    if np.isnan(thresholds).any() or np.any(np.diff(thresholds) > 0):
        _fail(cls, "thresholds must be sorted in decreasing order and not NaN")


class _Result:
    """Serialisation shared by every result: ``to_dict``/``from_dict``, ``save``/``load``."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields (arrays with their dtype and shape)."""
        out: dict[str, Any] = {"type": type(self).__name__}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            out[field.name] = _encode(getattr(self, field.name))
        return out

    @classmethod
    def from_dict(cls: type[_R], data: dict[str, Any]) -> _R:
        """Rebuild a result written by :meth:`to_dict`; the consistency checks run again."""
        if data.get("type") != cls.__name__:
            raise MetricInputError(f"Expected a saved {cls.__name__}, got {data.get('type')!r}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: _decode(v) for k, v in data.items() if k in names})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the result as JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)

    @classmethod
    def load(cls: type[_R], path: str | os.PathLike[str]) -> _R:
        """Read a result written by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


@dataclasses.dataclass(frozen=True, eq=False)
class ROCResult(_Result):
    """ROC curve, decreasing thresholds; ``thresholds[0] = +inf`` at (0, 0).

    fpr, tpr: (K,) float64, the rates of ``score >= threshold``; thresholds: (K,).
    Only the corners of the curve are listed (see :mod:`edgeanomaly.metrics._curve`): every
    other point of the full curve lies on a segment between two listed points.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def __post_init__(self) -> None:
        _check_1d(type(self), fpr=self.fpr, tpr=self.tpr, thresholds=self.thresholds)
        _check_thresholds(type(self), self.thresholds)
        _check_rate(type(self), "fpr", self.fpr)
        _check_rate(type(self), "tpr", self.tpr)

    @property
    def auc(self) -> float:
        """Area under the curve (trapezoid rule); NaN when undefined."""
        return float(clipped_trapezoid(self.fpr, self.tpr, 0.0, 1.0))


@dataclasses.dataclass(frozen=True, eq=False)
class PRResult(_Result):
    """Precision-recall curve, decreasing thresholds; ``thresholds[0] = +inf`` at recall 0.

    precision, recall: (K,) float64 of ``score >= threshold``; precision is 1 at ``+inf``.
    """

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray

    def __post_init__(self) -> None:
        _check_1d(type(self), precision=self.precision, recall=self.recall, thresholds=self.thresholds)
        _check_thresholds(type(self), self.thresholds)
        _check_rate(type(self), "recall", self.recall)
        _check_rate(type(self), "precision", self.precision, nondecreasing=False)

    @property
    def average_precision(self) -> float:
        """Step-wise area: sum of (recall increase) x (precision at the new threshold)."""
        return float(np.sum(np.diff(self.recall) * self.precision[1:]))


@dataclasses.dataclass(frozen=True, eq=False)
class PROResult(_Result):
    """Per-region-overlap curve, decreasing thresholds, down to the first FPR >= fpr_limit.

    fpr: (K,) float64, background pixels ``>= threshold`` over all background pixels;
    pro: (K,) float64, mean over regions of the fraction of the region ``>= threshold``.
    """

    fpr: np.ndarray
    pro: np.ndarray
    thresholds: np.ndarray
    fpr_limit: float

    def __post_init__(self) -> None:
        _check_1d(type(self), fpr=self.fpr, pro=self.pro, thresholds=self.thresholds)
        _check_thresholds(type(self), self.thresholds)
        _check_rate(type(self), "fpr", self.fpr)
        _check_rate(type(self), "pro", self.pro)
        _as_floats(self, "fpr_limit")
        if not 0.0 < self.fpr_limit <= 1.0:
            _fail(type(self), f"fpr_limit must be in (0, 1], got {self.fpr_limit}")
        if not np.isnan(self.fpr).all() and self.fpr[-1] < self.fpr_limit:
            _fail(type(self), f"the curve must reach fpr_limit={self.fpr_limit}, it ends at {self.fpr[-1]}")

    @property
    def area(self) -> float:
        """AUPRO: area up to ``fpr_limit`` divided by ``fpr_limit``, in [0, 1]; NaN if undefined."""
        return float(clipped_trapezoid(self.fpr, self.pro, 0.0, self.fpr_limit) / self.fpr_limit)


def _check_classes(cls: type, image_classes: np.ndarray, n: int) -> None:
    if image_classes.shape != (n,) or not np.isin(image_classes, (0, 1)).all():
        _fail(cls, f"image_classes must be (N,) = ({n},) of 0 (normal) / 1 (anomalous), got {image_classes!r}")


def _check_bounds(cls: type, bounds: tuple[float, float]) -> tuple[float, float]:
    lower, upper = (float(b) for b in bounds)
    if not 0.0 < lower < upper <= 1.0:
        _fail(cls, f"fpr_bounds must satisfy 0 < lower < upper <= 1, got {bounds}")
    return lower, upper


@dataclasses.dataclass(frozen=True, eq=False)
class PIMOResult(_Result):
    """Per-image overlap curves against the shared FPR of the normal images.

    thresholds: (K,) decreasing; shared_fpr: (K,) float64, mean over normal images of the
    fraction of their pixels ``>= threshold``; per_image_tpr: (N, K) float64, fraction of the
    defect pixels of each image ``>= threshold``, NaN rows for normal images;
    image_classes: (N,) int8, 1 for anomalous (any defect pixel) and 0 for normal images.
    The thresholds cover the shared FPR from 0 to the first value ``>= fpr_bounds[1]``.
    """

    thresholds: np.ndarray
    shared_fpr: np.ndarray
    per_image_tpr: np.ndarray
    image_classes: np.ndarray
    fpr_bounds: tuple[float, float]

    def __post_init__(self) -> None:
        cls = type(self)
        object.__setattr__(self, "fpr_bounds", _check_bounds(cls, self.fpr_bounds))
        object.__setattr__(self, "image_classes", np.asarray(self.image_classes, dtype=np.int8))
        k = _check_1d(cls, thresholds=self.thresholds, shared_fpr=self.shared_fpr)
        _check_thresholds(cls, self.thresholds)
        _check_rate(cls, "shared_fpr", self.shared_fpr)
        n = self.image_classes.shape[0] if self.image_classes.ndim == 1 else -1
        _check_classes(cls, self.image_classes, n)
        if self.per_image_tpr.shape != (n, k):
            _fail(cls, f"per_image_tpr must have shape (N, K) = ({n}, {k}), got {self.per_image_tpr.shape}")
        normal = self.image_classes == 0
        if k and not np.isnan(self.per_image_tpr[normal]).all():
            _fail(cls, "per_image_tpr must be NaN for normal images")
        for row in self.per_image_tpr[~normal]:
            _check_rate(cls, "per_image_tpr", row)


@dataclasses.dataclass(frozen=True, eq=False)
class AUPIMOResult(_Result):
    """AUPIMO of each image and their mean over the anomalous images.

    aupimos: (N,) float64 in [0, 1], NaN for normal images (and all NaN when undefined);
    image_classes: (N,) int8, 1 anomalous / 0 normal; fpr_bounds: the integration range.
    """

    aupimos: np.ndarray
    image_classes: np.ndarray
    fpr_bounds: tuple[float, float]

    def __post_init__(self) -> None:
        cls = type(self)
        object.__setattr__(self, "fpr_bounds", _check_bounds(cls, self.fpr_bounds))
        object.__setattr__(self, "image_classes", np.asarray(self.image_classes, dtype=np.int8))
        if self.aupimos.ndim != 1:
            _fail(cls, f"aupimos must be (N,), got {self.aupimos.shape}")
        _check_classes(cls, self.image_classes, self.aupimos.shape[0])
        normal = self.image_classes == 0
        if not np.isnan(self.aupimos[normal]).all():
            _fail(cls, "aupimos must be NaN for normal images")
        values = self.aupimos[~normal]
        if not np.isnan(values).all() and (np.isnan(values).any() or values.min() < 0 or values.max() > 1):
            _fail(cls, "aupimos of anomalous images must lie in [0, 1]")

    @property
    def anomalous(self) -> np.ndarray:
        """(A,) AUPIMO of the anomalous images, in image order."""
        return self.aupimos[self.image_classes == 1]

    @property
    def mean(self) -> float:
        """Mean AUPIMO over the anomalous images (NaN if there is none or it is undefined)."""
        values = self.anomalous
        return float(values.mean()) if values.size else math.nan

    @property
    def std(self) -> float:
        """Standard deviation (ddof=0) of the AUPIMO of the anomalous images."""
        values = self.anomalous
        return float(values.std()) if values.size else math.nan


@dataclasses.dataclass(frozen=True, eq=False)
class AdaptiveThresholdResult(_Result):
    """The threshold that maximises F1 (``score >= threshold`` is anomalous) and that F1."""

    threshold: float
    f1: float

    def __post_init__(self) -> None:
        _as_floats(self, "threshold", "f1")
        if math.isnan(self.threshold) != math.isnan(self.f1) or not (math.isnan(self.f1) or 0 <= self.f1 <= 1):
            _fail(type(self), f"expected f1 in [0, 1] (both NaN when undefined), got {self}")


@dataclasses.dataclass(frozen=True, eq=False)
class MinMaxResult(_Result):
    """Smallest and largest value seen."""

    min: float
    max: float

    def __post_init__(self) -> None:
        _as_floats(self, "min", "max")
        if not self.min <= self.max:
            _fail(type(self), f"min must be <= max, got {self.min} > {self.max}")


@dataclasses.dataclass(frozen=True, eq=False)
class ScoreDistributionResult(_Result):
    """Mean and standard deviation (ddof=0) of image scores and of pixel values; NaN if not given."""

    image_mean: float
    image_std: float
    pixel_mean: float
    pixel_std: float

    def __post_init__(self) -> None:
        _as_floats(self, "image_mean", "image_std", "pixel_mean", "pixel_std")
        if self.image_std < 0 or self.pixel_std < 0:
            _fail(type(self), "standard deviations must be >= 0")
