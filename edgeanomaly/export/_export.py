"""Export a fitted checkpoint to a bundle: graphs, parity against torch, manifest, reference.

Steps (each timed and sized in the returned report):
1. held-out images (the labelled test split, else a calibration folder, else the training
   holdout) are preprocessed once and run through the torch model: the reference;
2. each asked (format, precision) is written into a staging folder;
3. each artifact runs on the held-out images with the runtime backend a device would use
   (OpenVINO FP32 pinned to f32 execution) and is compared with the reference: largest
   absolute and relative difference of raw score and map, image/pixel AUROC, label flips.
   An FP32 artifact beyond ``FP32_RTOL`` fails the export before anything is written;
4. the bundle is written atomically with the manifest, ``reference.npz`` and the parity table.

Each artifact OpenVINO runs (its IR, and the ONNX file, which it reads too) is also run on
OpenVINO at every reduced execution precision this machine's devices support (bf16 on a CPU
with BF16, f16 on a GPU) and judged the same way; the parity
entry's ``execution_precisions`` records which passed and their drift, a precision this
machine cannot run as ``NOT_MEASURED`` with the reason (see :mod:`edgeanomaly.export._execution`),
and ``load`` runs the fastest that passed on a device that supports it.

Every artifact is judged by the verdict validate uses (``edgeanomaly.judging.judge``) on the
held-out images; one that FAILs is left out (``report.refused``) unless ``allow_degraded``.
An INT8 candidate is written only when the same verdict does not fail it: plain post-training quantisation first,
then NNCF's accuracy-aware quantisation; when neither passes, the report's ``rejected`` says
why and the other artifacts are written (``allow_degraded`` keeps the failing one, marked).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeanomaly import __version__
from edgeanomaly._tempdirs import make_temp_dir, remove_temp_dir
from edgeanomaly._diskspace import check_free_space, format_size, free_bytes, is_out_of_space, nearly_full
from edgeanomaly.bundle import (
    Artifact,
    Calibration,
    Manifest,
    SigningKey,
    input_spec,
    output_specs,
    read_bundle,
    utc_now,
    write_bundle,
)
from edgeanomaly.data import Dataset, PreprocessConfig, Sample, file_sha256, load_dataset, preprocess, sample_masks
from edgeanomaly.data import resize_and_crop
from edgeanomaly.errors import ConfigError, EdgeAnomalyError, ExportError, OutOfSpaceError, ParityError
from edgeanomaly.export._execution import execution_entry, measure_executions, measuring_backend
from edgeanomaly.export._formats import artifact_name, check_targets
from edgeanomaly.export._graphs import (
    INT8_BACKEND,
    ONNX_OPSET,
    AccuracyControl,
    export_onnx,
    onnx_to_openvino,
    quantize_openvino_int8,
)
from edgeanomaly.judging import FAIL, TOLERANCES, compute_calibration, judge, sample_key
from edgeanomaly.metrics import auroc, evaluate_outputs, pixel_auroc
from edgeanomaly.registry import SOURCE_FORMAT, format_names, get_format
from edgeanomaly.tooling import compare_outputs, run_artifact, run_isolated

__all__ = ["ExportContext", "ExportReport", "ArtifactReport", "export_checkpoint", "write_onnx", "write_openvino", "FP32_RTOL", "REFERENCE_SAMPLES"]

log = logging.getLogger("edgeanomaly.export")

#: FP32 artifacts must reproduce torch within this relative difference (else ParityError).
FP32_RTOL = 1e-4
#: Images stored in reference.npz for on-device reproduction checks.
REFERENCE_SAMPLES = 8
#: Normal training images used to calibrate INT8 quantisation.
INT8_CALIBRATION_IMAGES = 32


@dataclass
class ArtifactReport:
    name: str
    format: str
    precision: str
    bytes: int
    seconds: float
    parity: dict[str, Any]


@dataclass
class ExportReport:
    out: Path
    artifacts: list[ArtifactReport] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    manifest: Manifest | None = None
    #: Artifacts asked for but not written: name -> why (each quantisation tried and its failures).
    rejected: dict[str, list[str]] = field(default_factory=dict)
    #: artifacts left out because they fail the verdict (name -> reasons); see ``allow_degraded``
    refused: dict[str, list[str]] = field(default_factory=dict)


class ArtifactRejected(Exception):
    """A writer declined to write an artifact that fails its criteria (``reasons`` say why)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class ExportContext:
    """What a format's writer (a row of :mod:`edgeanomaly.registry`) gets from the export.

    Attributes:
        held_out: the preprocessed held-out images ``(N, 3, H, W) float32``.
        calibrate: ``(outputs, split description) -> Calibration`` on the held-out images.
        calibration: the bundle's calibration.
        done: ``(step description, start time, bytes)`` records a timed step in the report.
    """

    model: Any
    preprocessing: PreprocessConfig
    info: dict[str, str]
    static_batch: int | None
    stage: Path
    dataset: Dataset | None
    held_out: np.ndarray
    calibrate: Callable[..., Calibration]
    calibration: Calibration
    done: Callable[..., float]
    #: ``outputs -> reasons`` an INT8 candidate fails the criteria (empty: it passes)
    int8_judge: Callable[[dict[str, np.ndarray]], list[str]] | None = None
    labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    allow_degraded: bool = False
    int8_tolerance: Any = None
    #: filled by the INT8 writer: how the artifact was made and what was rejected on the way
    int8: Any = None
    _onnx: list[Path] | None = None

    def onnx_fp32(self) -> list[Path]:
        """The FP32 ONNX graph (written once; other formats convert from it), external data after it."""
        if self._onnx is None:
            t0 = time.perf_counter()
            path = self.stage / get_format(SOURCE_FORMAT).artifact_path("fp32")
            export_onnx(self.model, path, self.preprocessing.input_size, self.info, self.static_batch)
            data = path.with_name(path.name + ".data")
            self._onnx = [path] + ([data] if data.exists() else [])
            self.done("onnx graph", t0, sum(f.stat().st_size for f in self._onnx))
        return self._onnx


