"""Trapezoid areas of piecewise-linear curves over a clipped x range (AUPRO, AUPIMO)."""

from __future__ import annotations

import numpy as np

__all__ = ["clipped_trapezoid"]


def clipped_trapezoid(x: np.ndarray, y: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Area under the polyline through ``(x, y)`` between ``x = lower`` and ``x = upper``.

    x: (K,) non-decreasing; repeated x values (vertical steps) add no area.
    y: (K,) or (M, K): one curve per row, sharing ``x``.
    Segments that cross a bound are cut there by linear interpolation; segments inside the
    range use their end points unchanged, so nothing is re-interpolated needlessly.
    Returns a float (or (M,) float64).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x0, x1 = x[:-1], x[1:]
    y0, y1 = y[..., :-1], y[..., 1:]
    width = x1 - x0
    a = np.clip(x0, lower, upper)
    b = np.clip(x1, lower, upper)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(width > 0, (y1 - y0) / np.where(width > 0, width, 1.0), 0.0)
    ya = np.where(a == x0, y0, y0 + slope * (a - x0))
    yb = np.where(b == x1, y1, y0 + slope * (b - x0))
    return np.sum((b - a) * (ya + yb), axis=-1) / 2.0
