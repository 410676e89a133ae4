"""Expectations that follow the CPU a test runs on (AVX2 only, AVX512-BF16, AMX): CI runs on
whichever it gets, so a test states what this CPU must do rather than what one CPU did."""

from __future__ import annotations

from pathlib import Path


def expected_execution(bundle: Path | str, artifact: str, backend: str) -> str:
    """The execution precision a default ``load(bundle, backend=backend, artifact=artifact)``
    must run on this machine's CPU, stated from the bundle's export record and what this CPU
    reports, so that a test's expectation follows the CPU it runs on (AVX2 only: f32;
    AVX512-BF16 or AMX: bf16 where export measured it PASS on this CPU kind and release).

    ONNX Runtime's CPU provider runs the graph's own types (f32 for these bundles); OpenVINO runs
    bf16 only where the CPU reports BF16 and the export record says bf16 passed on a CPU of the
    same name with the same OpenVINO release."""
    import openvino as ov

    from edgeanomaly.bundle import read_bundle

    if backend != "openvino":
        return "f32"
    with read_bundle(bundle) as b:
        parity = b.manifest.reference.get("parity", {}).get(artifact, {})
    bf16 = (parity.get("execution_precisions") or {}).get("bf16") or {}
    core = ov.Core()
    here = (str(core.get_property("CPU", "FULL_DEVICE_NAME")), str(ov.get_version()))
    earned = bf16.get("outcome") == "PASS" and (bf16.get("device_name"), bf16.get("openvino")) == here
    return "bf16" if earned and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