def write_onnx(ctx: ExportContext, precision: str, dest: Path) -> list[Path]:
    """Writer of the ``onnx`` format row (FP32 only: the graph every other format starts from)."""
    return ctx.onnx_fp32()


def write_openvino(ctx: ExportContext, precision: str, dest: Path) -> list[Path]:
    """Writer of the ``openvino`` format row: FP32/FP16 IR converted from ONNX, INT8 with NNCF."""
    if precision == "int8":
        ctx.int8 = _int8_artifact(ctx.model, ctx.dataset, ctx.preprocessing, ctx.info, ctx.static_batch, ctx.stage, dest,
                                  ctx.held_out, ctx.calibrate, ctx.calibration, ctx.int8_judge, ctx.labels, ctx.masks,
                                  ctx.allow_degraded, ctx.int8_tolerance)
        if ctx.int8.files is None:
            raise ArtifactRejected(ctx.int8.notes)
        return ctx.int8.files
    return onnx_to_openvino(ctx.onnx_fp32()[0], dest, ctx.info, fp16=precision == "fp16")


def model_info(model: Any, preprocessing: PreprocessConfig, static_batch: int | None) -> dict[str, str]:
    """The flat string key set written to the manifest, ONNX metadata_props and OpenVINO rt_info."""
    import json

    h, w = preprocessing.input_size
    return {
        "model": model.name,
        "task": model.task,
        "backbone": model.backbone,
        "layers": ",".join(model.layers),
        "input_height": str(h),
        "input_width": str(w),
        "edgeanomaly_version": __version__,
        "created_utc": utc_now(),
        "pretrained": "true" if model.pretrained else "false",
        "weights_source": str(model.weights_source),
        "schema_version": "1",
        "preprocessing": json.dumps(preprocessing.to_dict(), sort_keys=True),
        "normalization": "in-graph mean={} std={}".format(
            [round(float(v), 6) for v in model.feature_extractor.mean], [round(float(v), 6) for v in model.feature_extractor.std]
        ),
        "opset": str(ONNX_OPSET),
        "static_batch": "dynamic" if static_batch is None else str(static_batch),
        "model_config": json.dumps(model.get_config()["params"], sort_keys=True),
    }


