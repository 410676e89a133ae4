"""The validation report as files: ``validation.md`` (what the CLI prints), ``validation.json``,
``validation.html`` (:mod:`edgeanomaly.reports._html`) and, with ``[plot]``, matplotlib PNGs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeanomaly._telemetry import keep_matplotlib_out_of_home
from edgeanomaly.metrics import aupimo, pimo, plot_pimo, plot_pro, plot_roc, pro_curve, report_metrics, roc_curve
from edgeanomaly.reports._html import write_html_report
from edgeanomaly.tooling import ValidationReport

__all__ = ["validation_markdown", "write_validation_report"]


def validation_markdown(report: ValidationReport) -> str:
    """The report as a Markdown table (what ``validation.md`` holds and the CLI prints)."""
    keys = [k for k in report_metrics() if any(k in a.metrics for a in report.artifacts)]
    lines = [
        f"# Validation of `{report.bundle}`",
        "",
        f"- data: `{report.data}` (reference metrics from `{report.reference_data}`)",
        f"- verdict: **{report.outcome}**"
        + ({"PASS": "", "FAIL": " (an artifact does not reproduce the torch model)",
            "INCONCLUSIVE": " (no artifact failed, but this data is too small to judge some metrics: see below)"}[report.outcome]
           if not report.notes else " (see the note below)"),
        *(f"- note: {n}" for n in report.notes),
        "",
        "| artifact | status | backend/device | execution | " + " | ".join(keys) + " | max rel diff | flips | p50 ms (async) |",
        "|---|---|---|---|" + "---|" * len(keys) + "---|---|---|",
    ]
    ref_row = "| torch reference | | | | " + " | ".join(f"{report.reference_metrics[k]:.4f}" if k in report.reference_metrics else "-" for k in keys) + " | | | |"
    lines.append(ref_row)
    for a in report.artifacts:
        rep = a.reproduction
        worst = f"{max(rep.get('max_rel_score_diff', 0.0), rep.get('max_rel_map_diff', 0.0)):.2e}" if rep else "-"
        flips = str(rep.get("label_flips", "-")) if rep else "-"
        latency = f"{a.latency_ms_p50:.1f}" if a.latency_ms_p50 is not None else "-"
        cells = []
        for k in keys:
            d = a.deltas.get(k)
            cells.append("-" if k not in a.metrics else f"{a.metrics[k]:.4f}" + (f" ({d:+.4f})" if d is not None else ""))
        lines.append(
            f"| {a.artifact} | {a.status.upper()} | {a.backend}/{a.device} | {a.execution} | "
            + " | ".join(cells)
            + f" | {worst} | {flips} | {latency} |"
        )
    lines += ["", "Pixel metrics in this table are at the model input resolution, where the torch reference was computed "
                  f"and the verdict compares. Also reported: {report.pixel_resolution_note}."]
    original = [a for a in report.artifacts if a.metrics_original]
    if original:
        pkeys = [k for k in keys if k.startswith("pixel_") and any(k in a.metrics_original for a in original)]
        lines += ["", "| artifact (each image's own resolution) | " + " | ".join(pkeys) + " |", "|---|" + "---|" * len(pkeys)]
        lines += [f"| {a.artifact} | " + " | ".join(f"{a.metrics_original[k]:.4f}" if k in a.metrics_original else "-" for k in pkeys) + " |"
                  for a in original]
    chosen = [a for a in report.artifacts if a.execution_choice]
    if chosen:
        lines += ["", "Execution precision (chosen at load; drift as measured against torch at export):", ""]
        for a in chosen:
            c = a.execution_choice
            d = c.get("export_drift")
            drift = ("not recorded in the bundle" if not d else
                     f"{d.get('outcome')}, max rel diff {_num(d.get('max_rel_diff'))}, {d.get('decision_flips', '-')} decision flips"
                     + (f" on {d['device']}" if d.get("device") else "") + (f", OpenVINO {d['openvino']}" if d.get("openvino") else ""))
            lines.append(f"- `{a.artifact}`: {c.get('precision') or '-'} ({c.get('reason')}); export drift: {drift}")
    problems = [(a.artifact, r) for a in report.artifacts for r in (a.reasons + ([f"FAIL: {a.error}"] if a.error else []))]
    if problems:
        lines += ["", "## Why", ""] + [f"- `{n}`: {r}" for n, r in problems]
    return "\n".join(lines) + "\n"


def _num(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2e}"


def write_validation_report(report: ValidationReport, out: str | Path, figures: bool = True) -> list[Path]:
    """Write ``validation.json``, ``validation.md`` and ``validation.html`` into ``out``.

    The HTML report is self-contained (inline SVG curves and histograms, PNG overlays drawn with
    OpenCV) and always written; ``figures`` adds the matplotlib PNGs when ``[plot]`` is installed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "validation.json", out / "validation.md"]
    written[0].write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    written[1].write_text(validation_markdown(report))
    written.append(write_html_report(report, out / "validation.html"))
    if figures:
        written += _figures(report, out)
    return written


def _figures(report: ValidationReport, out: Path) -> list[Path]:
    keep_matplotlib_out_of_home()
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        return []
    paths: list[Path] = []
    for a in report.artifacts:
        if a._scores is None or a._labels is None:
            continue
        stem = out / a.artifact
        fig = Figure(figsize=(12, 3.2))
        axes = fig.subplots(1, 4)
        plot_roc(roc_curve(a._scores, a._labels), ax=axes[0])
        if a._maps is not None and a._masks is not None and a._masks.any():
            plot_pro(pro_curve(a._maps, a._masks, fpr_limit=0.3), ax=axes[1])
            plot_pimo(pimo(a._maps, a._masks), aupimo(a._maps, a._masks), ax=axes[2])
        else:
            axes[1].set_axis_off()
            axes[2].set_axis_off()
        ax = axes[3]
        bins = np.linspace(float(a._scores.min()), float(a._scores.max()) + 1e-12, 20)
        ax.hist(a._scores[a._labels == 0], bins=bins, alpha=0.6, label="normal")
        ax.hist(a._scores[a._labels == 1], bins=bins, alpha=0.6, label="anomalous")
        ax.set_title("Raw image scores")
        ax.legend()
        fig.suptitle(f"{a.artifact} ({a.execution})")
        fig.tight_layout()
        fig.savefig(f"{stem}.png", dpi=90)
        paths.append(Path(f"{stem}.png"))
    return paths
