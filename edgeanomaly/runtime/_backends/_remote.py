"""Remote backend: run the graph on an Open Inference Protocol (KServe V2) server.

The server can be ``edgeanomaly serve``, NVIDIA Triton or OpenVINO Model Server (repositories
from ``edgeanomaly deploy``), or anything else that speaks the protocol. Only the graph runs
remotely: the :class:`~edgeanomaly.runtime.Detector` preprocesses the images and applies the
bundle's calibration locally, exactly as with a local backend, so answers agree wherever the
graph runs. There is no fallback to local inference: an unreachable server is an error that
names the URL.

Transports: ``http://`` / ``https://`` with the standard library (V2 REST with the binary
tensor extension, so no extra package is needed on a device), ``grpc://`` with
``tritonclient.grpc`` (the ``[serve]`` extra). ``tritonclient.grpc`` and ``kserve`` both define
the protobuf package ``inference``, so they cannot share a process: use HTTP inside a process
that also runs the server.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

from edgeanomaly.errors import BackendUnavailableError, ConfigError
from edgeanomaly.runtime._backends import TensorInfo

__all__ = ["RemoteBackend", "RemoteError", "connect", "connect_backend", "remote_devices", "served_model_name"]

#: V2 datatype -> NumPy dtype of the tensors this backend sends and receives.
_V2_DTYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "BOOL": np.bool_, "INT64": np.int64}
#: Output names of ``edgeanomaly serve`` that carry the graph's raw outputs.
_SERVE_RAW = {"pred_score": "raw_score", "anomaly_map": "raw_anomaly_map"}


def served_model_name(bundle: str | os.PathLike[str]) -> str:
    """The default model name of a bundle on a server: its folder or zip name without suffix.

    ``edgeanomaly serve``, ``edgeanomaly deploy`` and the remote backend all use it, so
    ``serve pc.bundle`` and ``predict pc.bundle IMG --backend remote --url ...`` meet at ``pc``.

    >>> served_model_name("lines/pc.bundle.zip")
    'pc'
    """
    name = Path(bundle).name
    for suffix in (".zip", ".bundle"):
        name = name.removesuffix(suffix)
    return name or "model"


class RemoteError(BackendUnavailableError):
    """The inference server could not be reached, timed out or refused a request."""


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


class _HTTPClient:
    """V2 REST over keep-alive connections, one per thread (``http.client`` is not thread-safe)."""

    def __init__(self, url: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(url)
        if not parsed.hostname:
            raise ConfigError(f"Expected a server URL such as http://127.0.0.1:8080, got {url!r}")
        self.url = url.rstrip("/")
        self._https = parsed.scheme == "https"
        self._host, self._port = parsed.hostname, parsed.port or (443 if self._https else 80)
        self._prefix = parsed.path.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        target = self._prefix + path
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # A keep-alive connection the server closed meanwhile: reconnect once.
                conn.close()
                self._local.conn = None
                if attempt:
                    raise RemoteError(f"Inference server {self.url} closed the connection: {exc}") from exc
            except socket.timeout as exc:
                conn.close()
                self._local.conn = None
                raise RemoteError(f"Inference server {self.url} did not answer {method} {path} within {self._timeout:g} s") from exc
            except OSError as exc:
                conn.close()
                self._local.conn = None
                raise RemoteError(f"Cannot reach inference server {self.url}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, path: str) -> dict[str, Any]:
        status, _, data = self.request("GET", path)
        if status != 200:
            raise RemoteError(f"Inference server {self.url} answered GET {path} with HTTP {status}: {data[:300].decode('utf-8', 'replace')}")
        return json.loads(data)

    def infer(self, model: str, batch: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
        header = {
            "inputs": [{"name": "image", "shape": list(batch.shape), "datatype": "FP32",
                        "parameters": {"binary_data_size": batch.nbytes}}],
            "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs],
        }
        head = json.dumps(header).encode()
        path = f"/v2/models/{urllib.parse.quote(model)}/infer"
        status, headers, data = self.request(
            "POST", path, head + batch.tobytes(),
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))},
        )
        if status != 200:
            raise RemoteError(f"Inference server {self.url} refused POST {path} (HTTP {status}): {data[:300].decode('utf-8', 'replace')}")
        return _parse_infer_response(data, headers.get("inference-header-content-length"))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


def _parse_infer_response(data: bytes, header_length: str | None) -> dict[str, np.ndarray]:
    """A V2 infer response, JSON or with the binary tensor extension -> {name: array}."""
    n = int(header_length) if header_length else len(data)
    body = json.loads(data[:n])
    offset = n
    out: dict[str, np.ndarray] = {}
    for o in body.get("outputs", []):
        dtype = _V2_DTYPES.get(o["datatype"])
        if dtype is None:
            raise RemoteError(f"Expected an output of datatype {', '.join(_V2_DTYPES)}, got {o['datatype']} for {o['name']}")
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            arr = np.frombuffer(data[offset : offset + int(size)], dtype=dtype)
            offset += int(size)
        else:
            arr = np.asarray(o["data"], dtype=dtype)
        out[o["name"]] = arr.reshape(_dims(o["shape"]))
    return out


class _GRPCClient:
    """V2 gRPC through ``tritonclient.grpc`` (thread-safe for unary calls)."""

    def __init__(self, url: str, timeout: float) -> None:
        if "kserve" in sys.modules:
            raise ConfigError(
                "grpc:// cannot be used in a process that has imported kserve: tritonclient.grpc and kserve "
                "both define the protobuf package 'inference'. Use http:// here, or run the client in another process."
            )
        try:
            import tritonclient.grpc as grpcclient
        except ImportError as exc:
            raise BackendUnavailableError(
                f"grpc:// needs tritonclient's gRPC client ({exc}). Install it with: pip install \"edgeanomaly[serve]\""
            ) from exc
        self._grpc = grpcclient
        self.url = url
        self._timeout = timeout
        self._client = grpcclient.InferenceServerClient(url.split("://", 1)[1].rstrip("/"))

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, client_timeout=self._timeout, **kwargs)
        except InferenceServerException as exc:
            raise RemoteError(f"Inference server {self.url} failed {what}: {exc.message()}") from exc

    def get_json(self, path: str) -> dict[str, Any]:
        if path.startswith("/v2/health/ready"):
            ok = self._call("the readiness check", self._client.is_server_ready)
            return {"ready": bool(ok)}
        model = urllib.parse.unquote(path.rsplit("/", 1)[1])
        meta = self._call(f"metadata of {model}", self._client.get_model_metadata, model, as_json=True)
        return {"name": meta.get("name"), "inputs": meta.get("inputs", []), "outputs": meta.get("outputs", []),
                "parameters": self._served_parameters(model)}

    def _served_parameters(self, model: str) -> dict[str, str]:
        """What ``edgeanomaly serve`` says runs the model (artifact, backend, device, precision).

        gRPC model metadata has no ``parameters``; the server sends them as trailing metadata
        ``edgeanomaly-<key>`` of the metadata call. Other servers send none: ``{}``.
        """
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        with grpc.insecure_channel(self.url.split("://", 1)[1].rstrip("/")) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            try:
                _, call = stub.ModelMetadata.with_call(service_pb2.ModelMetadataRequest(name=model), timeout=self._timeout)
            except grpc.RpcError as exc:
                raise RemoteError(f"Inference server {self.url} failed metadata of {model}: {exc.details()}") from exc
        prefix = "edgeanomaly-"
        return {k[len(prefix):]: v for k, v in (call.trailing_metadata() or ()) if k.startswith(prefix)}

    def infer(self, model: str, batch: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
        inp = self._grpc.InferInput("image", list(batch.shape), "FP32")
        inp.set_data_from_numpy(batch)
        requested = [self._grpc.InferRequestedOutput(o) for o in outputs]
        result = self._call(f"inference on {model}", self._client.infer, model, [inp], outputs=requested)
        return {o: result.as_numpy(o) for o in outputs}

    def close(self) -> None:
        self._client.close()


class RemoteBackend:
    """The graph of a bundle, served by an Open Inference Protocol server.

    Args:
        url: ``http://host:port`` (REST) or ``grpc://host:port``.
        model_name: the model's name on the server.
        input_shape: the bundle's graph input shape ``[-1 or B, 3, H, W]``.
        output_names: the bundle's graph outputs (``pred_score`` [, ``anomaly_map``]).
        timeout: seconds for connecting and for each request.

    The server must be ready and serve ``model_name`` with an ``image`` input of the bundle's
    size; otherwise construction fails with a message naming the URL and what differs.
    ``edgeanomaly serve`` is recognised by its ``raw_score`` output: the backend then asks it
    for the raw outputs (``raw_score``, ``raw_anomaly_map``), which are the graph's.
    """

    name = "remote"

    def __init__(self, url: str, model_name: str, input_shape: list[int], output_names: list[str], *,
                 artifact_precision: str = "fp32", timeout: float = 30.0) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme in ("http", "https"):
            self._client: Any = _HTTPClient(url, timeout)
        elif scheme == "grpc":
            self._client = _GRPCClient(url, timeout)
        else:
            raise ConfigError(f"Expected a server URL starting with http://, https:// or grpc://, got {url!r}")
        self.url = url
        self.model_name = model_name
        t0 = time.perf_counter()
        meta = self._client.get_json(f"/v2/models/{urllib.parse.quote(model_name)}")
        self.compile_ms = (time.perf_counter() - t0) * 1e3
        served_in = {i["name"]: i for i in meta.get("inputs", [])}
        served_out = [o["name"] for o in meta.get("outputs", [])]
        if "image" not in served_in:
            raise ConfigError(f"Model {model_name!r} on {url} has inputs {sorted(served_in)}; expected the graph input 'image'")
        shape = _dims(served_in["image"].get("shape", []))
        want = tuple(input_shape[1:])
        if len(shape) >= 3 and tuple(shape[-3:]) != want:
            raise ConfigError(
                f"Model {model_name!r} on {url} takes images of shape {list(shape)}, the bundle's graph takes "
                f"[N, {', '.join(map(str, want))}]: the server runs a different model"
            )
        # edgeanomaly serve answers with calibrated outputs and the raw ones beside them.
        self._names = {n: (_SERVE_RAW[n] if "raw_score" in served_out else n) for n in output_names}
        missing = [v for v in self._names.values() if v not in served_out]
        if missing:
            raise ConfigError(f"Model {model_name!r} on {url} has outputs {served_out}; missing {missing}")
        # edgeanomaly serve says which artifact it runs and how; other servers do not.
        served = meta.get("parameters") if isinstance(meta.get("parameters"), dict) else {}
        self.served_artifact: str | None = served.get("artifact")
        self.device = url
        self.precision = f"{served.get('precision') or artifact_precision} (served by {url})"
        self.inputs = [TensorInfo("image", tuple(input_shape), "f32")]
        self.outputs = [TensorInfo(n, (-1,), "f32") for n in output_names]
        self.static_batch = input_shape[0] if input_shape[0] > 0 else None

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 3, H, W) float32 -> the graph's raw outputs, computed by the server; thread-safe."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        got = self._client.infer(self.model_name, batch, list(self._names.values()))
        return {graph: np.asarray(got[served], dtype=np.float32) for graph, served in self._names.items()}

    def close(self) -> None:
        """Close the connections."""
        self._client.close()


def connect(bundle: Any, url: str, model_name: str | None = None, *, precision: str = "fp32", artifact: str | None = None,
            timeout: float = 30.0) -> tuple[RemoteBackend, Any]:
    """``(backend, artifact)`` for ``load(bundle, backend="remote", url=...)``.

    The artifact is the one the server says it runs (``edgeanomaly serve`` does), else the one
    named by ``artifact``, else the bundle's artifact of ``precision``; it is what the Detector
    reports, and its precision selects the tolerances of ``validate``.
    """
    chosen = bundle.artifact(name=artifact) if artifact else bundle.artifact(precision=precision)
    engine = RemoteBackend(
        url,
        model_name or served_model_name(bundle.source),
        list(bundle.manifest.input["shape"]),
        [o["name"] for o in bundle.manifest.outputs],
        artifact_precision=chosen.precision,
        timeout=timeout,
    )
    # The server's metadata names the outputs but its shapes are its own (edgeanomaly serve adds
    # normalised outputs); the graph contract is the bundle's, which load() checks against.
    engine.outputs = [TensorInfo(o["name"], tuple(int(d) for d in o["shape"]), "f32") for o in bundle.manifest.outputs]
    if artifact is None and engine.served_artifact in {a.name for a in bundle.artifacts}:
        chosen = bundle.artifact(name=engine.served_artifact)
    return engine, chosen


def connect_backend(bundle: Any, device: str, *, precision: str | None = None, artifact: str | None = None,
                    url: str | None = None, model_name: str | None = None, timeout: float | None = None) -> tuple[RemoteBackend, Any]:
    """Factory of the registry's ``remote`` row: ``load(bundle, backend="remote", url=...)``.

    ``device`` is the server's business; it is accepted and not used here.
    """
    if not url:
        raise ConfigError("backend='remote' needs the server's address: load(..., url='http://host:8080'), or --url on the CLI")
    return connect(bundle, url, model_name, precision=precision, artifact=artifact,  # type: ignore[arg-type]
                   timeout=30.0 if timeout is None else float(timeout))


def remote_devices() -> list[str]:
    """The remote backend's one device: the server (which device it runs on is the server's)."""
    return ["REMOTE"]
