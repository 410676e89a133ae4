"""The front door (``import edgeanomaly as ea``): each step returns the object with the next
step on it, gives the numbers of the public API it wraps, and the device half runs with torch
blocked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import edgeanomaly as ea
from edgeanomaly.errors import BundleError, ConfigError
from test_import_isolation import run_blocked

HEAVY = ("torch", "openvino", "onnxruntime", "onnx", "nncf")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeanomaly.data import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("frontdoor-data")
    generate_synthetic_dataset(root, ["metal"], n_train=8, n_test=2, seed=0, size=128)
    return root


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, data: Path) -> tuple[ea.Run, ea.Bundle]:
    """A small real run and bundle made through the front door (ONNX + OpenVINO FP32)."""
    pytest.importorskip("torch", reason="fitting needs the [train] extra")
    root = tmp_path_factory.mktemp("frontdoor")
    run = ea.fit("patchcore", data, category="metal", out=root / "pc.run", image_size=128, random_state=0)
    return run, run.export(root / "pc.bundle")


def test_import_and_names_load_no_heavy_package() -> None:
    proc = run_blocked(
        """
        import edgeanomaly as ea
        names = [ea.fit, ea.load, ea.validate, ea.benchmark, ea.calibrate, ea.Run, ea.Bundle, ea.Detector]
        assert set(ea.__all__) >= {"fit", "load", "validate", "benchmark", "calibrate", "Run", "Bundle", "Detector"}
        assert {"fit", "load", "Bundle"} <= set(dir(ea))
        heavy = {m.split(".")[0] for m in sys.modules} & set(%r)
        assert not heavy, heavy
        try:
            ea.fit("patchcore", ".")
        except ImportError as exc:  # MissingDependencyError: the extra to install, not a traceback from torch
            assert "edgeanomaly[train]" in str(exc), exc
        else:
            raise AssertionError("fit ran without torch")
        """ % (HEAVY,),
        blocked=HEAVY,
    )
    assert proc.returncode == 0, proc.stderr


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'predictt'"):
        ea.predictt  # noqa: B018


@pytest.mark.slow
def test_fit_returns_a_run_that_exports_a_bundle(fitted, tmp_path: Path) -> None:
    run, bundle = fitted
    assert isinstance(run, ea.Run) and isinstance(bundle, ea.Bundle)
    assert run.model.name == "patchcore" and run.metrics["image_auroc"] > 0.5
    assert (run.out / "checkpoint.json").is_file()
    assert [a.name for a in bundle.export_report.artifacts] == ["onnx-fp32", "openvino-fp32"]
    assert bundle.verify() == [] and "patchcore" in bundle.describe()
    assert Path(bundle) == bundle.export_report.out  # path-like
    reopened = ea.Run.open(run.out)
    np.testing.assert_array_equal(reopened.model.memory_bank_.numpy(), run.model.memory_bank_.numpy())


@pytest.mark.slow
def test_fit_and_export_refuse_to_replace_unasked(fitted, data: Path, tmp_path: Path) -> None:
    run, bundle = fitted
    with pytest.raises(ConfigError, match="already exists; pass overwrite=True"):
        ea.fit("patchcore", data, category="metal", out=run.out)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a run directory"):
        ea.fit("patchcore", data, category="metal", out=tmp_path / "notes")
    with pytest.raises(BundleError, match="already exists; pass overwrite=True"):
        run.export(bundle.path)
    with pytest.raises(TypeError, match="Expected a Run, a Checkpoint or a run directory, got int"):
        ea.frontdoor.export(3, tmp_path / "x.bundle")


@pytest.mark.slow
def test_device_path_runs_with_torch_blocked_and_matches_the_public_apis(fitted, data: Path, tmp_path: Path) -> None:
    """load -> predict -> validate, calibrate, describe through ``ea`` with torch blocked; the
    numbers equal those of runtime.load and tooling.validate_bundle, called directly."""
    from edgeanomaly.runtime import load
    from edgeanomaly.tooling import validate_bundle

    _, bundle = fitted
    image = data / "metal" / "test" / "scratch" / "000.png"
    manifest_before = (bundle.path / "manifest.json").read_bytes()
    proc = run_blocked(
        f"""
        import json
        import edgeanomaly as ea
        bundle = ea.Bundle({str(bundle.path)!r})
        with bundle.load(device="CPU", exact=True) as detector:
            p = detector.predict({str(image)!r})
            report = detector.validate({str(data)!r}, category="metal")
            name, backend = detector.artifact.name, detector.backend
        other = ea.validate(bundle, {str(data)!r}, category="metal", exact=True)
        cal = bundle.calibrate({str(data / "metal")!r}, write=False)
        assert "torch" not in sys.modules
        print(json.dumps({{"score": p.score, "map_sum": float(p.anomaly_map.sum()), "name": name, "backend": backend,
                          "validated": [a.artifact for a in report.artifacts], "metrics": report.artifacts[0].metrics,
                          "all": sorted(a.artifact for a in other.artifacts), "threshold": cal.image_threshold,
                          "describe": bundle.describe(), "problems": bundle.verify()}}))
        """
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    with load(bundle.path, device="CPU", exact=True) as detector:
        expected = detector.predict(data / "metal" / "test" / "scratch" / "000.png")
        assert (got["name"], got["backend"]) == (detector.artifact.name, detector.backend)
    assert got["score"] == pytest.approx(expected.score, rel=1e-6)
    assert got["map_sum"] == pytest.approx(float(expected.anomaly_map.sum()), rel=1e-5)
    assert got["validated"] == [got["name"]]  # the detector validates what it runs
    direct = validate_bundle(bundle.path, data, category="metal", backend=got["backend"], artifacts=[got["name"]], exact=True)
    for key, value in direct.artifacts[0].metrics.items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
    assert got["all"] == ["onnx-fp32", "openvino-fp32"]
    assert np.isfinite(got["threshold"]) and got["problems"] == [] and "patchcore" in got["describe"]
    assert (bundle.path / "manifest.json").read_bytes() == manifest_before  # calibrate(write=False) wrote nothing


@pytest.mark.slow
def test_detector_validate_refuses_a_precision_it_cannot_repeat(fitted, data: Path) -> None:
    from edgeanomaly.runtime import load

    _, bundle = fitted
    with load(bundle.path) as runtime_detector:
        detector = ea.Detector(runtime_detector, bundle, {"inference_precision": "bf16"})
        with pytest.raises(ConfigError, match="inference_precision='bf16'"):
            detector.validate(data, category="metal")


def test_load_names_a_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="Expected a bundle directory or .zip file at .*nothing is there"):
        ea.load(tmp_path / "missing.bundle")
    assert os.fspath(ea.Bundle(tmp_path / "b")) == str(tmp_path / "b")


@pytest.mark.slow
def test_bundle_benchmark_measures_every_artifact_exactly_when_asked(fitted, data: Path) -> None:
    _, bundle = fitted
    rows = bundle.benchmark(data, category="metal", repeats=3, throughput_images=2, cold_start=False, exact=True)
    assert {r.artifact for r in rows} == {"onnx-fp32", "openvino-fp32"} and "openvino" in {r.backend for r in rows}
    for row in rows:
        assert row.status == "ok", (row.artifact, row.backend, row.reason)
        if row.backend == "openvino":  # ONNX Runtime runs a graph's own precision either way
            assert row.execution_reason.startswith("f32 forced (exact)"), row.execution_reason  # exact=True arrived
        assert 0.0 <= row.image_auroc <= 1.0 and row.latency_ms_p50 > 0 and row.max_rel_diff < 1e-4


@pytest.mark.slow
def test_fit_names_an_unknown_model_with_a_suggestion(data: Path) -> None:
    pytest.importorskip("torch", reason="fitting needs the [train] extra")
    with pytest.raises(ConfigError, match="Did you mean 'patchcore'"):
        ea.fit("patchcor", data, category="metal")


def _registered_models() -> list[str]:
    try:
        from edgeanomaly.models import list_models
    except ImportError:  # no [train] extra: the tests below skip
        return []
    return list_models()


@pytest.mark.slow
@pytest.mark.parametrize("name", _registered_models())
def test_fit_takes_every_registered_model(name: str, data: Path) -> None:
    """The front door passes the model name and its settings through to the registry (the
    models trained for epochs train briefly: their defaults are the papers' networks)."""
    brief = {"efficientad": {"width": 0.125, "teacher_epochs": 1, "epochs": 2}}.get(name, {})
    run = ea.fit(name, data, category="metal", image_size=128, random_state=0, **brief)
    assert run.model.name == name and run.out is None and run.seconds["fit"] > 0
    assert run.calibration is not None and np.isfinite(run.calibration["image_threshold"])
    assert 0.0 <= run.metrics["image_auroc"] <= 1.0


def test_fit_names_every_option_of_the_pipeline_it_wraps() -> None:
    # ea.fit took device= only through **model_kwargs: absent from its signature and help
    # ("the fit runs on the CPU"), though fit --device and the pipeline take it
    pytest.importorskip("torch", reason="fitting needs the [train] extra")
    import inspect

    from edgeanomaly.models import fit_run

    wrapped = {name for name, p in inspect.signature(fit_run).parameters.items() if p.kind is not p.VAR_KEYWORD}
    front = inspect.signature(ea.fit).parameters
    assert wrapped - {"model_name"} <= set(front), sorted(wrapped - {"model_name"} - set(front))
    for name in wrapped - {"model_name", "data"}:
        assert name in ea.fit.__doc__, name
