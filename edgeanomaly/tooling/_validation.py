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

Both feed :func:`edgeanomaly.judging.judge`, the verdict export used at export time: scores
paired with the torch model's on the same evaluation images (stored in ``reference.npz`` by
export; else the reference images), maps on the reference images, metrics with the
uncertainty of the number of images. PASS, INCONCLUSIVE (too few images to judge a metric;
not a failure) or FAIL. Tolerances depend on the artifact's precision (:data:`TOLERANCES`);
``tolerance=`` overrides the metric tolerance for all.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeanomaly._optional import check_choice
from edgeanomaly.bundle import read_bundle, resolve_trust
from edgeanomaly.data import PreprocessConfig, file_sha256, load_dataset, sample_labels, sample_masks
from edgeanomaly.errors import DatasetError, EdgeAnomalyError
from edgeanomaly.judging import TOLERANCES, Tolerance, judge, tolerance_for, worst
from edgeanomaly.metrics import evaluate_outputs
from edgeanomaly.registry import format_names, get_backend
from edgeanomaly.runtime import load
from edgeanomaly.tooling._reproduce import reproduce
from edgeanomaly.tooling._resolution import PIXEL_RESOLUTIONS, pixel_metrics_at_original_size

__all__ = ["Tolerance", "TOLERANCES", "ArtifactValidation", "ValidationReport", "validate_bundle"]


