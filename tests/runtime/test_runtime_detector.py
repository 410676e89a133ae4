"""Detector behaviour on real graphs: devices, inputs, sizes, batches, threads, async order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import part_image, write_rgb
from edgeanomaly.errors import BundleError, ConfigError, DeviceUnavailableError
from edgeanomaly.runtime import Prediction, load

BACKENDS = ["openvino", "onnxruntime"]


@pytest.fixture(scope="module", params=BACKENDS)
def detector(request, seg_bundle: Path):
    det = load(seg_bundle, backend=request.param)
    yield det
    det.close()


def test_load_reports_backend_device_and_verified_precision(seg_bundle: Path) -> None:
    with load(seg_bundle, backend="openvino") as det:
        assert (det.backend, det.device, det.artifact.name) == ("openvino", "CPU", "openvino-fp32")
        # Read back from the compiled model: f32, not the CPU plugin's bf16 default on AMX.
        assert det.precision == "fp32 (f32 execution)"
        assert det.task == "segmentation" and det.input_size == (64, 80)
        assert "openvino-fp32" in repr(det)
    with load(seg_bundle, backend="onnxruntime") as det:
        assert (det.backend, det.device, det.artifact.name) == ("onnxruntime", "CPU", "onnx-fp32")
        assert det.precision.startswith("fp32 (f32 execution")


def test_onnxruntime_keeps_its_memory_arena_by_default(seg_bundle: Path) -> None:
    """Without the CPU arena every run allocated its large intermediates afresh: the PatchCore
    recipe's distances to the memory bank (1024 x 5120) ran 2x slower on ONNX Runtime
    (docs/BENCHMARKS.md, issue 15). The arena is the default; memory_arena=False gives peak
    buffers back to the OS between runs, for a device short of memory."""
    with load(seg_bundle, backend="onnxruntime") as det:
        assert det._engine._session.get_session_options().enable_cpu_mem_arena is True
        ref = det.predict(part_image(64, 80, seed=1)).raw_score
    with load(seg_bundle, backend="onnxruntime", backend_options={"memory_arena": False}) as det:
        assert det._engine._session.get_session_options().enable_cpu_mem_arena is False
        assert det.predict(part_image(64, 80, seed=1)).raw_score == ref


def test_fp16_ir_runs_f32_on_cpu_unless_asked(seg_bundle: Path) -> None:
    with load(seg_bundle, backend="openvino", precision="fp16") as det:
        assert det.artifact.name == "openvino-fp16"
        assert det.precision == "fp16 (f32 execution)"
    # bf16 runs where the CPU supports it and is refused elsewhere (never a silent f32):
    # see test_runtime_hardening.py::test_an_execution_precision_the_cpu_lacks_is_refused.


def test_auto_backend_and_artifact_selection(seg_bundle: Path) -> None:
    with load(seg_bundle) as det:
        assert det.backend == "openvino"
    with load(seg_bundle, artifact="onnx-fp32") as det:
        assert det.backend == "onnxruntime"
    with load(seg_bundle, backend="openvino", artifact="onnx-fp32") as det:
        assert det.backend == "openvino" and det.artifact.format == "onnx"
    with pytest.raises(BundleError, match="openvino-fp16"):
        load(seg_bundle, backend="onnxruntime", precision="fp16")
    with pytest.raises(ConfigError, match="Did you mean"):
        load(seg_bundle, artifact="openvino-fp61")


def test_missing_openvino_device_fails_fast_listing_devices(seg_bundle: Path) -> None:
    t0 = time.perf_counter()
    with pytest.raises(DeviceUnavailableError) as info:
        load(seg_bundle, backend="openvino", device="GPU")
    assert time.perf_counter() - t0 < 5
    message = str(info.value)
    assert "'GPU'" in message and "Available: CPU" in message
    with pytest.raises(DeviceUnavailableError, match="Available: CPU"):
        load(seg_bundle, backend="openvino", device="TPU")
    with pytest.raises(DeviceUnavailableError, match="Available: CPU"):
        load(seg_bundle, backend="openvino", device="AUTO:GPU,NPU")


def test_missing_onnxruntime_provider_lists_providers(seg_bundle: Path) -> None:
    with pytest.raises(DeviceUnavailableError) as info:
        load(seg_bundle, backend="onnxruntime", device="CUDA")
    assert "CPUExecutionProvider" in str(info.value) and "onnxruntime-gpu" in str(info.value)
    with pytest.raises(DeviceUnavailableError, match="'CUDA'"):
        load(seg_bundle, backend="onnxruntime", device="CUDA,TensorRT")  # at least one listed provider must exist


def test_auto_device_only_when_asked_and_reports_actual_device(seg_bundle: Path) -> None:
    with load(seg_bundle, backend="openvino", device="AUTO") as det:
        assert det.device == "CPU"
        assert det.precision == "fp32 (f32 execution)"


def test_prediction_fields_and_map_at_odd_original_size(detector) -> None:
    image = part_image(123, 77, defect=(70, 40, 30, 25))
    p = detector.predict(image)
    assert isinstance(p, Prediction)
    assert p.anomaly_map.shape == (123, 77) and p.anomaly_map.dtype == np.float32
    assert p.mask.shape == (123, 77) and p.mask.dtype == bool
    assert p.raw_anomaly_map.shape == (64, 80)
    assert p.label and 0.5 <= p.score <= 1.0
    # The defect region is where the map is high, at original-image coordinates.
    assert p.anomaly_map[75:95, 45:60].mean() > 0.5 > p.anomaly_map[:40, :].mean()
    assert p.mask[80, 50] and not p.mask[10, 10]
    assert set(p.timings) == {"preprocess", "infer", "postprocess", "total"}
    assert p.to_dict()["anomalous_pixels"] == int(p.mask.sum())


def test_rgb_and_bgr_arrays_are_explicit(detector) -> None:
    rgb = part_image(64, 80, defect=(10, 10, 20, 20))
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    a = detector.predict(rgb)
    b = detector.predict(bgr, color="BGR")
    c = detector.predict(bgr)  # a BGR frame passed as RGB: red defect becomes blue
    assert a.raw_score == pytest.approx(b.raw_score, rel=1e-6)
    assert abs(c.raw_score - a.raw_score) > 1e-3 * abs(a.raw_score)
    with pytest.raises(ConfigError):
        detector.predict(rgb, color="RBG")


def test_file_gray_and_rgba_inputs(detector, tmp_path: Path) -> None:
    rgb = part_image(50, 90, defect=(5, 5, 10, 10))
    path = write_rgb(tmp_path / "part.png", rgb)
    from_file = detector.predict(path)
    from_array = detector.predict(rgb)
    assert from_file.raw_score == pytest.approx(from_array.raw_score, rel=1e-6)
    assert from_file.source == str(path) and "decode" in from_file.timings
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert detector.predict(rgba).raw_score == pytest.approx(from_array.raw_score, rel=1e-6)
    gray = detector.predict(rgb[..., 0])
    assert gray.anomaly_map.shape == (50, 90)
    with pytest.raises(ValueError, match="dtype"):
        detector.predict(rgb.astype(np.float32))


def test_predict_batch_sync_and_async_match_predict(detector) -> None:
    images = [part_image(40 + 7 * i, 60 + 3 * i, defect=(5, 5, 8, 8) if i % 2 else None, seed=i) for i in range(7)]
    single = [detector.predict(im).raw_score for im in images]
    batched = detector.predict_batch(images, batch_size=3)
    asynced = detector.predict_batch(images, async_=True, sources=list(range(7)))
    np.testing.assert_allclose([p.raw_score for p in batched], single, rtol=1e-5)
    np.testing.assert_allclose([p.raw_score for p in asynced], single, rtol=1e-5)
    assert [p.source for p in asynced] == list(range(7))
    assert [p.anomaly_map.shape for p in batched] == [im.shape[:2] for im in images]


def test_static_batch_bundle_pads_and_chunks(toy_bundles: dict[str, Path], seg_bundle: Path) -> None:
    images = [part_image(64, 80, defect=(5, 5, 8, 8) if i % 2 else None, seed=i) for i in range(5)]
    with load(seg_bundle, backend="onnxruntime") as ref:
        expected = [ref.predict(im).raw_score for im in images]
    for backend in BACKENDS:
        with load(toy_bundles["toy-segmentation-static2"], backend=backend) as det:
            got = [p.raw_score for p in det.predict_batch(images)]
            got += [det.predict(images[0]).raw_score]
            got_async = [p.raw_score for p in det.predict_many(images, batch_size=2)]
        np.testing.assert_allclose(got, expected + expected[:1], rtol=1e-5)
        np.testing.assert_allclose(got_async, expected, rtol=1e-5)


def test_classification_bundle_has_no_map(toy_bundles: dict[str, Path]) -> None:
    for backend in BACKENDS:
        with load(toy_bundles["toy-classification"], backend=backend) as det:
            assert det.task == "classification"
            p = det.predict(part_image(30, 40, defect=(5, 5, 10, 10)))
            assert p.anomaly_map is None and p.mask is None and p.raw_anomaly_map is None
            assert p.label
            assert "anomalous_pixels" not in p.to_dict()


def test_predict_is_thread_safe(detector) -> None:
    images = [part_image(64 + i, 80, defect=(i, i, 12, 12) if i % 3 else None, seed=i) for i in range(12)]
    expected = [detector.predict(im).raw_score for im in images]
    results: dict[tuple[int, int], float] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for rep in range(3):
                for i in range(t, len(images), 2):
                    results[(i, rep * 10 + t)] = detector.predict(images[i]).raw_score
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t % 2,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for (i, _), score in results.items():
        assert score == pytest.approx(expected[i], rel=1e-5)


def test_predict_many_keeps_input_order(detector) -> None:
    images = [part_image(64, 80, defect=(2, 2, 4 + 3 * i, 4 + 3 * i), seed=i) for i in range(10)]
    expected = [detector.predict(im).raw_score for im in images]
    got = [p.raw_score for p in detector.predict_many(iter(images), jobs=3)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert len(set(np.round(expected, 6))) == len(expected)  # distinct, so order is really tested


def test_overlay_marks_the_anomalous_region(detector) -> None:
    from edgeanomaly.runtime import overlay

    image = part_image(120, 160, defect=(60, 90, 30, 30))
    p = detector.predict(image)
    vis = overlay(image, p)
    assert vis.shape == image.shape and vis.dtype == np.uint8
    # JET heat: red where the map is high, blue where it is low -> red-minus-blue goes up
    # in the defect region and down elsewhere, compared with the input image.
    shift = (vis[..., 0].astype(int) - vis[..., 2]) - (image[..., 0].astype(int) - image[..., 2])
    assert shift[65:85, 95:115].mean() > 0 > shift[95:, :40].mean()
    assert (vis != image).any(axis=2).mean() > 0.9
    bgr = overlay(image[..., ::-1].copy(), p, color="BGR")
    np.testing.assert_array_equal(bgr[..., ::-1], vis)
    plain = overlay(image, p, text=False, contours=False, alpha=0.0)
    np.testing.assert_array_equal(plain, image)


def test_list_devices_matches_this_machine() -> None:
    from edgeanomaly.registry import backend_names
    from edgeanomaly.runtime import list_devices

    assert set(backend_names()) == {"openvino", "onnxruntime", "remote"}
    assert "CPU" in list_devices("openvino")
    assert list_devices("onnxruntime") == ["CPU"]
    assert list_devices("remote") == ["REMOTE"]  # the server: which device it runs on is its own
