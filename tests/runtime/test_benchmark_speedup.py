"""``benchmark``: each artifact's speed-up over the FP32 artifact of its backend and device, timed interleaved."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeanomaly.tooling import benchmark_bundle
from edgeanomaly.reports import benchmark_markdown


def test_speedup_is_relative_to_the_backends_fp32_artifact(seg_bundle: Path) -> None:
    rows = benchmark_bundle(seg_bundle, repeats=3, throughput_images=2, cold_start=False)
    ov = {r.artifact: r for r in rows if r.backend == "openvino" and r.device == "CPU"}
    assert set(ov) >= {"openvino-fp32", "openvino-fp16", "onnx-fp32"}
    assert all(r.status == "ok" for r in ov.values()), [r.reason for r in ov.values()]
    ref = ov["openvino-fp32"]  # the backend's own format at FP32, not the ONNX file it also reads
    assert ref.speedup_reference == f"openvino-fp32 at {ref.execution_precision}" and ref.speedup_vs_fp32 == 1.0
    for r in ov.values():
        # like with like: the FP32 artifact at this row's own execution precision (issue 25)
        assert r.speedup_reference == f"openvino-fp32 at {r.execution_precision}" and r.interleaved_infer_ms > 0
        assert r.speedup_vs_fp32 == pytest.approx(r.reference_infer_ms / r.interleaved_infer_ms)
        if r.execution_precision == ref.execution_precision:
            assert r.reference_infer_ms == ref.interleaved_infer_ms
    table = benchmark_markdown(rows)
    assert "| vs fp32 |" in table and "1.00x (ref)" in table
    fp16_line = next(line for line in table.splitlines() if line.startswith("| openvino-fp16 | openvino | CPU"))
    assert f"{ov['openvino-fp16'].speedup_vs_fp32:.2f}x" in fp16_line


def test_each_execution_reason_names_its_artifact_and_backend(seg_bundle: Path) -> None:
    # the ONNX file runs on both backends, each at its own precision for its own reason: the
    # list said "onnx-fp32: ..." twice, once with each reason, and did not say which was which
    rows = benchmark_bundle(seg_bundle, repeats=2, throughput_images=2, cold_start=False)
    onnx = [r for r in rows if r.artifact == "onnx-fp32" and r.execution_reason]
    assert {r.backend for r in onnx} == {"onnxruntime", "openvino"}
    reasons = benchmark_markdown(rows).split("Execution precision: ", 1)[1]
    for r in onnx:
        assert f"{r.artifact} on {r.backend} {r.device}: {r.execution_reason}" in reasons
