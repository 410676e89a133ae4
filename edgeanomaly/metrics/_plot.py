"""Figures of the curves (extra ``[plot]``): matplotlib is imported inside each function.

Every function draws on a ``matplotlib.figure.Figure`` it creates (or on the ``ax`` given),
never on pyplot's global state, so it is safe in servers and threads and needs no backend;
save with ``fig.savefig(path)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeanomaly._optional import require
from edgeanomaly.metrics._results import AUPIMOResult, PIMOResult, PROResult, PRResult, ROCResult

__all__ = ["plot_roc", "plot_pr", "plot_pro", "plot_pimo"]


def _axes(ax: Any, purpose: str) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    figure_module = require("matplotlib.figure", purpose)
    fig = figure_module.Figure(figsize=(5, 4.5), layout="constrained")
    return fig, fig.add_subplot()


def _finish(fig: Any, ax: Any, title: str, label: str | None, legend_at: str, **axis: Any) -> Any:
    """Limits and labels (``ax.set(**axis)``), the title, and a legend when the curve is labelled."""
    ax.set(**axis)
    ax.set_title(title)
    if label:
        ax.legend(loc=legend_at)
    return fig


def plot_roc(curve: ROCResult, ax: Any = None, label: str | None = None) -> Any:
    """Draw a :class:`ROCResult`; the title gives the AUROC. Returns the Figure.

    >>> from edgeanomaly.metrics import roc_curve
    >>> fig = plot_roc(roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]))  # doctest: +SKIP
    >>> fig.savefig("roc.png")  # doctest: +SKIP
    """
    fig, ax = _axes(ax, "plotting a ROC curve")
    ax.plot(curve.fpr, curve.tpr, label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="gray", linewidth=0.8)
    return _finish(fig, ax, f"ROC (AUROC = {curve.auc:.4f})", label, "lower right",
                   xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate")


def plot_pr(curve: PRResult, ax: Any = None, label: str | None = None) -> Any:
    """Draw a :class:`PRResult` as steps; the title gives the average precision."""
    fig, ax = _axes(ax, "plotting a precision-recall curve")
    ax.step(curve.recall, curve.precision, where="pre", label=label)
    return _finish(fig, ax, f"Precision-recall (AUPR = {curve.average_precision:.4f})", label, "lower left",
                   xlim=(0, 1), ylim=(0, 1.01), xlabel="Recall", ylabel="Precision")


def plot_pro(curve: PROResult, ax: Any = None, label: str | None = None) -> Any:
    """Draw a :class:`PROResult` up to its ``fpr_limit``; the title gives the AUPRO."""
    fig, ax = _axes(ax, "plotting a PRO curve")
    ax.plot(curve.fpr, curve.pro, label=label)
    return _finish(fig, ax, f"PRO (AUPRO@{curve.fpr_limit:g} = {curve.area:.4f})", label, "lower right",
                   xlim=(0, curve.fpr_limit), ylim=(0, 1.01), xlabel="False positive rate", ylabel="Per-region overlap")


def plot_pimo(curves: PIMOResult, scores: AUPIMOResult | None = None, ax: Any = None) -> Any:
    """Draw the per-image PIMO curves on a log FPR axis with the integration bounds.

    With ``scores`` (the matching :class:`AUPIMOResult`) the title gives the mean AUPIMO.
    """
    fig, ax = _axes(ax, "plotting PIMO curves")
    lower, upper = curves.fpr_bounds
    reached = curves.shared_fpr > 0
    for row in curves.per_image_tpr[curves.image_classes == 1]:
        ax.plot(curves.shared_fpr[reached], row[reached], linewidth=0.8, alpha=0.6)
    for bound in (lower, upper):
        ax.axvline(bound, linestyle="--", color="gray", linewidth=0.8)
    ax.set_xscale("log")
    ax.set(ylim=(0, 1.01), xlabel="Shared FPR (normal images)", ylabel="Per-image TPR")
    ax.set_xlim(lower / 10, min(1.0, upper * 10))
    title = "PIMO"
    if scores is not None:
        title += f" (mean AUPIMO = {scores.mean:.4f}, {np.count_nonzero(scores.image_classes)} images)"
    ax.set_title(title)
    return fig
