"""Export measures each artifact OpenVINO runs (IR and ONNX) at every execution precision this machine can run, with
the verdict validate uses, and records it in the manifest; what it cannot run is NOT_MEASURED
with the reason. The f32 entry keeps the FP32 exactness claim (1e-4 relative) visible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _bundle_edit import resign
from edgeanomaly.export import FP32_RTOL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DFM (the cheapest model) on a small synthetic set at 128 px: ONNX + OpenVINO FP32/FP16."""
    from edgeanomaly.data import generate_synthetic_dataset
    from edgeanomaly.export import export_checkpoint
    from edgeanomaly.models import fit_run

    root = tmp_path_factory.mktemp("execution")
    generate_synthetic_dataset(root / "data", ["metal"], n_train=8, n_test=4, seed=0, size=128)
    result = fit_run("dfm", root / "data", root / "dfm.run", category="metal", image_size=128,
                     backbone="efficientnet_lite0", pretrained=True, random_state=0)
    export_checkpoint(result.checkpoint, root / "dfm.bundle", ["onnx", "openvino"], ["fp32", "fp16"])
    return root / "dfm.bundle"


def _records(bundle: Path) -> dict:
    parity = json.loads((bundle / "manifest.json").read_text())["reference"]["parity"]
    return {name: entry.get("execution_precisions") for name, entry in parity.items()}


def test_f32_drift_and_the_reduced_precisions_as_this_machine_allows(small_bundle: Path) -> None:
    import openvino as ov

    from edgeanomaly.bundle import describe_bundle, read_bundle
    from edgeanomaly.runtime import device_capabilities, list_devices

    records = _records(small_bundle)
    caps = device_capabilities("CPU")
    assert caps is not None
    gpus = [d for d in list_devices("openvino") if d.startswith("GPU")]
    # The ONNX file too: ONNX Runtime runs its own types, but OpenVINO reads it and can earn a
    # faster precision for it (its f32 entry is OpenVINO's own run, not ONNX Runtime's parity run).
    for name in ("onnx-fp32", "openvino-fp32", "openvino-fp16"):
        record = records[name]
        assert set(record) == {"f32", "bf16", "f16"}
        f32 = record["f32"]
        assert f32["device"] == "CPU" and f32["openvino"] == ov.get_version()
        assert f32["decision_flips"] == 0 and set(f32["metric_deltas"]) >= {"image_auroc", "pixel_auroc"}
        if name in ("onnx-fp32", "openvino-fp32"):
            # the f32 exactness claim, measured on every held-out image
            assert f32["outcome"] == "PASS" and f32["tolerance"] == "fp32"
            assert 0 <= f32["max_rel_diff"] <= FP32_RTOL
            assert all(abs(d) <= 0.005 for d in f32["metric_deltas"].values())
        else:
            assert f32["tolerance"] == "fp16" and f32["max_rel_diff"] <= 0.05
        bf16 = record["bf16"]
        if "BF16" in caps:  # a machine with AMX / AVX512-BF16: really measured
            assert bf16["outcome"] in ("PASS", "INCONCLUSIVE", "FAIL") and bf16["tolerance"] == "bf16"
            assert bf16["max_rel_diff"] >= 0 and "decision_flips" in bf16
        else:
            assert bf16 == {"outcome": "NOT_MEASURED", "device": "CPU", "device_name": f32["device_name"],
                            "openvino": f32["openvino"], "reason": f"CPU lacks BF16: capabilities {', '.join(caps)}"}
        with read_bundle(small_bundle) as b:  # what `edgeanomaly info` prints
            assert f"execution precisions {name} (OpenVINO, measured at export): f32 {f32['outcome']} (max rel diff" in describe_bundle(b)
        if not gpus:
            assert record["f16"]["outcome"] == "NOT_MEASURED"
            assert record["f16"]["reason"].startswith("no GPU device (openvino devices here: ")
        else:
            assert record["f16"]["device"].startswith("GPU")