def _held_out(ckpt: Any, calibration_data: Path | None) -> tuple[Dataset | None, list[Sample], str]:
    """Images for parity: a calibration folder, else the checkpoint's labelled test split."""
    if calibration_data is not None:
        ds = load_dataset(calibration_data).check()
        samples = ds.test or ds.train
        return ds, samples, str(calibration_data)
    data = ckpt.info.get("data")
    if data and Path(data).exists():
        category = ckpt.info.get("category") if ckpt.info.get("layout") == "mvtec" else None
        try:
            ds = load_dataset(data, category=category if category and (Path(data) / category).is_dir() else None).check()
        except Exception as exc:  # the dataset may have changed since fitting; say so
            raise ExportError(f"The dataset the checkpoint was fitted on ({data}) cannot be used for parity: {exc}") from exc
        if ds.test:
            return ds, ds.test, str(data)
        from edgeanomaly.models import training_split  # torch: argument errors are answered before torch loads

        return ds, training_split(ds)[1], f"{data} (train holdout)"
    raise ConfigError(
        "Export needs held-out images for the parity check and calibration: the checkpoint's dataset "
        f"({data!r}) is not available here; pass --calibration-data DIR"
    )


def _torch_outputs(model: Any, batch: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    outs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, batch.shape[0], 16):
            pred = model.predict(torch.from_numpy(batch[start : start + 16]))
            for k, v in pred.items():
                outs.setdefault(k, []).append(v.numpy().astype(np.float32))
    return {k: np.concatenate(v) for k, v in outs.items()}


def _parity(
    outs: dict[str, np.ndarray],
    ref: dict[str, np.ndarray],
    labels: np.ndarray | None,
    masks: np.ndarray | None,
    calibration: Calibration,
    executed: str,
) -> dict[str, Any]:
    result: dict[str, Any] = {"execution": executed, **compare_outputs(outs, ref, calibration)}
    if labels is not None and len(np.unique(labels)) == 2:
        result["image_auroc"] = float(auroc(outs["pred_score"], labels))
        if masks is not None and "anomaly_map" in outs:
            result["pixel_auroc"] = float(pixel_auroc(outs["anomaly_map"][:, 0], masks))
    return result


def _checked_targets(formats: Sequence[str], precisions: Sequence[str], only: Sequence[str] | None,
                     static_batch: int | None) -> list[tuple[str, str]]:
    """The (format, precision) pairs to write, ``only`` the named artifacts when given."""
    targets = check_targets(list(formats), list(precisions))
    if only is not None:
        missing = set(only) - {artifact_name(f, p) for f, p in targets}
        if missing:
            raise ConfigError(f"Unknown artifact(s) {sorted(missing)}; these formats and precisions give {[artifact_name(f, p) for f, p in targets]}")
        targets = [t for t in targets if artifact_name(*t) in only]
    if static_batch is not None and static_batch < 1:
        raise ConfigError(f"Expected a static batch >= 1, got {static_batch}")
    return targets


class _Steps:
    """The export's timed steps: ``begin`` before one that may take seconds, ``step`` after
    each, and the seconds in ``report.seconds``."""

    def __init__(self, report: ExportReport, step: Callable[[str, float, int | None], None] | None,
                 begin: Callable[[str], None] | None) -> None:
        self.report, self.step, self.begin = report, step, begin

    def start(self, what: str) -> float:
        if self.begin is not None:
            self.begin(what)
        return time.perf_counter()

    def done(self, what: str, t0: float, nbytes: int | None = None) -> float:
        secs = time.perf_counter() - t0
        self.report.seconds[what] = secs
        if self.step is not None:
            self.step(what, secs, nbytes)
        return secs


class _Calibrator:
    """``(outputs, split description) -> Calibration`` on the held-out images: adaptive F1 when
    they hold both classes, else the quantile of the normal ones."""

    def __init__(self, labels: np.ndarray, masks: np.ndarray | None, data_desc: str) -> None:
        self.labels, self.masks, self.data_desc = labels, masks, data_desc

    def __call__(self, outputs: dict[str, np.ndarray], split: str) -> Calibration:
        both = len(np.unique(self.labels)) == 2
        return compute_calibration(
            outputs["pred_score"],
            labels=self.labels if both else None,
            raw_maps=outputs.get("anomaly_map"),
            masks=list(self.masks) if (both and self.masks is not None) else None,
            source={"split": split, "data": self.data_desc},
        )


