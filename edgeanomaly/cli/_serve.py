"""``edgeanomaly serve``: an Open Inference Protocol server (KServe's model server) for bundles."""

from __future__ import annotations

from pathlib import Path

import click

from edgeanomaly.cli._common import exact_option, friendly_errors, local_backend_choice, precision_choice, trust_option, trusted_keys


@click.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for every interface).")
@click.option("--http-port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="REST port.")
@click.option("--grpc-port", default=8081, show_default=True, type=click.IntRange(0, 65535), help="gRPC port (0: no gRPC).")
@click.option("--model-name", "model_names", multiple=True, help="Served name, once per bundle (default: the bundle folder name).")
@click.option("--backend", type=local_backend_choice(), default="auto", show_default=True)
@click.option("--device", default="CPU", show_default=True, help="CPU, GPU, NPU, AUTO (OpenVINO); CPU, CUDA (ONNX Runtime).")
@click.option("--precision", type=precision_choice(), default="fp32", show_default=True)
@click.option("--artifact", default=None, help="Artifact name (e.g. openvino-int8); overrides --precision.")
@exact_option
@click.option("--max-request-mb", default=32.0, show_default=True, type=click.FloatRange(min=0.001), help="Largest request body; bigger ones get 413.")
@click.option("--max-request-mp", default=64.0, show_default=True, type=click.FloatRange(min=0.000001),
              help="Most megapixels of images decoded for one request, and for all requests in flight together "
                   "(others wait); a bigger request gets 413 before anything is decoded.")
@click.option("--max-response-mb", default=64.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Largest answer (anomaly maps at the original size), estimated before scoring; bigger ones get 413.")
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(min=1), help="Most images in one request.")
@click.option("--grpc-threads", default=4, show_default=True, type=click.IntRange(min=1), help="gRPC worker threads.")
@trust_option
@friendly_errors
def serve(bundles: tuple[Path, ...], host: str, http_port: int, grpc_port: int, model_names: tuple[str, ...], backend: str,
          device: str, precision: str, artifact: str | None, exact: bool, max_request_mb: float, max_request_mp: float,
          max_response_mb: float, max_batch: int, grpc_threads: int, trust: tuple[Path, ...]) -> None:
    """Serve BUNDLES with the Open Inference Protocol (KServe V2, REST and gRPC).

    \b
    Example:
      edgeanomaly serve pc.bundle                       # http://127.0.0.1:8080, grpc 8081
      curl http://127.0.0.1:8080/v2/models/pc           # metadata, with the bundle's model_info
      edgeanomaly predict pc.bundle img.png --backend remote --url http://127.0.0.1:8080 --model-name pc
      open http://127.0.0.1:8080/                       # inspection page: drop an image

    Inputs: 'image' FP32 [N,3,H,W] (preprocessed) or 'image_bytes' BYTES [N] (image files:
    PNG, JPEG, WebP, TIFF...; base64 in JSON, raw with the binary extension). Outputs:
    pred_score, raw_score, pred_label; on request anomaly_map, pred_mask, raw_anomaly_map.
    Health at /v2/health/ready, Prometheus metrics at /metrics. SIGTERM answers the requests
    in flight, then exits. Memory: --max-request-mb, --max-request-mp and --max-response-mb
    each refuse with 413 before the work starts (README, "Serve at scale", gives the bound).
    With --trust KEYS (or $EDGEANOMALY_TRUST) every bundle must be signed by a trusted key:
    the server refuses to start otherwise, naming the bundle and why.
    Needs the [serve] extra: pip install "edgeanomaly[serve]".
    """
    from edgeanomaly.serve import serve as serve_bundles  # [serve] extra: the server's modules load when it starts

    serve_bundles([str(b) for b in bundles], names=list(model_names) or None, host=host, http_port=http_port,
        grpc_port=grpc_port or None, max_request_bytes=int(max_request_mb * (1 << 20)), max_batch=max_batch,
        grpc_threads=grpc_threads, max_request_pixels=max(1, int(max_request_mp * 1e6)),
        max_response_bytes=int(max_response_mb * (1 << 20)), backend=backend, device=device, precision=precision, artifact=artifact,
        exact=exact, trust=trusted_keys(trust))
