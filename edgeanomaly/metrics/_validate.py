"""Named validators for metric inputs.

Each validator checks one kind of input and returns it in the canonical form the metrics
compute on, so that the functional and the stateful metrics share exactly the same checks:

- ``scores``: (N,) real -> float32 or float64 (never a lossy cast, see :func:`working_dtype`)
- ``labels``: (N,) bool or {0, 1} -> bool
- ``anomaly_maps``: (N, H, W) or (N, 1, H, W) real -> (N, H, W) float32 or float64
- ``masks``: (N, H, W) or (N, 1, H, W) bool or {0, 1} -> (N, H, W) bool

A wrong type raises :class:`MetricTypeError` (a ``TypeError``); a wrong shape or value raises
:class:`MetricInputError` (a ``ValueError``); a metric setting out of range raises
:class:`~edgeanomaly.errors.ConfigError`. Messages read "Expected <what>, got <what came>".
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from edgeanomaly.errors import ConfigError, EdgeAnomalyError

__all__ = [
    "MetricInputError",
    "MetricTypeError",
    "UndefinedMetricWarning",
    "warn_undefined",
    "working_dtype",
    "scores",
    "labels",
    "anomaly_maps",
    "masks",
    "same_length",
    "same_shape",
    "threshold",
    "fpr_limit",
    "fpr_bounds",
]


class MetricInputError(EdgeAnomalyError, ValueError):
    """A metric input has the wrong shape or invalid values (NaN/inf, non-binary mask, empty)."""


class MetricTypeError(EdgeAnomalyError, TypeError):
    """A metric input has the wrong type or dtype."""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the data given (e.g. one class only) and NaN was returned."""


def warn_undefined(metric: str, reason: str) -> float:
    """Warn that ``metric`` is undefined because of ``reason`` and return NaN."""
    warnings.warn(f"{metric} is undefined: {reason}; returning NaN.", UndefinedMetricWarning, stacklevel=3)
    return math.nan


_FLOAT64_EXACT = 2**53  # every integer of magnitude up to this is a float64


def working_dtype(dtype: np.dtype, values: np.ndarray | None = None) -> np.dtype:
    """The float dtype scores are compared in: the narrowest one that holds them exactly.

    float32 and float64 stay as they are; float16 and 8/16-bit integers widen to float32;
    wider integers widen to float64, or to ``np.longdouble`` when ``values`` holds integers
    beyond 2**53 (float64 would merge them into ties). Narrowing would merge distinct scores
    into ties and change every metric, so it never happens.

    Raises:
        MetricInputError: such integers on a platform whose ``longdouble`` is only float64.
    """
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64, np.longdouble):
        return dtype
    if dtype == np.float16 or (dtype.kind in "iu" and dtype.itemsize <= 2):
        return np.dtype(np.float32)
    if dtype.kind in "iu" and values is not None and values.size:
        largest = max(abs(int(values.min())), abs(int(values.max())))
        if largest > _FLOAT64_EXACT:
            if np.finfo(np.longdouble).nmant < dtype.itemsize * 8 - 1:
                raise MetricInputError(
                    f"Expected integer scores of magnitude <= 2**53 (exact in float64), got {largest}; this "
                    "platform has no wider float to compare them exactly. Subtract their minimum first."
                )
            return np.dtype(np.longdouble)
    return np.dtype(np.float64)


def _as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, (str, bytes, dict, set)) or x is None:
        raise MetricTypeError(f"Expected {name} as a NumPy array, got {type(x).__name__}")
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise MetricTypeError(f"Expected {name} as a NumPy array, got {type(x).__name__}: {exc}") from exc


def _real(arr: np.ndarray, name: str) -> np.ndarray:
    # bool scores are almost always labels passed in the wrong position
    if arr.dtype.kind not in "iuf":
        raise MetricTypeError(f"Expected {name} of a real numeric dtype, got {arr.dtype}")
    out = arr.astype(working_dtype(arr.dtype, arr), copy=False)
    finite = np.isfinite(out)
    if not finite.all():
        bad = out.size - int(np.count_nonzero(finite))
        raise MetricInputError(f"Expected finite {name}, got {bad} NaN or inf value(s) out of {out.size}")
    return out


