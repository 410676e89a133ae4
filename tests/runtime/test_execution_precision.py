"""The execution precision a bundle runs at: the fastest that passed at export and that this
device supports now, f32 otherwise (with the reason); exact=True / --exact forces f32; a bundle
exported before the measurements keeps f32 on a CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import part_image, write_rgb
from _bundle_edit import resign, subset
from edgeanomaly.bundle import read_bundle
from edgeanomaly.errors import BundleError, ConfigError
from edgeanomaly.runtime import choose_execution, device_capabilities, load

CPU = ("bf16", "f32")
GPU = ("f16", "f32")
NO_BF16 = ["FP32", "INT8", "BIN", "EXPORT_IMPORT"]  # what this project's CI CPU reports
AMX = ["WINOGRAD", "FP32", "INT8", "BIN", "BF16", "FP16", "EXPORT_IMPORT"]
# OpenVINO 2026.4.1 on an AMD EPYC with AVX512-BF16 and VNNI, no AMX (recorded 2026-12-04)
AVX512_BF16 = ["BF16", "WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT"]
HERE = {"device": "CPU", "device_name": "Xeon", "openvino": "2026.4.1"}  # the device the record below was measured on


def _entry(outcome: str, **extra: Any) -> dict[str, Any]:
    if outcome == "NOT_MEASURED":
        return {"outcome": outcome, "device": "CPU", "reason": "CPU lacks BF16: capabilities FP32, INT8, BIN, EXPORT_IMPORT", **extra}
    return {"outcome": outcome, "device": "CPU", "device_name": "Xeon", "openvino": "2026.4.1", "max_rel_diff": 3e-3,
            "decision_flips": 0, **extra}


# -- the pure choice --------------------------------------------------------------------------
def test_bf16_that_passed_runs_where_the_cpu_has_bf16() -> None:
    measured = {"f32": _entry("PASS", max_rel_diff=2e-7), "bf16": _entry("PASS")}
    choice = choose_execution(CPU, AMX, measured, here=HERE)
    assert choice.requested == "bf16"
    assert "passed the verdict at export on CPU Xeon, OpenVINO 2026.4.1" in choice.reason and "has BF16" in choice.reason


@pytest.mark.parametrize("caps, want", [(NO_BF16, "f32"), (AVX512_BF16, "bf16"), (AMX, "bf16")],
                         ids=["avx2-only", "avx512-bf16", "amx"])
def test_the_choice_on_each_kind_of_cpu_ci_meets(caps: list[str], want: str) -> None:
    """The three CPU kinds CI has run on, each with the capability list OpenVINO reported there:
    a bf16 PASS measured on this kind of device runs bf16 wherever the CPU reports BF16."""
    measured = {"f32": _entry("PASS", max_rel_diff=2e-7), "bf16": _entry("PASS")}
    choice = choose_execution(CPU, caps, measured, here=HERE)
    assert choice.requested == want, choice.reason
    assert choose_execution(CPU, caps, measured, here=HERE, exact=True).requested == "f32"
    assert choose_execution(CPU, caps, {"f32": _entry("PASS"), "bf16": _entry("FAIL")}, here=HERE).requested == "f32"


def test_bf16_that_passed_does_not_run_where_the_cpu_lacks_it() -> None:
    measured = {"f32": _entry("PASS"), "bf16": _entry("PASS")}
    choice = choose_execution(CPU, NO_BF16, measured)
    assert choice.requested == "f32"
    assert choice.reason == "f32: bf16 passed at export, but this CPU lacks BF16 (capabilities FP32, INT8, BIN, EXPORT_IMPORT)"
    unknown = choose_execution(CPU, None, measured)  # a plugin that does not report capabilities
    assert unknown.requested == "f32" and "does not report its capabilities" in unknown.reason


@pytest.mark.parametrize("outcome", ["FAIL", "INCONCLUSIVE"])
def test_bf16_that_did_not_pass_does_not_run_even_where_supported(outcome: str) -> None:
    choice = choose_execution(CPU, AMX, {"f32": _entry("PASS"), "bf16": _entry(outcome)})
    assert choice.requested == "f32" and choice.reason == f"f32: bf16 {outcome} at export"


def test_not_measured_says_why_and_runs_f32() -> None:
    choice = choose_execution(CPU, AMX, {"f32": _entry("PASS"), "bf16": _entry("NOT_MEASURED")})
    assert choice.requested == "f32"
    assert choice.reason == "f32: bf16 not measured at export (CPU lacks BF16: capabilities FP32, INT8, BIN, EXPORT_IMPORT)"
    missing = choose_execution(CPU, AMX, {"f32": _entry("PASS")})  # no bf16 entry at all
    assert missing.requested == "f32" and missing.reason == "f32: bf16 not measured at export"


@pytest.mark.parametrize(
    "here, what",
    [
        ({"device_name": "AMD EPYC 9654", "openvino": "2026.4.1"}, "AMD EPYC 9654"),  # another CPU kind
        ({"device_name": "Xeon", "openvino": "2026.5.0"}, "OpenVINO 2026.5.0"),  # another OpenVINO release
        (None, "this CPU could not be identified"),
    ],
)
def test_bf16_that_passed_elsewhere_is_not_trusted_here(here: dict[str, str] | None, what: str) -> None:
    """bf16 kernels differ between CPU kinds (AMX, AVX512-BF16) and OpenVINO releases; a PASS
    measured on one says nothing about another (openvinotoolkit/openvino#38256: bf16 MatMul
    output corrupted on AVX512-BF16 CPUs without AMX, 2026.4.0)."""
    measured = {"f32": _entry("PASS"), "bf16": _entry("PASS")}
    choice = choose_execution(CPU, AMX, measured, here=here)
    assert choice.requested == "f32"
    assert "bf16 passed at export on CPU Xeon, OpenVINO 2026.4.1, not on" in choice.reason and what in choice.reason


def test_gpu_order_and_its_capability() -> None:
    measured = {"f32": _entry("PASS"), "bf16": _entry("PASS"), "f16": {**_entry("PASS"), "device": "GPU.0"}}
    assert choose_execution(GPU, ["FP32", "FP16", "INT8"], measured, family="GPU", here=HERE).requested == "f16"
    no_fp16 = choose_execution(GPU, ["FP32"], measured, family="GPU")
    assert no_fp16.requested == "f32" and "this GPU lacks FP16" in no_fp16.reason
    # bf16 passing on a CPU says nothing about a GPU: its order has no bf16.
    assert choose_execution(GPU, AMX, {"f32": _entry("PASS"), "bf16": _entry("PASS")}, family="GPU").requested == "f32"


def test_no_record_keeps_the_backend_default_and_exact_forces_f32() -> None:
    old = choose_execution(CPU, AMX, None)
    assert old.requested is None and "records no execution measurements" in old.reason
    measured = {"f32": _entry("PASS"), "bf16": _entry("PASS")}
    for choice in (choose_execution(CPU, AMX, measured, exact=True), choose_execution(CPU, AMX, measured, requested="f32"),
                   choose_execution(CPU, AMX, None, exact=True), choose_execution(CPU, AMX, measured, exact=True, requested="f32")):
        assert choice.requested == "f32"
    asked = choose_execution(CPU, NO_BF16, {"bf16": _entry("FAIL")}, requested="bf16")  # as asked; the backend refuses if it cannot
    assert asked.requested == "bf16" and asked.reason == "bf16 as asked (FAIL at export)"
    with pytest.raises(ConfigError, match="exact=True forces f32 execution, but inference_precision='bf16'"):
        choose_execution(CPU, AMX, measured, exact=True, requested="bf16")
    assert choose_execution((), AMX, measured).requested is None  # a device family without a choice (NPU, AUTO)


# -- loading real bundles -----------------------------------------------------------------------

def _claim(measured: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        document["reference"]["parity"]["openvino-fp32"] = {"execution": "f32", "execution_precisions": measured}

    return mutate


def _this_device() -> dict[str, str]:
    """Where a claim must have been measured for this machine to trust it: this CPU's name and
    this OpenVINO release (a claim measured on another CPU kind runs f32, tested above)."""
    import openvino as ov

    from edgeanomaly.runtime import device_description

    return {"device_name": device_description("CPU")["device_name"], "openvino": str(ov.get_version())}


@pytest.fixture()
def bf16_claim(seg_bundle: Path, tmp_path: Path) -> Path:
    """The toy bundle whose manifest says bf16 execution of openvino-fp32 PASSED at export, on
    a device of this machine's kind."""
    root = Path(shutil.copytree(seg_bundle, tmp_path / "bundle"))
    here = _this_device()
    resign(root, _claim({"f32": _entry("PASS", max_rel_diff=1e-7, **here), "bf16": _entry("PASS", max_rel_diff=4e-3, **here)}))
    return root