def test_load_runs_what_passed_and_reports_its_export_drift(small_bundle: Path) -> None:
    from edgeanomaly.runtime import device_capabilities, load

    caps = device_capabilities("CPU") or []
    with load(small_bundle, backend="openvino", artifact="openvino-fp32") as det:
        record = _records(small_bundle)["openvino-fp32"]
        if "BF16" in caps and record["bf16"]["outcome"] == "PASS":
            assert det.execution.precision == "bf16"
        else:
            assert det.execution.precision == "f32" and det.precision == "fp32 (f32 execution)"
            assert det.execution.reason.startswith("f32: bf16 ")
        drift = det.info()["execution"]["export_drift"]
        assert drift == {k: v for k, v in record[det.execution.precision].items() if k in drift}
        if det.execution.precision == "f32":
            assert drift["max_rel_diff"] <= FP32_RTOL


def test_openvino_reading_the_onnx_file_reports_its_own_export_drift(small_bundle: Path, tmp_path: Path) -> None:
    import shutil

    from edgeanomaly.runtime import device_capabilities, load

    record = _records(small_bundle)["onnx-fp32"]
    with load(small_bundle, backend="openvino", artifact="onnx-fp32") as det:  # ONNX read by OpenVINO
        if "BF16" not in (device_capabilities("CPU") or []) or record["bf16"]["outcome"] != "PASS":
            assert det.execution.precision == "f32" and det.execution.reason.startswith("f32: bf16 ")
        drift = det.info()["execution"]["export_drift"]
        assert drift == {k: v for k, v in record[det.execution.precision].items() if k in drift}
    # A bundle exported before ONNX files were measured says so.
    old = Path(shutil.copytree(small_bundle, tmp_path / "old.bundle"))
    resign(old, lambda d: d["reference"]["parity"]["onnx-fp32"].pop("execution_precisions"))
    with load(old, backend="openvino", artifact="onnx-fp32") as det:
        assert det.execution.precision == "f32" and det.execution.drift is None
        assert det.execution.reason.startswith("export did not measure the execution precisions of onnx-fp32")


def test_onnx_runtime_reports_the_artifacts_own_parity_as_its_export_drift(small_bundle: Path, tmp_path: Path) -> None:
    # ONNX Runtime makes no execution choice: it runs the graph as export's parity run did, on
    # the same provider; validate said "export drift: not recorded in the bundle" beside it
    import shutil

    from edgeanomaly.runtime import load

    parity = json.loads((small_bundle / "manifest.json").read_text())["reference"]["parity"]["onnx-fp32"]
    with load(small_bundle, backend="onnxruntime", artifact="onnx-fp32") as det:
        drift = det.info()["execution"]["export_drift"]
        assert det.precision == parity["execution"] == "fp32 (f32 execution, CPUExecutionProvider)"
        assert drift["outcome"] == parity["verdict"]["outcome"] == "PASS"
        assert drift["max_rel_diff"] == max(parity["max_rel_score_diff"], parity["max_rel_map_diff"]) <= FP32_RTOL
        assert drift["decision_flips"] == parity["label_flips"] == 0
        assert drift["reason"] == "the parity run at export, which ran it as here (fp32 (f32 execution, CPUExecutionProvider))"
    # measured another way than it runs here (another provider, say): not claimed
    other = Path(shutil.copytree(small_bundle, tmp_path / "other.bundle"))
    resign(other, lambda d: d["reference"]["parity"]["onnx-fp32"].update(execution="fp32 (f32 execution, CUDAExecutionProvider)"))
    with load(other, backend="onnxruntime", artifact="onnx-fp32") as det:
        assert det.info()["execution"]["export_drift"] is None


def test_validate_judges_and_reports_the_execution_it_ran(small_bundle: Path) -> None:
    from edgeanomaly.tooling import validate_bundle
    from edgeanomaly.reports import validation_markdown

    data = small_bundle.parent / "data"
    report = validate_bundle(small_bundle, data, category="metal", artifacts=["openvino-fp32"], exact=True, pixel_resolution="model")
    art = report.artifacts[0]
    assert art.status == "pass" and art.execution == "fp32 (f32 execution)"
    assert art.execution_choice["precision"] == "f32" and art.execution_choice["reason"] == "f32 forced (exact)"
    assert art.execution_choice["export_drift"]["outcome"] == "PASS"
    text = validation_markdown(report)
    assert "- `openvino-fp32`: f32 (f32 forced (exact)); export drift: PASS, max rel diff" in text
    assert np.isfinite(art.reproduction["max_rel_score_diff"])