class _Judge:
    """What ``validate`` will say about an artifact's outputs on the same held-out images
    (see ``validate_bundle``): one decision for export and validate."""

    def __init__(self, ref: dict[str, np.ndarray], labels: np.ndarray, masks: np.ndarray | None, cal: Calibration,
                 int8_tolerance: Any) -> None:
        self.ref, self.labels, self.masks, self.cal = ref, labels, masks, cal
        self.labelled = len(np.unique(labels)) == 2
        self.n_anomalous = int(labels.sum())
        self.maps_ref = ref["anomaly_map"][:, 0] if "anomaly_map" in ref else None
        self.ref_metrics = evaluate_outputs(ref["pred_score"], labels, self.maps_ref, masks, cal) if self.labelled else {}
        self.tolerances = TOLERANCES if int8_tolerance is None else {**TOLERANCES, "int8": int8_tolerance}

    def verdict(self, outs: dict[str, np.ndarray], prec: str) -> Any:
        maps = outs["anomaly_map"][:, 0] if "anomaly_map" in outs else None
        metrics = evaluate_outputs(outs["pred_score"], self.labels, maps, self.masks, self.cal) if self.labelled else {}
        # Every held-out image's map: the parity table's and the record's numbers are the verdict's.
        paired_maps = {} if maps is None or self.maps_ref is None else {"maps": maps, "ref_maps": self.maps_ref}
        return judge(prec, self.cal.image_threshold, scores=outs["pred_score"], ref_scores=self.ref["pred_score"],
                     labels=self.labels, metrics=metrics, ref_metrics=self.ref_metrics,
                     n_normal=len(self.labels) - self.n_anomalous, n_anomalous=self.n_anomalous, tolerances=self.tolerances,
                     **paired_maps)

    def int8(self, outputs: dict[str, np.ndarray]) -> list[str]:
        """Why an INT8 candidate fails the verdict (empty: it may be written): one decision with validate."""
        return [c.message for c in self.verdict(outputs, "int8").checks if c.outcome == FAIL]


def _export_artifact(ctx: ExportContext, judge: _Judge, steps: _Steps, report: ExportReport, fmt: str, prec: str,
                     ref: dict[str, np.ndarray], n_images: int) -> tuple[list[Path], Artifact, dict[str, Any]] | None:
    """Write one artifact, check its parity with torch, judge it and measure its execution
    precisions: ``(files written, manifest entry, parity entry)``, or None when it is left
    out (rejected or refused, said in ``report``). An FP32 artifact out of tolerance raises."""
    spec = get_format(fmt)
    name, rel = spec.artifact_name(prec), spec.artifact_path(prec)
    t0 = steps.start(f"{name}: writing" + (" (NNCF quantisation and head refit)" if prec == "int8" else ""))
    try:
        written = spec.load_writer()(ctx, prec, ctx.stage / rel)
    except ArtifactRejected as rejected:
        report.rejected[name] = rejected.reasons
        steps.done(f"{name} not written: no quantisation met the criteria", t0)
        return None
    nbytes = sum(f.stat().st_size for f in written)
    secs = steps.done(f"{name} written", t0, nbytes)
    t0 = steps.start(f"{name}: parity against torch")
    outs, executed = run_artifact(written[0], fmt, prec, ctx.held_out, static_batch=ctx.static_batch)
    par = _parity(outs, ref, judge.labels, judge.masks, judge.cal, executed)
    par["tolerance_rel"] = FP32_RTOL if prec == "fp32" else None
    worst = max(par["max_rel_score_diff"], par.get("max_rel_map_diff", 0.0))
    par["status"] = "ok" if prec != "fp32" or worst <= FP32_RTOL else "failed"
    if prec == "int8":
        par["quantization"] = ctx.int8.method
        if ctx.int8.notes:
            par["rejected_attempts"] = ctx.int8.notes
        if not ctx.int8.passed:
            par["status"] = "degraded"
    steps.done(f"{name} parity", t0)
    if par["status"] == "failed":
        raise ParityError(
            f"{name} differs from the torch model by {worst:.3g} (relative; tolerance {FP32_RTOL:g}) "
            f"on {n_images} held-out images: score {par['max_abs_score_diff']:.3g} abs, "
            f"map {par.get('max_abs_map_diff', 0.0):.3g} abs. No bundle was written."
        )
    v = judge.verdict(outs, prec)
    par["verdict"] = v.to_dict()
    if v.outcome == FAIL and not ctx.allow_degraded:
        report.refused[name] = v.reasons
        log.warning("%s left out of the bundle: validate would fail it on these images: %s", name, "; ".join(v.reasons))
        return None
    par["status"] = {"PASS": "ok", "INCONCLUSIVE": "inconclusive", "FAIL": "degraded"}[v.outcome]
    t0 = steps.start(f"{name}: execution precisions against torch") if measuring_backend(fmt) else 0.0
    executions = measure_executions(
        written[0], fmt, prec, outs,
        # In a child process: a reduced-precision kernel that crashes (issue 13) is a
        # measurement that did not finish, not the end of the export.
        run=lambda path, device, execution, backend: run_isolated(
            path, fmt, prec, ctx.held_out, static_batch=ctx.static_batch, device=device,
            options={"inference_precision": execution}, backend=backend, workdir=ctx.stage),
        assess=lambda o, key, where: execution_entry(judge.verdict(o, key), key, where))
    if executions is not None:
        par["execution_precisions"] = executions
        steps.done(f"{name} execution precisions: " + ", ".join(f"{p} {e['outcome']}" for p, e in executions.items()), t0)
    report.artifacts.append(ArtifactReport(name, fmt, prec, nbytes, secs, par))
    return written, Artifact(name=name, format=fmt, precision=prec, path=rel, static_batch=ctx.static_batch), par