def _has_bf16() -> bool:
    return "BF16" in (device_capabilities("CPU") or [])


def test_a_bundle_without_measurements_runs_f32(seg_bundle: Path) -> None:
    with read_bundle(seg_bundle) as b:
        assert "execution_precisions" not in b.manifest.reference["parity"].get("openvino-fp32", {})
    with load(seg_bundle, backend="openvino") as det:
        assert det.execution.precision == "f32" and det.precision == "fp32 (f32 execution)"
        assert det.execution.requested is None and "records no execution measurements" in det.execution.reason
        assert det.info()["execution"] == {"precision": "f32", "requested": None, "reason": det.execution.reason, "export_drift": None}


def test_bf16_claim_on_this_cpu(bf16_claim: Path) -> None:
    with load(bf16_claim, backend="openvino") as det:
        info = det.info()["execution"]
        if _has_bf16():
            assert det.execution.precision == "bf16" and det.precision == "fp32 (bf16 execution)"
            assert info["export_drift"]["max_rel_diff"] == 4e-3
        else:
            caps = ", ".join(device_capabilities("CPU") or [])
            assert det.execution.precision == "f32" and det.precision == "fp32 (f32 execution)"
            assert info["reason"] == f"f32: bf16 passed at export, but this CPU lacks BF16 (capabilities {caps})"
            assert info["export_drift"]["outcome"] == "PASS" and info["export_drift"]["max_rel_diff"] == 1e-7


