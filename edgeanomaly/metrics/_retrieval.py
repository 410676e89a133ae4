"""The metric dictionaries of the PatchCore reference code, with the same keys.

They exist so that numbers reported by users of that code can be compared one to one; the
values come from this package's exact core (``score >= threshold`` everywhere).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeanomaly.metrics._curve import ceil_to_dtype
from edgeanomaly.metrics._f1 import _compute_adaptive
from edgeanomaly.metrics._format import image_split, pixel_split
from edgeanomaly.metrics._roc import _compute_auroc, _compute_roc

__all__ = ["compute_imagewise_retrieval_metrics", "compute_pixelwise_retrieval_metrics"]


def compute_imagewise_retrieval_metrics(scores: Any, labels: Any) -> dict[str, Any]:
    """Image-level AUROC and ROC curve as a dict.

    scores: (N,) real; labels: (N,) bool or {0, 1}. Keys:

    - ``auroc`` (float): area under the ROC curve, see :func:`~edgeanomaly.metrics.auroc`.
    - ``fpr`` (K,) and ``tpr`` (K,): false and true positive rates of ``score >= threshold``.
    - ``threshold`` (K,): the decreasing thresholds of those points; the first is ``+inf``.

    >>> sorted(compute_imagewise_retrieval_metrics([0.1, 0.9], [0, 1]))
    ['auroc', 'fpr', 'threshold', 'tpr']
    """
    split = image_split(scores, labels)
    roc = _compute_roc(split)
    return {"auroc": _compute_auroc(split), "fpr": roc.fpr, "tpr": roc.tpr, "threshold": roc.thresholds}


def compute_pixelwise_retrieval_metrics(anomaly_maps: Any, masks: Any) -> dict[str, Any]:
    """Pixel-level AUROC, ROC curve and the F1-optimal pixel threshold as a dict.

    anomaly_maps: (N, H, W) or (N, 1, H, W) real; masks: same shape, bool or {0, 1}. Keys:

    - ``auroc`` (float): pixel AUROC over every pixel of every image.
    - ``fpr`` (K,) and ``tpr`` (K,): the pixel ROC curve (``score >= threshold``).
    - ``optimal_threshold`` (float): the pixel threshold that maximises pixel F1 (the lowest
      one among equal maxima), see :func:`~edgeanomaly.metrics.pixel_f1_adaptive_threshold`.
    - ``optimal_fpr`` (float): false positive pixels at that threshold divided by *all*
      pixels (defect pixels included), as the PatchCore reference code defines it; this is
      not FP / background pixels.
    - ``optimal_fnr`` (float): missed defect pixels at that threshold divided by *all* pixels,
      likewise (not FN / defect pixels).
    """
    split = pixel_split(anomaly_maps, masks)
    roc = _compute_roc(split)
    best = _compute_adaptive(split)
    n_pixels = split.pos.size + split.neg.size
    if np.isnan(best.threshold):
        optimal_fpr = optimal_fnr = float("nan")
    else:
        t = ceil_to_dtype(best.threshold, np.result_type(split.pos, split.neg))
        optimal_fpr = np.count_nonzero(split.neg >= t) / n_pixels
        optimal_fnr = np.count_nonzero(split.pos < t) / n_pixels
    return {
        "auroc": _compute_auroc(split),
        "fpr": roc.fpr,
        "tpr": roc.tpr,
        "optimal_threshold": best.threshold,
        "optimal_fpr": float(optimal_fpr),
        "optimal_fnr": float(optimal_fnr),
    }
