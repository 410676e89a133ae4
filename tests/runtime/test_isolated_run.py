"""Export runs reduced execution precisions in a child process (tooling._isolated): the same
outputs as in-process, and a failure, crash or hang of the engine is an error with its cause,
never the end of the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeanomaly.runtime import load
from edgeanomaly.tooling import IsolatedRunError, run_isolated


def _batch(det, n: int = 3) -> np.ndarray:
    h, w = det.input_size
    return np.random.default_rng(0).random((n, 3, h, w), dtype=np.float32)


def test_child_outputs_equal_in_process_outputs(seg_bundle: Path, tmp_path: Path) -> None:
    with load(seg_bundle, backend="openvino", artifact="openvino-fp32", exact=True) as det:
        batch = _batch(det)
        here = det._engine.run(batch)
    got = run_isolated(seg_bundle / "openvino" / "model.xml", "openvino", "fp32", batch,
                       options={"inference_precision": "f32"}, workdir=tmp_path)
    assert sorted(got) == sorted(here)
    for name in here:
        np.testing.assert_allclose(got[name], here[name], rtol=1e-6, atol=1e-7)
    assert list(tmp_path.iterdir()) == []  # the exchange folder is removed


def test_the_child_runs_an_onnx_file_on_the_backend_asked_for(seg_bundle: Path, tmp_path: Path) -> None:
    """Export measures OpenVINO reading the ONNX file: the child must run that backend, not
    ONNX Runtime (which prefers the format)."""
    with load(seg_bundle, backend="openvino", artifact="onnx-fp32", exact=True) as det:
        batch = _batch(det)
        here = det._engine.run(batch)
    got = run_isolated(seg_bundle / "model.onnx", "onnx", "fp32", batch, options={"inference_precision": "f32"},
                       backend="openvino", workdir=tmp_path)
    for name in here:
        np.testing.assert_allclose(got[name], here[name], rtol=1e-6, atol=1e-7)
    with pytest.raises(IsolatedRunError, match="inference_precision: not a setting|unexpected keyword"):
        run_isolated(seg_bundle / "model.onnx", "onnx", "fp32", batch, options={"inference_precision": "f32"}, workdir=tmp_path)


def test_an_engine_error_in_the_child_is_reported_with_its_message(seg_bundle: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model.xml"
    broken.write_text("<net name='x'><layers>")  # not a loadable IR
    with pytest.raises(IsolatedRunError, match=r"model.xml on CPU failed \(exit 1\): .*OpenVINO could not compile"):
        run_isolated(broken, "openvino", "fp32", np.zeros((1, 3, 8, 8), np.float32), workdir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.xml"]


def test_a_child_past_its_time_is_stopped_and_reported(seg_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(IsolatedRunError, match=r"did not finish in 0.05 s; it was stopped"):
        run_isolated(seg_bundle / "openvino" / "model.xml", "openvino", "fp32",
                     np.zeros((1, 3, 64, 64), np.float32), workdir=tmp_path, timeout=0.05)
    assert list(tmp_path.iterdir()) == []