def _onnx_only_claim(seg_bundle: Path, tmp_path: Path, device_name: str) -> Path:
    """The toy bundle with only its ONNX file, whose manifest says OpenVINO reading that file
    passed bf16 at export on ``device_name`` with this OpenVINO release (a PaDiM-like bundle:
    its recipe ships onnx-fp32 and no FP32 IR)."""
    root = subset(seg_bundle, tmp_path / f"onnx-{len(device_name)}", {"onnx-fp32"})
    here = {**_this_device(), "device_name": device_name}
    record = {"f32": _entry("PASS", max_rel_diff=1e-7, **here), "bf16": _entry("PASS", max_rel_diff=4e-3, **here)}
    resign(root, lambda d: d["reference"]["parity"].__setitem__("onnx-fp32", {"execution": "f32", "execution_precisions": record}))
    return root


def test_an_onnx_file_that_earned_bf16_runs_on_openvino_where_it_can(seg_bundle: Path, tmp_path: Path) -> None:
    """ONNX Runtime's CPU provider runs an ONNX file's own types, so registry order would keep an
    ONNX-only bundle at f32 even where OpenVINO earned bf16 for that file at export."""
    from edgeanomaly.runtime import device_description

    claim = _onnx_only_claim(seg_bundle, tmp_path, device_description("CPU")["device_name"])
    with load(claim) as det:
        if _has_bf16():
            assert (det.backend, det.execution.precision) == ("openvino", "bf16")
            assert "on openvino rather than onnxruntime: bf16: passed the verdict at export" in det.selection
        else:
            caps = ", ".join(device_capabilities("CPU") or [])
            assert (det.backend, det.execution.precision) == ("onnxruntime", "f32")
            assert det.selection.endswith(f"; not openvino: f32: bf16 passed at export, but this CPU lacks BF16 (capabilities {caps})")
    with load(claim, exact=True) as det:  # f32 forced: the registry's backend, and why not the other
        assert det.backend == "onnxruntime" and det.selection.endswith("; not openvino: f32 forced (exact)")
    with load(claim, backend="onnxruntime") as det:  # a backend asked for by name is kept
        assert det.backend == "onnxruntime" and "openvino" not in det.selection


def test_an_onnx_file_that_earned_bf16_elsewhere_stays_on_the_registry_backend(seg_bundle: Path, tmp_path: Path) -> None:
    claim = _onnx_only_claim(seg_bundle, tmp_path, "Another CPU")
    with load(claim) as det:
        assert (det.backend, det.execution.precision) == ("onnxruntime", "f32")
        assert "not openvino: f32: " in det.selection
        if _has_bf16():
            assert "bf16 passed at export on CPU Another CPU" in det.selection and "measure it on this device kind" in det.selection


