"""PRO at a threshold, the PRO curve and AUPRO.

Definitions (``score >= threshold`` is anomalous):

- Regions are the 8-connected components of each mask (OpenCV ``connectedComponents``).
- The FPR at a threshold counts every background pixel of every image, normal images
  included, over all background pixels. Thresholds are global over all pixels.
- PRO at a threshold is the mean, over all regions of all images, of the fraction of the
  region's pixels at or above the threshold.
- AUPRO is the trapezoid area under PRO(FPR) from FPR 0 to ``fpr_limit``, the curve being
  linearly interpolated at the limit, divided by ``fpr_limit`` so that it lies in [0, 1].

Exactness: each defect pixel carries the weight ``1 / region size``, so PRO is a weighted
true-positive rate and the curve comes from the shared exact core
(:func:`~edgeanomaly.metrics._curve.clf_curve`). Background pixels below the score at which
the FPR first reaches ``fpr_limit`` cannot move the area, so only the top ``fpr_limit``
fraction of them is selected (``np.partition``, ties at the cut kept) and sorted. The result
equals the trapezoid over every distinct threshold up to float64 rounding of the weight sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from edgeanomaly.metrics import _validate
from edgeanomaly.metrics._base import Accumulator
from edgeanomaly.metrics._curve import ceil_to_dtype, clf_curve, common_dtype, neg_slice_size, top_slice
from edgeanomaly.metrics._results import PROResult
from edgeanomaly.metrics._validate import warn_undefined

__all__ = ["pro", "pro_curve", "aupro", "PRO", "PROCurve", "AUPRO"]


@dataclass(frozen=True, eq=False)
class _Regions:
    """The format stage of PRO/AUPRO.

    pos: (P,) values of defect pixels; region_size: (P,) int64, size of each one's region;
    n_regions: number of regions; neg: (Q,) values of background pixels (empty if not kept).
    """

    pos: np.ndarray
    region_size: np.ndarray
    n_regions: int
    neg: np.ndarray


def _validated(anomaly_maps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray]:
    maps = _validate.anomaly_maps(anomaly_maps)
    m = _validate.masks(masks)
    _validate.same_shape(maps, "anomaly_maps", m, "masks")
    return maps, m


def _format_regions(anomaly_maps: Any, masks: Any, keep_negatives: bool = True) -> _Regions:
    maps, m = _validated(anomaly_maps, masks)
    sizes = []
    n_regions = 0
    for mask in m[m.any(axis=(1, 2))]:
        count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        region_of_pixel = labels[mask]
        sizes.append(np.bincount(region_of_pixel, minlength=count)[region_of_pixel])
        n_regions += count - 1
    region_size = np.concatenate(sizes).astype(np.int64) if sizes else np.zeros(0, dtype=np.int64)
    neg = maps[~m] if keep_negatives else maps[:0, 0, 0]
    # maps[m] walks images in the same order as the loop above, so values and sizes align
    return _Regions(pos=maps[m], region_size=region_size, n_regions=n_regions, neg=neg)


def _merge_regions(chunks: Sequence[_Regions]) -> _Regions:
    dtype = common_dtype([a for c in chunks for a in (c.pos, c.neg)])
    return _Regions(
        pos=np.concatenate([c.pos for c in chunks]).astype(dtype, copy=False),
        region_size=np.concatenate([c.region_size for c in chunks]),
        n_regions=sum(c.n_regions for c in chunks),
        neg=np.concatenate([c.neg for c in chunks]).astype(dtype, copy=False),
    )


def _undefined(r: _Regions, metric: str) -> bool:
    if r.n_regions == 0:
        warn_undefined(metric, "no mask has a defect region")
        return True
    if r.neg.size == 0:
        warn_undefined(metric, "there is no background pixel")
        return True
    return False


def _compute_pro_curve(r: _Regions, fpr_limit: float) -> PROResult:
    if _undefined(r, "PRO curve"):
        nan = np.full(1, np.nan)
        return PROResult(fpr=nan, pro=nan, thresholds=np.full(1, np.inf), fpr_limit=fpr_limit)
    q = r.neg.size
    # r.neg is this package's own copy and only its content matters, so reorder it in place
    top = top_slice(r.neg, neg_slice_size(q, fpr_limit), overwrite=True)
    # weights 1/size sum to one per region, so tp / n_regions is the mean overlap
    c = clf_curve(r.pos, top, pos_weights=1.0 / r.region_size, neg_sorted=True, n_neg=q)
    pro_values = np.minimum(c.tp / r.n_regions, 1.0)
    return PROResult(fpr=c.fp / q, pro=pro_values, thresholds=c.thresholds, fpr_limit=fpr_limit)


def _compute_aupro(r: _Regions, fpr_limit: float) -> float:
    if _undefined(r, "AUPRO"):
        return math.nan
    return _compute_pro_curve(r, fpr_limit).area


def _compute_pro(r: _Regions, threshold: float) -> float:
    if r.n_regions == 0:
        return warn_undefined("PRO", "no mask has a defect region")
    t = ceil_to_dtype(threshold, r.pos.dtype)
    return float(np.sum(1.0 / r.region_size[r.pos >= t]) / r.n_regions)


def aupro(anomaly_maps: Any, masks: Any, fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit``, normalised to [0, 1].

    anomaly_maps: (N, H, W) or (N, 1, H, W) real; masks: same shape, bool or {0, 1}.
    See the module docstring for the definition and why the result is exact. Warns and
    returns NaN if no mask has a region or there is no background pixel.

    >>> maps = np.zeros((1, 4, 4), dtype=np.float32); maps[0, :2, :2] = 1.0
    >>> masks = maps > 0
    >>> aupro(maps, masks)
    1.0
    """
    limit = _validate.fpr_limit(fpr_limit)
    return _compute_aupro(_format_regions(anomaly_maps, masks), limit)


