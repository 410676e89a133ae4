"""predict_many, the throughput path (issue 15): same numbers and order as predict, lazy, errors in place.

The speed itself is measured by hand (benchmarks/bench_runtime.py --compare-loop); here
only what must hold whatever the machine: results equal to a predict loop, input order,
bounded read-ahead, errors surfacing, and the throughput-compiled model running f32.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from conftest import part_image
from edgeanomaly.errors import ImageReadError
from edgeanomaly.runtime import load
from edgeanomaly.runtime._backends._onnxruntime import physical_cores

BACKENDS = ["openvino", "onnxruntime"]


@pytest.fixture(scope="module")
def hazelnut_paths(mvtec_root: Path) -> list[str]:
    """Real PNGs (the reduced MVTec AD hazelnut), normal and defective, in a fixed order."""
    paths = sorted((mvtec_root / "hazelnut" / "test").rglob("*.png")) + sorted((mvtec_root / "hazelnut" / "train").rglob("*.png"))[:4]
    assert len(paths) >= 8
    return [str(p) for p in paths]


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_many_equals_a_predict_loop_on_real_images(seg_bundle: Path, hazelnut_paths: list[str], backend: str) -> None:
    with load(seg_bundle, backend=backend) as det:
        loop = [det.predict(p) for p in hazelnut_paths]
        # The second model predict_many switches to after 8 batches, made ready now so that
        # both models serve within one run here (in use it compiles in the background).
        twin = det._engine._throughput_model() if backend == "openvino" else det._engine._per_core_session()
        assert (twin is not None or physical_cores() == 1) and len(hazelnut_paths) > 8
        for kwargs in ({}, {"batch_size": 3}, {"jobs": 1}):
            many = list(det.predict_many(hazelnut_paths, **kwargs))
            assert [p.source for p in many] == hazelnut_paths, kwargs
            np.testing.assert_allclose([p.raw_score for p in many], [p.raw_score for p in loop], rtol=1e-5, err_msg=str(kwargs))
            for a, b in zip(many, loop):
                assert a.anomaly_map.shape == b.anomaly_map.shape and a.timings["decode"] > 0
                np.testing.assert_allclose(a.raw_anomaly_map, b.raw_anomaly_map, rtol=1e-5, atol=1e-6)
                assert a.label == b.label
    # Distinct scores, so a swapped pair would be seen.
    assert len(set(np.round([p.raw_score for p in loop], 6))) == len(loop)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_tensor_rows_take_the_same_path_and_numbers(seg_bundle: Path, backend: str) -> None:
    from edgeanomaly.data import preprocess

    with load(seg_bundle, backend=backend) as det:
        images = [part_image(64, 80, defect=(3, 3, 5 + 4 * i, 6), seed=i) for i in range(5)]
        batch = np.stack([preprocess(im, det.preprocessing) for im in images])
        one_by_one = [det.predict_tensor(batch[i : i + 1])[0].raw_score for i in range(len(images))]
        together = det.predict_tensor(batch)
        np.testing.assert_allclose([p.raw_score for p in together], one_by_one, rtol=1e-5)
        np.testing.assert_allclose([p.raw_score for p in together], [det.predict(im).raw_score for im in images], rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_many_reads_an_endless_iterable_lazily(seg_bundle: Path, backend: str) -> None:
    pulled = 0

    def endless() -> Iterator[np.ndarray]:
        nonlocal pulled
        for i in itertools.count():
            if i >= 200:
                raise AssertionError("predict_many read 200 images ahead: its read-ahead is not bounded")
            pulled += 1
            yield part_image(64, 80, seed=i)

    with load(seg_bundle, backend=backend) as det:
        for batch_size in (1, 3):
            pulled = 0
            results = det.predict_many(endless(), batch_size=batch_size)
            first = list(itertools.islice(results, 5))
            results.close()  # a consumer that stops early: nothing keeps running
            assert len(first) == 5
            # 5 results + 4 prepared ahead + one batch being assembled + batches in flight (a few).
            assert pulled <= 5 + 4 + batch_size + 4 * batch_size, (batch_size, pulled)
        assert det.predict(part_image(64, 80)).raw_score > 0  # still usable


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unreadable_file_raises_at_its_place(seg_bundle: Path, hazelnut_paths: list[str], tmp_path: Path, backend: str) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths = hazelnut_paths[:5] + [str(broken)] + hazelnut_paths[5:8]
    got: list[str] = []
    with load(seg_bundle, backend=backend) as det:
        with pytest.raises(ImageReadError, match="broken.png"):
            for p in det.predict_many(paths):
                got.append(p.source)
        # Only images before the broken one came back, in order (some in flight may be dropped).
        assert got == paths[: len(got)] and len(got) <= 5
        with pytest.raises(ImageReadError, match="broken.png"):
            list(det.predict_many([str(broken)] + hazelnut_paths[:3]))
        assert det.predict(hazelnut_paths[0]).source == hazelnut_paths[0]


def test_openvino_throughput_model_runs_f32_and_only_for_the_latency_default(seg_bundle: Path) -> None:
    """predict_many on a latency-compiled CPU model uses a THROUGHPUT twin, at the verified precision."""
    from edgeanomaly.runtime._backends._openvino import OpenVINOBackend, _type_name

    engine = OpenVINOBackend(seg_bundle / "openvino" / "model.xml")
    try:
        twin, requests = engine._throughput_model()  # waits for the background compile
        assert twin is not engine._compiled and requests >= 1
        assert str(twin.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
        assert _type_name(twin.get_property("INFERENCE_PRECISION_HINT")) == engine.execution_precision == "f32"
        assert engine._throughput_model()[0] is twin  # compiled once
    finally:
        engine.close()
    # Settings the user chose are kept: no twin with explicit streams or the throughput hint.
    for kwargs in ({"num_streams": 1}, {"performance_hint": "THROUGHPUT"}):
        engine = OpenVINOBackend(seg_bundle / "openvino" / "model.xml", **kwargs)
        try:
            assert engine._throughput_model() is None, kwargs
        finally:
            engine.close()


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_a_stream_keeps_the_latency_model(seg_bundle: Path, tmp_path: Path, backend: str) -> None:
    """A camera or video gives one frame at a time: each frame keeps every core (the model
    loaded for latency), never the throughput twin that runs one image per core."""
    import cv2

    video = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 64))
    for i in range(20):
        writer.write(np.full((64, 80, 3), 100 + i, np.uint8))
    writer.release()
    with load(seg_bundle, backend=backend) as det:
        assert len(list(det.stream(str(video)))) == 20
        assert len(list(det.predict_many([np.full((64, 80, 3), 90, np.uint8)] * 12, throughput=False))) == 12
        engine = det._engine
        started = engine._twin_thread if backend == "openvino" else engine._per_core_thread
        assert started is None


class _CountingSession:
    """An ONNX Runtime session that counts its runs (InferenceSession's methods cannot be patched)."""

    def __init__(self, session: object) -> None:
        self.session, self.runs = session, 0

    def run(self, *args: object, **kwargs: object) -> object:
        self.runs += 1
        return self.session.run(*args, **kwargs)  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_predict_for_throughput_equals_predict_and_runs_on_the_twin(
    seg_bundle: Path, hazelnut_paths: list[str], backend: str
) -> None:
    """predict(throughput=True) from several threads (what serve does with concurrent one-image
    requests): the same numbers as predict, on the throughput model once it is compiled."""
    from concurrent.futures import ThreadPoolExecutor

    with load(seg_bundle, backend=backend) as det:
        loop = [det.predict(p) for p in hazelnut_paths]
        engine = det._engine
        # The first call starts the twin and does not wait for it: the latency model answers.
        first = det.predict(hazelnut_paths[0], throughput=True)
        assert first.raw_score == pytest.approx(loop[0].raw_score, rel=1e-5)
        if backend == "openvino":
            assert engine._twin_thread is not None
            assert engine._throughput_model() is not None  # wait for the compile
        else:
            assert engine._per_core_thread is not None
            assert engine._per_core_session() is not None
            engine._per_core = _CountingSession(engine._per_core)
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda p: det.predict(p, throughput=True), hazelnut_paths))
        assert [p.source for p in together] == hazelnut_paths
        np.testing.assert_allclose([p.raw_score for p in together], [p.raw_score for p in loop], rtol=1e-5)
        for a, b in zip(together, loop):
            np.testing.assert_allclose(a.raw_anomaly_map, b.raw_anomaly_map, rtol=1e-5, atol=1e-6)
            assert a.label == b.label
        if backend == "openvino":
            assert 1 <= engine._twin_pool.created <= max(2, engine._twin[1])
        else:
            assert engine._per_core.runs == len(hazelnut_paths)
        # A one-row tensor takes the same path.
        x = det.predict_tensor(np.zeros((1, 3, *det.input_size), np.float32), throughput=True)[0]
        assert x.raw_score == pytest.approx(det.predict_tensor(np.zeros((1, 3, *det.input_size), np.float32))[0].raw_score, rel=1e-5)


@pytest.mark.parametrize("backend,settings", [("openvino", {"num_streams": 1}), ("onnxruntime", {"num_threads": 1})])
def test_predict_for_throughput_without_a_twin_runs_the_loaded_model(seg_bundle: Path, backend: str, settings: dict) -> None:
    """Settings the user chose (streams, threads) are kept: no second model is built for them."""
    with load(seg_bundle, backend=backend, **settings) as det:
        image = part_image(64, 80, seed=3)
        assert det.predict(image, throughput=True).raw_score == pytest.approx(det.predict(image).raw_score, rel=1e-6)
        engine = det._engine
        if backend == "openvino":
            assert engine._throughput_model() is None and engine._twin_pool is None
        else:
            assert engine._per_core_thread is None and engine._per_core is None
