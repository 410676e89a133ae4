"""``edgeanomaly serve``: bundles behind KServe's model server (Open Inference Protocol, REST + gRPC).

The process is a KServe model server, so the same command runs as the predictor container of
a KServe ``InferenceService``. KServe provides health, readiness, gRPC, ``/metrics`` and the
process life cycle; this module adds what a factory line needs on top:

- strict V2 REST parsing (:mod:`edgeanomaly.serve._protocol`) so that every bad request is a
  4xx that says what was expected and what came (KServe answers some of them with a 500),
  and input tensors are read with ``np.frombuffer`` rather than through Python lists;
- model metadata that carries the bundle's ``model_info``;
- limits on the request body, on the pixels decoded (per request and for all requests in
  flight, read from image headers before decoding) and on the answer, each a 413;
- Prometheus counters and a latency histogram;
- the inspection page at ``/`` and its ``/inspect`` endpoint;
- binding to ``--host`` (KServe itself always binds every interface).

kserve is imported only here, lazily (``[serve]`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import Any, Sequence

import numpy as np

from edgeanomaly._optional import require
from edgeanomaly.bundle import read_bundle, resolve_trust
from edgeanomaly.errors import ConfigError, SignatureError
from edgeanomaly.runtime import served_model_name
from edgeanomaly.serve._inference import MAX_REQUEST_PIXELS, MAX_RESPONSE_BYTES, PixelBudget, ServedBundle
from edgeanomaly.serve._protocol import BadRequest
from edgeanomaly.serve._routes import Metrics, install_routes

__all__ = ["serve", "build_models"]

log = logging.getLogger("edgeanomaly.serve")


def _import_kserve() -> Any:
    # kserve parses sys.argv when imported (its own argparse flags); ours must not reach it.
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return require("kserve", "edgeanomaly serve")
    finally:
        sys.argv = argv


def build_models(bundles: Sequence[str], names: Sequence[str] | None, **load_args: Any) -> list[ServedBundle]:
    """One :class:`ServedBundle` per bundle; names default to the bundle folder names."""
    if names and len(names) != len(bundles):
        raise ConfigError(f"Expected one --model-name per bundle ({len(bundles)}), got {len(names)}")
    out = []
    for i, b in enumerate(bundles):
        name = names[i] if names else served_model_name(b)
        out.append(ServedBundle(b, name, **load_args))
    seen = [m.name for m in out]
    if len(set(seen)) != len(seen):
        raise ConfigError(f"Expected distinct model names, got {seen}; name them with --model-name")
    return out


def check_signed(bundles: Sequence[str], trusted: Any) -> None:
    """Refuse to start unless every bundle is signed by a trusted key; names each one refused."""
    refused: list[SignatureError] = []
    for b in bundles:
        try:
            read_bundle(b, trust=trusted).close()
        except SignatureError as exc:
            refused.append(exc)
    if refused:
        kind = type(refused[0]) if all(type(e) is type(refused[0]) for e in refused) else SignatureError
        raise kind(f"edgeanomaly serve: refusing to start: {len(refused)} of {len(bundles)} bundle(s) not accepted "
                   "under the trusted keys: " + " | ".join(str(e) for e in refused))


def _bundle_model_class(kserve: Any, metrics: Any) -> Any:
    """KServe's ``Model`` over a :class:`ServedBundle`, counting into ``metrics`` (kserve is an optional extra)."""
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput, InferResponse

    class BundleModel(kserve.Model):
        """The KServe face of a ServedBundle (the gRPC path goes through ``predict``)."""

        def __init__(self, served: ServedBundle) -> None:
            super().__init__(served.name)
            self.served = served

        def load(self) -> bool:
            self.served.load()
            self.ready = True
            return self.ready

        def get_input_types(self) -> list[dict]:
            return self.served.metadata()["inputs"]

        def get_output_types(self) -> list[dict]:
            return self.served.metadata()["outputs"]

        async def predict(self, payload: Any, headers: dict | None = None) -> Any:
            # KServe awaits a coroutine predict and calls a plain one on the event loop, which
            # would score gRPC requests one at a time and stall REST (health probes) meanwhile.
            return await asyncio.to_thread(self._predict, payload)

        def _predict(self, payload: Any) -> Any:
            t0 = time.perf_counter()
            if not hasattr(payload, "inputs"):  # KServe's V1 route (`:predict`) hands over the JSON as a dict
                metrics.errors.labels("v1", "400").inc()
                raise InvalidInput(f"Expected an Open Inference Protocol (V2) request at /v2/models/{self.name}/infer "
                                   f"(REST) or over gRPC; the V1 protocol is not served, got a {type(payload).__name__}")
            inputs: dict[str, Any] = {}
            for inp in payload.inputs:
                try:
                    value = inp.as_numpy()
                except (ValueError, TypeError, OverflowError, MemoryError) as exc:  # data that does not fill the shape
                    metrics.errors.labels("grpc", "400").inc()
                    raise InvalidInput(f"Expected the data of input {inp.name!r} to fill its shape {list(inp.shape)} "
                                       f"({inp.datatype}): {exc}") from exc
                inputs[inp.name] = [bytes(v) for v in value.reshape(-1)] if inp.datatype == "BYTES" else value
            requested = [o.name for o in payload.request_outputs] if payload.request_outputs else None
            try:
                outputs, count = self.served.infer(inputs, requested)  # gRPC answers are binary protobuf
            except BadRequest as exc:
                metrics.errors.labels("grpc", str(exc.status)).inc()
                raise InvalidInput(str(exc)) from exc
            metrics.requests.labels(self.name, next(iter(inputs))).inc()
            metrics.images.labels(self.name).inc(count)
            metrics.latency.labels(self.name).observe(time.perf_counter() - t0)
            infer_outputs = []
            for name, arr in outputs.items():
                out = InferOutput(name=name, shape=list(arr.shape), datatype="BOOL" if arr.dtype == np.bool_ else "FP32")
                out.set_data_from_numpy(arr)
                infer_outputs.append(out)
            return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=infer_outputs)

    return BundleModel


