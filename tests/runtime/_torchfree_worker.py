"""Run the runtime on bundles with torch blocked; print one JSON line per check.

Usage: python _torchfree_worker.py BUNDLE [BUNDLE...]  (run by test_runtime_torch_free.py)

The blocker is installed before anything else is imported, so any import of torch anywhere
in the runtime, its backends, the bundle/data/metrics layers or the CLI fails loudly.
"""

from __future__ import annotations

import sys


class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(f"{name} is blocked: the runtime must not import torch")
        return None


sys.meta_path.insert(0, _BlockTorch())

import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

#: Allowed error vs the torch reference: max |runtime - torch| / max |torch|, as (scores, maps).
#: fp32 scores: 1e-4. fp32 maps: 5e-4, because distance maps go through sqrt near zero,
#: which amplifies float reassociation differences (measured on a PatchCore-like resnet18
#: graph at 256x256: 2.0e-4 OpenVINO CPU f32, 1.1e-4 ONNX Runtime; scores 2e-5).
#: fp16 IR (weights rounded to fp16, ~5e-4 each): measured on the same graph 3.8e-3 for
#: scores and 8.7e-2 for maps (a fp16 memory bank moves small distances a lot), so
#: 1e-2 / 1.5e-1; labels are what matters there and ``validate`` checks them.
TOLERANCE = {"fp32": (1e-4, 5e-4), "fp16": (1e-2, 1.5e-1), "int8": (5e-2, 2.5e-1)}


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(got.astype(np.float64) - ref).max() / scale)


def check_bundle(path: str) -> list[dict]:
    """Each artifact on each backend that runs it, at its default execution precision; where
    that is a reduced one (bf16 earned at export on this CPU kind), once more forced to f32."""
    from edgeanomaly.bundle import read_bundle

    with read_bundle(path) as bundle:
        artifacts = [(a.name, a.format, a.precision) for a in bundle.artifacts]
        ref = bundle.reference()
    images = list(ref["images"])
    records = []
    for name, fmt, precision in artifacts:
        backends = ["openvino", "onnxruntime"] if fmt == "onnx" else ["openvino"]
        for backend in backends:
            for exact in (False, True):
                rec = _check(path, images, ref, name, precision, backend, exact)
                records.append(rec)
                if rec["execution"] == "f32":  # the default already ran f32: the exact run is the same
                    break
    return records


def _check(path: str, images: list, ref: dict, name: str, precision: str, backend: str, exact: bool) -> dict:
    """One artifact on one backend, at its default execution precision or forced f32."""
    from edgeanomaly.runtime import load

    with load(path, backend=backend, artifact=name, exact=exact) as det:
        preds = det.predict_batch(images)
        many = list(det.predict_many(images))
        drift = det.execution.drift or {}
        rec = {
            "bundle": Path(path).name,
            "path": path,
            "artifact": name,
            "backend": backend,
            "exact": exact,
            "execution": det.execution.precision,
            "export_outcome": drift.get("outcome"),
            "precision": det.precision,
            "score_tolerance": TOLERANCE[precision][0],
            "map_tolerance": TOLERANCE[precision][1],
            "score_err": _rel(np.array([p.raw_score for p in preds]), ref["pred_score"]),
            "async_score_err": _rel(np.array([p.raw_score for p in many]), ref["pred_score"]),
            "label_flips": int(np.sum(
                det.calibration.label_score(np.array([p.raw_score for p in preds]))
                != det.calibration.label_score(ref["pred_score"])
            )),
            "n_images": len(images),
        }
        if "anomaly_map" in ref:
            rec["map_err"] = _rel(np.stack([p.raw_anomaly_map for p in preds]), ref["anomaly_map"][:, 0])
            rec["map_shape_ok"] = all(p.anomaly_map.shape == im.shape[:2] for p, im in zip(preds, images))
    return rec


def check_cli(path: str) -> dict:
    import cv2
    from click.testing import CliRunner

    from edgeanomaly.bundle import read_bundle
    from edgeanomaly.cli._predict import predict

    with read_bundle(path) as bundle:
        images = bundle.reference()["images"]
    with tempfile.TemporaryDirectory() as tmp:
        for i, rgb in enumerate(images):
            cv2.imwrite(str(Path(tmp) / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        result = CliRunner().invoke(predict, [path, tmp, "--json"])
    return {"cli": Path(path).name, "exit_code": result.exit_code, "lines": len(result.output.splitlines()), "n_images": len(images)}


def main(paths: list[str]) -> None:
    from edgeanomaly.judging import compute_calibration

    for path in paths:
        for rec in check_bundle(path):
            print(json.dumps(rec))
        print(json.dumps(check_cli(path)))
    compute_calibration([1.0, 2.0, 3.0], [0, 0, 1])  # pulls in edgeanomaly.metrics
    print(json.dumps({"torch_imported": "torch" in sys.modules}))


if __name__ == "__main__":
    main(sys.argv[1:])