def _write_reference(path: Path, images: list[np.ndarray], samples: list[Any], labels: np.ndarray,
                     ref: dict[str, np.ndarray], pp: PreprocessConfig, ckpt: Any) -> Path:
    """reference.npz: the first held-out inputs at model size (uint8) with the torch outputs,
    for reproduction on the device; the torch scores of every held-out image (by
    split/defect/name and file checksum) for validate's pairing."""
    k = min(REFERENCE_SAMPLES, len(samples))
    arrays: dict[str, np.ndarray] = {
        "images": np.stack([resize_and_crop(im, pp) for im in images[:k]]),
        "pred_score": ref["pred_score"][:k],
        "names": np.array([str(s.path.name) for s in samples[:k]]),
        "labels": labels[:k],
        "eval_keys": np.array([sample_key(s.split, s.defect_type, s.path.name) for s in samples]),
        "eval_sha256": np.array([file_sha256(s.path) for s in samples], dtype="U64"),
        "eval_pred_score": ref["pred_score"],
        "eval_labels": labels,
    }
    if ckpt.info.get("train_sha256"):
        arrays["train_sha256"] = np.array(ckpt.info["train_sha256"], dtype="U64")
    if "anomaly_map" in ref:
        arrays["anomaly_map"] = ref["anomaly_map"][:k]
    np.savez_compressed(path, **arrays)
    return path


def _manifest(info: dict[str, str], pp: PreprocessConfig, task: str, static_batch: int | None, cal: Calibration,
              artifacts: list[Artifact], reference: dict[str, Any]) -> Manifest:
    h, w = pp.input_size
    return Manifest(model_info=info, preprocessing=pp.to_dict(), input=input_spec(h, w, static_batch),
                    outputs=output_specs(task, h, w, static_batch), calibration=cal, artifacts=artifacts, reference=reference)


def _nothing_kept(report: ExportReport) -> ExportError:
    why = {**{n: " / ".join(r) for n, r in report.rejected.items()}, **{n: " ".join(r) for n, r in report.refused.items()}}
    return ExportError(
        "Every artifact fails the verdict on the held-out images, so no bundle was written: "
        + "; ".join(f"{n}: {r}" for n, r in why.items())
        + ". Pass --allow-degraded to keep them, marked."
    )


def _out_of_space(out: Path, stage: Path, space: _Space) -> OutOfSpaceError:
    return OutOfSpaceError(
        f"The disk ran out of space while exporting to {out}: {format_size(free_bytes(out))} free there, "
        f"{format_size(free_bytes(stage))} free in the temporary folder {stage.parent} (the export needs about "
        f"{format_size(space.bundle)} for the bundle and {format_size(space.work)} of temporary files). "
        f"Nothing was written to {out}. Free some space, choose another --out, or set TMPDIR to a larger disk."
    )