def _grpc_server_class(host: str, served_by_name: dict[str, ServedBundle]) -> Any:
    """KServe's gRPC server bound to ``host``, its model metadata carrying what runs each model."""
    from kserve.protocol.grpc.server import GRPCServer

    class LoopbackGRPCServer(GRPCServer):
        """KServe's gRPC server, bound to ``host`` instead of every interface."""

        async def start(self, max_workers: int) -> None:
            from concurrent import futures

            from grpc import aio
            from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
            from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
            from kserve.protocol.grpc.servicer import InferenceServicer

            class Servicer(InferenceServicer):
                """gRPC model metadata has no ``parameters`` (REST's carry the artifact): what runs
                the model travels as trailing metadata ``edgeanomaly-artifact`` etc., which the
                remote backend reads."""

                async def ModelMetadata(self, request: Any, context: Any) -> Any:
                    response = await super().ModelMetadata(request, context)
                    model = served_by_name.get(request.name)
                    if model is not None and model.detector is not None:
                        params = model.metadata()["parameters"]
                        context.set_trailing_metadata(tuple(
                            (f"edgeanomaly-{key}", str(params[key])) for key in ("artifact", "backend", "device", "precision")
                        ))
                    return response

            # KServe's interceptor maps InvalidInput to INVALID_ARGUMENT (not UNKNOWN).
            self._server = aio.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                                      interceptors=(ExceptionToStatusInterceptor(),))
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
                Servicer(self._data_plane, self._model_repository_extension), self._server
            )
            self._server.add_insecure_port(f"{host}:{self._port}")
            await self._server.start()
            await self._server.wait_for_termination()

    return LoopbackGRPCServer


