"""The one decision on whether an INT8 artifact ships (edgeanomaly.export._int8.int8_failures),
and export's behaviour when no quantisation meets it: says why, writes the rest."""

from __future__ import annotations

import math

import pytest

from edgeanomaly.bundle import read_bundle
from edgeanomaly.export._int8 import int8_failures
from edgeanomaly.tooling import TOLERANCES, Tolerance

REFERENCE = {"image_auroc": 0.9, "pixel_auroc": 0.95, "pixel_pro": 0.7, "image_f1": 0.8}


def test_within_validates_int8_criteria_ships() -> None:
    tol = TOLERANCES["int8"]
    metrics = {"image_auroc": 0.9 - tol.metric / 2, "pixel_auroc": 0.99, "pixel_pro": 0.1, "image_f1": 0.8}
    # pixel_pro is not judged for INT8 (its operating point moves with its own calibration);
    # a rise is never a failure (one-sided); a drop within the tolerance passes.
    assert int8_failures(metrics, REFERENCE, label_flips=tol.label_flips, n_images=10) == []


def test_each_failure_is_named_with_its_figures() -> None:
    tol = TOLERANCES["int8"]
    metrics = {"image_auroc": 0.8125, "pixel_auroc": 0.95, "pixel_pro": 0.7, "image_f1": math.nan}
    reasons = int8_failures(metrics, REFERENCE, label_flips=tol.label_flips + 1, n_images=10)
    assert reasons == [
        f"image_auroc 0.8125 differs from the reference 0.9000 by -0.0875 (tolerance {tol.metric:g})",
        f"{tol.label_flips + 1} of 10 held-out images change label (tolerance {tol.label_flips})",
    ]


def test_tolerance_can_be_given() -> None:
    strict = Tolerance(reproduce_rel=None, metric=0.0, label_flips=0, judged=None, two_sided=True)
    metrics = {**REFERENCE, "pixel_pro": 0.71}
    assert int8_failures(metrics, REFERENCE, 0, 10, strict) == [
        "pixel_pro 0.7100 differs from the reference 0.7000 by +0.0100 (tolerance 0)"
    ]


@pytest.mark.slow
def test_export_rejects_an_int8_artifact_that_fails_and_writes_the_rest(tmp_path, synthetic_metal_256) -> None:
    # A criterion no artifact can meet (a negative number of label flips) drives the real
    # path: post-training, then accuracy-aware quantisation, both rejected; FP32 is written.
    from edgeanomaly.export import export_checkpoint
    from edgeanomaly.models._pipeline import fit_run

    ckpt = fit_run("dfkde", synthetic_metal_256, None, category="metal", image_size=256, random_state=0).checkpoint
    impossible = Tolerance(reproduce_rel=None, metric=0.02, label_flips=-1, judged=(), two_sided=False)
    report = export_checkpoint(ckpt, tmp_path / "b", ["openvino"], ["fp32", "int8"], int8_tolerance=impossible)
    assert [a.name for a in report.artifacts] == ["openvino-fp32"]
    reasons = report.rejected["openvino-int8"]
    assert [r.split(":")[0] for r in reasons] == ["post-training quantisation", "accuracy-aware quantisation"]
    assert all("held-out images change label (tolerance -1)" in r for r in reasons)
    with read_bundle(report.out) as b:
        assert [a.name for a in b.manifest.artifacts] == ["openvino-fp32"]
        assert not (report.out / "openvino-int8").exists()
