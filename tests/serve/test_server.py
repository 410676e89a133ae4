"""`edgeanomaly serve` end to end: V2 answers equal `predict`, health, metadata, metrics, bad requests."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from edgeanomaly.serve._protocol import parse_infer_request

pytestmark = pytest.mark.slow


def _images(data: Path) -> list[Path]:
    return sorted((data / "metal" / "test").glob("*/*.png"))


def _bytes_request(paths: list[Path], outputs: list[str] | None = None) -> dict:
    req: dict = {"inputs": [{"name": "image_bytes", "shape": [len(paths)], "datatype": "BYTES",
                             "data": [base64.b64encode(p.read_bytes()).decode() for p in paths]}]}
    if outputs:
        req["outputs"] = [{"name": o} for o in outputs]
    return req


def _outputs(body: dict) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in body["outputs"]}


def test_image_bytes_answer_equals_predict(server, serve_bundle, serve_data):
    """Done-when of issue 11: same label and score (FP32 tolerance) as `predict` on the same backend."""
    from edgeanomaly.runtime import load

    paths = _images(serve_data)[:6]
    status, body = server.post_json("/v2/models/dfm/infer",
                                    _bytes_request(paths, ["pred_score", "raw_score", "pred_label", "anomaly_map", "pred_mask"]))
    assert status == 200, body
    got = _outputs(body)
    with load(serve_bundle, backend="onnxruntime") as det:
        want = det.predict_batch([str(p) for p in paths])
    np.testing.assert_allclose(got["raw_score"], [p.raw_score for p in want], rtol=1e-5)
    np.testing.assert_allclose(got["pred_score"], [p.score for p in want], rtol=1e-5, atol=1e-6)
    assert got["pred_label"].tolist() == [p.label for p in want]
    np.testing.assert_allclose(got["anomaly_map"][:, 0], np.stack([p.anomaly_map for p in want]), rtol=1e-4, atol=1e-5)
    assert (got["pred_mask"][:, 0] == np.stack([p.mask for p in want])).mean() > 0.999  # boundary pixels may flip


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_concurrent_one_image_requests_run_together_on_the_throughput_model(serve_bundle, serve_data, backend):
    """Issue 15: one-image requests that arrive while others are scored take the Detector's
    throughput model (the predict_many path) instead of queueing one by one on the latency
    model; a request alone keeps the latency model. Answers equal predict either way."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from edgeanomaly.serve._inference import ServedBundle

    paths = _images(serve_data)
    served = ServedBundle(serve_bundle, "dfm", backend=backend)
    served.load()
    try:
        det = served.detector
        want = {p: det.predict(str(p)).raw_score for p in paths}
        for p in paths[:3]:  # one at a time: never the throughput model
            outputs, count = served.infer({"image_bytes": [p.read_bytes()]})
            assert count == 1 and outputs["raw_score"][0] == pytest.approx(want[p], rel=1e-5)
        assert served.concurrent_images == 0
        engine = det._engine
        assert (engine._twin_thread if backend == "openvino" else engine._per_core_thread) is None

        start = threading.Barrier(4)

        def client(k: int) -> list[tuple[Path, float]]:
            start.wait()
            got = []
            for p in paths[k::4] * 3:
                outputs, _ = served.infer({"image_bytes": [p.read_bytes()]}, ["raw_score", "pred_label"])
                got.append((p, float(outputs["raw_score"][0])))
            return got

        with ThreadPoolExecutor(4) as pool:
            answers = [a for part in pool.map(client, range(4)) for a in part]
        assert len(answers) == 3 * len(paths)
        for p, score in answers:
            assert score == pytest.approx(want[p], rel=1e-5), p
        assert 0 < served.concurrent_images <= len(answers)
        # The throughput model was asked for (its build started), on this backend's terms.
        assert (engine._twin_thread if backend == "openvino" else engine._per_core_thread) is not None
    finally:
        served.close()


