"""Validate a bundle on the device: does this artifact, on this backend and device, still do
what the torch model did at export time?

Two checks per artifact:

1. **Reproduction**: the images stored in ``reference.npz`` (already at model input size)
   run through the artifact; raw score and map are compared with the torch outputs stored
   next to them (largest relative difference, label flips at the bundle threshold).
2. **Ground truth**: the labelled test split of ``--data`` runs through the artifact; image
   AUROC/AUPR/F1 and pixel AUROC/AUPRO/AUPIMO/PRO/F1 are computed with
   :func:`edgeanomaly.metrics.evaluate_outputs` and compared with the bundle's reference
   metrics (the torch model on the held-out split at export time).

A check beyond its tolerance fails the artifact. Tolerances depend on the artifact's
precision (:data:`TOLERANCES`); ``tolerance=`` overrides the metric tolerance for all.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeanomaly.errors import DatasetError, EdgeAnomalyError

__all__ = ["Tolerance", "TOLERANCES", "ArtifactValidation", "ValidationReport", "validate_bundle", "write_validation_report"]


@dataclass(frozen=True)
class Tolerance:
    """How far an artifact may be from the torch reference.

    Attributes:
        reproduce_rel: largest relative raw-output difference on reference.npz (None: report only).
        metric: largest difference of a judged metric from its reference value.
        label_flips: reference images allowed to change label.
        judged: metrics held to ``metric`` (None: every metric in the report).
        two_sided: also fail when a metric rises beyond ``metric`` (drift, not only loss).
    """

    reproduce_rel: float | None
    metric: float
    label_flips: int
    judged: tuple[str, ...] | None = None
    two_sided: bool = True


#: Per artifact precision. FP32 must reproduce torch (export enforced 1e-4 on the exporting
#: machine): any metric moving either way is drift. FP16 uses the same calibration, so all its
#: metrics are judged. INT8 artifacts carry their own calibration (edgeanomaly.export._int8),
#: so their pixel operating point (PRO and F1 at the pixel threshold) legitimately moves; they
#: are judged on the threshold-free metrics and the image decisions, and only for losses.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(reproduce_rel=1e-4, metric=0.005, label_flips=0),
    "fp16": Tolerance(reproduce_rel=0.05, metric=0.01, label_flips=1),
    "int8": Tolerance(
        reproduce_rel=None,
        metric=0.02,
        label_flips=2,
        judged=("image_auroc", "image_aupr", "image_f1", "pixel_auroc", "pixel_aupro", "pixel_aupimo"),
        two_sided=False,
    ),
}


@dataclass
class ArtifactValidation:
    artifact: str
    precision: str
    backend: str = ""
    device: str = ""
    execution: str = ""
    status: str = "error"  # pass | fail | error
    reasons: list[str] = field(default_factory=list)
    reproduction: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    deltas: dict[str, float] = field(default_factory=dict)
    latency_ms_p50: float | None = None
    n_images: int = 0
    error: str | None = None
    # kept for figures, not written to JSON
    _scores: np.ndarray | None = field(default=None, repr=False)
    _labels: np.ndarray | None = field(default=None, repr=False)
    _maps: np.ndarray | None = field(default=None, repr=False)
    _masks: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        return _json_safe(d)


@dataclass
class ValidationReport:
    bundle: str
    data: str
    reference_data: str
    reference_metrics: dict[str, float]
    artifacts: list[ArtifactValidation]

    @property
    def ok(self) -> bool:
        return bool(self.artifacts) and all(a.status == "pass" for a in self.artifacts)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(
            {
                "bundle": self.bundle,
                "data": self.data,
                "reference_data": self.reference_data,
                "reference_metrics": self.reference_metrics,
                "ok": self.ok,
                "tolerances": {k: asdict(v) for k, v in TOLERANCES.items()},
                "artifacts": [a.to_dict() for a in self.artifacts],
            }
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _reproduce(detector: Any, reference: dict[str, np.ndarray], calibration: Any) -> dict[str, Any]:
    from edgeanomaly.metrics._report import relative_diff

    images = list(reference["images"])
    preds = detector.predict_batch(images, color="RGB", batch_size=len(images))
    scores = np.array([p.raw_score for p in preds], np.float32)
    out: dict[str, Any] = {"n_images": len(images)}
    out["max_abs_score_diff"], out["max_rel_score_diff"] = relative_diff(scores, reference["pred_score"])
    if "anomaly_map" in reference and preds and preds[0].raw_anomaly_map is not None:
        maps = np.stack([p.raw_anomaly_map for p in preds])
        out["max_abs_map_diff"], out["max_rel_map_diff"] = relative_diff(maps, reference["anomaly_map"][:, 0])
    out["label_flips"] = int(np.sum(calibration.label_score(scores) != calibration.label_score(reference["pred_score"])))
    return out


def validate_bundle(
    bundle: str | Path,
    data: str | Path,
    category: str | None = None,
    backend: str = "auto",
    device: str = "CPU",
    artifacts: Sequence[str] | None = None,
    tolerance: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    url: str | None = None,
    model_name: str | None = None,
) -> ValidationReport:
    """Run every requested artifact of ``bundle`` on the labelled test split of ``data``.

    Args:
        artifacts: artifact names (default: all in the bundle that ``backend`` can run; with
            ``backend="remote"`` the fp32 one, whose tolerances then apply to the server).
        url, model_name: the server of ``backend="remote"`` (see :func:`edgeanomaly.runtime.load`).
        tolerance: metric tolerance for every precision (default: :data:`TOLERANCES`).

    Returns a :class:`ValidationReport`; ``report.ok`` is False when any artifact failed.
    """
    from edgeanomaly.bundle import read_bundle
    from edgeanomaly.data import PreprocessConfig, load_dataset, sample_labels, sample_masks
    from edgeanomaly.metrics._report import evaluate_outputs
    from edgeanomaly.runtime._detector import load

    ds = load_dataset(data, category=category).check()
    if not ds.is_labelled:
        raise DatasetError(
            f"validate needs a labelled test split (normal and anomalous images) in {ds.root}; "
            f"found {len(ds.test)} test images. Use 'edgeanomaly calibrate' for normal-only folders."
        )
    samples = ds.test
    labels = sample_labels(samples)
    b = read_bundle(bundle)
    try:
        manifest = b.manifest
        pp = PreprocessConfig.from_dict(manifest.preprocessing)
        masks = sample_masks(samples, pp) if manifest.task == "segmentation" else None
        reference = b.reference()
        ref_metrics = dict(manifest.reference.get("metrics", {}))
        remote = {"url": url, "model_name": model_name} if backend == "remote" else {}
        if artifacts:
            names = list(artifacts)
        elif remote:  # the server runs one graph: judge it once, as the artifact it says it runs
            with load(b, backend="remote", **remote) as probe:
                names = [probe.artifact.name]
        else:
            names = [a.name for a in manifest.artifacts if backend == "auto" or a.format in _formats_for(backend)]
        results: list[ArtifactValidation] = []
        for name in names:
            art = next((a for a in manifest.artifacts if a.name == name), None)
            res = ArtifactValidation(artifact=name, precision=art.precision if art else "?")
            results.append(res)
            if art is None:
                res.error = f"no artifact named {name!r} in the bundle (it has {', '.join(a.name for a in manifest.artifacts)})"
                continue
            tol = TOLERANCES[art.precision]
            metric_tol = tolerance if tolerance is not None else tol.metric
            be = backend if backend != "auto" else ("openvino" if art.format == "openvino" else "onnxruntime")
            try:
                with load(b, backend=be, device=device, artifact=name, **remote) as det:
                    res.backend, res.device, res.execution = det.backend, det.device, det.precision
                    if reference is not None:
                        res.reproduction = _reproduce(det, reference, manifest.calibration)
                    scores, maps, lat = [], [], []
                    paths = [s.path for s in samples]
                    for i, p in enumerate(det.predict_many(paths)):
                        scores.append(p.raw_score)
                        if p.raw_anomaly_map is not None:
                            maps.append(p.raw_anomaly_map)
                        lat.append(p.timings.get("total", float("nan")))
                        if progress:
                            progress(name, i + 1, len(paths))
            except EdgeAnomalyError as exc:
                res.error = str(exc)
                continue
            res.n_images = len(scores)
            res.latency_ms_p50 = float(np.median(lat)) if lat else None
            s = np.asarray(scores, np.float32)
            m = np.stack(maps) if maps else None
            res._scores, res._labels, res._maps, res._masks = s, labels, m, masks
            res.metrics = evaluate_outputs(s, labels, m, masks, manifest.calibration)
            for key, ref in ref_metrics.items():
                if key in res.metrics and math.isfinite(ref) and math.isfinite(res.metrics[key]):
                    delta = res.deltas[key] = res.metrics[key] - ref
                    judged = tol.judged is None or key in tol.judged
                    beyond = abs(delta) > metric_tol if tol.two_sided else delta < -metric_tol
                    if judged and beyond:
                        res.reasons.append(f"{key} {res.metrics[key]:.4f} differs from the reference {ref:.4f} by {delta:+.4f} (tolerance {metric_tol:g})")
            rep = res.reproduction
            if rep:
                worst = max(rep.get("max_rel_score_diff", 0.0), rep.get("max_rel_map_diff", 0.0))
                if tol.reproduce_rel is not None and worst > tol.reproduce_rel:
                    res.reasons.append(f"raw outputs differ from the torch reference by {worst:.3g} relative (tolerance {tol.reproduce_rel:g})")
                if rep.get("label_flips", 0) > tol.label_flips:
                    res.reasons.append(f"{rep['label_flips']} of {rep['n_images']} reference images change label (tolerance {tol.label_flips})")
            res.status = "fail" if res.reasons else "pass"
        return ValidationReport(
            bundle=str(bundle),
            data=str(ds.root),
            reference_data=str(manifest.reference.get("data", "")),
            reference_metrics=ref_metrics,
            artifacts=results,
        )
    finally:
        b.close()


def _formats_for(backend: str) -> tuple[str, ...]:
    return {"openvino": ("openvino", "onnx"), "onnxruntime": ("onnx",)}.get(backend, ("openvino", "onnx"))


def _markdown(report: ValidationReport) -> str:
    keys = [k for k in ("image_auroc", "image_aupr", "image_f1", "pixel_auroc", "pixel_aupro", "pixel_aupimo", "pixel_pro", "pixel_f1")
            if any(k in a.metrics for a in report.artifacts)]
    lines = [
        f"# Validation of `{report.bundle}`",
        "",
        f"- data: `{report.data}` (reference metrics from `{report.reference_data}`)",
        f"- result: **{'PASS' if report.ok else 'FAIL'}**",
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
    problems = [(a.artifact, r) for a in report.artifacts for r in (a.reasons + ([a.error] if a.error else []))]
    if problems:
        lines += ["", "## Problems", ""] + [f"- `{n}`: {r}" for n, r in problems]
    return "\n".join(lines) + "\n"


def write_validation_report(report: ValidationReport, out: str | Path, figures: bool = True) -> list[Path]:
    """Write ``validation.json``, ``validation.md`` and (with matplotlib) figures into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "validation.json", out / "validation.md"]
    written[0].write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    written[1].write_text(_markdown(report))
    if figures:
        written += _figures(report, out)
    return written


def _figures(report: ValidationReport, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        return []
    from edgeanomaly.metrics import aupimo, pimo, plot_pimo, plot_pro, plot_roc, pro_curve, roc_curve

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
