"""Artifact choice by device: with no flags, the best artifact the device can run, and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import part_image, write_rgb
from _bundle_edit import subset
from edgeanomaly.bundle import read_bundle
from edgeanomaly.errors import BundleError
from edgeanomaly.runtime import load, select_artifact



def test_cpu_prefers_fp32_then_fp16(seg_bundle: Path, tmp_path: Path) -> None:
    with load(seg_bundle) as det:
        assert det.artifact.name == "openvino-fp32" and "fp32 > fp16 > int8" in det.selection
    mixed = subset(seg_bundle, tmp_path / "mixed", {"onnx-fp32", "openvino-fp16"})
    with load(mixed) as det:  # an FP32 graph on ONNX Runtime beats an FP16 IR on OpenVINO
        assert (det.backend, det.artifact.name) == ("onnxruntime", "onnx-fp32")
    with load(mixed, precision="fp16") as det:
        assert det.artifact.name == "openvino-fp16" and det.selection == "precision fp16 as asked"


def test_fp16_only_bundle_predicts_with_no_flags(toy_bundles: dict[str, Path], tmp_path: Path) -> None:
    """What the NPU recipe writes (static batch, no FP32) runs on a CPU with no flags."""
    from edgeanomaly.cli import main

    npu_like = subset(toy_bundles["toy-segmentation-static2"], tmp_path / "npu", {"openvino-fp16"})
    image = write_rgb(tmp_path / "part.png", part_image(64, 80, defect=(5, 5, 8, 8)))
    r = CliRunner().invoke(main, ["predict", str(npu_like), str(image)])
    assert r.exit_code == 0, r.output
    assert "openvino-fp16" in r.output and "best precision for CPU" in r.output


def test_npu_takes_static_int8_or_fp16_only(toy_bundles: dict[str, Path], seg_bundle: Path) -> None:
    # select_artifact reads the bundle and the registry only: no NPU needed to test the choice.
    with read_bundle(toy_bundles["toy-segmentation-static2"]) as b:
        assert {a.name for a in b.artifacts} >= {"openvino-fp32", "openvino-fp16"}
        assert select_artifact(b, device="NPU")[1].name == "openvino-fp16"
        assert select_artifact(b, device="CPU")[1].name == "openvino-fp32"
        backend, art = select_artifact(b, device="CUDA")  # only ONNX Runtime knows CUDA
        assert (backend, art.name) == ("onnxruntime", "onnx-fp32")
    with read_bundle(seg_bundle) as b, pytest.raises(BundleError, match="no static-batch int8/fp16 artifact"):
        select_artifact(b, device="NPU")  # dynamic-batch artifacts only