def pro_curve(anomaly_maps: Any, masks: Any, fpr_limit: float = 1.0) -> PROResult:
    """PRO curve (:class:`PROResult`): decreasing thresholds from ``+inf`` down to the first
    threshold whose FPR reaches ``fpr_limit``; ``.area`` is :func:`aupro` at that limit.

    anomaly_maps: (N, H, W) or (N, 1, H, W) real; masks: same shape, bool or {0, 1}.
    """
    limit = _validate.fpr_limit(fpr_limit)
    return _compute_pro_curve(_format_regions(anomaly_maps, masks), limit)


def pro(anomaly_maps: Any, masks: Any, threshold: float) -> float:
    """PRO at ``threshold``: mean over all regions of the fraction of pixels ``>= threshold``.

    anomaly_maps: (N, H, W) or (N, 1, H, W) real; masks: same shape, bool or {0, 1}.

    >>> maps = np.array([[[0.9, 0.2, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.8]]])
    >>> masks = np.array([[[1, 1, 0], [0, 0, 0], [0, 0, 1]]])
    >>> pro(maps, masks, threshold=0.5)  # regions overlap 1/2 and 1/1
    0.75
    """
    t = _validate.threshold(threshold)
    return _compute_pro(_format_regions(anomaly_maps, masks, keep_negatives=False), t)


def _format_regions_without_negatives(anomaly_maps: Any, masks: Any) -> _Regions:
    return _format_regions(anomaly_maps, masks, keep_negatives=False)


class PRO(Accumulator[_Regions, float]):
    """Stateful :func:`pro`. Memory: defect pixel values and region sizes (12 bytes each)."""

    _format = staticmethod(_format_regions_without_negatives)
    _merge = staticmethod(_merge_regions)
    _compute = staticmethod(_compute_pro)

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = _validate.threshold(threshold)

    def _settings(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class AUPRO(Accumulator[_Regions, float]):
    """Stateful :func:`aupro`: ``AUPRO(fpr_limit=0.3).update(maps, masks).compute()``.

    Memory: every background pixel value once in the map dtype (4 bytes a pixel for float32)
    plus 12 bytes a defect pixel; masks are reduced to region sizes in ``update()``. The
    FPR limit depends on the final background count, so no pixel can be dropped early exactly.
    """

    _format = staticmethod(_format_regions)
    _merge = staticmethod(_merge_regions)
    _compute = staticmethod(_compute_aupro)

    def __init__(self, fpr_limit: float = 0.3) -> None:
        super().__init__()
        self.fpr_limit = _validate.fpr_limit(fpr_limit)

    def _settings(self) -> dict[str, Any]:
        return {"fpr_limit": self.fpr_limit}


class PROCurve(AUPRO):
    """Stateful :func:`pro_curve` (default ``fpr_limit=1.0``); memory as :class:`AUPRO`."""

    _compute = staticmethod(_compute_pro_curve)

    def __init__(self, fpr_limit: float = 1.0) -> None:
        super().__init__(fpr_limit)
