"""One rule for "too few images for this threshold" (issue 20.12): ``fit`` and ``export`` set
thresholds on "5 of 10 images (1 normal, 4 anomalous)" without a word, while ``calibrate``
warned. :func:`threshold_sample_warnings` reads the calibration (its method and the image
counts it records) and is what all three print."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeanomaly.bundle import Calibration
from edgeanomaly.judging import compute_calibration, threshold_sample_warnings
from edgeanomaly.judging._calibration_checks import MIN_IMAGES_PER_CLASS, calibration_warnings


def test_rule_hand_computed() -> None:
    few = compute_calibration(np.array([0.1, 0.9, 0.8, 0.7, 0.95]), labels=np.array([0, 1, 1, 1, 1]))
    (reason,) = threshold_sample_warnings(few)
    assert "1 normal and 4 anomalous" in reason and f"at least {MIN_IMAGES_PER_CLASS} of each" in reason
    enough = compute_calibration(np.r_[np.linspace(0, 0.4, 10), np.linspace(0.6, 1, 10)], labels=np.r_[np.zeros(10), np.ones(10)])
    assert threshold_sample_warnings(enough) == []
    q = compute_calibration(np.linspace(0, 1, 50), quantile=0.99)  # 0.99 needs 100 normal images
    (reason,) = threshold_sample_warnings(q)
    assert "50 normal images are too few for the 0.99 quantile" in reason and "at least 100" in reason
    assert threshold_sample_warnings(compute_calibration(np.linspace(0, 1, 100), quantile=0.99)) == []


def test_calibrate_uses_the_same_rule() -> None:
    cal = compute_calibration(np.array([0.1, 0.9, 0.8, 0.7, 0.95]), labels=np.array([0, 1, 1, 1, 1]))
    shared = threshold_sample_warnings(cal)
    assert set(shared) <= set(calibration_warnings(cal, np.array([0.1, 0.9, 0.8, 0.7, 0.95]), np.array([0, 1, 1, 1, 1])))


@pytest.mark.slow
def test_fit_and_export_warn_on_too_few_images(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from edgeanomaly.cli import main
    from edgeanomaly.data import generate_synthetic_dataset

    # 10 test images, 2 normal and 8 anomalous: the from_test split calibrates on 5 (1 normal, 4 anomalous)
    generate_synthetic_dataset(tmp_path / "d", ["metal"], n_train=8, n_test=2, seed=0, size=64)
    r = CliRunner().invoke(main, ["fit", "--model", "dfm", "--data", str(tmp_path / "d"), "--category", "metal", "--image-size", "64",
                                  "--backbone", "resnet18", "--no-pretrained", "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "too few for a stable F1 threshold" in r.output, r.output
    r = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--format", "onnx",
                                  "--precision", "fp32", "--allow-degraded"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "too few for a stable F1 threshold" in r.output, r.output
