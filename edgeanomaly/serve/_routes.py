"""The REST routes ``edgeanomaly serve`` adds to KServe's FastAPI app, and its size limit and metrics.

Imported only by :mod:`edgeanomaly.serve._server` once kserve (and so FastAPI) is there.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily

from edgeanomaly.data import decode_image
from edgeanomaly.errors import ImageReadError
from edgeanomaly.runtime import overlay
from edgeanomaly.serve._inference import ServedBundle
from edgeanomaly.serve._page import PAGE
from edgeanomaly.serve._protocol import BadRequest, encode_infer_response, parse_infer_request

__all__ = ["Metrics", "install_routes"]

_DRAIN_LIMIT = 256 << 20  # bytes of an oversized body read and dropped before answering 413


class Metrics:
    """Prometheus series in the default registry, which KServe exposes at ``/metrics``."""

    def __init__(self) -> None:
        self.requests = Counter("edgeanomaly_requests", "Inference requests answered", ["model", "input"])
        self.images = Counter("edgeanomaly_images", "Images scored", ["model"])
        self.errors = Counter("edgeanomaly_request_errors", "Requests refused or failed", ["path", "status"])
        self.latency = Histogram(
            "edgeanomaly_request_seconds", "Inference request latency (parse, score, encode)", ["model"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )

    def watch(self, served: dict[str, ServedBundle]) -> None:
        """Also expose each model's count of images run on its throughput model because other
        requests were in flight (``ServedBundle.concurrent_images``), read at scrape time."""
        REGISTRY.register(_ConcurrentImages(served))


class _ConcurrentImages:
    """A Prometheus collector: ``edgeanomaly_concurrent_images_total{model}``."""

    def __init__(self, served: dict[str, ServedBundle]) -> None:
        self.served = served

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "edgeanomaly_concurrent_images",
            "Images of one-image requests scored on the throughput model because other requests were in flight",
            labels=["model"],
        )
        for name, model in sorted(self.served.items()):
            family.add_metric([name], model.concurrent_images)
        yield family


def _json_error(message: str, status: int) -> Any:
    return JSONResponse({"error": message}, status_code=status)


class _BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 before anything parses them."""

    def __init__(self, app: Any, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.limit
        chunks: list[dict] = []
        if not too_big and scope.get("method") in ("POST", "PUT"):
            size = 0
            while True:  # read (at most limit + one chunk) so a chunked upload is bounded too
                message = await receive()
                chunks.append(message)
                size += len(message.get("body", b""))
                if size > self.limit:
                    too_big = True
                    break
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
        if too_big:
            # Read the rest and drop it (bounded), so a client that sends the whole body still
            # gets the 413 instead of a connection reset.
            drained, more = 0, bool(chunks[-1].get("more_body")) if chunks else scope.get("method") in ("POST", "PUT")
            while more and drained < _DRAIN_LIMIT:
                message = await receive()
                drained += len(message.get("body", b""))
                more = message["type"] == "http.request" and bool(message.get("more_body"))
            chunks.clear()
            path = scope.get("path", "")
            kind = "infer" if path.endswith("/infer") else "inspect" if path == "/inspect" else "other"
            self.metrics.errors.labels(kind, "413").inc()
            response = _json_error(f"Expected a request body of at most {self.limit} bytes (--max-request-mb), got more", 413)
            return await response(scope, receive, send)

        async def replay() -> dict:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay if chunks else receive, send)