def test_fp32_tensor_input_binary_extension(server, serve_bundle, serve_data):
    """The graph contract's tensor, sent with the binary extension, answers like predict_tensor."""
    from edgeanomaly.data import PreprocessConfig, preprocess, read_image
    from edgeanomaly.runtime import load

    paths = _images(serve_data)[:3]
    with load(serve_bundle, backend="onnxruntime") as det:
        batch = np.stack([preprocess(read_image(p), det.preprocessing) for p in paths])
        want = det.predict_tensor(batch)
        from_files = [det.predict(str(p)) for p in paths]  # independent path: decode + preprocess inside
    np.testing.assert_allclose([p.raw_score for p in want], [p.raw_score for p in from_files], rtol=1e-6)
    head = json.dumps({"inputs": [{"name": "image", "shape": list(batch.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": batch.nbytes}}],
                       "outputs": [{"name": "raw_score", "parameters": {"binary_data": True}},
                                   {"name": "raw_anomaly_map", "parameters": {"binary_data": True}}]}).encode()
    status, headers, data = server.post("/v2/models/dfm/infer", head + batch.tobytes(),
                                        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))})
    assert status == 200, data[:300]
    from edgeanomaly.runtime._backends._remote import _parse_infer_response

    got = _parse_infer_response(data, headers.get("inference-header-content-length"))
    np.testing.assert_allclose(got["raw_score"], [p.raw_score for p in want], rtol=1e-5)
    np.testing.assert_allclose(got["raw_anomaly_map"][:, 0], np.stack([p.raw_anomaly_map for p in want]), rtol=1e-5, atol=1e-5)
    assert PreprocessConfig.from_dict(det.manifest.preprocessing).input_size == tuple(got["raw_anomaly_map"].shape[2:])


def test_health_metadata_and_metrics(server, serve_bundle):
    from edgeanomaly.bundle import read_bundle

    assert server.get("/v2/health/live") == (200, b'{"live":true}')
    assert server.get("/v2/health/ready") == (200, b'{"ready":true}')
    status, data = server.get("/v2/models/dfm")
    meta = json.loads(data)
    with read_bundle(serve_bundle) as b:
        info = b.manifest.model_info
        h, w = b.manifest.input["shape"][2:]
    assert status == 200 and meta["name"] == "dfm"
    assert {k: meta["parameters"][k] for k in info} == info  # every model_info key, unchanged
    assert {"name": "image", "datatype": "FP32", "shape": [-1, 3, h, w]} in meta["inputs"]
    assert [o["name"] for o in meta["outputs"]][:3] == ["pred_score", "raw_score", "pred_label"]
    # one good request, then the counters say so
    server.post_json("/v2/models/dfm/infer", {"inputs": [{"name": "image", "shape": [1, 3, h, w], "datatype": "FP32",
                                                          "data": [0.5] * (3 * h * w)}]})
    status, data = server.get("/metrics")
    text = data.decode()
    assert status == 200
    assert 'edgeanomaly_requests_total{input="image",model="dfm"}' in text
    assert "edgeanomaly_request_seconds_bucket" in text


