"""Fixtures for the serving tests: one small exported bundle and `edgeanomaly serve` subprocesses.

Servers bind 127.0.0.1 on free ports, run as subprocesses (kserve and tritonclient.grpc cannot
share a process: both define the protobuf package ``inference``), wait at most
``_serving.READY_TIMEOUT_S`` for readiness and are always killed in teardown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from _serving import Server, free_port, has, start_server, stop_server


@pytest.fixture
def unused_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def serve_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DFM bundle (segmentation, 128 px, ONNX + OpenVINO FP32): the cheapest model to export."""
    pytest.importorskip("torch", reason="building a bundle needs the [train] extra")
    from edgeanomaly.data import generate_synthetic_dataset
    from edgeanomaly.export import export_checkpoint
    from edgeanomaly.models._pipeline import fit_run

    root = tmp_path_factory.mktemp("serve")
    generate_synthetic_dataset(root / "data", ["metal"], n_train=8, n_test=4, seed=0, size=128)
    result = fit_run("dfm", root / "data", root / "dfm.run", category="metal", image_size=128,
                     backbone="efficientnet_lite0", pretrained=True, random_state=0)
    export_checkpoint(result.checkpoint, root / "dfm.bundle", ["onnx", "openvino"], ["fp32"])
    return root / "dfm.bundle"


@pytest.fixture(scope="session")
def serve_data(serve_bundle: Path) -> Path:
    """The labelled synthetic dataset the bundle was fitted on (MVTec layout, category metal)."""
    return serve_bundle.parent / "data"


@pytest.fixture(scope="session")
def server(serve_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`edgeanomaly serve` on the DFM bundle (ONNX Runtime), shared by the tests of a session."""
    if not has("kserve"):
        pytest.skip('edgeanomaly serve needs the [serve] extra: pip install "edgeanomaly[serve]"')
    s = start_server(serve_bundle, tmp_path_factory.mktemp("serve-logs"), "--backend", "onnxruntime",
                     "--max-request-mb", "4")
    try:
        yield s
    finally:
        stop_server(s)
