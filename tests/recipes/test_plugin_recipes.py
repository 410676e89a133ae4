"""docs/ARCHITECTURE.md's recipes, proved: a plugin module (``recipe_plugin.py``) adds a
backbone, a model, a format, a backend and a report metric with one registration each, and
they go through fit -> export -> load -> predict -> validate -> benchmark -> serve without any
file of the package knowing them. ``$EDGEANOMALY_PLUGINS`` names the module, so the child
processes (export's isolated runs, benchmark's cold start, ``edgeanomaly serve``) know them too.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import edgeanomaly as ea

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "serve"))
from _serving import has, start_server, stop_server  # noqa: E402  (the serving tests' helpers)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plugin() -> Iterator[object]:
    """The plugin imported here and named for child processes; every row removed afterwards."""
    saved = {k: os.environ.get(k) for k in ("EDGEANOMALY_PLUGINS", "PYTHONPATH")}
    os.environ["EDGEANOMALY_PLUGINS"] = "recipe_plugin"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), saved["PYTHONPATH"]) if p)
    module = importlib.import_module("recipe_plugin")
    try:
        yield module
    finally:
        from edgeanomaly.components import unregister_backbone
        from edgeanomaly.metrics import unregister_report_metric
        from edgeanomaly.models import unregister_model
        from edgeanomaly.registry import unregister_backend, unregister_deploy_target, unregister_format

        unregister_deploy_target(module.TARGET)
        unregister_backend(module.BACKEND)
        unregister_format(module.FORMAT)
        unregister_model(module.MODEL)
        unregister_backbone(module.BACKBONE)
        unregister_report_metric(module.METRIC)
        sys.modules.pop("recipe_plugin", None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def data(synthetic_root: Path) -> Path:
    return synthetic_root


@pytest.fixture(scope="module")
def bundle(plugin: object, data: Path, tmp_path_factory: pytest.TempPathFactory) -> ea.Bundle:
    out = tmp_path_factory.mktemp("recipes-out")
    run = ea.fit(plugin.MODEL, data, category="metal", out=out / "md.run", image_size=64, batch_size=4)  # type: ignore[attr-defined]
    assert run.checkpoint.model.backbone == plugin.BACKBONE  # type: ignore[attr-defined]
    assert 0.0 <= run.checkpoint.metrics[plugin.METRIC] <= 1.0  # type: ignore[attr-defined]
    return run.export(out / "md.bundle", formats=[plugin.FORMAT, "onnx"])  # type: ignore[attr-defined]


def test_the_metric_is_what_sklearn_says(plugin: object) -> None:
    from sklearn.metrics import balanced_accuracy_score

    from edgeanomaly.bundle import Calibration
    from edgeanomaly.metrics import evaluate_outputs, report_metrics

    rng = np.random.default_rng(0)
    scores, labels = rng.random(40), rng.integers(0, 2, 40)
    out = evaluate_outputs(scores, labels, None, None, Calibration(image_threshold=0.5, image_min=0.0, image_max=1.0))
    assert report_metrics()[-1] == plugin.METRIC  # type: ignore[attr-defined]
    assert out[plugin.METRIC] == pytest.approx(balanced_accuracy_score(labels, scores >= 0.5))  # type: ignore[attr-defined]


def test_fit_and_export_write_the_new_format_with_the_new_metric(plugin: object, bundle: ea.Bundle) -> None:
    m = bundle.manifest
    art = next(a for a in m.artifacts if a.format == plugin.FORMAT)  # type: ignore[attr-defined]
    assert (Path(bundle) / art.path).with_suffix(".data").is_file()  # the weights beside the graph
    assert bundle.export_report is not None
    parity = next(a.parity for a in bundle.export_report.artifacts if a.name == art.name)
    assert parity["max_rel_score_diff"] <= 1e-4 and parity["status"] == "ok", parity
    assert plugin.METRIC in m.reference["metrics"]  # type: ignore[attr-defined]
    assert not bundle.verify()


def test_load_and_predict_on_the_new_backend_match_onnx_runtime(plugin: object, bundle: ea.Bundle, data: Path) -> None:
    image = data / "metal" / "test" / "scratch" / "000.png"
    with ea.load(bundle, plugin.BACKEND) as det, ea.load(bundle, "onnxruntime") as ref:  # type: ignore[attr-defined]
        assert det.backend == plugin.BACKEND and det.artifact.format == plugin.FORMAT  # type: ignore[attr-defined]
        got, expected = det.predict(image), ref.predict(image)
    assert got.raw_score == pytest.approx(expected.raw_score, rel=1e-5)
    np.testing.assert_allclose(got.anomaly_map, expected.anomaly_map, rtol=1e-5, atol=1e-6)


def test_validate_and_benchmark_report_them(plugin: object, bundle: ea.Bundle, data: Path) -> None:
    from edgeanomaly.reports import validation_markdown

    report = bundle.validate(data, category="metal")
    mine = next(a for a in report.artifacts if a.backend == plugin.BACKEND)  # type: ignore[attr-defined]
    assert mine.status in {"pass", "inconclusive"}, mine.reasons
    assert plugin.METRIC in mine.metrics and plugin.METRIC in validation_markdown(report)  # type: ignore[attr-defined]
    rows = bundle.benchmark(data, category="metal", repeats=3, throughput_images=4)
    row = next(r for r in rows if r.backend == plugin.BACKEND)  # type: ignore[attr-defined]
    assert row.status == "ok" and row.cold_start_s is not None, row  # the cold start is a fresh process


def test_edgeanomaly_serve_runs_the_new_backend(plugin: object, bundle: ea.Bundle, data: Path, tmp_path: Path) -> None:
    if not has("kserve"):
        pytest.skip('serving needs the [serve] extra: pip install "edgeanomaly[serve]"')
    server = start_server(Path(bundle), tmp_path, "--backend", plugin.BACKEND)  # type: ignore[attr-defined]
    try:
        image = data / "metal" / "test" / "good" / "000.png"
        url = f"http://127.0.0.1:{server.http_port}"
        with ea.load(bundle, "remote", url=url) as remote, ea.load(bundle, plugin.BACKEND) as local:  # type: ignore[attr-defined]
            assert remote.artifact.name == local.artifact.name
            assert remote.predict(image).score == pytest.approx(local.predict(image).score, rel=1e-4, abs=1e-6)
    finally:
        stop_server(server)


def test_edgeanomaly_deploy_writes_the_new_target(plugin: object, bundle: ea.Bundle, data: Path, tmp_path: Path) -> None:
    import subprocess

    import onnxruntime as ort

    from edgeanomaly.bundle import read_bundle

    out = tmp_path / "repo"
    r = subprocess.run([sys.executable, "-m", "edgeanomaly.cli", "deploy", str(bundle.path), "--target", plugin.TARGET,  # type: ignore[attr-defined]
                        "--out", str(out), "--model-name", "md"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "md").iterdir()) == ["manifest.json", "model.data", "model.onnx"]
    # The deployed graph runs from the folder (its external weights beside it) as the bundle's does.
    session = ort.InferenceSession(str(out / "md" / "model.onnx"), providers=["CPUExecutionProvider"])
    with read_bundle(Path(bundle)) as b:
        reference = ort.InferenceSession(str(b.root / b.artifact(format=plugin.FORMAT).path), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    x = np.random.default_rng(0).random((1, *session.get_inputs()[0].shape[1:]), dtype=np.float32)
    np.testing.assert_array_equal(session.run(None, {session.get_inputs()[0].name: x})[0],
                                  reference.run(None, {reference.get_inputs()[0].name: x})[0])
    help_text = subprocess.run([sys.executable, "-m", "edgeanomaly.cli", "deploy", "--help"], capture_output=True, text=True, timeout=120).stdout
    assert plugin.TARGET in help_text  # type: ignore[attr-defined]


def test_fit_help_lists_the_new_model_and_backbone(plugin: object) -> None:
    import subprocess

    r = subprocess.run([sys.executable, "-m", "edgeanomaly.cli", "fit", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert f"patchcore, padim, dfkde, dfm, fastflow, efficientad, {plugin.MODEL}" in text  # type: ignore[attr-defined]
    assert f"wide_resnet50_2, {plugin.BACKBONE}" in text  # type: ignore[attr-defined]


def test_a_plugin_that_cannot_be_imported_is_named(tmp_path: Path) -> None:
    import subprocess

    env = {**os.environ, "EDGEANOMALY_PLUGINS": "no_such_plugin_module"}
    r = subprocess.run([sys.executable, "-m", "edgeanomaly.cli", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "EDGEANOMALY_PLUGINS names the plugin module 'no_such_plugin_module'" in r.stderr