def _binary(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "iuf":
        raise MetricTypeError(f"Expected {name} of dtype bool or a numeric dtype with values 0/1, got {arr.dtype}")
    out = arr != 0
    # one pass for the common case; the detailed message only on failure
    if np.count_nonzero(arr[out] != 1):
        values = np.unique(arr[(arr != 0) & (arr != 1)])[:5]
        raise MetricInputError(f"Expected binary {name} (bool or 0/1), got other values such as {values.tolist()}")
    return out


def _nonempty(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        raise MetricInputError(f"Expected non-empty {name}, got shape {arr.shape}")


def _vector(x: Any, name: str) -> np.ndarray:
    """(N,) array, N >= 1."""
    arr = _as_array(x, name)
    if arr.ndim != 1:
        raise MetricInputError(f"Expected {name} of shape (N,), got {arr.shape}")
    _nonempty(arr, name)
    return arr


def scores(x: Any, name: str = "scores") -> np.ndarray:
    """(N,) real scores -> (N,) float32/float64, finite, N >= 1."""
    return _real(_vector(x, name), name)


def labels(x: Any, name: str = "labels") -> np.ndarray:
    """(N,) bool or {0, 1} labels -> (N,) bool (True = anomalous)."""
    return _binary(_vector(x, name), name)


def _image_stack(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise MetricInputError(f"Expected {name} of shape (N, H, W) or (N, 1, H, W), got {arr.shape}")
    _nonempty(arr, name)
    return arr


def anomaly_maps(x: Any, name: str = "anomaly_maps") -> np.ndarray:
    """(N, H, W) or (N, 1, H, W) real maps -> (N, H, W) float32/float64, finite."""
    return _real(_image_stack(_as_array(x, name), name), name)


def masks(x: Any, name: str = "masks") -> np.ndarray:
    """(N, H, W) or (N, 1, H, W) bool or {0, 1} masks -> (N, H, W) bool (True = defect)."""
    return _binary(_image_stack(_as_array(x, name), name), name)


def same_length(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """Raise unless two (N,) arrays have the same length."""
    if a.shape != b.shape:
        raise MetricInputError(f"Expected {a_name} and {b_name} of the same shape, got {a.shape} and {b.shape}")


def same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """Raise unless two (N, H, W) arrays have the same shape."""
    if a.shape != b.shape:
        raise MetricInputError(f"Expected {a_name} and {b_name} of the same shape, got {a.shape} and {b.shape}")


def threshold(x: Any, name: str = "threshold") -> float:
    """A finite real threshold; ``score >= threshold`` is anomalous."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise MetricTypeError(f"Expected {name} as a real number, got {type(x).__name__}")
    if not math.isfinite(float(x)):
        raise MetricInputError(f"Expected a finite {name}, got {x}")
    return float(x)


def fpr_limit(x: Any) -> float:
    """An FPR integration limit in (0, 1]."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise MetricTypeError(f"Expected fpr_limit as a real number, got {type(x).__name__}")
    x = float(x)
    if not 0.0 < x <= 1.0:
        raise ConfigError(f"Expected fpr_limit in (0, 1], got {x}")
    return x


def fpr_bounds(x: Any) -> tuple[float, float]:
    """FPR bounds ``(lower, upper)`` with 0 < lower < upper <= 1."""
    try:
        lower, upper = (float(v) for v in x)
    except (TypeError, ValueError) as exc:
        raise MetricTypeError(f"Expected fpr_bounds as two numbers (lower, upper), got {x!r}") from exc
    if not (0.0 < lower < upper <= 1.0):
        raise ConfigError(f"Expected fpr_bounds with 0 < lower < upper <= 1, got ({lower}, {upper})")
    return lower, upper
