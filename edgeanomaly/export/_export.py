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
from edgeanomaly.bundle import Artifact, Calibration, Manifest, input_spec, output_specs, utc_now, write_bundle
from edgeanomaly.data import Dataset, PreprocessConfig, Sample, load_dataset, preprocess, sample_masks
from edgeanomaly.data._preprocess import resize_and_crop
from edgeanomaly.errors import ConfigError, ExportError, ParityError
from edgeanomaly.export._formats import artifact_name, artifact_path, check_targets
from edgeanomaly.export._graphs import ONNX_OPSET, export_onnx, onnx_to_openvino, quantize_openvino_int8
from edgeanomaly.metrics._report import evaluate_outputs, relative_diff

__all__ = ["ExportReport", "ArtifactReport", "export_checkpoint", "FP32_RTOL", "REFERENCE_SAMPLES"]

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
    #: artifacts left out because they fail the verdict (name -> reasons); see ``allow_degraded``
    refused: dict[str, list[str]] = field(default_factory=dict)


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
        from edgeanomaly.models._pipeline import training_split

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


def _run_artifact(path: Path, fmt: str, precision: str, batch: np.ndarray, static_batch: int | None) -> tuple[dict[str, np.ndarray], str]:
    if fmt == "openvino":
        from edgeanomaly.runtime._backends._openvino import OpenVINOBackend

        backend = OpenVINOBackend(path, "CPU", artifact_precision=precision, static_batch=static_batch)
    else:
        from edgeanomaly.runtime._backends._onnxruntime import ONNXRuntimeBackend

        backend = ONNXRuntimeBackend(path, "CPU", artifact_precision=precision, static_batch=static_batch)
    try:
        outs: dict[str, list[np.ndarray]] = {}
        for start in range(0, batch.shape[0], 8):
            for k, v in backend.run(batch[start : start + 8]).items():
                outs.setdefault(k, []).append(np.asarray(v, np.float32))
        return {k: np.concatenate(v) for k, v in outs.items()}, backend.precision
    finally:
        backend.close()


def _parity(
    outs: dict[str, np.ndarray],
    ref: dict[str, np.ndarray],
    labels: np.ndarray | None,
    masks: np.ndarray | None,
    calibration: Calibration,
    executed: str,
) -> dict[str, Any]:
    from edgeanomaly.metrics import auroc, pixel_auroc

    s_abs, s_rel = relative_diff(outs["pred_score"], ref["pred_score"])
    result: dict[str, Any] = {
        "execution": executed,
        "n_images": int(ref["pred_score"].shape[0]),
        "max_abs_score_diff": s_abs,
        "max_rel_score_diff": s_rel,
        "label_flips": int(np.sum(calibration.label_score(outs["pred_score"]) != calibration.label_score(ref["pred_score"]))),
    }
    if "anomaly_map" in ref:
        m_abs, m_rel = relative_diff(outs["anomaly_map"], ref["anomaly_map"])
        result["max_abs_map_diff"] = m_abs
        result["max_rel_map_diff"] = m_rel
    if labels is not None and len(np.unique(labels)) == 2:
        result["image_auroc"] = float(auroc(outs["pred_score"], labels))
        if masks is not None and "anomaly_map" in outs:
            result["pixel_auroc"] = float(pixel_auroc(outs["anomaly_map"][:, 0], masks))
    return result


