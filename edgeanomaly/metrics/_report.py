"""One set of numbers for a model on a labelled split, used by fit, export and validate.

Computing the same keys in one place is what makes "the device reproduces the trained model"
a comparison of like with like.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from edgeanomaly.metrics._f1 import f1_score
from edgeanomaly.metrics._pimo import aupimo
from edgeanomaly.metrics._pr import aupr
from edgeanomaly.metrics._pro import aupro, pro
from edgeanomaly.metrics._roc import auroc, pixel_auroc

__all__ = ["evaluate_outputs", "relative_diff", "REPORT_METRICS"]

#: Keys of :func:`evaluate_outputs`, in report order; "higher is better" for all of them.
REPORT_METRICS = (
    "image_auroc",
    "image_aupr",
    "image_f1",
    "pixel_auroc",
    "pixel_aupro",
    "pixel_aupimo",
    "pixel_pro",
    "pixel_f1",
)


def evaluate_outputs(
    scores: np.ndarray,
    labels: np.ndarray,
    maps: np.ndarray | None,
    masks: np.ndarray | None,
    calibration: Any,
) -> dict[str, float]:
    """Image and pixel metrics of raw model outputs.

    Args:
        scores: (N,) raw ``pred_score``.
        labels: (N,) 0 normal / 1 anomalous.
        maps: (N, h, w) raw ``anomaly_map`` at model input size, or None.
        masks: (N, h, w) bool ground truth at the same size (``edgeanomaly.data.sample_masks``),
            or None when there are none.
        calibration: a bundle ``Calibration``; F1 and PRO are taken at its thresholds
            (``score >= threshold`` is anomalous).

    Returns:
        ``{image_auroc, image_aupr, image_f1[, pixel_auroc, pixel_aupro, pixel_aupimo,
        pixel_pro, pixel_f1]}``. Pixel metrics are computed at model input resolution with
        masks resized by nearest neighbour; undefined values (one class only) are NaN.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels)
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        # One-class splits are reported as NaN in the table, not as a warning per metric.
        warnings.simplefilter("ignore")
        out["image_auroc"] = float(auroc(scores, labels))
        out["image_aupr"] = float(aupr(scores, labels))
        out["image_f1"] = float(f1_score(scores, labels, calibration.image_threshold))
        if maps is not None and masks is not None and masks.any():
            out["pixel_auroc"] = float(pixel_auroc(maps, masks))
            out["pixel_aupro"] = float(aupro(maps, masks))
            out["pixel_aupimo"] = float(aupimo(maps, masks).mean)
            if calibration.pixel_threshold is not None:
                t = calibration.pixel_threshold
                out["pixel_pro"] = float(pro(maps, masks, t))
                out["pixel_f1"] = float(f1_score(np.asarray(maps).ravel(), np.asarray(masks).ravel(), t))
    return out


def relative_diff(a: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max |a - ref|, that divided by max |ref|): how far an output drifted, with and without scale.

    >>> relative_diff(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    (0.5, 0.2)
    """
    a64, r64 = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    if a64.shape != r64.shape:
        raise ValueError(f"Expected outputs of the reference's shape {r64.shape}, got {a64.shape}")
    abs_diff = float(np.max(np.abs(a64 - r64))) if a64.size else 0.0
    scale = float(np.max(np.abs(r64))) if r64.size else 0.0
    return abs_diff, abs_diff / scale if scale > 0 else abs_diff
