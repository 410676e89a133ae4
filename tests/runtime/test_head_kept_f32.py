"""A reduced execution precision runs the backbone (and PatchCore's search); every other head
node keeps f32 (issue 25). Checked on OpenVINO's own runtime model: what the CPU plugin really
runs each node at, on a CPU with BF16; the marking itself on every CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ov = pytest.importorskip("openvino")


def _graph(tmp_path: Path) -> Path:
    """x -> backbone MatMul -> head MatMul, named as exported graphs are named."""
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(64, 256)).astype(np.float32)
    w2 = rng.normal(size=(256, 512)).astype(np.float32)
    x = ops.parameter([8, 64], np.float32, name="images")
    feat = ops.matmul(x, ops.constant(w1), False, False, name="/model/feature_extractor/MatMul")
    head = ops.matmul(feat, ops.constant(w2), False, False, name="/model/head/MatMul")
    path = tmp_path / "m.xml"
    ov.save_model(ov.Model([head], [x]), str(path), compress_to_fp16=False)
    return path


def test_head_nodes_are_marked_precise_and_backbone_nodes_are_not(tmp_path: Path) -> None:
    from edgeanomaly.runtime._backends._openvino import _head_kept_f32, core

    path = _graph(tmp_path)
    model, marked = _head_kept_f32(core(), str(path))
    flags = {op.get_friendly_name(): "DisablePrecisionConversion_0" in op.get_rt_info() for op in model.get_ordered_ops()}
    assert flags["/model/head/MatMul"] and not flags["/model/feature_extractor/MatMul"]
    assert marked == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]  # nothing left behind


def test_bf16_runs_the_backbone_at_bf16_and_the_head_at_f32(tmp_path: Path) -> None:
    from edgeanomaly.runtime import device_capabilities
    from edgeanomaly.runtime._backends._openvino import OpenVINOBackend

    if "BF16" not in (device_capabilities("CPU") or []):
        pytest.skip("this CPU has no BF16 (AVX2-only): bf16 execution cannot be asked for here")
    path = _graph(tmp_path)
    backend = OpenVINOBackend(path, "CPU", inference_precision="bf16")
    try:
        assert backend.execution_precision == "bf16" and backend.head_kept_f32 == 1
        runtime = {}
        for op in backend._compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            runtime[str(info["originalLayersNames"].astype(str))] = str(info["runtimePrecision"].astype(str))
        assert runtime["/model/feature_extractor/MatMul"] == "bf16"
        assert runtime["/model/head/MatMul"] == "f32"
    finally:
        backend.close()


def test_the_stem_finer_than_stride_4_keeps_f32(tmp_path: Path) -> None:
    """The backbone's full-resolution stem carried nearly all of PatchCore's bf16 drift on hazelnut
    (99th-percentile map difference 0.054 -> 0.0076 with it at f32): nodes whose output is finer than
    REDUCED_MIN_STRIDE keep f32, the rest of the backbone runs reduced."""
    import openvino.opset13 as ops

    from edgeanomaly.runtime._backends._openvino import REDUCED_MIN_STRIDE, _head_kept_f32, core

    assert REDUCED_MIN_STRIDE == 4
    rng = np.random.default_rng(0)
    x = ops.parameter([-1, 3, 32, 32], np.float32, name="images")
    w = ops.constant(rng.normal(size=(8, 3, 3, 3)).astype(np.float32))
    stem = ops.convolution(x, w, [2, 2], [1, 1], [1, 1], [1, 1], name="/feature_extractor/_conv_stem/Conv")  # 16x16
    w2 = ops.constant(rng.normal(size=(8, 8, 3, 3)).astype(np.float32))
    deep = ops.convolution(stem, w2, [2, 2], [1, 1], [1, 1], [1, 1], name="/feature_extractor/_blocks.1/Conv")  # 8x8
    path = tmp_path / "m.xml"
    ov.save_model(ov.Model([deep], [x]), str(path), compress_to_fp16=False)
    model, marked = _head_kept_f32(core(), str(path))
    flags = {op.get_friendly_name(): "DisablePrecisionConversion_0" in op.get_rt_info() for op in model.get_ordered_ops()}
    # 16 rows > 32 / 4: stride 2, kept; 8 rows = 32 / 4: stride 4, reduced
    assert flags["/feature_extractor/_conv_stem/Conv"] and not flags["/feature_extractor/_blocks.1/Conv"] and marked == 1


def test_a_graph_without_a_backbone_scope_is_left_as_it_is(tmp_path: Path) -> None:
    import openvino.opset13 as ops

    from edgeanomaly.runtime._backends._openvino import _head_kept_f32, core

    x = ops.parameter([2, 8], np.float32, name="x")
    y = ops.matmul(x, ops.constant(np.ones((8, 4), np.float32)), False, False, name="/MatMul")
    path = tmp_path / "m.xml"
    ov.save_model(ov.Model([y], [x]), str(path), compress_to_fp16=False)
    model, marked = _head_kept_f32(core(), str(path))
    assert marked == 0 and not any("DisablePrecisionConversion_0" in op.get_rt_info() for op in model.get_ordered_ops())