def export_checkpoint(
    ckpt: Any,
    out: str | Path,
    formats: Sequence[str] | None = None,
    precisions: Sequence[str] = ("fp32",),
    static_batch: int | None = None,
    calibration_data: str | Path | None = None,
    overwrite: bool = False,
    step: Callable[[str, float, int | None], None] | None = None,
    begin: Callable[[str], None] | None = None,
    only: Sequence[str] | None = None,
    allow_degraded: bool = False,
    int8_tolerance: Any = None,
    sign_key: Any = None,
) -> ExportReport:
    """Export a fitted :class:`~edgeanomaly.models.Checkpoint` to a bundle at ``out``.

    Args:
        formats, precisions: targets (see ``edgeanomaly.export.FORMATS``); formats default to every
            registered format.
        static_batch: fix the batch dimension (NPU); None = dynamic.
        calibration_data: dataset folder to recompute calibration and run parity on
            (default: the checkpoint's own dataset test split).
        step: callback ``(description, seconds, bytes or None)`` after each step.
        allow_degraded: keep an artifact whose verdict is FAIL (marked ``degraded`` in the
            parity table) instead of leaving it out of the bundle (``report.refused``); for
            INT8, write one even when no quantisation meets the criteria (``rejected_attempts``
            in its parity entry say why).
        only: write only these artifacts of the format x precision pairs (``"onnx-fp32"``,
            ``"openvino-int8"``): a recipe's ``artifacts``.
        begin: callback ``(description)`` before each step that may take seconds (INT8
            quantisation takes minutes), for progress displays.
        int8_tolerance: the criteria an INT8 artifact must meet, a
            ``edgeanomaly.tooling.Tolerance`` (default: ``TOLERANCES["int8"]``, validate's).
        sign_key: an ``edgeanomaly.bundle.SigningKey`` or the path of one (``edgeanomaly
            keygen``): the bundle is written with ``signature.json`` (read first, so a bad
            key fails before the export starts).

    Each artifact is judged with :func:`edgeanomaly.judging.judge` on the held-out images,
    exactly as ``validate`` judges it on the same data; the verdict is stored in its parity
    entry, the torch scores of every held-out image in ``reference.npz`` (so ``validate`` can
    pair them).

    Raises:
        ParityError: an FP32 artifact differs from torch by more than ``FP32_RTOL``.
        ExportError: every artifact was refused, or none met its criteria.
    """
    targets = _checked_targets(format_names() if formats is None else formats, precisions, only, static_batch)
    out = Path(out)
    if sign_key is not None and not isinstance(sign_key, SigningKey):
        sign_key = SigningKey.load(sign_key)
    model, pp = ckpt.model, ckpt.preprocessing
    model.check_is_fitted()
    model.eval()
    space = _space_needed(model, pp, targets)
    check_free_space(space.needs(out), "Choose another --out (or set TMPDIR to a folder on a larger disk), or free some space.")
    report = ExportReport(out=out)
    steps = _Steps(report, step, begin)

    # 1. held-out images and the torch reference
    t0 = steps.start("torch reference on held-out images")
    ds, samples, data_desc = _held_out(ckpt, Path(calibration_data) if calibration_data else None)
    images = [s.image() for s in samples]
    batch = np.stack([preprocess(im, pp) for im in images])
    ref = _torch_outputs(model, batch)
    labels = np.array([s.label for s in samples], np.int64)
    masks = sample_masks(samples, pp) if "anomaly_map" in ref else None
    calibrate = _Calibrator(labels, masks, data_desc)
    if calibration_data is not None or ckpt.calibration is None:
        cal = calibrate(ref, "calibration data" if calibration_data else "held-out")
    else:
        cal = Calibration.from_dict(ckpt.calibration)
    steps.done(f"torch reference on {len(samples)} held-out images", t0)
    # Reference metrics: the torch model on the same held-out images with this bundle's
    # calibration, so validate compares like with like.
    judge = _Judge(ref, labels, masks, cal, int8_tolerance)

    info = model_info(model, pp, static_batch)
    stage = make_temp_dir("export")
    try:
        files: dict[str, Path] = {}
        artifacts: list[Artifact] = []
        parity: dict[str, Any] = {}
        ctx = ExportContext(model, pp, info, static_batch, stage, ds, batch, calibrate, cal, steps.done,
                            judge.int8, labels, masks, allow_degraded, int8_tolerance)
        for fmt, prec in targets:
            kept = _export_artifact(ctx, judge, steps, report, fmt, prec, ref, len(samples))
            if kept is None:
                continue
            written, artifact, par = kept
            parity[artifact.name] = par
            for f in written:
                files[f.relative_to(stage).as_posix()] = f
            artifacts.append(artifact)
        if not artifacts:
            raise _nothing_kept(report)
        files["reference.npz"] = _write_reference(stage / "reference.npz", images, samples, labels, ref, pp, ckpt)
        reference = {"file": None, "metrics": judge.ref_metrics, "parity": parity, "data": data_desc,
                     # the category fitted on (MVTec layout): validate names a mismatch
                     **({"category": str(ckpt.info["category"])} if ckpt.info.get("layout") == "mvtec" and ckpt.info.get("category") else {})}
        manifest = _manifest(info, pp, model.task, static_batch, cal, artifacts, reference)
        t0 = steps.start("writing the bundle")
        write_bundle(out, manifest, files, overwrite=overwrite, sign_key=sign_key)
        steps.done("bundle written", t0)
    except (OSError, RuntimeError) as exc:
        # Measured before the temporary files go: the graph writers of torch and OpenVINO do
        # not all say ENOSPC, but a disk with nothing left says it for them.
        if is_out_of_space(exc) or (not isinstance(exc, EdgeAnomalyError) and nearly_full(stage, out)):
            raise _out_of_space(out, stage, space) from exc
        raise
    finally:
        remove_temp_dir(stage)

    with read_bundle(out, verify=False) as written:  # a directory or a .zip
        report.manifest = written.manifest
    return report


