"""``ea.Bundle(path).serve()`` serves what ``edgeanomaly serve`` serves: the front door's remote
detector gets the local backend's answers from it and validates the artifact the server runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _serving import has, start_server, stop_server

import edgeanomaly as ea

pytestmark = pytest.mark.slow


def test_bundle_serve_answers_like_the_local_backend(serve_bundle: Path, serve_data: Path, tmp_path: Path) -> None:
    if not has("kserve"):
        pytest.skip('serving needs the [serve] extra: pip install "edgeanomaly[serve]"')

    def launch(http_port: int, grpc_port: int) -> list[str]:
        code = (f"import edgeanomaly as ea; ea.Bundle({str(serve_bundle)!r}).serve(http_port={http_port}, "
                f"grpc_port={grpc_port}, backend='onnxruntime', precision='fp32')")
        return [sys.executable, "-c", code]

    server = start_server(serve_bundle, tmp_path, launch=launch)
    try:
        image = serve_data / "metal" / "test" / "scratch" / "000.png"
        url = f"http://127.0.0.1:{server.http_port}"
        with ea.load(serve_bundle, "remote", url=url) as remote, ea.load(serve_bundle, "onnxruntime") as local:
            got, expected = remote.predict(image), local.predict(image)
            assert remote.backend == "remote" and remote.artifact.name == local.artifact.name == "onnx-fp32"
            report = remote.validate(serve_data, category="metal")
        assert got.score == pytest.approx(expected.score, rel=1e-4, abs=1e-6)
        assert got.anomaly_map is not None and abs(got.anomaly_map - expected.anomaly_map).max() < 1e-4
        assert [a.artifact for a in report.artifacts] == ["onnx-fp32"] and report.artifacts[0].backend == "remote"
        assert report.artifacts[0].status in {"pass", "inconclusive"}, report.artifacts[0].reasons
        assert report.artifacts[0].reproduction["label_flips"] == 0
    finally:
        stop_server(server)
