"""The binary-classification-curve core under ROC, PR, F1, PRO and PIMO.

Convention, everywhere in :mod:`edgeanomaly.metrics`: a threshold ``t`` marks ``score >= t``
as anomalous. ``tp(t)`` counts positives with ``score >= t`` and ``fp(t)`` negatives with
``score >= t``; counts and cumulative sums are float64.

The curve is exact without visiting every distinct score. Between two consecutive distinct
*positive* scores only ``fp`` moves, so the curve there is a straight segment; it is fully
described by its two ends. :func:`clf_curve` therefore returns, in decreasing threshold
order, the point at ``+inf`` (0, 0), then for each distinct positive score ``u``:

- if negatives lie strictly between ``u`` and the next larger positive score, the corner at
  the smallest of them (``fp`` of the negatives ``> u``, ``tp`` of the positives ``> u``);
- the point at ``u`` itself (ties between positives and negatives move both counts here);

and last the point at the smallest negative if it is below every positive. Every point a
full sweep over all distinct scores would produce lies on a segment between two of these
points, so trapezoid areas (AUROC, AUPRO, AUPIMO), step-wise average precision and the
maximum F1 (only reached at positive scores) are the same as with the full sweep.

Positives are few (defect pixels), negatives many; the cost is one sort of the negatives
(float32 sorts are vectorised in NumPy) plus binary searches of the distinct positive scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "Split",
    "Counts",
    "split",
    "merge_splits",
    "clf_curve",
    "count_ge",
    "top_slice",
    "neg_slice_size",
    "ceil_to_dtype",
    "common_dtype",
]


@dataclass(frozen=True, eq=False)
class Split:
    """The format stage of ROC/PR/F1: scores of positives and of negatives.

    pos: (P,) and neg: (Q,), 1-D, same float dtype, in any order.
    """

    pos: np.ndarray
    neg: np.ndarray


@dataclass(frozen=True, eq=False)
class Counts:
    """Exact curve points (see the module docstring), decreasing thresholds.

    thresholds: (K,) float dtype of the scores, ``thresholds[0] = +inf``
    tp: (K,) float64 positives (or positive weight) with ``score >= threshold``
    fp: (K,) float64 negatives with ``score >= threshold``
    n_pos: total positive weight; n_neg: total number of negatives
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: float
    n_neg: float


def common_dtype(arrays: Sequence[np.ndarray]) -> np.dtype:
    """The float dtype every array converts to exactly (float32 + float64 -> float64)."""
    return np.result_type(*[a.dtype for a in arrays], np.float32)


def split(scores: np.ndarray, labels: np.ndarray) -> Split:
    """(N,) scores and (N,) bool labels (any equal shape) -> :class:`Split`."""
    return Split(pos=scores[labels], neg=scores[~labels])


def merge_splits(chunks: Sequence[Split]) -> Split:
    """Concatenate the splits of several updates (dtype promoted exactly)."""
    if len(chunks) == 1:
        return chunks[0]
    dtype = common_dtype([a for c in chunks for a in (c.pos, c.neg)])
    return Split(
        pos=np.concatenate([c.pos for c in chunks]).astype(dtype, copy=False),
        neg=np.concatenate([c.neg for c in chunks]).astype(dtype, copy=False),
    )


def ceil_to_dtype(t: float, dtype: np.dtype) -> np.floating:
    """The smallest value of ``dtype`` that is ``>= t``.

    For scores of ``dtype``, ``score >= t`` and ``score >= ceil_to_dtype(t, dtype)`` select the
    same scores; a plain cast could round ``t`` down and select ties that are below ``t``.
    """
    dtype = np.dtype(dtype)
    cast = dtype.type(t)
    if float(cast) < t:
        cast = np.nextafter(cast, dtype.type(np.inf))
    return cast


