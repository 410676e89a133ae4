"""One set of numbers for a model on a labelled split, used by fit, export and validate.

Computing the same keys in one place is what makes "the device reproduces the trained model"
a comparison of like with like.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgeanomaly.metrics._f1 import f1_score
from edgeanomaly.metrics._pimo import aupimo
from edgeanomaly.metrics._pr import aupr
from edgeanomaly.metrics._pro import aupro, pro
from edgeanomaly.metrics._roc import auroc, pixel_auroc

__all__ = [
    "REPORT_METRICS",
    "ReportMetric",
    "evaluate_outputs",
    "register_report_metric",
    "relative_diff",
    "report_metrics",
    "unregister_report_metric",
]


@dataclass(frozen=True)
class ReportMetric:
    """One metric that fit, export, validate and their reports compute (:func:`evaluate_outputs`).

    Attributes:
        key: ``image_<name>`` (computed from the raw image scores and labels) or
            ``pixel_<name>`` (from the raw maps and ground-truth masks, only when the data
            has defect masks). Higher must be better: the verdict reads a drop as a loss.
        compute: ``(values, targets, threshold) -> float``: image scores (N,) and labels (N,),
            or maps (N, h, w) and masks (N, h, w); ``threshold`` is the bundle's image or pixel
            threshold (``None`` unless ``thresholded``).
        thresholded: the metric is taken at the calibration's threshold; a pixel one is left
            out when the calibration has no pixel threshold.
    """

    key: str
    compute: Callable[[np.ndarray, np.ndarray, float | None], float]
    thresholded: bool = False

    @property
    def level(self) -> str:
        return self.key.split("_", 1)[0]


_METRICS: dict[str, ReportMetric] = {}


def register_report_metric(metric: ReportMetric, *, replace: bool = False) -> ReportMetric:
    """Add a metric to what :func:`evaluate_outputs` computes (and so to fit's metrics, the
    bundle's reference metrics, export's and validate's verdicts, and the reports).

    Raises:
        ValueError: the key is taken (``replace=True`` redefines it) or does not start with
            ``image_`` or ``pixel_``.
    """
    if metric.level not in ("image", "pixel") or "_" not in metric.key:
        raise ValueError(f"Expected a metric key 'image_<name>' or 'pixel_<name>', got {metric.key!r}")
    if metric.key in _METRICS and not replace:
        raise ValueError(f"Metric {metric.key!r} is already registered")
    _METRICS[metric.key] = metric
    return metric


def unregister_report_metric(key: str) -> None:
    """Remove a registered metric (for plugins and tests that registered one)."""
    if key in REPORT_METRICS:
        raise ValueError(f"{key!r} is a built-in metric; only added ones can be removed")
    if _METRICS.pop(key, None) is None:
        raise ValueError(f"No metric {key!r} is registered; registered: {', '.join(_METRICS)}")


def report_metrics() -> tuple[str, ...]:
    """Keys :func:`evaluate_outputs` can return, in report order (the built-ins first)."""
    return tuple(_METRICS)


for _row in (
    ReportMetric("image_auroc", lambda s, y, t: auroc(s, y)),
    ReportMetric("image_aupr", lambda s, y, t: aupr(s, y)),
    ReportMetric("image_f1", lambda s, y, t: f1_score(s, y, t), thresholded=True),
    ReportMetric("pixel_auroc", lambda m, k, t: pixel_auroc(m, k)),
    ReportMetric("pixel_aupro", lambda m, k, t: aupro(m, k)),
    ReportMetric("pixel_aupimo", lambda m, k, t: aupimo(m, k).mean),
    ReportMetric("pixel_pro", lambda m, k, t: pro(m, k, t), thresholded=True),
    ReportMetric("pixel_f1", lambda m, k, t: f1_score(np.asarray(m).ravel(), np.asarray(k).ravel(), t), thresholded=True),
):
    register_report_metric(_row)

#: The built-in keys of :func:`evaluate_outputs`, in report order; :func:`report_metrics` adds
#: the registered ones.
REPORT_METRICS: tuple[str, ...] = tuple(_METRICS)


def evaluate_outputs(
    scores: np.ndarray,
    labels: np.ndarray,
    maps: np.ndarray | None,
    masks: np.ndarray | None,
    calibration: Any,
) -> dict[str, float]:
    """Image and pixel metrics of raw model outputs: every :func:`report_metrics` row.

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
        pixel_pro, pixel_f1]}`` and the registered metrics. Pixel metrics are computed at model
        input resolution with masks resized by nearest neighbour; undefined values (one class
        only) are NaN.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels)
    pixels = maps is not None and masks is not None and bool(np.asarray(masks).any())
    thresholds = {"image": calibration.image_threshold, "pixel": calibration.pixel_threshold}
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        # One-class splits are reported as NaN in the table, not as a warning per metric.
        warnings.simplefilter("ignore")
        for metric in _METRICS.values():
            if metric.level == "pixel" and not pixels:
                continue
            threshold = thresholds[metric.level] if metric.thresholded else None
            if metric.thresholded and threshold is None:
                continue
            values, targets = (scores, labels) if metric.level == "image" else (maps, masks)
            out[metric.key] = float(metric.compute(values, targets, threshold))  # type: ignore[arg-type]
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