@dataclass
class _Space:
    bundle: int  # bytes at the destination
    work: int    # bytes of temporary files (graphs before they are copied into the bundle, INT8 work)

    def needs(self, out: Path) -> list[tuple[Path, int, str]]:
        return [(out, self.bundle, "the bundle"), (Path(tempfile.gettempdir()), self.work, "temporary files")]


#: Size of a graph relative to the model's tensors, per precision: measured 1.10 for an ONNX
#: FP32 DFM (13.9 MB graph, 12.6 MB model.pt); FP16 halves the weights; INT8 keeps an FP16
#: (or FP32) head beside an 8-bit backbone.
_GRAPH_RATIO = {"fp32": 1.15, "fp16": 0.6, "int8": 0.6}


def _space_needed(model: Any, pp: PreprocessConfig, targets: Sequence[tuple[str, str]]) -> _Space:
    """An estimate of the disk space an export takes, from the model's tensors (checked before the work)."""
    tensors = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    h, w = pp.input_size
    reference = REFERENCE_SAMPLES * h * w * (3 + 4)  # images (uint8 RGB) and maps (float32), before compression
    graphs = int(sum(_GRAPH_RATIO[prec] * tensors for _, prec in targets))
    # INT8: an ONNX graph and an FP16 IR of the whole model, then two quantised candidates
    int8 = int(3 * tensors) if any(prec == "int8" for _, prec in targets) else 0
    return _Space(bundle=graphs + reference, work=graphs + reference + int8)


def _train_samples(ds: Dataset | None) -> list[Sample]:
    """The images the model was fitted on (see ``training_split``)."""
    from edgeanomaly.models import training_split  # torch: argument errors are answered before torch loads

    if ds is None or not ds.train:
        raise ExportError("INT8 export needs the normal training images (to calibrate and refit); none were found")
    return training_split(ds)[0]


@dataclass
class _Int8Result:
    files: list[Path] | None  # None: not written
    method: str               # the quantisation that produced ``files``
    notes: list[str]          # why the attempts before it (or, when none passed, every attempt) failed
    passed: bool              # False: kept only because allow_degraded was given


