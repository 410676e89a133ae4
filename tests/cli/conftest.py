"""CLI fixtures: one small real bundle (DFM on ResNet-18, random init, 128 px) made through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner


@pytest.fixture(scope="session")
def small_dfm_bundle(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``fit`` + ``export`` (ONNX and OpenVINO FP32) on the synthetic metal category: about 30 s."""
    pytest.importorskip("torch")
    from edgeanomaly.cli import main

    root = tmp_path_factory.mktemp("dfm")
    r = CliRunner().invoke(main, ["fit", "--model", "dfm", "--data", str(synthetic_root), "--category", "metal", "--image-size", "128",
                                  "--backbone", "resnet18", "--no-pretrained", "--out", str(root / "run")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", str(root / "run"), "--out", str(root / "pc.bundle"), "--format", "onnx,openvino",
                                  "--precision", "fp32"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root / "pc.bundle"
