"""Adding a backend is one row: a backend registered here (ONNX Runtime under another name)
runs through load -> predict -> validate -> benchmark and the CLI without any other file
knowing about it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import part_image, write_rgb
from edgeanomaly.errors import ConfigError
from edgeanomaly.registry import BackendSpec, backend_names, get_backend, register_backend, unregister_backend
from edgeanomaly.runtime import load

ROW = BackendSpec(
    name="ort-copy",
    factory="edgeanomaly.runtime._backends._onnxruntime:ONNXRuntimeBackend",
    module="onnxruntime",
    formats=("onnx",),
    devices={"CPU": "CPUExecutionProvider"},
    list_devices="edgeanomaly.runtime._backends._onnxruntime:available_devices",
    options=("num_threads",),
    install_hint="pip install onnxruntime",
    auto=False,
)


@pytest.fixture()
def ort_copy():
    register_backend(ROW)
    try:
        yield ROW.name
    finally:
        unregister_backend(ROW.name)
    assert ROW.name not in backend_names()


@pytest.fixture(scope="module")
def labelled_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeanomaly.data import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synth-small")
    generate_synthetic_dataset(root, ["metal"], n_train=2, n_test=2, seed=3, size=64)
    return root / "metal"


def test_registered_backend_loads_and_predicts_like_the_original(ort_copy: str, seg_bundle: Path, tmp_path: Path) -> None:
    images = [part_image(64, 80, defect=(5, 5, 8, 8) if i % 2 else None, seed=i) for i in range(4)]
    with load(seg_bundle, backend="onnxruntime") as ref:
        expected = [p.raw_score for p in ref.predict_batch(images)]
    with load(seg_bundle, backend=ort_copy) as det:
        assert (det.backend, det.artifact.name, det.device) == (ort_copy, "onnx-fp32", "CPU")
        got = [p.raw_score for p in det.predict_batch(images)]
    np.testing.assert_array_equal(got, expected)  # same engine, same graph: bit-identical
    # The row's option list is the contract: an OpenVINO setting is refused by name.
    with pytest.raises(ConfigError, match="inference_precision: not a setting of the ort-copy backend"):
        load(seg_bundle, backend=ort_copy, inference_precision="f16")
    with load(seg_bundle, backend=ort_copy, backend_options={"num_threads": 1}) as det:
        assert det.predict(images[0]).raw_score == expected[0]
    with pytest.raises(ConfigError, match="url: not a setting of the ort-copy backend"):
        load(seg_bundle, backend=ort_copy, backend_options={"url": "http://x"})
    # auto=False: the automatic choice never picks it.
    with load(seg_bundle, artifact="onnx-fp32") as det:
        assert det.backend == "onnxruntime"
    # The CLI's --backend choice is read from the registry when used.
    from edgeanomaly.cli import main

    path = write_rgb(tmp_path / "part.png", images[1])
    r = CliRunner().invoke(main, ["predict", str(seg_bundle), str(path), "--backend", ort_copy, "--json"])
    assert r.exit_code == 0, r.output
    assert '"backend": "ort-copy"' in r.output


def test_registered_backend_validates_and_benchmarks(ort_copy: str, seg_bundle: Path, labelled_data: Path) -> None:
    from edgeanomaly.tooling import benchmark_bundle, validate_bundle

    report = validate_bundle(seg_bundle, labelled_data, backend=ort_copy)
    assert [(a.artifact, a.backend, a.error) for a in report.artifacts] == [("onnx-fp32", ort_copy, None)]
    from edgeanomaly.data import load_dataset

    assert report.artifacts[0].n_images == len(load_dataset(labelled_data).test) > 0
    assert report.artifacts[0].reproduction["max_rel_score_diff"] < 1e-4
    rows = benchmark_bundle(seg_bundle, repeats=2, throughput_images=2, cold_start=False)
    mine = [r for r in rows if r.backend == ort_copy]
    assert [(r.artifact, r.device, r.status) for r in mine] == [("onnx-fp32", "CPU", "ok")], [r.reason for r in mine]
    original = next(r for r in rows if r.backend == "onnxruntime")
    assert mine[0].max_rel_diff == original.max_rel_diff


def test_registry_rejects_bad_rows() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_backend(get_backend("onnxruntime"))
    with pytest.raises(ConfigError, match="unregistered formats"):
        register_backend(BackendSpec(name="x", factory="m:f", module="m", formats=("tflite",), devices={}, list_devices="m:l"))
    with pytest.raises(ConfigError, match="Did you mean"):
        get_backend("onnxruntme")
