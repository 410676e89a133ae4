"""PIMO curves and AUPIMO scores (per-image overlap against a shared FPR).

Definitions (``score >= threshold`` is anomalous):

- Normal images have no defect pixel; anomalous images have at least one.
- The shared FPR of a threshold is the mean over the normal images of the fraction of their
  pixels at or above it (all images of one call have the same number of pixels, so this is
  also the pooled fraction).
- Each anomalous image has its own TPR curve: the fraction of its defect pixels at or above
  the threshold. Normal images get NaN curves and NaN scores.
- AUPIMO of an image is the trapezoid area under TPR against log10(shared FPR) between
  ``log10(fpr_bounds[0])`` and ``log10(fpr_bounds[1])`` (the polyline interpolated linearly
  in log10(FPR) at the bounds), divided by the width of that range, so it lies in [0, 1].

Thresholds and exactness: the shared FPR only changes at pixel values of normal images, so
the curve is described exactly by, for each distinct normal value ``v`` that matters, the
thresholds ``v`` and ``next_up(v)`` (the next representable value of the map dtype, where
``score >= next_up(v)`` means ``score > v``). Between those two points the curve is a single
segment (a vertical step where the FPR is constant, or a diagonal only for ties), so the
trapezoid over them equals the trapezoid over every distinct threshold of the data. Only
the normal values from the top down to the first one whose FPR reaches ``fpr_bounds[1]``
matter: ``np.partition`` selects them (ties at the cut kept) without sorting the rest. The
result is exact up to float64 rounding; nothing is sampled or binned.

If no threshold has a shared FPR in ``(0, fpr_bounds[0]]`` (too few normal pixels, or ties
among the highest normal values), the lower bound cannot be reached: the curves are still
returned by :func:`pimo`, but AUPIMO is undefined, so :func:`aupimo` warns (saying how many
normal pixels there are) and returns NaN rather than integrating a range the data do not
cover. With the default bounds, at least 1e5 normal pixels are needed (e.g. two 256x256
normal images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgeanomaly.metrics import _validate
from edgeanomaly.metrics._base import Accumulator
from edgeanomaly.metrics._curve import common_dtype, count_ge, neg_slice_size, top_slice
from edgeanomaly.metrics._integrate import clipped_trapezoid
from edgeanomaly.metrics._results import AUPIMOResult, PIMOResult
from edgeanomaly.metrics._validate import MetricInputError, warn_undefined

__all__ = ["pimo", "aupimo", "PIMO", "AUPIMO", "DEFAULT_FPR_BOUNDS"]

DEFAULT_FPR_BOUNDS = (1e-5, 1e-4)


@dataclass(frozen=True, eq=False)
class _Images:
    """The format stage of PIMO/AUPIMO.

    normal: (M,) every pixel value of the normal images; image_pixels: H * W;
    defects: one (P_i,) array of defect pixel values per anomalous image;
    image_classes: (N,) int8, 1 anomalous / 0 normal, in input order.
    """

    normal: np.ndarray
    image_pixels: int
    defects: tuple[np.ndarray, ...]
    image_classes: np.ndarray


def _format_images(anomaly_maps: Any, masks: Any) -> _Images:
    maps = _validate.anomaly_maps(anomaly_maps)
    m = _validate.masks(masks)
    _validate.same_shape(maps, "anomaly_maps", m, "masks")
    anomalous = m.any(axis=(1, 2))
    return _Images(
        normal=maps[~anomalous].reshape(-1),
        image_pixels=maps.shape[1] * maps.shape[2],
        defects=tuple(maps[i][m[i]] for i in np.flatnonzero(anomalous)),
        image_classes=anomalous.astype(np.int8),
    )


def _merge_images(chunks: Sequence[_Images]) -> _Images:
    sizes = {c.image_pixels for c in chunks}
    if len(sizes) != 1:
        raise MetricInputError(
            f"Expected anomaly_maps with the same number of pixels (H * W) in every update, got {sorted(sizes)}"
        )
    dtype = common_dtype([c.normal for c in chunks] + [d for c in chunks for d in c.defects])
    return _Images(
        normal=np.concatenate([c.normal for c in chunks]).astype(dtype, copy=False),
        image_pixels=sizes.pop(),
        defects=tuple(d.astype(dtype, copy=False) for c in chunks for d in c.defects),
        image_classes=np.concatenate([c.image_classes for c in chunks]),
    )


def _undefined_pimo(images: _Images, fpr_bounds: tuple[float, float], metric: str) -> PIMOResult | None:
    n_anomalous = len(images.defects)
    if images.normal.size and n_anomalous:
        return None
    warn_undefined(metric, "there is no normal image" if n_anomalous else "there is no anomalous image")
    n = images.image_classes.size
    return PIMOResult(
        thresholds=np.zeros(0),
        shared_fpr=np.zeros(0),
        per_image_tpr=np.full((n, 0), np.nan),
        image_classes=images.image_classes,
        fpr_bounds=fpr_bounds,
    )


def _compute_pimo(images: _Images, fpr_bounds: tuple[float, float]) -> PIMOResult:
    undefined = _undefined_pimo(images, fpr_bounds, "PIMO")
    if undefined is not None:
        return undefined
    lower, upper = fpr_bounds
    dtype = common_dtype([images.normal, *images.defects])
    normal = images.normal.astype(dtype, copy=False)
    m = normal.size
    # the normal values are this package's own copy and only their content matters
    top = top_slice(normal, neg_slice_size(m, upper), overwrite=normal.flags.writeable)
    starts = np.flatnonzero(np.r_[True, top[1:] != top[:-1]])
    values = top[starts]
    thresholds = np.unique(np.concatenate([values, np.nextafter(values, dtype.type(np.inf))]))[::-1]
    shared_fpr = count_ge(top, thresholds) / m
    tpr = np.full((images.image_classes.size, thresholds.size), np.nan)
    for row, defects in zip(np.flatnonzero(images.image_classes), images.defects):
        tpr[row] = count_ge(np.sort(defects), thresholds) / defects.size
    return PIMOResult(
        thresholds=thresholds,
        shared_fpr=shared_fpr,
        per_image_tpr=tpr,
        image_classes=images.image_classes,
        fpr_bounds=fpr_bounds,
    )


def _lower_bound_reached(curves: PIMOResult, n_normal_pixels: int) -> bool:
    first = curves.shared_fpr[curves.shared_fpr > 0][0]
    if first <= curves.fpr_bounds[0]:
        return True
    warn_undefined(
        "AUPIMO",
        f"no threshold has a shared FPR in (0, {curves.fpr_bounds[0]:g}]: the smallest non-zero shared FPR is "
        f"{first:.3g} ({n_normal_pixels} normal pixels; the highest normal values may be tied). Use a larger "
        f"fpr_bounds[0] or more normal images",
    )
    return False


def _aupimo_from_pimo(curves: PIMOResult, n_normal_pixels: int) -> AUPIMOResult:
    lower, upper = (math.log10(b) for b in curves.fpr_bounds)
    aupimos = np.full(curves.image_classes.size, np.nan)
    anomalous = curves.image_classes == 1
    if curves.thresholds.size and anomalous.any() and _lower_bound_reached(curves, n_normal_pixels):
        # FPR 0 (log -inf) only precedes the first point inside the range; it adds no area
        reached = curves.shared_fpr > 0
        x = np.log10(curves.shared_fpr[reached])
        area = clipped_trapezoid(x, curves.per_image_tpr[anomalous][:, reached], lower, upper)
        aupimos[anomalous] = np.clip(area / (upper - lower), 0.0, 1.0)
    return AUPIMOResult(aupimos=aupimos, image_classes=curves.image_classes, fpr_bounds=curves.fpr_bounds)


def _compute_aupimo(images: _Images, fpr_bounds: tuple[float, float]) -> AUPIMOResult:
    if _undefined_pimo(images, fpr_bounds, "AUPIMO") is not None:
        return AUPIMOResult(
            aupimos=np.full(images.image_classes.size, np.nan),
            image_classes=images.image_classes,
            fpr_bounds=fpr_bounds,
        )
    return _aupimo_from_pimo(_compute_pimo(images, fpr_bounds), images.normal.size)


def pimo(anomaly_maps: Any, masks: Any, fpr_bounds: tuple[float, float] = DEFAULT_FPR_BOUNDS) -> PIMOResult:
    """Per-image TPR curves against the shared FPR of the normal images.

    anomaly_maps: (N, H, W) or (N, 1, H, W) real; masks: same shape, bool or {0, 1}.
    Returns :class:`PIMOResult` with thresholds (K,) covering the shared FPR from 0 to the
    first value at or above ``fpr_bounds[1]``, shared_fpr (K,) and per_image_tpr (N, K)
    (NaN rows for normal images). See the module docstring for definitions and exactness.
    """
    bounds = _validate.fpr_bounds(fpr_bounds)
    return _compute_pimo(_format_images(anomaly_maps, masks), bounds)


def aupimo(anomaly_maps: Any, masks: Any, fpr_bounds: tuple[float, float] = DEFAULT_FPR_BOUNDS) -> AUPIMOResult:
    """AUPIMO of every image and their mean over the anomalous images.

    anomaly_maps: (N, H, W) or (N, 1, H, W) real; masks: same shape, bool or {0, 1}.
    Returns :class:`AUPIMOResult`: ``.aupimos`` (N,) in [0, 1] with NaN for normal images,
    ``.mean`` (float) the mean over anomalous images, ``.anomalous`` their values. Warns and
    returns NaN when there is no normal or no anomalous image, or when the normal images
    cannot reach a shared FPR as low as ``fpr_bounds[0]`` (see the module docstring).

    >>> rng = np.random.default_rng(0)
    >>> maps = rng.random((4, 64, 64), dtype=np.float32)
    >>> masks = np.zeros(maps.shape, dtype=bool); masks[2:, 10:20, 10:20] = True
    >>> maps[masks] += 1.0  # defects score above every normal pixel
    >>> aupimo(maps, masks, fpr_bounds=(1e-3, 1e-2)).mean
    1.0
    """
    bounds = _validate.fpr_bounds(fpr_bounds)
    return _compute_aupimo(_format_images(anomaly_maps, masks), bounds)


class PIMO(Accumulator[_Images, PIMOResult]):
    """Stateful :func:`pimo`. Every update must have the same H * W.

    Memory: every pixel value of the normal images once in the map dtype (4 bytes a pixel for
    float32) and the defect pixel values of anomalous images; masks are not kept.
    """

    _format = staticmethod(_format_images)
    _merge = staticmethod(_merge_images)
    _compute = staticmethod(_compute_pimo)

    def __init__(self, fpr_bounds: tuple[float, float] = DEFAULT_FPR_BOUNDS) -> None:
        super().__init__()
        self.fpr_bounds = _validate.fpr_bounds(fpr_bounds)

    def _settings(self) -> dict[str, Any]:
        return {"fpr_bounds": self.fpr_bounds}


class AUPIMO(PIMO):
    """Stateful :func:`aupimo`; memory as :class:`PIMO`."""

    _compute = staticmethod(_compute_aupimo)