@dataclass
class ArtifactValidation:
    artifact: str
    precision: str
    backend: str = ""
    device: str = ""
    execution: str = ""
    #: the execution precision chosen at load, why, and its export-measured drift (Detector.execution)
    execution_choice: dict[str, Any] = field(default_factory=dict)
    status: str = "error"  # pass | inconclusive | fail | error
    reasons: list[str] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)
    reproduction: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    deltas: dict[str, float] = field(default_factory=dict)
    #: pixel metrics with maps resized to each image's own size (reported, not judged)
    metrics_original: dict[str, float] = field(default_factory=dict)
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
    pixel_resolution: str = "model"
    pixel_resolution_note: str = "pixel metrics at the model input resolution (masks resized to the map)"
    #: diagnoses beside the verdict (e.g. the data is another category than the bundle was fitted on)
    notes: list[str] = field(default_factory=list)
    # kept for the HTML report (gallery, histogram threshold), not written to JSON
    _calibration: Any = field(default=None, repr=False)
    _paths: list[Path] = field(default_factory=list, repr=False)
    _preprocessing: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def outcome(self) -> str:
        """PASS, INCONCLUSIVE or FAIL over every artifact (an artifact that could not run fails)."""
        if not self.artifacts:
            return "FAIL"
        return worst(["FAIL" if a.status == "error" else a.status.upper() for a in self.artifacts])

    @property
    def ok(self) -> bool:
        """No artifact failed (INCONCLUSIVE is not a failure: the data could not tell)."""
        return self.outcome != "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(
            {
                "bundle": self.bundle,
                "data": self.data,
                "reference_data": self.reference_data,
                "reference_metrics": self.reference_metrics,
                "ok": self.ok,
                "outcome": self.outcome,
                "pixel_resolution": self.pixel_resolution,
                "pixel_resolution_note": self.pixel_resolution_note,
                "notes": self.notes,
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


def _paired_reference(reference: dict[str, np.ndarray] | None, samples: Sequence[Any]) -> np.ndarray | None:
    """The torch model's raw scores on exactly these images, if the bundle's reference holds
    them all (validate on the data export judged on). Images are matched by the sha256 of
    their file, so another dataset with the same file names is never paired by mistake."""
    if reference is None or "eval_sha256" not in reference:
        return None
    table = dict(zip((str(k) for k in reference["eval_sha256"]), reference["eval_pred_score"].astype(np.float64)))
    if len(table) != len(samples):
        return None
    keys = [file_sha256(s.path) for s in samples]
    if any(k not in table for k in keys):
        return None
    return np.array([table[k] for k in keys])


@dataclass
class _Run:
    """What every artifact of one :func:`validate_bundle` call is run and judged with."""

    bundle: Any
    samples: list[Any]
    labels: np.ndarray
    masks: Any
    reference: dict[str, np.ndarray] | None
    ref_metrics: dict[str, float]
    paired: np.ndarray | None
    backend: str
    device: str
    exact: bool
    remote: dict[str, Any]
    tolerance: float | None
    pixel_resolution: str
    progress: Callable[[str, int, int], None] | None
    original_masks: list[np.ndarray | None] | None = None  # read once, at each image's size
    note: str = "pixel metrics at the model input resolution (masks resized to the map)"


def _artifact_names(b: Any, artifacts: Sequence[str] | None, backend: str, remote: dict[str, Any]) -> list[str]:
    """The artifacts to validate: those asked for; the one a server says it runs; or every
    artifact ``backend`` (every backend under ``auto``) can run."""
    if artifacts:
        return list(artifacts)
    if backend != "auto" and get_backend(backend).connects:
        # a server runs one graph: judge it once, as the artifact it says it runs
        with load(b, backend=backend, **remote) as probe:
            return [probe.artifact.name]
    runs = get_backend(backend).formats if backend != "auto" else format_names()
    return [a.name for a in b.manifest.artifacts if a.format in runs]


def _validate_artifact(ctx: _Run, name: str) -> ArtifactValidation:
    """Run artifact ``name`` on the test split and judge it; an error is recorded, not raised."""
    manifest = ctx.bundle.manifest
    art = next((a for a in manifest.artifacts if a.name == name), None)
    res = ArtifactValidation(artifact=name, precision=art.precision if art else "?")
    if art is None:
        res.error = f"no artifact named {name!r} in the bundle (it has {', '.join(a.name for a in manifest.artifacts)})"
        return res
    rep: list[Any] = []
    try:
        with load(ctx.bundle, backend=ctx.backend, device=ctx.device, artifact=name, exact=ctx.exact, **ctx.remote) as det:
            res.backend, res.device, res.execution = det.backend, det.device, det.precision
            res.execution_choice = det.execution.to_dict()
            if ctx.reference is not None:
                outputs, res.reproduction = reproduce(det, ctx.reference["images"], ctx.reference, manifest.calibration)
                rep = [outputs["pred_score"], outputs["anomaly_map"][:, 0] if "anomaly_map" in outputs else None]
            scores, maps, lat, sizes = [], [], [], []
            paths = [smp.path for smp in ctx.samples]
            for i, p in enumerate(det.predict_many(paths)):
                scores.append(p.raw_score)
                if p.raw_anomaly_map is not None:
                    maps.append(p.raw_anomaly_map)
                    sizes.append(p.image_size)
                lat.append(p.timings.get("total", float("nan")))
                if ctx.progress:
                    ctx.progress(name, i + 1, len(paths))
    except EdgeAnomalyError as exc:
        res.error = str(exc)
        return res
    res.n_images = len(scores)
    res.latency_ms_p50 = float(np.median(lat)) if lat else None
    s = np.asarray(scores, np.float32)
    m = np.stack(maps) if maps else None
    res._scores, res._labels, res._maps, res._masks = s, ctx.labels, m, ctx.masks
    res.metrics = evaluate_outputs(s, ctx.labels, m, ctx.masks, manifest.calibration)
    res.deltas = {k: res.metrics[k] - ref for k, ref in ctx.ref_metrics.items()
                  if k in res.metrics and math.isfinite(ref) and math.isfinite(res.metrics[k])}
    if ctx.pixel_resolution == "original" and m is not None and ctx.masks is not None:
        if ctx.original_masks is None:
            ctx.original_masks = [smp.mask(hw) for smp, hw in zip(ctx.samples, sizes)]
        res.metrics_original, ctx.note = pixel_metrics_at_original_size(
            s, ctx.labels, m, sizes, ctx.original_masks, manifest.preprocessing, manifest.calibration)
    row = tolerance_for(art.precision, res.execution_choice.get("precision"))
    verdict = _judge_on_device(row, manifest.calibration, s, ctx.labels, ctx.paired, rep, ctx.reference,
                               res.metrics, ctx.ref_metrics, ctx.tolerance)
    res.verdict = verdict.to_dict()
    res.reasons = verdict.reasons
    res.status = verdict.outcome.lower()
    return res


def validate_bundle(
    bundle: str | Path,
    data: str | Path,
    category: str | None = None,
    backend: str = "auto",
    device: str = "CPU",
    artifacts: Sequence[str] | None = None,
    tolerance: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    pixel_resolution: str = "original",
    url: str | None = None,
    model_name: str | None = None,
    exact: bool = False,
    trust: Any = None,
) -> ValidationReport:
    """Run every requested artifact of ``bundle`` on the labelled test split of ``data``.

    Args:
        artifacts: artifact names (default: all in the bundle that ``backend`` can run; with
            ``backend="remote"`` the fp32 one, whose tolerances then apply to the server).
        url, model_name: the server of ``backend="remote"`` (see :func:`edgeanomaly.runtime.load`).
        exact: run every artifact at f32 execution. By default each runs at the execution
            precision ``load`` chooses (the fastest that passed at export on a device that
            supports it) and is judged with :func:`tolerance_for` its artifact and execution
            precision; ``execution_choice`` in the report says which and why.
        tolerance: metric tolerance for every precision (default: :data:`TOLERANCES`).
        trust: trusted public keys (see :func:`edgeanomaly.bundle.read_bundle`): the bundle
            must be signed by one of them; default ``$EDGEANOMALY_TRUST`` when set.
        pixel_resolution: ``"original"`` also reports pixel metrics with each map resized to
            its image's own size (as MVTec results are reported; ``metrics_original``);
            ``"model"`` only at model input size. The verdict always compares at model size,
            where the torch reference metrics were computed.

    Returns a :class:`ValidationReport`; ``report.ok`` is False when any artifact failed.
    """
    check_choice("pixel_resolution", pixel_resolution, PIXEL_RESOLUTIONS)
    ds = load_dataset(data, category=category).check()
    if not ds.is_labelled:
        raise DatasetError(
            f"validate needs a labelled test split (normal and anomalous images) in {ds.root}; "
            f"found {len(ds.test)} test images. Use 'edgeanomaly calibrate' for normal-only folders."
        )
    samples = ds.test
    labels = sample_labels(samples)
    b = read_bundle(bundle, trust=resolve_trust(trust))
    try:
        manifest = b.manifest
        pp = PreprocessConfig.from_dict(manifest.preprocessing)
        masks = sample_masks(samples, pp) if manifest.task == "segmentation" else None
        reference = b.reference()
        ref_metrics = dict(manifest.reference.get("metrics", {}))
        paired = _paired_reference(reference, samples)
        remote = {"url": url, "model_name": model_name} if url is not None else {}
        names = _artifact_names(b, artifacts, backend, remote)
        ctx = _Run(b, samples, labels, masks, reference, ref_metrics, paired, backend, device, exact, remote,
                   tolerance, pixel_resolution, progress)
        results = [_validate_artifact(ctx, name) for name in names]
        note = ctx.note
        return ValidationReport(
            bundle=str(bundle),
            data=str(ds.root),
            reference_data=str(manifest.reference.get("data", "")),
            reference_metrics=ref_metrics,
            artifacts=results,
            pixel_resolution=pixel_resolution if any(a.metrics_original for a in results) else "model",
            pixel_resolution_note=note,
            notes=_category_notes(manifest.reference.get("category"), ds),
            _calibration=manifest.calibration,
            _paths=[smp.path for smp in samples],
            _preprocessing=dict(manifest.preprocessing),
        )
    finally:
        b.close()


def _category_notes(fitted: str | None, ds: Any) -> list[str]:
    """A bundle fitted on one category, validated on another, fails for that reason alone."""
    if not fitted or ds.layout != "mvtec" or ds.name.lower() == fitted.lower():
        return []
    return [f"the bundle was fitted on category '{fitted}', this data is category '{ds.name}': a model scores only the "
            f"kind of part it was fitted on, so a FAIL here says nothing about the artifacts. Validate with "
            f"--category {fitted}, or fit a bundle on '{ds.name}'"]


def _judge_on_device(precision: str, calibration: Any, scores: np.ndarray, labels: np.ndarray, paired: np.ndarray | None,
                     rep: list[Any], reference: dict[str, np.ndarray] | None, metrics: dict[str, float],
                     ref_metrics: dict[str, float], tolerance: float | None):
    """The verdict on the same inputs export judged: scores paired with the torch model's on the
    evaluation images when the bundle holds them (else on the reference images), maps on the
    reference images."""
    n1 = int(labels.sum())
    common: dict[str, Any] = {"metrics": metrics, "ref_metrics": ref_metrics, "n_normal": len(labels) - n1,
                              "n_anomalous": n1, "metric_tolerance": tolerance}
    if rep and reference is not None and rep[1] is not None and "anomaly_map" in reference:
        common.update(maps=rep[1], ref_maps=reference["anomaly_map"][:, 0])
    if paired is not None:
        return judge(precision, calibration.image_threshold, scores=scores, ref_scores=paired, labels=labels, **common)
    if rep:
        return judge(precision, calibration.image_threshold, scores=rep[0], ref_scores=reference["pred_score"],  # type: ignore[index]
                     labels=reference.get("labels"), **common)  # type: ignore[union-attr]
    return judge(precision, calibration.image_threshold, scores=np.empty(0), ref_scores=np.empty(0), **common)
