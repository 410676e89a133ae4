"""Slow, obviously correct oracles for PRO, AUPRO, PIMO and AUPIMO (test-only).

Everything is a plain Python loop over every distinct threshold of the data; regions come
from a flood fill written here, not from OpenCV.
"""

from __future__ import annotations

import math

import numpy as np


def regions_8(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """8-connected components of a 2-D bool mask by flood fill."""
    seen = np.zeros(mask.shape, dtype=bool)
    out = []
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                stack, comp = [(y, x)], []
                seen[y, x] = True
                while stack:
                    cy, cx = stack.pop()
                    comp.append((cy, cx))
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            ny, nx = cy + dy, cx + dx
                            if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                                seen[ny, nx] = True
                                stack.append((ny, nx))
                out.append(comp)
    return out


def area(x: list[float], y: list[float], lower: float, upper: float) -> float:
    """Trapezoid area of the polyline (x increasing) between lower and upper, segment by segment."""
    total = 0.0
    for i in range(len(x) - 1):
        x0, x1, y0, y1 = x[i], x[i + 1], y[i], y[i + 1]
        if x1 <= x0:
            continue
        a, b = max(x0, lower), min(x1, upper)
        if b <= a:
            continue
        ya = y0 + (y1 - y0) * (a - x0) / (x1 - x0)
        yb = y0 + (y1 - y0) * (b - x0) / (x1 - x0)
        total += (b - a) * (ya + yb) / 2
    return total


def all_thresholds(maps: np.ndarray) -> list[float]:
    return [math.inf] + sorted({float(v) for v in maps.ravel()}, reverse=True)


def pro_at(maps: np.ndarray, masks: np.ndarray, t: float) -> float:
    overlaps = []
    for img, mask in zip(maps, masks):
        for comp in regions_8(mask):
            overlaps.append(sum(img[p] >= t for p in comp) / len(comp))
    return sum(overlaps) / len(overlaps)


def pro_points(maps: np.ndarray, masks: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """(thresholds, fpr, pro) at every distinct threshold, +inf first."""
    neg = maps[~masks]
    region_values = [
        np.array([img[p] for p in comp]) for img, mask in zip(maps, masks) for comp in regions_8(mask)
    ]
    ts, fprs, pros = [], [], []
    for t in all_thresholds(maps):
        ts.append(t)
        fprs.append(float(np.mean(neg >= t)))
        pros.append(float(np.mean([np.mean(r >= t) for r in region_values])))
    return ts, fprs, pros


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    _, fprs, pros = pro_points(maps, masks)
    return area(fprs, pros, 0.0, fpr_limit) / fpr_limit


def shared_fpr(maps: np.ndarray, masks: np.ndarray, t: float) -> float:
    normal = [img for img, mask in zip(maps, masks) if not mask.any()]
    return float(np.mean([np.mean(img >= t) for img in normal]))


def tpr(img: np.ndarray, mask: np.ndarray, t: float) -> float:
    return float(np.mean(img[mask] >= t))


def aupimo(maps: np.ndarray, masks: np.ndarray, fpr_bounds: tuple[float, float]) -> list[float] | None:
    """Per-image AUPIMO (NaN for normal images), or None if the lower bound is unreachable."""
    lower, upper = (math.log10(b) for b in fpr_bounds)
    ts = all_thresholds(maps)
    fprs = [shared_fpr(maps, masks, t) for t in ts]
    keep = [i for i, f in enumerate(fprs) if f > 0]
    if fprs[keep[0]] > fpr_bounds[0]:
        return None
    x = [math.log10(fprs[i]) for i in keep]
    out = []
    for img, mask in zip(maps, masks):
        if not mask.any():
            out.append(math.nan)
            continue
        y = [tpr(img, mask, ts[i]) for i in keep]
        out.append(area(x, y, lower, upper) / (upper - lower))
    return out
