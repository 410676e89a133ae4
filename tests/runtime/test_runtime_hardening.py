"""Fault injection on the runtime: failed requests, mismatched graphs, use after close.

Every test here reproduced a hang, a crash or a silent wrong result before its fix. A test
that could hang runs its body on a daemon thread with a deadline, so a regression fails
instead of blocking the suite.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from conftest import part_image
from _bundle_edit import resign
from edgeanomaly.errors import BundleError, InferenceError
from edgeanomaly.runtime import load

BACKENDS = ["openvino", "onnxruntime"]


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a daemon thread; fail the test if it has not returned after ``seconds``.

    Returns ``fn``'s value, or the exception it raised (as a value, for the caller to check).
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test thread
            box["value"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"hung: no result after {seconds} s")
    return box["value"]



def _taller(d: dict[str, Any]) -> None:
    d["preprocessing"]["image_size"] = [72, 80]
    d["input"]["shape"][2] = 72
    d["outputs"][1]["shape"][2] = 72
    d["model_info"]["input_height"] = "72"
    pre = json.loads(d["model_info"]["preprocessing"])
    pre["image_size"] = [72, 80]
    d["model_info"]["preprocessing"] = json.dumps(pre)


@pytest.fixture(scope="module")
def taller_manifest(seg_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy bundle (graph input 64x80) whose manifest claims 72x80, consistently re-signed."""
    root = Path(shutil.copytree(seg_bundle, tmp_path_factory.mktemp("taller") / "bundle"))
    resign(root, _taller)
    return root