def _int8_artifact(model: Any, ds: Dataset | None, pp: PreprocessConfig, info: dict[str, str], static_batch: int | None,
                   stage: Path, dest: Path, held_out: np.ndarray, calibrate: Callable[..., Calibration], cal: Calibration,
                   judge: Callable[[dict[str, np.ndarray]], list[str]], labels: np.ndarray, masks: np.ndarray | None,
                   allow_degraded: bool, tolerance: Any = None) -> _Int8Result:
    """Quantise the backbone with NNCF, refit the head on its INT8 features, align the output scale.

    See :mod:`edgeanomaly.export._int8`. The head is refitted only for models that declare
    ``int8_head_refit``. Each candidate is calibrated on the held-out images exactly as the
    FP32 model was and gets the affine map that puts its threshold and range onto the
    bundle's calibration: one calibration then serves every artifact, and INT8 labels are
    those of its own calibration. Candidates, in order: post-training quantisation of the
    backbone up to stride ``model.int8_max_stride``; then (with labelled held-out images) NNCF's
    accuracy-aware quantisation of the same scope, which returns the most harmful layers to
    floating point. The first that ``judge`` passes is written.
    """
    from edgeanomaly.export._int8 import affine_to, append_output_affine, refit_on_int8_features  # torch: INT8 only

    train = _train_samples(ds)
    step = max(1, len(train) // INT8_CALIBRATION_IMAGES)
    calib = [preprocess(s.image(), pp)[None] for s in train[::step][:INT8_CALIBRATION_IMAGES]]
    work = stage / "_int8"
    if model.int8_head_refit:
        batches = [np.stack([preprocess(s.image(), pp) for s in train[i : i + 16]]) for i in range(0, len(train), 16)]
        model = refit_on_int8_features(model, batches, calib, work, pp.input_size, info, max_stride=model.int8_max_stride)
    onnx_path = work / "model.onnx"
    export_onnx(model, onnx_path, pp.input_size, info, static_batch)
    # FP16-compressed first: what stays floating point (memory bank, covariances, PCA) is then
    # stored in FP16 and computed in f32, as in the FP16 artifact; OpenVINO does not compress
    # a graph after quantisation. A model whose head is one large matrix product (PatchCore's
    # distances to the memory bank) keeps it FP32: OpenVINO's CPU plugin runs an FP16-stored
    # FullyConnected through a slower kernel than the f32 one (docs/BENCHMARKS.md, issue 15).
    fp16_xml = work / ("fp32" if model.int8_head_fp32 else "fp16") / "model.xml"
    onnx_to_openvino(onnx_path, fp16_xml, info, fp16=not model.int8_head_fp32)

    attempts: list[tuple[str, AccuracyControl | None]] = [("post-training", None)]
    if len(np.unique(labels)) == 2:
        attempts.append(("accuracy-aware", AccuracyControl(
            items=[(held_out[i : i + 1], i) for i in range(len(held_out))],
            metric=lambda compiled, items: _quality(compiled, items, labels, masks),
            max_drop=(tolerance or TOLERANCES["int8"]).metric,
        )))
    notes: list[str] = []
    candidate: list[Path] = []
    for method, control in attempts:
        quantized = work / method / "model.xml"
        quantize_openvino_int8(fp16_xml, quantized, calib, info, accuracy_control=control, max_stride=model.int8_max_stride)
        outs, _ = run_artifact(quantized, INT8_BACKEND, "int8", held_out, static_batch=static_batch)
        own = calibrate(outs, f"held-out (INT8 artifact, {method})")
        coefficients = {"pred_score": affine_to(own, cal, pixel=False)}
        if "anomaly_map" in outs and cal.pixel_threshold is not None:
            coefficients["anomaly_map"] = affine_to(own, cal, pixel=True)
        candidate = append_output_affine(quantized, work / method / "aligned" / "model.xml", coefficients, info)
        reasons = judge(run_artifact(candidate[0], INT8_BACKEND, "int8", held_out, static_batch=static_batch)[0])
        if not reasons:
            return _Int8Result(_move(candidate, dest), method, notes, True)
        notes.append(f"{method} quantisation: " + "; ".join(reasons))
        log.info("INT8 %s quantisation rejected: %s", method, "; ".join(reasons))
    if allow_degraded:
        return _Int8Result(_move(candidate, dest), attempts[-1][0], notes, False)
    return _Int8Result(None, "", notes, False)


def _quality(compiled: Any, items: Sequence[tuple[np.ndarray, int]], labels: np.ndarray, masks: np.ndarray | None) -> float:
    """What accuracy-aware quantisation keeps: image AUROC, averaged with pixel AUROC for
    segmentation models (an affine output map, added later, changes neither)."""
    index = [i for _, i in items]
    outs = [{port.get_any_name(): value for port, value in compiled(x).items()} for x, _ in items]
    value = float(auroc(np.concatenate([o["pred_score"] for o in outs]), labels[index]))
    if masks is not None and "anomaly_map" in outs[0]:
        maps = np.concatenate([o["anomaly_map"][:, 0] for o in outs])
        value = 0.5 * (value + float(pixel_auroc(maps, masks[index])))
    return value


def _move(files: list[Path], dest: Path) -> list[Path]:
    """Move an IR (xml + bin) to ``dest``'s folder under ``dest``'s names."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    moved = []
    for f in files:
        target = dest.with_suffix(f.suffix)
        shutil.move(str(f), str(target))
        moved.append(target)
    return moved