def _bad_requests(h: int, w: int, big: int) -> list[tuple[str, str, bytes, dict, int]]:
    """(what, path, body, headers, expected status): twenty kinds of wrong."""
    png = (Path(__file__).parent / "_tiny.png")
    ok_img = base64.b64encode(png.read_bytes()).decode() if png.exists() else ""
    j = lambda d: json.dumps(d).encode()  # noqa: E731
    img = lambda shape, data, dt="FP32": {"inputs": [{"name": "image", "shape": shape, "datatype": dt, "data": data}]}  # noqa: E731
    full = [0.5] * (3 * h * w)
    truncated_jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 64
    return [
        ("malformed JSON", "/v2/models/dfm/infer", b"{bad", {}, 400),
        ("JSON array", "/v2/models/dfm/infer", b"[1, 2]", {}, 400),
        ("no inputs", "/v2/models/dfm/infer", j({"outputs": []}), {}, 400),
        ("empty inputs", "/v2/models/dfm/infer", j({"inputs": []}), {}, 400),
        ("input without name", "/v2/models/dfm/infer", j({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}), {}, 400),
        ("unknown input", "/v2/models/dfm/infer", j({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}), {}, 400),
        ("wrong datatype", "/v2/models/dfm/infer", j(img([1, 3, h, w], [1] * (3 * h * w), "INT32")), {}, 400),
        ("unknown datatype", "/v2/models/dfm/infer", j(img([1, 3, h, w], full, "FLOAT")), {}, 400),
        ("wrong shape", "/v2/models/dfm/infer", j(img([1, 3, h + 1, w], [0.5] * (3 * (h + 1) * w))), {}, 400),
        ("wrong rank", "/v2/models/dfm/infer", j(img([3, h, w], full)), {}, 400),
        ("data count mismatch", "/v2/models/dfm/infer", j(img([1, 3, h, w], full[:-1])), {}, 400),
        ("strings in FP32 data", "/v2/models/dfm/infer", j(img([1, 3, h, w], ["a"] * (3 * h * w))), {}, 400),
        ("values out of [0, 1]", "/v2/models/dfm/infer", j(img([1, 3, h, w], [255.0] * (3 * h * w))), {}, 400),
        ("negative shape", "/v2/models/dfm/infer", j(img([-1, 3, h, w], full)), {}, 400),
        ("not base64", "/v2/models/dfm/infer", j({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}]}), {}, 400),
        ("not an image", "/v2/models/dfm/infer", j({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES",
                                                              "data": [base64.b64encode(b"hello world").decode()]}]}), {}, 400),
        ("truncated JPEG", "/v2/models/dfm/infer", j({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES",
                                                                "data": [base64.b64encode(truncated_jpeg).decode()]}]}), {}, 400),
        ("empty image bytes", "/v2/models/dfm/infer", j({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [""]}]}), {}, 400),
        ("unknown output", "/v2/models/dfm/infer", j({**img([1, 3, h, w], full), "outputs": [{"name": "heatmap"}]}), {}, 400),
        ("header length not a number", "/v2/models/dfm/infer", j(img([1, 3, h, w], full)), {"Inference-Header-Content-Length": "abc"}, 400),
        ("header length beyond body", "/v2/models/dfm/infer", b"{}", {"Inference-Header-Content-Length": "999"}, 400),
        ("binary size beyond body", "/v2/models/dfm/infer",
         (lambda head: head + b"\0" * 16)(j({"inputs": [{"name": "image", "shape": [1, 3, h, w], "datatype": "FP32",
                                                          "parameters": {"binary_data_size": 4 * 3 * h * w}}]})), "len", 400),
        ("binary BYTES length prefix lies", "/v2/models/dfm/infer",
         (lambda head: head + struct.pack("<I", 10**6) + b"xx")(j({"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "BYTES",
                                                                               "parameters": {"binary_data_size": 6}}]})), "len", 400),
        ("two inputs", "/v2/models/dfm/infer", j({"inputs": [img([1, 3, h, w], full)["inputs"][0],
                                                             {"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [ok_img]}]}), {}, 400),
        ("too many images", "/v2/models/dfm/infer", j({"inputs": [{"name": "image_bytes", "shape": [65], "datatype": "BYTES",
                                                                 "data": ["AA=="] * 65}]}), {}, 400),
        ("unknown model", "/v2/models/nope/infer", j(img([1, 3, h, w], full)), {}, 404),
        ("unknown model metadata", "/v2/models/nope", b"", {"method": "GET"}, 404),
        ("payload over the size limit", "/v2/models/dfm/infer", b"{" + b" " * big + b"}", {}, 413),
        ("inspect without an image", "/inspect", b"", {}, 400),
        ("inspect with a broken image", "/inspect", truncated_jpeg, {}, 400),
    ]


def test_bad_requests_get_4xx_and_the_server_keeps_serving(server):
    h = w = 128
    cases = _bad_requests(h, w, big=5 << 20)  # the fixture server's limit is 4 MB
    assert len({c[0] for c in cases}) >= 20
    for what, path, body, headers, expected in cases:
        if headers == "len":
            headers = {"Inference-Header-Content-Length": str(body.index(b"}]}") + 3)}
        if headers.get("method") == "GET":
            status, data = server.get(path)
        else:
            status, _, data = server.post(path, body, headers)
        assert status == expected, f"{what}: HTTP {status} {data[:200]!r}"
        message = json.loads(data)["error"]
        assert "expected" in message.lower(), f"{what}: {message}"  # says what was expected
        assert server.alive(), what
    status, body = server.post_json("/v2/models/dfm/infer", {"inputs": [{"name": "image", "shape": [1, 3, h, w],
                                                                         "datatype": "FP32", "data": [0.5] * (3 * h * w)}]})
    assert status == 200 and [o["name"] for o in body["outputs"]] == ["pred_score", "raw_score", "pred_label"]
    status, data = server.get("/metrics")
    assert 'edgeanomaly_request_errors_total{path="infer",status="400"}' in data.decode()
    assert 'edgeanomaly_request_errors_total{path="infer",status="413"} 1.0' in data.decode()


def test_protocol_parser_reads_binary_bytes_tensor():
    """Binary BYTES elements are 4-byte little-endian lengths + bytes (Triton's layout)."""
    raw = struct.pack("<I", 3) + b"abc" + struct.pack("<I", 0)
    head = json.dumps({"inputs": [{"name": "image_bytes", "shape": [2], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    parsed = parse_infer_request(head + raw, str(len(head)))
    assert parsed.inputs["image_bytes"] == [b"abc", b""]
