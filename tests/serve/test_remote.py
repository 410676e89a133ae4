"""The `remote` backend against `edgeanomaly serve`: same answers as local, validate passes, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow


def _paths(data):
    return [str(p) for p in sorted((data / "metal" / "test").glob("*/*.png"))]


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_remote_predictions_equal_local(server, serve_bundle, serve_data, scheme):
    from edgeanomaly.runtime import load

    if scheme == "grpc":
        pytest.importorskip("tritonclient.grpc", reason='grpc:// needs tritonclient[grpc] (the [serve] extra)')
        url = f"grpc://127.0.0.1:{server.grpc_port}"
    else:
        url = server.url
    paths = _paths(serve_data)
    with load(serve_bundle, backend="onnxruntime") as local, load(serve_bundle, backend="remote", url=url) as remote:  # both name it "dfm"
        assert remote.backend == "remote" and remote.device == url
        want, got = local.predict_batch(paths), remote.predict_batch(paths, batch_size=4)
        many = list(remote.predict_many(paths[:3]))
    np.testing.assert_allclose([p.raw_score for p in got], [p.raw_score for p in want], rtol=1e-5)
    assert [p.label for p in got] == [p.label for p in want]
    np.testing.assert_allclose(np.stack([p.anomaly_map for p in got]), np.stack([p.anomaly_map for p in want]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([p.raw_score for p in many], [p.raw_score for p in want[:3]], rtol=1e-5)


def test_validate_backend_remote_passes(server, serve_bundle, serve_data):
    """Done-when of issue 11: `edgeanomaly validate B --backend remote --url ...` passes."""
    from edgeanomaly.cli import main

    result = CliRunner().invoke(main, ["validate", str(serve_bundle), "--data", str(serve_data), "--category", "metal",
                                       "--backend", "remote", "--url", server.url, "--model-name", "dfm", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "remote/" + server.url in result.output


def test_predict_cli_remote_json(server, serve_bundle, serve_data):
    from edgeanomaly.cli import main

    path = _paths(serve_data)[0]
    remote = CliRunner().invoke(main, ["predict", str(serve_bundle), path, "--json", "--backend", "remote",
                                       "--url", server.url, "--model-name", "dfm"])
    local = CliRunner().invoke(main, ["predict", str(serve_bundle), path, "--json", "--backend", "onnxruntime"])
    assert remote.exit_code == 0, remote.output
    r, lo = json.loads(remote.output.splitlines()[0]), json.loads(local.output.splitlines()[0])
    assert r["label"] == lo["label"] and abs(r["raw_score"] - lo["raw_score"]) <= 1e-5 * abs(lo["raw_score"])


def test_remote_errors_name_the_url(serve_bundle, server, unused_url):
    from edgeanomaly.errors import BackendUnavailableError, ConfigError
    from edgeanomaly.runtime import load

    dead = unused_url
    with pytest.raises(BackendUnavailableError, match=dead.replace(".", r"\.")):
        load(serve_bundle, backend="remote", url=dead)
    with pytest.raises(BackendUnavailableError, match="unknown model 'nope'"):
        load(serve_bundle, backend="remote", url=server.url, model_name="nope")
    with pytest.raises(ConfigError, match="url"):
        load(serve_bundle, backend="remote")
    with pytest.raises(ConfigError, match="http://"):
        load(serve_bundle, backend="remote", url="ftp://127.0.0.1:1")


def test_grpc_bad_request_is_invalid_argument(server):
    grpcclient = pytest.importorskip("tritonclient.grpc", reason="needs tritonclient[grpc] (the [serve] extra)")
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        bad = grpcclient.InferInput("image", [1, 3, 64, 64], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3, 64, 64), np.float32))
        with pytest.raises(InferenceServerException) as info:
            client.infer("dfm", [bad], client_timeout=30)
        assert "INVALID_ARGUMENT" in str(info.value.status()) and "Expected input 'image' of shape" in info.value.message()
        good = grpcclient.InferInput("image", [1, 3, 128, 128], "FP32")
        good.set_data_from_numpy(np.full((1, 3, 128, 128), 0.5, np.float32))
        assert client.infer("dfm", [good], client_timeout=30).as_numpy("pred_label").shape == (1,)
    finally:
        client.close()


def _metric(server, name: str) -> float:
    status, data = server.get("/metrics")
    assert status == 200
    lines = [line for line in data.decode().splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]
    return sum(float(line.split()[-1]) for line in lines)


def test_concurrent_grpc_requests_are_scored_concurrently(server):
    """gRPC requests go through KServe's data plane, which calls a synchronous ``predict`` on
    the server's event loop: one request at a time, and REST (health probes included) blocked
    meanwhile. Scored on a worker thread, concurrent gRPC requests meet in flight and take the
    throughput model, as concurrent REST requests do."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    grpcclient = pytest.importorskip("tritonclient.grpc", reason="needs tritonclient[grpc] (the [serve] extra)")
    before = _metric(server, "edgeanomaly_concurrent_images_total")
    images_before = _metric(server, "edgeanomaly_images_total")
    start = threading.Barrier(4)
    rng = np.random.default_rng(0)
    images = [rng.random((1, 3, 128, 128), dtype=np.float32) for _ in range(4)]

    def client(k: int) -> list[float]:
        c = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        try:
            start.wait()
            scores = []
            for _ in range(15):
                x = grpcclient.InferInput("image", [1, 3, 128, 128], "FP32")
                x.set_data_from_numpy(images[k])
                scores.append(float(c.infer("dfm", [x], client_timeout=60).as_numpy("raw_score")[0]))
            return scores
        finally:
            c.close()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(client, range(4)))
    for scores in answers:  # the same image, the same score, whichever model ran it
        np.testing.assert_allclose(scores, scores[0], rtol=1e-5)
    assert len({round(s[0], 6) for s in answers}) == 4
    assert _metric(server, "edgeanomaly_concurrent_images_total") > before
    # gRPC traffic is in the request and image counters too, not only REST's.
    assert _metric(server, "edgeanomaly_images_total") - images_before == 4 * 15


