"""Benchmark every artifact of a bundle on every backend and device this machine has.

Per combination: status, size, execution precision, largest difference to the torch
reference (``reference.npz``), image AUROC and pixel AUPRO on a labelled dataset (optional),
batch-1 latency per decoded image (p50/p95: decode + preprocess + infer + postprocess),
asynchronous throughput, the cold start of a fresh process (import, load, first
prediction), and the speed-up over the FP32 artifact on the same backend and device and at the
same execution precision: every artifact of that backend and device (and the FP32 one at each
execution precision the others ran at) is loaded at once and their batch-1 inferences are timed
in turns (interleaved, so all see the same machine load), speed-up = FP32 median / median.
A combination that fails is reported with its reason; the others still run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeanomaly._tempdirs import temp_dir
from edgeanomaly.bundle import read_bundle, resolve_trust
from edgeanomaly.data import PreprocessConfig, load_dataset, sample_labels, sample_masks
from edgeanomaly.errors import EdgeAnomalyError
from edgeanomaly.metrics import aupro, auroc
from edgeanomaly.registry import backends, backends_for, get_backend, server_backend
from edgeanomaly.runtime import load
from edgeanomaly.tooling._reproduce import reproduce

__all__ = ["BenchmarkRow", "benchmark_bundle"]

_COLD_START = """
import sys, time, json
t0 = time.perf_counter()
from edgeanomaly.runtime import load
t1 = time.perf_counter()
det = load(sys.argv[1], backend=sys.argv[2], device=sys.argv[3], artifact=sys.argv[4], exact=sys.argv[6] == "exact")
t2 = time.perf_counter()
det.predict(sys.argv[5])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_predict_s": t3 - t2, "total_s": t3 - t0,
                  "torch_imported": "torch" in sys.modules}))