def export_checkpoint(
    ckpt: Any,
    out: str | Path,
    formats: Sequence[str] = ("onnx", "openvino"),
    precisions: Sequence[str] = ("fp32",),
    static_batch: int | None = None,
    calibration_data: str | Path | None = None,
    overwrite: bool = False,
    step: Callable[[str, float, int | None], None] | None = None,
    allow_degraded: bool = False,
) -> ExportReport:
    """Export a fitted :class:`~edgeanomaly.models.Checkpoint` to a bundle at ``out``.

    Args:
        formats, precisions: targets (see ``edgeanomaly.export.FORMATS``).
        static_batch: fix the batch dimension (NPU); None = dynamic.
        calibration_data: dataset folder to recompute calibration and run parity on
            (default: the checkpoint's own dataset test split).
        step: callback ``(description, seconds, bytes or None)`` after each step.
        allow_degraded: keep an artifact whose verdict is FAIL (marked ``degraded`` in the
            parity table) instead of leaving it out of the bundle (``report.refused``).

    Each artifact is judged with :func:`edgeanomaly.tooling.judge` on the held-out images,
    exactly as ``validate`` judges it on the same data; the verdict is stored in its parity
    entry, the torch scores of every held-out image in ``reference.npz`` (so ``validate`` can
    pair them).

    Raises:
        ParityError: an FP32 artifact differs from torch by more than ``FP32_RTOL``.
        ExportError: every artifact was refused.
    """
    from edgeanomaly.tooling._calibration_checks import file_sha256
    from edgeanomaly.tooling._verdict import FAIL, judge, sample_key
    from edgeanomaly.runtime._calibration import compute_calibration

    targets = check_targets(list(formats), list(precisions))
    if static_batch is not None and static_batch < 1:
        raise ConfigError(f"Expected a static batch >= 1, got {static_batch}")
    out = Path(out)
    model, pp = ckpt.model, ckpt.preprocessing
    model.check_is_fitted()
    model.eval()
    report = ExportReport(out=out)

    def done(what: str, t0: float, nbytes: int | None = None) -> float:
        secs = time.perf_counter() - t0
        report.seconds[what] = secs
        if step is not None:
            step(what, secs, nbytes)
        return secs

    # 1. held-out images and the torch reference
    t0 = time.perf_counter()
    ds, samples, data_desc = _held_out(ckpt, Path(calibration_data) if calibration_data else None)
    images = [s.image() for s in samples]
    batch = np.stack([preprocess(im, pp) for im in images])
    ref = _torch_outputs(model, batch)
    labels = np.array([s.label for s in samples], np.int64)
    masks = sample_masks(samples, pp) if "anomaly_map" in ref else None

    def calibrate(outputs: dict[str, np.ndarray], split: str) -> Calibration:
        both = len(np.unique(labels)) == 2
        return compute_calibration(
            outputs["pred_score"],
            labels=labels if both else None,
            raw_maps=outputs.get("anomaly_map"),
            masks=list(masks) if (both and masks is not None) else None,
            source={"split": split, "data": data_desc},
        )

    if calibration_data is not None or ckpt.calibration is None:
        cal = calibrate(ref, "calibration data" if calibration_data else "held-out")
    else:
        cal = Calibration.from_dict(ckpt.calibration)
    done(f"torch reference on {len(samples)} held-out images", t0)

    # Reference metrics: the torch model on the same held-out images with this bundle's
    # calibration, so validate compares like with like.
    labelled = len(np.unique(labels)) == 2
    maps_ref = ref["anomaly_map"][:, 0] if "anomaly_map" in ref else None
    ref_metrics = evaluate_outputs(ref["pred_score"], labels, maps_ref, masks, cal) if labelled else {}
    k = min(REFERENCE_SAMPLES, len(samples))
    n_anomalous = int(labels.sum())

    def verdict(outs: dict[str, np.ndarray], prec: str):
        """What validate will say about these outputs on the same images (see validate_bundle)."""
        maps = outs["anomaly_map"][:, 0] if "anomaly_map" in outs else None
        metrics = evaluate_outputs(outs["pred_score"], labels, maps, masks, cal) if labelled else {}
        paired_maps = {} if maps is None or maps_ref is None else {"maps": maps[:k], "ref_maps": maps_ref[:k]}
        return judge(prec, cal.image_threshold, scores=outs["pred_score"], ref_scores=ref["pred_score"], labels=labels,
                     metrics=metrics, ref_metrics=ref_metrics, n_normal=len(labels) - n_anomalous, n_anomalous=n_anomalous,
                     **paired_maps)

    info = model_info(model, pp, static_batch)
    stage = Path(tempfile.mkdtemp(prefix="edgeanomaly-export-"))
    try:
        files: dict[str, Path] = {}
        artifacts: list[Artifact] = []
        parity: dict[str, Any] = {}
        onnx_fp32: Path | None = None

        def ensure_onnx() -> Path:
            nonlocal onnx_fp32
            if onnx_fp32 is None:
                t0 = time.perf_counter()
                p = stage / "model.onnx"
                written = export_onnx(model, p, pp.input_size, info, static_batch)
                done("onnx graph", t0, sum(f.stat().st_size for f in written))
                onnx_fp32 = p
            return onnx_fp32

        for fmt, prec in targets:
            name = artifact_name(fmt, prec)
            rel = artifact_path(fmt, prec)
            t0 = time.perf_counter()
            dest = stage / rel
            if fmt == "onnx":
                src = ensure_onnx()
                written = [src] + ([src.with_name(src.name + ".data")] if src.with_name(src.name + ".data").exists() else [])
            elif prec == "int8":
                written = _int8_artifact(model, ds, pp, info, static_batch, stage, dest, batch, calibrate, cal)
            else:
                written = onnx_to_openvino(ensure_onnx(), dest, info, fp16=prec == "fp16")
            nbytes = sum(f.stat().st_size for f in written)
            secs = done(f"{name} written", t0, nbytes)
            t0 = time.perf_counter()
            outs, executed = _run_artifact(written[0], fmt, prec, batch, static_batch)
            par = _parity(outs, ref, labels, masks, cal, executed)
            par["tolerance_rel"] = FP32_RTOL if prec == "fp32" else None
            worst = max(par["max_rel_score_diff"], par.get("max_rel_map_diff", 0.0))
            par["status"] = "ok" if prec != "fp32" or worst <= FP32_RTOL else "failed"
            done(f"{name} parity", t0)
            if par["status"] == "failed":
                raise ParityError(
                    f"{name} differs from the torch model by {worst:.3g} (relative; tolerance {FP32_RTOL:g}) "
                    f"on {len(samples)} held-out images: score {par['max_abs_score_diff']:.3g} abs, "
                    f"map {par.get('max_abs_map_diff', 0.0):.3g} abs. No bundle was written."
                )
            v = verdict(outs, prec)
            par["verdict"] = v.to_dict()
            if v.outcome == FAIL and not allow_degraded:
                report.refused[name] = v.reasons
                log.warning("%s left out of the bundle: validate would fail it on these images: %s", name, "; ".join(v.reasons))
                continue
            par["status"] = {"PASS": "ok", "INCONCLUSIVE": "inconclusive", "FAIL": "degraded"}[v.outcome]
            parity[name] = par
            for f in written:
                files[f.relative_to(stage).as_posix()] = f
            artifacts.append(Artifact(name=name, format=fmt, precision=prec, path=rel, static_batch=static_batch))
            report.artifacts.append(ArtifactReport(name, fmt, prec, nbytes, secs, par))

        if not artifacts:
            raise ExportError(
                "Every artifact fails the verdict on the held-out images, so no bundle was written: "
                + "; ".join(f"{n}: {' '.join(r)}" for n, r in report.refused.items())
                + ". Pass --allow-degraded to keep them, marked."
            )
        # reference.npz: inputs at model size (uint8) and torch outputs, for device reproduction;
        # the torch scores of every held-out image (by split/defect/name) for validate's pairing
        small = [resize_and_crop(im, pp) for im in images[:k]]
        ref_npz = stage / "reference.npz"
        arrays: dict[str, np.ndarray] = {
            "images": np.stack(small),
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
        np.savez_compressed(ref_npz, **arrays)
        files["reference.npz"] = ref_npz

        h, w = pp.input_size
        manifest = Manifest(
            model_info=info,
            preprocessing=pp.to_dict(),
            input=input_spec(h, w, static_batch),
            outputs=output_specs(model.task, h, w, static_batch),
            calibration=cal,
            artifacts=artifacts,
            reference={"file": None, "metrics": ref_metrics, "parity": parity, "data": data_desc},
        )
        t0 = time.perf_counter()
        write_bundle(out, manifest, files, overwrite=overwrite)
        done("bundle written", t0)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    from edgeanomaly.bundle import read_bundle

    with read_bundle(out, verify=False) as written:  # a directory or a .zip
        report.manifest = written.manifest
    return report


def _train_samples(ds: Dataset | None) -> list[Sample]:
    """The images the model was fitted on (see ``training_split``)."""
    from edgeanomaly.models._pipeline import training_split

    if ds is None or not ds.train:
        raise ExportError("INT8 export needs the normal training images (to calibrate and refit); none were found")
    return training_split(ds)[0]


def _int8_artifact(model: Any, ds: Dataset | None, pp: PreprocessConfig, info: dict[str, str], static_batch: int | None,
                   stage: Path, dest: Path, held_out: np.ndarray, calibrate: Callable[..., Calibration], cal: Calibration) -> list[Path]:
    """Quantise the backbone with NNCF, refit the head on its INT8 features, align the output scale.

    See :mod:`edgeanomaly.export._int8`. The last step calibrates the INT8 graph on the
    held-out images exactly as the FP32 model was, and appends the affine map that puts its
    threshold and range onto the bundle's calibration: one calibration then serves every
    artifact, and INT8 labels are those of its own calibration.
    """
    from edgeanomaly.export._int8 import affine_to, append_output_affine, refit_on_int8_features

    train = _train_samples(ds)
    step = max(1, len(train) // INT8_CALIBRATION_IMAGES)
    calib = [preprocess(s.image(), pp)[None] for s in train[::step][:INT8_CALIBRATION_IMAGES]]
    batches = [np.stack([preprocess(s.image(), pp) for s in train[i : i + 16]]) for i in range(0, len(train), 16)]
    work = stage / "_int8"
    refitted = refit_on_int8_features(model, batches, calib, work, pp.input_size, info)
    onnx_path = work / "model.onnx"
    export_onnx(refitted, onnx_path, pp.input_size, info, static_batch)
    # FP16-compressed first: what stays floating point (memory bank, covariances, PCA) is then
    # stored in FP16 and computed in f32, as in the FP16 artifact; OpenVINO does not compress
    # a graph after quantisation.
    fp16_xml = work / "fp16" / "model.xml"
    onnx_to_openvino(onnx_path, fp16_xml, info, fp16=True)
    quantized = work / "quantized" / "model.xml"
    quantize_openvino_int8(fp16_xml, quantized, calib, info)
    outs, _ = _run_artifact(quantized, "openvino", "int8", held_out, static_batch)
    own = calibrate(outs, "held-out (INT8 artifact)")
    coefficients = {"pred_score": affine_to(own, cal, pixel=False)}
    if "anomaly_map" in outs and cal.pixel_threshold is not None:
        coefficients["anomaly_map"] = affine_to(own, cal, pixel=True)
    return append_output_affine(quantized, dest, coefficients, info)