def install_routes(app: Any, served: dict[str, ServedBundle], metrics: Metrics, limit: int) -> None:
    """Our routes come first, so FastAPI matches them before KServe's for the same paths."""
    metrics.watch(served)

    def model_or_404(name: str) -> ServedBundle:
        if name not in served:
            raise BadRequest(f"Expected a served model ({', '.join(sorted(served))}), got unknown model {name!r}", 404)
        model = served[name]
        if model.detector is None:
            raise BadRequest(f"Model {name!r} is not loaded (the server is shutting down)", 503)
        return model

    def refuse(path: str, exc: BadRequest) -> Any:
        metrics.errors.labels(path, str(exc.status)).inc()
        return _json_error(str(exc), exc.status)

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return HTMLResponse(PAGE.replace("__MODELS__", ",".join(sorted(served))))

    def check_version(name: str, version: str | None) -> None:
        if version is not None and version != "1":
            raise BadRequest(f"Expected version 1 of model {name!r} (the only one served), got version {version!r}", 404)

    @app.get("/v2/models/{model_name}")
    @app.get("/v2/models/{model_name}/versions/{version}")
    async def metadata(model_name: str, version: str | None = None) -> Any:
        try:
            check_version(model_name, version)
            return JSONResponse(model_or_404(model_name).metadata())
        except BadRequest as exc:
            return refuse("metadata", exc)

    @app.post("/v2/models/{model_name}/infer")
    @app.post("/v2/models/{model_name}/versions/{version}/infer")
    async def infer(model_name: str, request: Request, version: str | None = None) -> Any:
        t0 = time.perf_counter()
        try:
            check_version(model_name, version)
            model = model_or_404(model_name)
            body = await request.body()
            parsed = parse_infer_request(body, request.headers.get("inference-header-content-length"))
            del body

            def encode(outputs: dict) -> tuple[bytes, int | None]:  # inside the request's share of the pixel budget
                return encode_infer_response(model_name, outputs, parsed.binary_outputs, parsed.request_id)

            (data, json_len), count = await asyncio.to_thread(model.infer, parsed.inputs, parsed.outputs,
                                                              parsed.binary_outputs, encode)
        except BadRequest as exc:
            return refuse("infer", exc)
        metrics.requests.labels(model_name, next(iter(parsed.inputs))).inc()
        metrics.images.labels(model_name).inc(count)
        metrics.latency.labels(model_name).observe(time.perf_counter() - t0)
        if json_len is None:
            return Response(data, media_type="application/json")
        return Response(data, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(json_len)})

    @app.post("/inspect", include_in_schema=False)
    async def inspect(request: Request, model: str | None = None) -> Any:
        """The page's endpoint: raw image bytes in, verdict, score and a heat-map overlay (PNG) out."""
        try:
            served_model = model_or_404(model or sorted(served)[0])
            body = await request.body()
            result = await asyncio.to_thread(_inspect, served_model, body)
        except BadRequest as exc:
            return refuse("inspect", exc)
        metrics.requests.labels(served_model.name, "inspect").inc()
        metrics.images.labels(served_model.name).inc()
        return JSONResponse(result)

    app.add_middleware(_BodyLimit, limit=limit, metrics=metrics)


def _inspect(model: ServedBundle, body: bytes) -> dict[str, Any]:
    import cv2

    if not body:
        raise BadRequest("Expected an image file in the request body, got 0 bytes")
    (w, h), = model._header_sizes([body])  # 413 over the request's pixel budget, before decoding
    if 4 * w * h > model.max_response_bytes:  # the overlay PNG, base64: at most ~4 bytes a pixel
        raise BadRequest(f"Expected an image of at most {model.max_response_bytes / 4e6:g} megapixels for the page's overlay "
                         f"(--max-response-mb), got {w}x{h}", 413)
    with model.budget.hold(w * h):
        try:
            rgb = decode_image(body, "upload")
        except ImageReadError as exc:
            if isinstance(exc.__cause__, MemoryError):  # the server's want, not the client's fault
                raise BadRequest(f"{exc}; retry later or lower --max-request-mp", 503) from exc
            raise BadRequest(f"Expected an image file: {exc}") from exc
        p = model.detector.predict(rgb)
        drawn = overlay(rgb, p)
        ok, png = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        del drawn
    return {
        "model": model.name,
        "verdict": "ANOMALOUS" if p.label else "NORMAL",
        "label": bool(p.label),
        "score": float(p.score),
        "raw_score": float(p.raw_score),
        "image_size": [int(rgb.shape[0]), int(rgb.shape[1])],
        "overlay_png": "data:image/png;base64," + base64.b64encode(png.tobytes()).decode() if ok else None,
    }