def _server_class(kserve: Any, host: str, grpc_server: Any) -> Any:
    """KServe's single-process model server with our routes, bound to ``host``."""
    from kserve import model_server as ks_server
    from kserve.protocol.rest.server import RESTServer

    class Server(kserve.ModelServer):
        """KServe's single-process model server with our routes and bound to ``host``."""

        def start(self, kmodels: list[Any]) -> None:
            self._register_and_check_atleast_one_model_is_ready(kmodels)
            self._rest_server = RESTServer(
                ks_server.FASTAPI_APP_IMPORT_STRING, self.dataplane, self.model_repository_extension, self.http_port,
                grace_period=self.grace_period, timeout_keep_alive=self.timeout_keep_alive,
            )
            self._rest_server.config.host = host
            self.servers.append(self._rest_server.start())
            if self.enable_grpc:
                self._grpc_server = grpc_server(self.grpc_port, self.dataplane, self.model_repository_extension,
                                                kwargs={}, grace_period=self.grace_period)
                self.servers.append(self._grpc_server.start(self.max_threads))
            self.setup_event_loop()
            asyncio.run(self._serve_until_stopped())

        async def _serve_until_stopped(self) -> None:
            # uvicorn handles SIGTERM/SIGINT for the REST server: it stops accepting, answers the
            # requests in flight, then returns. gRPC is stopped after it, with the same grace.
            rest, *others = [asyncio.ensure_future(s) for s in self.servers]
            await rest
            if self._grpc_server is not None:
                await self._grpc_server.stop()
            for task in others:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    return Server


def serve(bundles: Sequence[str], *, names: Sequence[str] | None = None, host: str = "127.0.0.1",
          http_port: int = 8080, grpc_port: int | None = 8081, max_request_bytes: int = 32 << 20,
          max_batch: int = 64, grpc_threads: int = 4, max_request_pixels: int = MAX_REQUEST_PIXELS,
          max_response_bytes: int = MAX_RESPONSE_BYTES, trust: Any = None, **load_args: Any) -> None:
    """Serve bundles until SIGTERM/SIGINT (blocking). See ``edgeanomaly serve --help``.

    ``max_request_pixels`` bounds the decoded pixels of one request and of all requests in
    flight together (one :class:`PixelBudget` for every model); ``max_response_bytes`` an answer.
    ``trust`` (trusted public keys; default ``$EDGEANOMALY_TRUST``): every bundle must be
    signed by one of them; checked for all bundles before anything starts, and a refusal
    names each bundle refused and why (:class:`~edgeanomaly.errors.SignatureError`).
    """
    trusted = resolve_trust(trust)
    if trusted is not None:
        check_signed(bundles, trusted)
    kserve = _import_kserve()
    from kserve import model_server as ks_server

    budget = PixelBudget(max_request_pixels)
    models = build_models(bundles, names, max_batch=max_batch, max_pixels=max_request_pixels,
                          max_response_bytes=max_response_bytes, budget=budget, trust=trusted, **load_args)

    metrics = Metrics()  # REST and gRPC requests alike
    served_by_name = {m.name: m for m in models}
    BundleModel = _bundle_model_class(kserve, metrics)
    Server = _server_class(kserve, host, _grpc_server_class(host, served_by_name))

    kmodels = [BundleModel(m) for m in models]
    for km in kmodels:
        t0 = time.perf_counter()
        km.load()
        log.info("loaded %s: %s (%.1f s)", km.name, km.served.detector, time.perf_counter() - t0)
    install_routes(ks_server.app, {m.name: m for m in models}, metrics, max_request_bytes)
    server = Server(http_port=http_port, grpc_port=grpc_port or 0, enable_grpc=grpc_port is not None,
                    max_threads=grpc_threads, enable_latency_logging=False, grace_period=30)
    print(f"edgeanomaly serve: {', '.join(m.name for m in models)} on http://{host}:{http_port}"
          + (f" and grpc://{host}:{grpc_port}" if grpc_port else "") + " (Ctrl-C or SIGTERM stops)", flush=True)
    # uvicorn takes SIGTERM/SIGINT while it serves and raises them again once the requests in
    # flight are answered; a quiet handler then lets us stop gRPC and exit with status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server.start(kmodels)
    finally:
        for m in models:
            m.close()
