"""``validation.html``: one self-contained page a line engineer reads to decide about a bundle.

The verdict and why, the table with its columns explained, per artifact the checks, ROC / PR /
PRO / PIMO curves, score histograms of normal and anomalous images with the threshold, and a
gallery of the worst false positives and negatives with heat-map overlays. Figures are inline
SVG and base64 PNG (OpenCV): no matplotlib, no external URL, one file to mail or archive.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from edgeanomaly.data import read_image
from edgeanomaly.judging import TOLERANCES
from edgeanomaly.metrics import aupimo, pimo, pr_curve, pro_curve, report_metrics, roc_curve
from edgeanomaly.reports._svg import histogram, line_chart, png_data_uri
from edgeanomaly.runtime import Prediction, overlay, postprocess
from edgeanomaly.tooling import ArtifactValidation, ValidationReport

__all__ = ["render_html", "write_html_report", "COLUMN_NOTES"]

#: What each column means: printed under the table (the issue: nobody knew what "execution" was).
COLUMN_NOTES: dict[str, str] = {
    "verdict": "PASS: reproduces the torch model. FAIL: does not (see why). INCONCLUSIVE: nothing failed, but a metric "
               "moved by less than one image can move it on this data: too few images to judge, the row says how many would.",
    "execution": "the precision the runtime actually executed at, read back from the backend (an FP32 artifact may "
                 "otherwise run at bf16 on some CPUs); the artifact's own precision is in its name.",
    "metrics": "computed on this data with the bundle's calibration; in brackets the difference from the torch reference "
               "stored in the bundle. FP32 is judged on every metric both ways ({fp32}), FP16 too ({fp16}); INT8 "
               "only on {int8_judged} and only for losses ({int8}), because its raw outputs are re-aligned.",
    "pixel metrics": "in the table above at the model input resolution, where the torch reference was computed and "
                     "the verdict compares; {resolution}.",
    "max rel diff": "largest raw score/map difference from the torch outputs on the reference images stored in the "
                    "bundle, divided by the largest reference value.",
    "flips": "reference images whose decision (anomalous or not) differs from the torch model's.",
    "p50 ms": "median per-image latency of the asynchronous pipeline on this device: decode, preprocess, inference and "
              "postprocess of one image file (not the graph alone; see edgeanomaly benchmark for batch-1 figures).",
}

_STYLE = """
body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.PASS{background:#dff5e1}.FAIL{background:#fbdada}.INCONCLUSIVE{background:#fff3cd}.ERROR{background:#fbdada}
.banner{padding:10px 14px;border-radius:6px;font-size:18px;margin:10px 0}
.figs{display:flex;flex-wrap:wrap;gap:8px}.gallery{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;font-size:12px;max-width:200px}figure img{width:192px;display:block}
dl dt{font-weight:bold;margin-top:6px}dl dd{margin-left:16px}.msg{text-align:left;font-size:12px}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _curves(a: ArtifactValidation) -> list[str]:
    s, y = a._scores, a._labels
    figs: list[str] = []
    if s is None or y is None or len(np.unique(y)) < 2:
        return figs
    roc = roc_curve(s, y)
    figs.append(line_chart([(roc.fpr, roc.tpr, f"AUROC {roc.auc:.4f}"), (np.array([0, 1]), np.array([0, 1]), "")],
                           title="Image ROC", xlabel="false positive rate", ylabel="true positive rate"))
    pr = pr_curve(s, y)
    figs.append(line_chart([(pr.recall, pr.precision, f"AUPR {pr.average_precision:.4f}")], title="Image precision-recall",
                           xlabel="recall", ylabel="precision", step=True))
    maps, masks = a._maps, a._masks
    if maps is not None and masks is not None and masks.any():
        pro = pro_curve(maps, masks, fpr_limit=0.3)
        figs.append(line_chart([(pro.fpr, pro.pro, f"AUPRO {pro.area:.4f}")], title="Per-region overlap (PRO)",
                               xlabel="false positive rate", ylabel="PRO", xlim=(0.0, 0.3)))
        curves, scores = pimo(maps, masks), aupimo(maps, masks)
        lo, hi = curves.fpr_bounds
        reached = curves.shared_fpr > 0
        rows = curves.per_image_tpr[curves.image_classes == 1]
        series = [(curves.shared_fpr[reached], row[reached], "") for row in rows]
        if series:
            series[0] = (*series[0][:2], f"mean AUPIMO {scores.mean:.4f}")
        figs.append(line_chart(series, title=f"PIMO ({len(rows)} anomalous images)", xlabel="shared FPR (normal images)",
                               ylabel="per-image TPR", xlim=(lo / 10, min(1.0, hi * 10)), logx=True, vlines=(lo, hi)))
    return figs


def _gallery(a: ArtifactValidation, report: ValidationReport, per_kind: int = 3) -> str:
    """The worst false positives (normal, highest scores) and false negatives (anomalous, lowest)."""
    cal, paths, s, y = report._calibration, report._paths, a._scores, a._labels
    if cal is None or not paths or s is None or y is None:
        return ""
    t = cal.image_threshold
    normal, anomalous = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    # the worst of each class: wrong decisions when there are any, else the closest calls
    worst_normal = normal[np.argsort(-s[normal], kind="stable")][:per_kind]
    worst_anomalous = anomalous[np.argsort(s[anomalous], kind="stable")][:per_kind]
    pp = report._preprocessing or {}
    resized = tuple(pp.get("image_size") or (0, 0))
    crop = tuple(pp["center_crop"]) if pp.get("center_crop") else None
    cells = []
    for i in [*worst_normal, *worst_anomalous]:
        if y[i] == 0:
            kind = "false positive" if s[i] >= t else "good part closest to the threshold"
        else:
            kind = "false negative" if s[i] < t else "defect closest to the threshold"
        rgb = read_image(paths[i])
        raw_map = a._maps[i] if a._maps is not None else None
        score, label, amap, mask = postprocess(cal, float(s[i]), raw_map, rgb.shape[:2], resized, crop)  # type: ignore[arg-type]
        vis = overlay(rgb, Prediction(score=score, label=label, raw_score=float(s[i]), anomaly_map=amap, mask=mask))
        cells.append(f'<figure><img alt="{_e(kind)}" src="{png_data_uri(vis, 192)}"><figcaption>{_e(kind)}: '
                     f"{_e(Path(paths[i]).parent.name)}/{_e(Path(paths[i]).name)}, raw score {s[i]:.4g} "
                     f"(threshold {t:.4g})</figcaption></figure>")
    errors = sum(1 for i in normal if s[i] >= t) + sum(1 for i in anomalous if s[i] < t)
    head = (f"<p>{errors} wrong decision(s) at the bundle threshold; the worst normal and anomalous images:</p>" if errors
            else "<p>No false positives or false negatives at the bundle threshold; the closest calls:</p>")
    return head + f'<div class="gallery">{"".join(cells)}</div>'


def render_html(report: ValidationReport) -> str:
    """The report as one HTML string (no external resources)."""
    outcome = report.outcome
    keys = [k for k in report_metrics() if any(k in a.metrics for a in report.artifacts)]
    why = {"PASS": "every artifact reproduces the torch model on this data.",
           "FAIL": "at least one artifact does not reproduce the torch model: do not put it on the line.",
           "INCONCLUSIVE": "no artifact failed, but this data is too small to judge some differences (see below)."}[outcome]
    if report.notes:
        why = " ".join(report.notes)
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Validation of {_e(report.bundle)}</title>"
           f"<style>{_STYLE}</style></head><body>",
           f"<h1>Validation of <code>{_e(report.bundle)}</code></h1>",
           f"<p>data <code>{_e(report.data)}</code>; reference metrics from <code>{_e(report.reference_data)}</code></p>",
           f'<div class="banner {outcome}">Verdict: <b>{outcome}</b>: {_e(why)}</div>']
    reasons = [(a.artifact, r) for a in report.artifacts for r in (a.reasons + ([f"FAIL: {a.error}"] if a.error else []))]
    if reasons:
        out.append("<h2>Why</h2><ul>" + "".join(f"<li><code>{_e(n)}</code>: {_e(r)}</li>" for n, r in reasons) + "</ul>")
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    out.append(f"<h2>Artifacts</h2><table><tr><th>artifact</th><th>verdict</th><th>backend/device</th><th>execution</th>{head}"
               "<th>max rel diff</th><th>flips</th><th>p50 ms</th></tr>")
    out.append("<tr><td>torch reference</td><td></td><td></td><td></td>"
               + "".join(f"<td>{_fmt(report.reference_metrics.get(k))}</td>" for k in keys) + "<td></td><td></td><td></td></tr>")
    for a in report.artifacts:
        status = "ERROR" if a.status == "error" else a.status.upper()
        rep = a.reproduction
        worst = max(rep.get("max_rel_score_diff", 0.0), rep.get("max_rel_map_diff", 0.0)) if rep else None
        cells = "".join(
            f"<td>{_fmt(a.metrics.get(k))}" + (f" ({a.deltas[k]:+.4f})" if k in a.deltas else "") + "</td>" for k in keys)
        out.append(f'<tr><td>{_e(a.artifact)}</td><td class="{status}">{status}</td><td>{_e(a.backend)}/{_e(a.device)}</td>'
                   f"<td>{_e(a.execution)}</td>{cells}<td>{'-' if worst is None else f'{worst:.2e}'}</td>"
                   f"<td>{_e(rep.get('label_flips', '-')) if rep else '-'}</td><td>{_fmt(a.latency_ms_p50, 1)}</td></tr>")
    out.append("</table>")
    original = [a for a in report.artifacts if a.metrics_original]
    if original:
        pkeys = [k for k in keys if k.startswith("pixel_") and any(k in a.metrics_original for a in original)]
        out.append("<h3>Pixel metrics at each image's own resolution</h3><p>As MVTec AD results are reported: each map "
                   "resized to its image's size (reported, not judged).</p><table><tr><th>artifact</th>"
                   + "".join(f"<th>{_e(k)}</th>" for k in pkeys) + "</tr>"
                   + "".join(f"<tr><td>{_e(a.artifact)}</td>" + "".join(f"<td>{_fmt(a.metrics_original.get(k))}</td>" for k in pkeys)
                             + "</tr>" for a in original) + "</table>")
    int8 = TOLERANCES["int8"]
    fill = {"fp32": f"tolerance {TOLERANCES['fp32'].metric:g}", "fp16": f"tolerance {TOLERANCES['fp16'].metric:g}",
            "int8": f"tolerance {int8.metric:g}", "int8_judged": ", ".join(int8.judged or ()),
            "resolution": report.pixel_resolution_note}
    out.append("<h3>Columns</h3><dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v.format(**fill))}</dd>" for k, v in COLUMN_NOTES.items())
               + "</dl>")
    for a in report.artifacts:
        status = "ERROR" if a.status == "error" else a.status.upper()
        out.append(f'<h2 id="{_e(a.artifact)}">{_e(a.artifact)} <span class="banner {status}" style="font-size:14px">{status}</span></h2>')
        if a.error:
            out.append(f"<p>{_e(a.error)}</p>")
            continue
        checks = a.verdict.get("checks", [])
        if checks:
            out.append("<table><tr><th>check</th><th>outcome</th><th>value</th><th>limit</th><th>why</th></tr>" + "".join(
                f'<tr><td>{_e(c["name"])}</td><td class="{_e(c["outcome"])}">{_e(c["outcome"])}</td><td>{_fmt(c["value"])}</td>'
                f'<td>{_fmt(c["limit"])}</td><td class="msg">{_e(c["message"])}</td></tr>' for c in checks) + "</table>")
        figs = _curves(a)
        if a._scores is not None and a._labels is not None:
            t = report._calibration.image_threshold if report._calibration is not None else None
            figs.append(histogram(a._scores[a._labels == 0], a._scores[a._labels == 1], t, title="Raw image scores",
                                  xlabel="raw score (dashed: bundle threshold)"))
        out.append(f'<div class="figs">{"".join(figs)}</div>')
        out.append("<h3>Worst false positives and false negatives</h3>" + _gallery(a, report))
    out.append("</body></html>")
    return "\n".join(out)


def write_html_report(report: ValidationReport, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path`` (``validation.html``) and return it."""
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path
