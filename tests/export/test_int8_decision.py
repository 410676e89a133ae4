"""Whether an INT8 artifact ships is decided by the verdict validate uses (edgeanomaly.judging.judge),
and export says why when no quantisation meets it, writing the rest."""

from __future__ import annotations

import numpy as np
import pytest

from edgeanomaly.bundle import read_bundle
from edgeanomaly.judging import FAIL, PASS, TOLERANCES, Tolerance, judge

REFERENCE = {"image_auroc": 0.9, "pixel_auroc": 0.95, "pixel_pro": 0.7, "image_f1": 0.8}


def _int8(metrics: dict[str, float], scores: np.ndarray, ref: np.ndarray, tol: Tolerance | None = None):
    tolerances = TOLERANCES if tol is None else {**TOLERANCES, "int8": tol}
    return judge("int8", 0.5, scores=scores, ref_scores=ref, metrics=metrics, ref_metrics=REFERENCE,
                 n_normal=50, n_anomalous=50, tolerances=tolerances)


def test_int8_within_the_criteria_passes() -> None:
    tol = TOLERANCES["int8"]
    ref = np.linspace(0.0, 1.0, 100)
    metrics = {"image_auroc": 0.9 - tol.metric / 2, "pixel_auroc": 0.99, "pixel_pro": 0.1, "image_f1": 0.8}
    # pixel_pro is not judged for INT8 (its operating point moves with its own calibration);
    # a rise is never a failure (one-sided); a drop within the tolerance passes.
    assert _int8(metrics, ref.copy(), ref).outcome == PASS


def test_a_negative_metric_tolerance_fails_every_candidate() -> None:
    # The criterion test_export_rejects... uses to drive the real rejection path: even an
    # artifact identical to torch differs by more than -1.
    impossible = Tolerance(output_rel=None, metric=-1.0, judged=("image_auroc",), two_sided=True)
    ref = np.linspace(0.0, 1.0, 100)
    v = _int8(dict(REFERENCE), ref.copy(), ref, impossible)
    assert v.outcome == FAIL
    assert [c.name for c in v.checks if c.outcome == FAIL] == ["image_auroc"]


@pytest.mark.slow
def test_export_rejects_an_int8_artifact_that_fails_and_writes_the_rest(tmp_path, synthetic_metal_256) -> None:
    # A criterion no artifact can meet (a negative metric tolerance) drives the real
    # path: post-training, then accuracy-aware quantisation, both rejected; FP32 is written.
    from edgeanomaly.export import export_checkpoint
    from edgeanomaly.models import fit_run

    ckpt = fit_run("dfkde", synthetic_metal_256, None, category="metal", image_size=256, random_state=0).checkpoint
    impossible = Tolerance(output_rel=None, metric=-1.0, judged=("image_auroc",), two_sided=True)
    report = export_checkpoint(ckpt, tmp_path / "b", ["openvino"], ["fp32", "int8"], int8_tolerance=impossible)
    assert [a.name for a in report.artifacts] == ["openvino-fp32"]
    reasons = report.rejected["openvino-int8"]
    assert [r.split(":")[0] for r in reasons] == ["post-training quantisation", "accuracy-aware quantisation"]
    assert all("image_auroc" in r and "(tolerance -1)" in r for r in reasons)
    with read_bundle(report.out) as b:
        assert [a.name for a in b.manifest.artifacts] == ["openvino-fp32"]
        assert not (report.out / "openvino-int8").exists()