@pytest.fixture(scope="module")
def taller_everywhere(seg_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As ``taller_manifest``, and the graphs' own model_info edited to say 72x80 too: only the
    compiled graph's shapes tell the truth."""
    onnx = pytest.importorskip("onnx")
    from edgeanomaly.bundle._hashing import sha256_file

    root = Path(shutil.copytree(seg_bundle, tmp_path_factory.mktemp("taller-all") / "bundle"))
    proto = onnx.load(str(root / "model.onnx"))
    for entry in proto.metadata_props:
        if entry.key == "input_height":
            entry.value = "72"
        if entry.key == "preprocessing":
            entry.value = entry.value.replace("[64, 80]", "[72, 80]")
    onnx.save(proto, str(root / "model.onnx"))
    for xml in ("openvino/model.xml", "openvino-fp16/model.xml"):
        text = (root / xml).read_text()
        text = text.replace('<input_height value="64" />', '<input_height value="72" />').replace("[64, 80]", "[72, 80]")
        (root / xml).write_text(text)
    digests = {p: sha256_file(root / p) for p in ("model.onnx", "openvino/model.xml", "openvino-fp16/model.xml")}

    def edit(d: dict[str, Any]) -> None:
        _taller(d)
        for a in d["artifacts"]:
            for f in a["files"]:
                if f["path"] in digests:
                    f["sha256"], f["bytes"] = digests[f["path"]]

    resign(root, edit)
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_refuses_a_graph_whose_shapes_disagree_with_the_manifest(taller_everywhere: Path, backend: str) -> None:
    error = within(60, lambda: load(taller_everywhere, backend=backend))
    assert isinstance(error, BundleError), error
    message = str(error)
    assert "input 'image'" in message and "[-1, 3, 64, 80]" in message and "[-1, 3, 72, 80]" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_refuses_a_manifest_whose_size_disagrees_with_the_graph_metadata(taller_manifest: Path, backend: str) -> None:
    """Only the manifest edited: the graph's own model_info says 64, caught before compiling."""
    from edgeanomaly.errors import GraphMismatchError

    error = within(60, lambda: load(taller_manifest, backend=backend))
    assert isinstance(error, GraphMismatchError), error
    assert "input_height='64' where the manifest says '72'" in str(error)


def test_failed_asynchronous_request_raises_instead_of_hanging(seg_bundle: Path) -> None:
    from edgeanomaly.runtime._backends._openvino import OpenVINOBackend

    engine = OpenVINOBackend(seg_bundle / "openvino" / "model.xml")
    wrong = np.zeros((1, 3, 72, 80), np.float32)
    good = np.zeros((1, 3, 64, 80), np.float32)
    try:
        for batches in ([wrong], [wrong, wrong], [good, wrong, good], [good] * 5 + [wrong]):
            error = within(30, lambda: list(engine.run_async_many(iter(batches), jobs=2)))
            assert isinstance(error, InferenceError), (len(batches), error)
            assert "[1, 3, 72, 80]" in str(error)
        # The backend stays usable after a failed request.
        outputs = within(30, lambda: list(engine.run_async_many(iter([good, good]), jobs=2)))
        assert len(outputs) == 2 and outputs[0][0]["pred_score"].shape == (1,)
    finally:
        engine.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_input_surfaces_through_predict_many(seg_bundle: Path, backend: str) -> None:
    """An image that fails mid-stream raises from predict_many (the stream and the CLI use it)."""
    with load(seg_bundle, backend=backend) as det:
        images = [part_image(64, 80, seed=i) for i in range(3)] + [np.zeros((0, 5), np.uint8)]
        error = within(30, lambda: list(det.predict_many(images)))
        assert isinstance(error, ValueError) and "(0, 5)" in str(error), error


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_after_close_says_so(seg_bundle: Path, backend: str) -> None:
    det = load(seg_bundle, backend=backend)
    det.close()
    image = part_image(64, 80)
    for call in (lambda: det.predict(image), lambda: det.predict_batch([image]), lambda: list(det.predict_many([image]))):
        with pytest.raises(InferenceError, match="closed"):
            call()
    det.close()  # closing twice is harmless


def test_batch_size_zero_is_refused_not_the_default(seg_bundle: Path) -> None:
    with load(seg_bundle, backend="onnxruntime") as det:
        for size in (0, -1):
            with pytest.raises(ValueError, match=f"batch_size >= 1, got {size}"):
                det.predict_batch([part_image(64, 80)], batch_size=size)
            with pytest.raises(ValueError, match=f"batch_size >= 1, got {size}"):
                det.predict_batch([part_image(64, 80)], batch_size=size, async_=True)


@pytest.mark.slow
def test_mixed_runtimes_predicting_concurrently_survive(seg_bundle: Path) -> None:
    """ONNX Runtime + OpenVINO (throughput, bf16 asked) in one process, 4 threads of predict_many."""
    import os
    import subprocess
    import sys

    worker = Path(__file__).with_name("_mixed_stress_worker.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    for attempt in range(3):  # the reported crash hit 1 run in 4 of a smaller repro
        run = subprocess.run(
            [sys.executable, str(worker), str(seg_bundle), "15"], capture_output=True, text=True, timeout=300, env=env
        )
        assert run.returncode == 0, (attempt, run.returncode, run.stdout[-2000:], run.stderr[-2000:])
        assert run.stdout.strip() == "ok"


# ---------------------------------------------------------------- streams: nothing lost silently


def _video(path: Path, n: int, damage: str | None = None) -> Path:
    """An MJPG .avi of ``n`` frames; ``damage``: "frame6" (zeroes the start of frame 6's JPEG) or "cut" (second half gone)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 64))
    assert writer.isOpened()
    for i in range(n):
        writer.write(part_image(64, 80, seed=i))
    writer.release()
    data = bytearray(path.read_bytes())
    if damage == "frame6":
        starts = [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
        assert len(starts) == n
        data[starts[6] : starts[6] + 400] = bytes(400)
    elif damage == "cut":
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    return path


def _cli_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_video_reads_past_a_bad_frame_and_reports_it(seg_bundle: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgeanomaly.cli._predict import EXIT_SOME_FAILED, predict

    video = _video(tmp_path / "bad.avi", 40, "frame6")
    result = CliRunner().invoke(predict, [str(seg_bundle), str(video), "--json"])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    lines = _cli_lines(result.output)
    errors = [r for r in lines if "error" in r]
    assert [r["frame"] for r in errors] == [6] and "could not be decoded" in errors[0]["error"]
    scored = sorted(r["frame"] for r in lines if "score" in r)
    assert scored == [i for i in range(40) if i != 6]
    summary = lines[-1]["summary"]
    assert (summary["inputs"], summary["scored"], summary["failed"]) == (40, 39, 1)


def test_truncated_video_reports_its_missing_frames(seg_bundle: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgeanomaly.cli._predict import EXIT_SOME_FAILED, predict

    video = _video(tmp_path / "cut.avi", 60, "cut")
    result = CliRunner().invoke(predict, [str(seg_bundle), str(video), "--json"])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    lines = _cli_lines(result.output)
    summary = lines[-1]["summary"]
    (gap,) = [r for r in lines if "error" in r]
    assert summary["inputs"] == 60 and summary["scored"] == gap["frame"] and summary["failed"] == gap["frames"] == 60 - gap["frame"]
    assert "declares 60 frames" in gap["error"] and 20 < summary["scored"] < 40


def test_an_intact_video_reports_no_failure(detector_ov: Any, tmp_path: Path) -> None:
    failures: list[Any] = []
    got = list(detector_ov.stream(_video(tmp_path / "ok.avi", 12), on_error=failures.append))
    assert len(got) == 12 and failures == []
    got = list(detector_ov.stream(_video(tmp_path / "ok.avi", 12), stride=5, on_error=failures.append))
    assert [p.source for _, p in got] == [0, 5, 10] and failures == []


@pytest.fixture(scope="module")
def detector_ov(seg_bundle: Path):
    with load(seg_bundle, backend="openvino") as det:
        yield det


@pytest.mark.slow
def test_watch_counts_undecodable_empty_and_dangling_files(seg_bundle: Path, tmp_path: Path) -> None:
    import time

    import cv2
    from click.testing import CliRunner

    from edgeanomaly.cli._predict import EXIT_SOME_FAILED, predict

    drop = tmp_path / "drop"
    drop.mkdir()

    def camera() -> None:
        time.sleep(0.5)
        ok, png = cv2.imencode(".png", part_image(64, 80))
        (drop / "a_good.png").write_bytes(png.tobytes())
        (drop / "b_garbage.png").write_bytes(b"this is not an image at all")
        (drop / "c_empty.png").write_bytes(b"")
        (drop / "d_dangling.png").symlink_to(tmp_path / "unmounted" / "d.png")  # its share is gone
        (drop / "e_late.png").symlink_to(tmp_path / "e.png")  # a link made before its target is written
        time.sleep(0.5)
        (tmp_path / "e.png").write_bytes(png.tobytes())

    writer = threading.Thread(target=camera)
    writer.start()
    try:
        result = CliRunner().invoke(predict, [str(seg_bundle), str(drop), "--watch", "--timeout", "7", "--json"])
    finally:
        writer.join()
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    lines = _cli_lines(result.output)
    errors = {Path(r["path"]).name: r["error"] for r in lines if "error" in r}
    assert set(errors) == {"b_garbage.png", "c_empty.png", "d_dangling.png"}
    assert "Not an image" in errors["b_garbage.png"] and "empty (0 bytes)" in errors["c_empty.png"]
    assert "a link to" in errors["d_dangling.png"] and "which is missing" in errors["d_dangling.png"]
    scored = {Path(r["path"]).name for r in lines if "score" in r}
    assert scored == {"a_good.png", "e_late.png"}
    summary = lines[-1]["summary"]
    assert (summary["inputs"], summary["scored"], summary["failed"]) == (5, 2, 3)


# ---------------------------------------------------------------- devices: behaviour as documented


def test_explicit_fallback_lists_fall_back(seg_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`AUTO:GPU,CPU` and `CUDA,CPU` are documented as fallback lists: they run where GPU is absent."""
    with caplog.at_level("WARNING", logger="edgeanomaly.runtime"):
        with load(seg_bundle, backend="openvino", device="AUTO:GPU,CPU") as det:
            assert det.device == "CPU"
        with load(seg_bundle, backend="onnxruntime", device="CUDA,CPU") as det:
            assert det.device == "CPU"
    assert "GPU not present" in caplog.text and "CUDA not present" in caplog.text  # said, not silent
    from edgeanomaly.errors import DeviceUnavailableError

    for backend, device in [("openvino", "AUTO:GPU"), ("openvino", "AUTO:GPU,CPUU"), ("onnxruntime", "CUDA"), ("onnxruntime", "CUDA,CPUU")]:
        with pytest.raises(DeviceUnavailableError):
            load(seg_bundle, backend=backend, device=device)


def test_an_execution_precision_the_cpu_lacks_is_refused(seg_bundle: Path) -> None:
    """f16 asked on a CPU without FP16 arithmetic ran silently as bf16 (or f32)."""
    from edgeanomaly.errors import ConfigError
    from edgeanomaly.runtime._backends._openvino import core

    capabilities = set(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    for asked, capability in (("f16", "FP16"), ("bf16", "BF16")):
        if capability in capabilities:
            with load(seg_bundle, backend="openvino", inference_precision=asked) as det:
                assert det.precision == f"fp32 ({asked} execution)"
        else:
            with pytest.raises(ConfigError, match=rf"{asked}.*CPU.*{capability}"):
                load(seg_bundle, backend="openvino", inference_precision=asked)
    with load(seg_bundle, backend="openvino", inference_precision="f32") as det:
        assert det.precision == "fp32 (f32 execution)"