def count_ge(sorted_values: np.ndarray, thresholds: np.ndarray, cum_weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum the weights of) the values ``>= t`` for each threshold ``t``.

    sorted_values: (P,) ascending; thresholds: (K,) (fastest when sorted, either way);
    cum_weights: None or (P + 1,) float64 with ``cum_weights[i]`` the weight of
    ``sorted_values[:i]``. Returns (K,) float64.
    """
    if thresholds.size > 1 and thresholds[0] > thresholds[-1]:
        below = np.searchsorted(sorted_values, thresholds[::-1], side="left")[::-1]
    else:
        below = np.searchsorted(sorted_values, thresholds, side="left")
    if cum_weights is None:
        return (sorted_values.size - below).astype(np.float64)
    return cum_weights[-1] - cum_weights[below]


def top_slice(values: np.ndarray, k: int, overwrite: bool = False) -> np.ndarray:
    """Every value ``>= the k-th largest``, sorted ascending (ties at the cut included).

    Counts of values ``>= t`` taken on the slice are exact for every ``t >= slice[0]``.
    ``np.partition`` is linear, so this costs far less than sorting all values when ``k`` is
    a small fraction of them. ``overwrite=True`` partitions ``values`` in place (its order
    changes, its content does not), which saves a copy of all values.
    """
    n = values.size
    if k >= n:
        return np.sort(values)
    cut = n - k
    if overwrite:
        values.partition(cut)
        part = values
    else:
        part = np.partition(values, cut)
    kth = part[cut]
    ties = np.count_nonzero(part[:cut] == kth)
    top = np.sort(part[cut:])
    if ties:
        top = np.concatenate([np.full(ties, kth, dtype=values.dtype), top])
    return top


def _distinct_asc(sorted_asc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (ascending) and the index where each one's run starts."""
    if sorted_asc.size == 0:
        return sorted_asc[:0], np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(np.r_[True, sorted_asc[1:] != sorted_asc[:-1]])
    return sorted_asc[starts], starts


def clf_curve(
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    pos_weights: np.ndarray | None = None,
    neg_sorted: bool = False,
    n_neg: int | None = None,
) -> Counts:
    """Exact curve points of positives ``pos`` (P,) against negatives ``neg`` (Q,).

    pos_weights: optional (P,) float64 weight of each positive (PRO weighs each defect pixel
    by the inverse size of its region); ``tp`` then sums weights.
    neg_sorted: ``neg`` is already ascending.
    n_neg: the total number of negatives when ``neg`` is only the top slice of them (see
    :func:`top_slice`); points are then returned only down to ``neg[0]``, where counts are
    still exact.
    """
    dtype = common_dtype([pos, neg])
    pos = pos.astype(dtype, copy=False)
    neg = neg.astype(dtype, copy=False)
    if pos_weights is None:
        pos_sorted = np.sort(pos)
        cum = None
        n_pos = float(pos.size)
    else:
        order = np.argsort(pos)
        pos_sorted = pos[order]
        cum = np.concatenate([[0.0], np.cumsum(pos_weights[order], dtype=np.float64)])
        n_pos = float(cum[-1])
    neg_s = neg if neg_sorted else np.sort(neg)
    q = neg_s.size
    total_neg = q if n_neg is None else n_neg

    # binary searches run ascending: NumPy reuses the previous position for sorted keys
    u_asc, starts = _distinct_asc(pos_sorted)
    n_lt = np.searchsorted(neg_s, u_asc, side="left")
    n_le = np.searchsorted(neg_s, u_asc, side="right")
    u, starts, n_lt, n_le = u_asc[::-1], starts[::-1], n_lt[::-1], n_le[::-1]
    tp_ge = (pos_sorted.size - starts).astype(np.float64) if cum is None else n_pos - cum[starts]
    fp_ge = (q - n_lt).astype(np.float64)
    fp_gt = (q - n_le).astype(np.float64)
    fp_above = np.r_[0.0, fp_ge[:-1]]
    tp_gt = np.r_[0.0, tp_ge[:-1]]
    gap = fp_gt > fp_above

    m = u.size
    n_gap = np.cumsum(gap)
    at_u = np.arange(m) + n_gap
    at_gap = at_u[gap] - 1
    size = m + (int(n_gap[-1]) if m else 0)
    thresholds = np.empty(size, dtype=dtype)
    tp = np.empty(size, dtype=np.float64)
    fp = np.empty(size, dtype=np.float64)
    thresholds[at_u], tp[at_u], fp[at_u] = u, tp_ge, fp_ge
    thresholds[at_gap], tp[at_gap], fp[at_gap] = neg_s[n_le[gap]], tp_gt[gap], fp_gt[gap]

    tail = q > 0 and (m == 0 or fp_ge[-1] < q)
    thresholds = np.concatenate([[np.inf], thresholds, neg_s[:1] if tail else []]).astype(dtype, copy=False)
    tp = np.concatenate([[0.0], tp, [n_pos] if tail else []])
    fp = np.concatenate([[0.0], fp, [float(q)] if tail else []])
    if q < total_neg:
        keep = thresholds >= neg_s[0]
        thresholds, tp, fp = thresholds[keep], tp[keep], fp[keep]
    return Counts(thresholds=thresholds, tp=tp, fp=fp, n_pos=n_pos, n_neg=float(total_neg))


def neg_slice_size(n: int, rate: float) -> int:
    """How many of the top ``n`` negatives reach a false positive rate of at least ``rate``."""
    return max(1, min(n, math.ceil(rate * n)))
