"""tooling.reproduce: the one "run an artifact, compare with the reference" of export, validate and benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeanomaly.bundle import Calibration, read_bundle
from edgeanomaly.data import PreprocessConfig, preprocess
from edgeanomaly.registry import get_backend
from edgeanomaly.runtime import load
from edgeanomaly.tooling import compare_outputs, reproduce


def test_compare_outputs_hand_computed() -> None:
    cal = Calibration(image_threshold=2.0, image_min=0.0, image_max=4.0, pixel_threshold=None, pixel_min=None,
                      pixel_max=None, method="manual", source={"split": "x", "n_images": 3, "n_normal": 2, "n_anomalous": 1, "data": "x"},
                      created_utc="2026-01-01T00:00:00Z")
    ref = {"pred_score": np.array([1.0, 1.9, 4.0]), "anomaly_map": np.array([[[[0.0, 2.0]]]] * 3)}
    out = {"pred_score": np.array([1.0, 2.1, 3.0]), "anomaly_map": np.array([[[[0.5, 2.0]]]] * 3)}
    got = compare_outputs(out, ref, cal)
    # scores: max |diff| = 1.0 at the third image, / max |ref| 4.0; 1.9 -> 2.1 crosses t = 2.0
    assert got == {"n_images": 3, "max_abs_score_diff": 1.0, "max_rel_score_diff": 0.25,
                   "max_abs_map_diff": 0.5, "max_rel_map_diff": 0.25, "label_flips": 1}
    assert "label_flips" not in compare_outputs(out, ref)


def test_detector_and_bare_backend_give_the_same_outputs(seg_bundle: Path) -> None:
    """Images through a Detector and the preprocessed batch through a backend agree, and match torch."""
    with read_bundle(seg_bundle) as b:
        ref = b.reference()
        pp = PreprocessConfig.from_dict(b.manifest.preprocessing)
        onnx_path = b.path(next(a for a in b.artifacts if a.name == "onnx-fp32"))
        with load(b, artifact="onnx-fp32") as det:
            out_det, diff_det = reproduce(det, ref["images"], ref, det.calibration)
        engine = get_backend("onnxruntime").create(onnx_path, "CPU", artifact_precision="fp32", static_batch=None)
        try:
            batch = np.stack([preprocess(im, pp) for im in ref["images"]])
            out_be, diff_be = reproduce(engine, batch, ref, b.manifest.calibration)
        finally:
            engine.close()
    np.testing.assert_allclose(out_det["pred_score"], out_be["pred_score"], rtol=1e-6)
    np.testing.assert_allclose(out_det["anomaly_map"], out_be["anomaly_map"], rtol=1e-6, atol=1e-7)
    assert out_det["anomaly_map"].shape == ref["anomaly_map"].shape
    for diff in (diff_det, diff_be):
        assert diff["max_rel_score_diff"] < 1e-4 and diff["label_flips"] == 0 and diff["n_images"] == len(ref["images"])
