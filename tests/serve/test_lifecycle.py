"""SIGTERM: requests in flight are answered, then the server exits; nothing is written to disk."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from _serving import has, start_server, stop_server

pytestmark = pytest.mark.slow


def test_sigterm_answers_requests_in_flight(serve_bundle, tmp_path):
    if not has("kserve"):
        pytest.skip('edgeanomaly serve needs the [serve] extra: pip install "edgeanomaly[serve]"')
    # Two bundles in one server (the same one under two names), so several models are served too.
    server = start_server(serve_bundle, tmp_path, str(serve_bundle), "--backend", "onnxruntime",
                          "--model-name", "dfm", "--model-name", "second")
    try:
        n = 16  # images per request
        body = json.dumps({"inputs": [{"name": "image", "shape": [n, 3, 128, 128], "datatype": "FP32",
                                       "data": [0.25] * (n * 3 * 128 * 128)}]}).encode()
        results: list[tuple[int, bytes] | Exception] = []
        finished: list[float] = []

        def call(model: str) -> None:
            try:
                status, _, data = server.post(f"/v2/models/{model}/infer", body, timeout=120)
                results.append((status, data))
                finished.append(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on below
                results.append(exc)

        assert server.get("/v2/models/second")[0] == 200
        # Six requests at once on 2 cores: when the first answer arrives the others are still
        # being scored. SIGTERM goes then (not after a fixed sleep, which a fast machine beats).
        threads = [threading.Thread(target=call, args=(m,)) for m in ("dfm", "second") * 3]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while not results and time.monotonic() < deadline:
            time.sleep(0.002)
        killed_at = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        for t in threads:
            t.join(timeout=120)
        server.proc.wait(timeout=60)
        assert len(results) == len(threads)
        assert max(finished) > killed_at, "every request finished before SIGTERM: the test proves nothing"
        for r in results:
            assert not isinstance(r, Exception), r
            status, data = r
            assert status == 200, data[:300]
            assert len(json.loads(data)["outputs"][0]["data"]) == n
        assert server.proc.returncode == 0, server.log.read_text()[-2000:]
        with pytest.raises(OSError):
            server.get("/v2/health/live", timeout=2)
        assert sorted(p.name for p in tmp_path.iterdir()) == [server.log.name]  # nothing else written
    finally:
        stop_server(server)