@pytest.fixture(scope="module")
def openvino_server(serve_bundle, tmp_path_factory):
    from _serving import has, start_server, stop_server

    if not has("kserve"):
        pytest.skip('edgeanomaly serve needs the [serve] extra: pip install "edgeanomaly[serve]"')
    s = start_server(serve_bundle, tmp_path_factory.mktemp("ov-logs"), "--backend", "openvino")
    try:
        yield s
    finally:
        stop_server(s)


def test_remote_reports_the_served_artifact_over_http_and_grpc(openvino_server, serve_bundle, serve_data):
    """Issue 20 item 10: over grpc:// the Detector said 'onnx-fp32' (the bundle's default) while
    the server runs openvino-fp32; http:// read it from the metadata's parameters."""
    pytest.importorskip("tritonclient.grpc", reason='grpc:// needs tritonclient[grpc] (the [serve] extra)')
    import subprocess
    import sys

    status, data = openvino_server.get("/v2/models/dfm")
    served = json.loads(data)["parameters"]["artifact"]
    assert status == 200 and served == "openvino-fp32"
    path = _paths(serve_data)[0]
    reports = {}
    for url in (openvino_server.url, f"grpc://127.0.0.1:{openvino_server.grpc_port}"):
        # A process of its own: tritonclient.grpc and kserve cannot share one (see _remote.py).
        proc = subprocess.run([sys.executable, "-m", "edgeanomaly.cli", "predict", str(serve_bundle), path, "--json",
                               "--backend", "remote", "--url", url, "--model-name", "dfm"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        reports[url.split(":")[0]] = json.loads(proc.stdout.splitlines()[-1])["summary"]["artifact"]
    assert reports == {"http": served, "grpc": served}