@pytest.mark.parametrize("how", [{"exact": True}, {"inference_precision": "f32"}])
def test_exact_forces_f32(bf16_claim: Path, how: dict[str, Any]) -> None:
    with load(bf16_claim, backend="openvino", **how) as det:
        assert det.execution.precision == "f32" and det.precision == "fp32 (f32 execution)"
        assert det.execution.requested == "f32"
        assert det.execution.drift is not None and det.execution.drift["max_rel_diff"] == 1e-7


def test_exact_contradicting_a_requested_precision_is_an_error(bf16_claim: Path) -> None:
    with pytest.raises(ConfigError, match="exact=True forces f32"):
        load(bf16_claim, backend="openvino", exact=True, inference_precision="bf16")


def test_exact_on_onnxruntime_is_f32_and_says_so(bf16_claim: Path) -> None:
    with load(bf16_claim, backend="onnxruntime", exact=True) as det:
        assert det.execution.precision == "f32" and "runs the artifact's own precision" in det.execution.reason


def test_malformed_record_is_a_named_schema_error(seg_bundle: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(seg_bundle, tmp_path / "bundle"))
    resign(root, _claim({"f32": _entry("PASS"), "bf16": {"outcome": "NOT_MEASURED", "device": "CPU"}}))
    with pytest.raises(BundleError, match=r"reference\.parity\.openvino-fp32\.execution_precisions\.bf16.*'reason'"):
        read_bundle(root)
    resign(root, _claim({"f64": _entry("PASS")}))
    with pytest.raises(BundleError, match="execution_precisions key.*'f32', 'bf16', 'f16'"):
        read_bundle(root)


def test_predict_json_reports_the_execution_and_exact(bf16_claim: Path, tmp_path: Path) -> None:

    from edgeanomaly.cli._predict import predict

    image = write_rgb(tmp_path / "part.png", part_image(64, 80))
    for flags in ([], ["--exact"]):
        result = CliRunner().invoke(predict, [str(bf16_claim), str(image), "--json", "--backend", "openvino", *flags])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output.strip().splitlines()[-1])["summary"]
        execution = summary["execution"]
        if flags or not _has_bf16():
            assert execution["precision"] == "f32" and summary["precision"] == "fp32 (f32 execution)"
        assert ("forced (exact)" in execution["reason"]) == bool(flags)
        assert execution["export_drift"]["outcome"] == "PASS"


def test_benchmark_reports_the_execution_and_its_export_drift(bf16_claim: Path) -> None:
    from edgeanomaly.tooling import benchmark_bundle
    from edgeanomaly.reports import benchmark_markdown

    rows = benchmark_bundle(bf16_claim, repeats=3, throughput_images=2, cold_start=False, exact=True)
    row = next(r for r in rows if r.artifact == "openvino-fp32" and r.backend == "openvino")
    assert row.status == "ok" and row.execution == "fp32 (f32 execution)" and row.execution_reason == "f32 forced (exact)"
    assert row.export_outcome == "PASS" and row.export_max_rel_diff == 1e-7
    assert "| PASS 1.0e-07 |" in benchmark_markdown(rows)


@pytest.mark.skipif(not _has_bf16(), reason="this CPU lacks BF16 (OpenVINO OPTIMIZATION_CAPABILITIES has no BF16): "
                                            "bf16 execution cannot be run here")
def test_real_bf16_execution_stays_within_the_reduced_precision_tolerance(seg_bundle: Path) -> None:
    from edgeanomaly.tooling import raw_outputs
    from edgeanomaly.judging import TOLERANCES, map_difference

    with read_bundle(seg_bundle) as b:
        images = b.reference()["images"]
    with load(seg_bundle, backend="openvino", inference_precision="bf16") as fast, load(seg_bundle, backend="openvino", exact=True) as exact:
        assert fast.precision == "fp32 (bf16 execution)" and exact.precision == "fp32 (f32 execution)"
        a, ref = raw_outputs(fast, images), raw_outputs(exact, images)
    worst, p99 = map_difference(a["anomaly_map"], ref["anomaly_map"])
    assert 0 < worst and p99 <= TOLERANCES["bf16"].output_rel  # bf16's own row, judged at the 99th percentile