"""


@dataclass
class BenchmarkRow:
    artifact: str
    format: str
    precision: str
    backend: str
    device: str
    status: str = "ok"
    reason: str = ""
    size_bytes: int = 0
    execution: str = ""
    #: the execution precision this row ran at (``"f32"``, ``"bf16"``, ``"f16"``; None: not reported)
    execution_precision: str | None = None
    #: why this execution precision (Detector.execution.reason), and what export measured for it
    execution_reason: str = ""
    export_outcome: str | None = None
    export_max_rel_diff: float | None = None
    max_rel_diff: float | None = None
    image_auroc: float | None = None
    pixel_aupro: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    infer_ms_p50: float | None = None
    throughput_ips: float | None = None
    cold_start_s: float | None = None
    cold_start: dict[str, Any] = field(default_factory=dict)
    #: FP32 infer median / this artifact's, timed interleaved on the same backend and device,
    #: the FP32 artifact run at this row's execution precision (like with like).
    speedup_vs_fp32: float | None = None
    #: the FP32 artifact and execution precision it is relative to ("openvino-fp32 at bf16"),
    #: this row's interleaved infer median and the reference's (ms).
    speedup_reference: str = ""
    interleaved_infer_ms: float | None = None
    reference_infer_ms: float | None = None


def _available_devices() -> dict[str, list[str]]:
    """{backend: device families present}; a backend that cannot load is simply absent."""
    out: dict[str, list[str]] = {}
    for spec in backends():
        try:
            # GPU.0 and GPU.1 are one row each in a benchmark of families; keep the family.
            out[spec.name] = sorted({d.split(".")[0] for d in spec.available_devices()})
        except (EdgeAnomalyError, ImportError, RuntimeError):
            continue
    return out


def _cold_start(bundle: Path, backend: str, device: str, artifact: str, image: Path, exact: bool = False) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _COLD_START, str(bundle), backend, device, artifact, str(image), "exact" if exact else "default"],
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "cold-start process failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark_bundle(
    bundle: str | Path,
    data: str | Path | None = None,
    category: str | None = None,
    repeats: int = 30,
    throughput_images: int = 64,
    cold_start: bool = True,
    progress: Callable[[str], None] | None = None,
    url: str | None = None,
    model_name: str | None = None,
    exact: bool = False,
    trust: Any = None,
) -> list[BenchmarkRow]:
    """Measure every artifact x backend x device combination; never raises for one that fails.

    Each runs at the execution precision ``load`` chooses by default (the fastest that passed
    at export on a device that supports it; ``exact=True``: f32); the row reports it
    (``execution``, ``execution_reason``) with the drift export measured for it
    (``export_outcome``, ``export_max_rel_diff``) next to the drift measured here.

    With ``url`` (an Open Inference Protocol server, see ``load(backend="remote")``) only that
    server is measured, on the bundle's fp32 artifact, without a cold start.

    ``trust`` (trusted public keys, default ``$EDGEANOMALY_TRUST``): the bundle must be signed
    by one of them (see :func:`edgeanomaly.bundle.read_bundle`).
    """
    bundle = Path(bundle)
    devices = {} if url else _available_devices()
    samples = []
    if data is not None:
        ds = load_dataset(data, category=category).check()
        samples = ds.test if ds.test else ds.train
    rows: list[BenchmarkRow] = []
    with read_bundle(bundle, trust=resolve_trust(trust)) as b, temp_dir("bench") as tmp:
        manifest = b.manifest
        ref = b.reference()
        pp = PreprocessConfig.from_dict(manifest.preprocessing)
        # A real encoded file for the "per decoded image" latency, even without --data.
        if samples:
            image_path = Path(samples[0].path)
        else:
            import cv2

            image_path = Path(tmp) / "reference0.png"
            cv2.imwrite(str(image_path), cv2.cvtColor(ref["images"][0], cv2.COLOR_RGB2BGR))
        labels = sample_labels(samples) if samples else None
        masks = sample_masks(samples, pp) if samples and manifest.task == "segmentation" else None
        remote = {"url": url, "model_name": model_name} if url else {}
        if remote:
            with load(b, backend=server_backend(), **remote) as probe:  # the artifact the server says it runs
                combos = [(probe.artifact, server_backend(), url)]
            cold_start = False
        else:
            combos = [(art, be, dev) for art in manifest.artifacts
                      for be in (spec.name for spec in backends_for(art.format))
                      for dev in devices.get(be, [])]
        for art, be, dev in combos:
            row = BenchmarkRow(art.name, art.format, art.precision, be, dev, size_bytes=art.bytes)
            rows.append(row)
            if progress:
                progress(f"{art.name} on {be}/{dev}")
            try:
                _measure(row, b, load, ref, image_path, samples, labels, masks, auroc, aupro, repeats, throughput_images,
                         {**remote, "exact": exact})
                if cold_start:
                    row.cold_start = _cold_start(bundle, be, dev, art.name, image_path, exact)
                    row.cold_start_s = row.cold_start["total_s"]
            except (EdgeAnomalyError, RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                row.status, row.reason = "failed", f"{type(exc).__name__}: {exc}"
        if not remote:
            if progress:
                progress("speed-up over FP32 (interleaved)")
            _speedups(rows, b, load, image_path, repeats, exact)
    return rows


def _speedups(rows: list[BenchmarkRow], b: Any, load: Any, image_path: Path, repeats: int, exact: bool) -> None:
    """Fill ``speedup_vs_fp32``: per backend and device, every artifact timed in turns with the FP32 one
    run at the same execution precision (an INT8 row at bf16 against FP32 at bf16, not against FP32 at
    f32: what the row says is what it changes), each artifact at the execution precision its own row
    ran at (``exact`` as given to :func:`benchmark_bundle`)."""
    groups: dict[tuple[str, str], list[BenchmarkRow]] = {}
    for r in rows:
        if r.status == "ok":
            groups.setdefault((r.backend, r.device), []).append(r)
    for (backend, device), group in groups.items():
        fp32 = [r for r in group if r.precision == "fp32"]
        if len(group) < 2 or not fp32:
            continue
        formats = get_backend(backend).formats  # the backend's own FP32 format is the reference
        ref = min(fp32, key=lambda r: formats.index(r.format) if r.format in formats else len(formats))
        takes_precision = "inference_precision" in get_backend(backend).options
        # the FP32 reference at each execution precision a row of this group ran at
        extra = sorted({r.execution_precision for r in group} - {ref.execution_precision, None}) if takes_precision else []
        timed: list[tuple[str, Any]] = []  # (label, detector): the group's rows, then the extra references
        try:
            for r in group:
                timed.append((r.artifact, load(b, backend=backend, device=device, artifact=r.artifact, exact=exact)))
            for p in extra:
                try:
                    timed.append((f"ref@{p}", load(b, backend=backend, device=device, artifact=ref.artifact, inference_precision=p)))
                except EdgeAnomalyError:
                    continue  # that row then has no like-for-like reference: no ratio rather than a wrong one
            for _, det in timed:  # warm-up
                for _ in range(3):
                    det.predict(image_path)
            infer: list[list[float]] = [[] for _ in timed]
            for i in range(repeats):
                order = list(range(len(timed)))
                order = order[i % len(order):] + order[: i % len(order)]  # rotate who goes first
                for k in order:
                    infer[k].append(timed[k][1].predict(image_path).timings["infer"])
        except (EdgeAnomalyError, RuntimeError, OSError):
            continue  # each artifact's own row already reports why it fails
        finally:
            for _, det in timed:
                det.close()
        medians = [float(np.median(t)) for t in infer]
        reference = {ref.execution_precision: medians[group.index(ref)]}
        reference.update({label[4:]: ms for (label, _), ms in zip(timed[len(group):], medians[len(group):])})
        for r, ms in zip(group, medians):
            r.interleaved_infer_ms = ms
            base = reference.get(r.execution_precision)
            if base is None:
                continue
            r.reference_infer_ms = base
            r.speedup_vs_fp32 = base / ms
            r.speedup_reference = ref.artifact + (f" at {r.execution_precision}" if r.execution_precision else "")


def _measure(row: BenchmarkRow, b: Any, load: Any, ref: Any, image_path: Path, samples: list, labels: Any,
             masks: Any, auroc: Any, aupro: Any, repeats: int, throughput_images: int, remote: dict[str, Any]) -> None:
    with load(b, backend=row.backend, device=row.device, artifact=row.artifact, **remote) as det:
        row.execution = det.precision
        row.execution_precision = det.execution.precision
        row.execution_reason = det.execution.reason
        drift = det.execution.drift
        if drift is not None:
            row.export_outcome = drift.get("outcome")
            row.export_max_rel_diff = drift.get("max_rel_diff")
        if ref is not None:
            diff = reproduce(det, ref["images"], ref)[1]
            row.max_rel_diff = max(diff["max_rel_score_diff"], diff.get("max_rel_map_diff", 0.0))
        for _ in range(3):  # warm-up: first runs allocate and tune kernels
            det.predict(image_path)
        totals, infers = [], []
        for _ in range(repeats):
            p = det.predict(image_path)
            totals.append(p.timings["total"])
            infers.append(p.timings["infer"])
        row.latency_ms_p50 = float(np.percentile(totals, 50))
        row.latency_ms_p95 = float(np.percentile(totals, 95))
        row.infer_ms_p50 = float(np.percentile(infers, 50))
        paths = [s.path for s in samples] if samples else [image_path]
        stream = [paths[i % len(paths)] for i in range(throughput_images)]
        t0 = time.perf_counter()
        n = sum(1 for _ in det.predict_many(stream))
        row.throughput_ips = n / (time.perf_counter() - t0)
        if samples and labels is not None and len(np.unique(labels)) == 2:
            preds = list(det.predict_many([s.path for s in samples]))
            row.image_auroc = float(auroc(np.array([p.raw_score for p in preds]), labels))
            if masks is not None and masks.any() and preds[0].raw_anomaly_map is not None:
                row.pixel_aupro = float(aupro(np.stack([p.raw_anomaly_map for p in preds]), masks))
