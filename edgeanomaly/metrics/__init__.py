"""Anomaly-detection metrics in NumPy and OpenCV, exact, for validating models on the device.

One convention everywhere: a threshold ``t`` marks ``score >= t`` as anomalous (curves, F1,
PRO, PIMO). Every metric has a functional form (predictions first) and a stateful twin with
``update()`` (returns ``self``) and ``compute()``; both run the same private stages
(validate, format, compute), so they cannot drift. Undefined cases (one class only) warn
with :class:`UndefinedMetricWarning` and return NaN; invalid inputs raise
:class:`MetricTypeError` (a ``TypeError``) or :class:`MetricInputError` (a ``ValueError``).

Image level (scores (N,), labels (N,)):
    auroc, aupr, roc_curve, pr_curve, f1_score, f1_adaptive_threshold
Pixel level (anomaly_maps and masks (N, H, W) or (N, 1, H, W)):
    pixel_auroc, pixel_aupr, pixel_roc_curve, pixel_pr_curve, pixel_f1_adaptive_threshold,
    aupro, pro, pro_curve, pimo, aupimo
Normalisation: manual_threshold, min_max, anomaly_score_distribution
PatchCore-style dicts: compute_imagewise_retrieval_metrics, compute_pixelwise_retrieval_metrics
Evaluation of raw outputs with a calibration: evaluate_outputs, relative_diff
Figures (extra ``[plot]``): plot_roc, plot_pr, plot_pro, plot_pimo

Only numpy and OpenCV are imported (matplotlib inside the plotting functions).
"""

from __future__ import annotations

from edgeanomaly.metrics._f1 import (
    F1AdaptiveThreshold,
    F1Score,
    PixelF1AdaptiveThreshold,
    f1_adaptive_threshold,
    f1_score,
    pixel_f1_adaptive_threshold,
)
from edgeanomaly.metrics._pimo import AUPIMO, DEFAULT_FPR_BOUNDS, PIMO, aupimo, pimo
from edgeanomaly.metrics._plot import plot_pimo, plot_pr, plot_pro, plot_roc
from edgeanomaly.metrics._pr import AUPR, PR, PixelAUPR, PixelPR, aupr, pixel_aupr, pixel_pr_curve, pr_curve
from edgeanomaly.metrics._pro import AUPRO, PRO, PROCurve, aupro, pro, pro_curve
from edgeanomaly.metrics._report import (
    REPORT_METRICS,
    ReportMetric,
    evaluate_outputs,
    register_report_metric,
    relative_diff,
    report_metrics,
    unregister_report_metric,
)
from edgeanomaly.metrics._results import (
    AdaptiveThresholdResult,
    AUPIMOResult,
    MinMaxResult,
    PIMOResult,
    PROResult,
    PRResult,
    ROCResult,
    ScoreDistributionResult,
)
from edgeanomaly.metrics._retrieval import compute_imagewise_retrieval_metrics, compute_pixelwise_retrieval_metrics
from edgeanomaly.metrics._roc import AUROC, ROC, PixelAUROC, PixelROC, auroc, pixel_auroc, pixel_roc_curve, roc_curve
from edgeanomaly.metrics._stats import (
    AnomalyScoreDistribution,
    ManualThreshold,
    MinMax,
    anomaly_score_distribution,
    manual_threshold,
    min_max,
)
from edgeanomaly.metrics._validate import MetricInputError, MetricTypeError, UndefinedMetricWarning
from edgeanomaly.metrics import _results, _stats  # their __all__ are part of ours

__all__ = [
    # image level
    "auroc",
    "aupr",
    "roc_curve",
    "pr_curve",
    "f1_score",
    "f1_adaptive_threshold",
    "AUROC",
    "AUPR",
    "ROC",
    "PR",
    "F1Score",
    "F1AdaptiveThreshold",
    # pixel level
    "pixel_auroc",
    "pixel_aupr",
    "pixel_roc_curve",
    "pixel_pr_curve",
    "pixel_f1_adaptive_threshold",
    "PixelAUROC",
    "PixelAUPR",
    "PixelROC",
    "PixelPR",
    "PixelF1AdaptiveThreshold",
    "aupro",
    "pro",
    "pro_curve",
    "AUPRO",
    "PRO",
    "PROCurve",
    "pimo",
    "aupimo",
    "PIMO",
    "AUPIMO",
    "DEFAULT_FPR_BOUNDS",
    # normalisation
    *_stats.__all__,
    # PatchCore-style dicts
    "compute_imagewise_retrieval_metrics",
    "compute_pixelwise_retrieval_metrics",
    # results
    *_results.__all__,
    # evaluation of raw model outputs (fit, export, validate)
    "evaluate_outputs",
    "relative_diff",
    "REPORT_METRICS",
    "ReportMetric",
    "register_report_metric",
    "report_metrics",
    "unregister_report_metric",
    # figures
    "plot_roc",
    "plot_pr",
    "plot_pro",
    "plot_pimo",
    # errors and warnings
    "MetricInputError",
    "MetricTypeError",
    "UndefinedMetricWarning",
]
