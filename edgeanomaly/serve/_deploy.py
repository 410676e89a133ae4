"""``edgeanomaly deploy``: write a bundle out as a model repository for an Open Inference Protocol server.

Targets:
    ``triton``  NVIDIA Triton: ``<model>/config.pbtxt`` + ``<model>/1/model.onnx`` (ONNX Runtime
                backend) or ``<model>/1/model.xml|bin`` (OpenVINO backend).
    ``ovms``    OpenVINO Model Server: ``config.json`` + ``<model>/1/model.xml|bin``.
    ``kserve``  an ``InferenceService`` YAML and a Dockerfile that runs ``edgeanomaly serve`` on
                a copy of the bundle (preprocessing and calibration on the server).

Triton and OVMS serve the raw graph: ``pred_score`` and ``anomaly_map`` before calibration.
Each target carries the bundle's ``manifest.json`` (and ``signature.json`` when the bundle is
signed) beside the graph, so the runtime's ``remote`` backend (which applies the bundle's pre-
and postprocessing itself) has what it needs. With ``trust``, the bundle must be signed by a
trusted key to be deployed at all, and the ``kserve`` image carries the trusted public keys and
runs ``edgeanomaly serve --trust``, which refuses to start on a bundle they did not sign.
Nothing here imports kserve or tritonclient: writing a repository needs neither.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeanomaly.bundle import SIGNATURE_NAME, read_bundle, resolve_trust, staging_beside
from edgeanomaly.errors import BundleError, ConfigError
from edgeanomaly.registry import get_deploy_target, resolve
from edgeanomaly.runtime import served_model_name

__all__ = ["DeployResult", "DeploySettings", "deploy", "triton_config", "ovms_config", "kserve_manifest", "dockerfile",
           "write_triton", "write_ovms", "write_kserve"]

# The targets, the formats each serves and Triton's backend names are registry rows
# (edgeanomaly.registry.register_deploy_target); the writers below are their ``writer``s.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class DeployResult:
    """What :func:`deploy` wrote: the target, the model name, the artifact served and every file."""

    target: str
    model_name: str
    artifact: str
    out: Path
    files: list[Path] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeploySettings:
    """What a target's writer may use besides the bundle: Triton's batching and instances, the
    KServe image name and the trusted keys (None: the bundle need not be signed)."""

    max_batch_size: int = 8
    instances: int = 1
    image: str = "edgeanomaly-serve:latest"
    trusted: Any = None


def _pbtxt_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # protobuf text format accepts JSON string escaping
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dims(shape: list[int]) -> str:
    return "[ " + ", ".join(str(int(d)) for d in shape) + " ]"


def triton_config(manifest: Any, model_name: str, artifact_format: str, *, max_batch_size: int = 8,
                  instances: int = 1, kind: str = "KIND_CPU", queue_delay_us: int = 500) -> str:
    """Triton ``config.pbtxt`` (protobuf text format of ``inference.ModelConfig``) for a bundle.

    A dynamic-batch graph gets ``max_batch_size`` and dynamic batching: dims then exclude the
    batch dimension, and ``pred_score`` (shape ``[N]``, nothing but the batch) is declared as
    ``dims: [1]`` with ``reshape { shape: [] }``, Triton's documented form for such a tensor.
    A static-batch graph gets ``max_batch_size: 0`` and its full shapes. The bundle's
    ``model_info`` goes into ``parameters`` so the served model describes itself.
    """
    backend = get_deploy_target("triton").server_backend(artifact_format)
    inp = manifest.input
    static = inp["shape"][0] != -1
    lines = [f"name: {_pbtxt_value(model_name)}", f"backend: {_pbtxt_value(backend)}"]
    lines.append(f"max_batch_size: {0 if static else int(max_batch_size)}")
    in_dims = list(inp["shape"]) if static else list(inp["shape"][1:])
    lines += ["input [", "  {", f"    name: {_pbtxt_value(inp['name'])}", "    data_type: TYPE_FP32",
              f"    dims: {_dims(in_dims)}", "  }", "]", "output ["]
    for i, out in enumerate(manifest.outputs):
        shape = list(out["shape"]) if static else list(out["shape"][1:])
        lines += ["  {", f"    name: {_pbtxt_value(out['name'])}", "    data_type: TYPE_FP32"]
        if not shape:
            lines += ["    dims: [ 1 ]", "    reshape { shape: [ ] }"]
        else:
            lines.append(f"    dims: {_dims(shape)}")
        lines.append("  }" + ("," if i < len(manifest.outputs) - 1 else ""))
    lines.append("]")
    if not static:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {int(queue_delay_us)}", "}"]
    lines += ["instance_group [", "  {", f"    count: {int(instances)}", f"    kind: {kind}", "  }", "]"]
    for key, value in sorted(manifest.model_info.items()):
        lines += ["parameters {", f"  key: {_pbtxt_value(key)}", f"  value: {{ string_value: {_pbtxt_value(str(value))} }}", "}"]
    return "\n".join(lines) + "\n"


def ovms_config(model_name: str, base_path: str, *, target_device: str = "CPU", static_batch: int | None = None) -> dict[str, Any]:
    """OVMS ``config.json``: one model, served from ``base_path`` (its numbered version folders).

    ``batch_size`` is left out for a dynamic graph, so OVMS keeps the graph's own (dynamic) shape.
    """
    config: dict[str, Any] = {"name": model_name, "base_path": base_path, "target_device": target_device}
    if static_batch is not None:
        config["batch_size"] = str(int(static_batch))
    return {"model_config_list": [{"config": config}]}


def kserve_manifest(model_name: str, image: str, bundle_dir: str, *, http_port: int = 8080,
                    cpu: str = "2", memory: str = "2Gi", trust_dir: str | None = None) -> dict[str, Any]:
    """A KServe ``InferenceService`` with a custom predictor container running ``edgeanomaly serve``
    (with ``trust_dir``, the image's folder of trusted keys: ``serve --trust`` on it)."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": model_name.lower().replace("_", "-").replace(".", "-")},
        "spec": {
            "predictor": {
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": image,
                        # Kubernetes appends args to the image's ENTRYPOINT (`edgeanomaly serve`),
                        # replacing its CMD: so no "serve" here.
                        # The memory limit is a cgroup (past it the pod is killed): request limits
                        # whose bound (README, "Serve at scale") fits 2Gi with 8 clients in flight.
                        "args": [bundle_dir, "--host", "0.0.0.0", "--http-port", str(http_port),
                                 "--model-name", model_name, "--max-request-mp", "16", "--max-request-mb", "16",
                                 "--max-response-mb", "16", *(["--trust", trust_dir] if trust_dir else [])],
                        "ports": [{"containerPort": http_port, "protocol": "TCP"}],
                        "readinessProbe": {
                            "httpGet": {"path": "/v2/health/ready", "port": http_port},
                            "initialDelaySeconds": 5,
                            "periodSeconds": 5,
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/v2/health/live", "port": http_port},
                            "periodSeconds": 10,
                        },
                        "resources": {
                            "requests": {"cpu": cpu, "memory": memory},
                            "limits": {"cpu": cpu, "memory": memory},
                        },
                    }
                ]
            }
        },
    }


def dockerfile(bundle_dir: str, *, http_port: int = 8080, grpc_port: int = 8081, package: str = "edgeanomaly[serve]",
               model_name: str | None = None, trust_dir: str | None = None) -> str:
    """A Dockerfile that installs ``edgeanomaly[serve]`` and serves the bundle copied beside it
    (with ``trust_dir``: the ``trust`` folder copied there too, and ``serve --trust`` on it).

    ENTRYPOINT is ``edgeanomaly serve``, CMD its arguments: ``docker run IMAGE`` serves the bundle,
    and a Kubernetes container's ``args`` replace the CMD (not the entrypoint).
    """
    cmd = [bundle_dir, "--host", "0.0.0.0", "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    if model_name:
        cmd += ["--model-name", model_name]
    if trust_dir:
        cmd += ["--trust", trust_dir]
    return "\n".join([
        "# Serves the bundle with the Open Inference Protocol (KServe V2, REST and gRPC).",
        "FROM python:3.11-slim",
        # OpenCV (headless) needs libgomp at run time on slim images.
        "RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*",
        f'RUN pip install --no-cache-dir "{package}"',
        f"COPY bundle {bundle_dir}",
        *([f"COPY trust {trust_dir}"] if trust_dir else []),
        f"EXPOSE {http_port} {grpc_port}",
        f"HEALTHCHECK CMD python -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{http_port}/v2/health/ready')\"",
        "ENTRYPOINT " + json.dumps(["edgeanomaly", "serve"]),
        "CMD " + json.dumps(cmd),
        "",
    ])


def _copy(src: Path, dst: Path, written: list[Path]) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    written.append(dst)


def deploy(bundle: str | os.PathLike[str], target: str, out: str | os.PathLike[str], *, model_name: str | None = None,
           artifact: str | None = None, max_batch_size: int = 8, instances: int = 1,
           image: str = "edgeanomaly-serve:latest", trust: Any = None) -> DeployResult:
    """Write ``bundle`` as a repository for ``target`` under ``out`` (a new or empty folder).

    Args:
        bundle: bundle directory or ``.zip``.
        target: ``"triton"``, ``"ovms"`` or ``"kserve"``.
        out: output folder; it must not exist or be empty. Written atomically (a temporary
            folder beside it, renamed at the end), so a failure leaves nothing half-written.
        model_name: served model name (default: the bundle folder's name, e.g. ``pc``).
        artifact: artifact to serve (default: the target's preferred format at fp32).
        max_batch_size, instances: Triton dynamic batching limit and instance count.
        image: container image name written into the KServe InferenceService.
        trust: trusted public keys (a ``.pub`` file, a folder of them, a list, or
            ``TrustedKeys``): the bundle must be signed by one of them; for ``kserve`` their
            ``.pub`` files go into the image and its server runs with ``--trust``.

    >>> deploy("pc.bundle", "triton", "repo")        # doctest: +SKIP
    DeployResult(target='triton', model_name='pc', ...)
    """
    spec = get_deploy_target(target)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"Expected --out to be a new or empty folder, got {out} which already has content")
    if max_batch_size < 1 or instances < 1:
        raise ConfigError(f"Expected max_batch_size >= 1 and instances >= 1, got {max_batch_size} and {instances}")
    trusted = resolve_trust(trust, env=False)
    settings = DeploySettings(max_batch_size, instances, image, trusted)
    with read_bundle(bundle, trust=trusted) as b:
        name = model_name or served_model_name(b.source)
        if not _MODEL_NAME.match(name):
            raise ConfigError(f"Expected a model name of letters, digits, '_', '.', '-', got {name!r}")
        chosen = _served_artifact(b, spec, artifact)
        out.parent.mkdir(parents=True, exist_ok=True)

        # 0777 less the umask (OVMS runs as a non-root user); removed however it ends, unless renamed onto out
        with staging_beside(out, "deploy") as tmp:
            result = DeployResult(spec.name, name, chosen.name, out)
            resolve(spec.writer)(b, chosen, name, tmp, result, settings)
            if out.exists():
                out.rmdir()
            os.replace(tmp, out)
    result.files = [out / p.relative_to(tmp) for p in result.files]
    return result


def _served_artifact(b: Any, spec: Any, artifact: str | None) -> Any:
    """The artifact asked for (checked against what ``spec`` serves), else the first of the
    target's formats the bundle has at fp32, else the first format at any precision."""
    if artifact is not None:
        chosen = b.artifact(name=artifact)
        if chosen.format not in spec.formats:
            raise ConfigError(f"Target {spec.name} serves {', '.join(spec.formats)} artifacts; {artifact} is {chosen.format}")
        return chosen
    for fmt in spec.formats:
        try:
            return b.artifact(format=fmt, precision="fp32")
        except BundleError:
            continue
    return b.artifact(format=spec.formats[0])  # raises, listing what the bundle has


def _graph_files(b: Any, chosen: Any) -> list[tuple[Path, str]]:
    """(source path, name inside the version folder) of the chosen artifact's files."""
    main = Path(chosen.path)
    out = []
    for f in chosen.files:
        src = b.root / f.path
        suffix = Path(f.path).suffix
        if Path(f.path) == main:
            dst = f"model{suffix}"
        elif suffix == ".bin":
            dst = "model.bin"
        else:  # e.g. ONNX external data: keep the name the graph refers to
            dst = Path(f.path).name
        out.append((src, dst))
    return out


def _model_folder(b: Any, chosen: Any, name: str, tmp: Path, written: list[Path]) -> Path:
    """``<name>/1/`` with the chosen graph, and the bundle's manifest (and signature) beside it."""
    model_dir = tmp / name
    for src, dst in _graph_files(b, chosen):
        _copy(src, model_dir / "1" / dst, written)
    _copy(b.root / "manifest.json", model_dir / "manifest.json", written)
    if (b.root / SIGNATURE_NAME).is_file():
        _copy(b.root / SIGNATURE_NAME, model_dir / SIGNATURE_NAME, written)
    return model_dir


def _raw_graph_repository(b: Any, chosen: Any, name: str, tmp: Path, result: DeployResult, config: tuple[Path, str],
                          server: str) -> None:
    """A model folder, the server's configuration file and the next steps: the server command
    line, then ``predict`` through the ``remote`` backend (the raw graph needs the bundle's
    pre- and postprocessing, which the client applies)."""
    _model_folder(b, chosen, name, tmp, result.files)
    path, text = config
    path.write_text(text)
    result.files.append(path)
    result.next_steps = [
        server,
        f"edgeanomaly predict {b.source} IMAGE --backend remote --url http://127.0.0.1:8000 --model-name {name}",
    ]


def write_triton(b: Any, chosen: Any, name: str, tmp: Path, result: DeployResult, settings: DeploySettings) -> None:
    """The ``triton`` row's writer: a model folder and its ``config.pbtxt``."""
    config = triton_config(b.manifest, name, chosen.format, max_batch_size=settings.max_batch_size, instances=settings.instances)
    _raw_graph_repository(b, chosen, name, tmp, result, (tmp / name / "config.pbtxt", config),
                          f"docker run --rm -p 8000:8000 -p 8001:8001 -v $PWD/{result.out}:/models "
                          "nvcr.io/nvidia/tritonserver:<tag>-py3 tritonserver --model-repository=/models")


def write_ovms(b: Any, chosen: Any, name: str, tmp: Path, result: DeployResult, settings: DeploySettings) -> None:
    """The ``ovms`` row's writer: a model folder and the server's ``config.json``."""
    config = json.dumps(ovms_config(name, f"/models/{name}", static_batch=chosen.static_batch), indent=2) + "\n"
    _raw_graph_repository(b, chosen, name, tmp, result, (tmp / "config.json", config),
                          f"docker run --rm -p 8000:8000 -v $PWD/{result.out}:/models openvino/model_server:latest "
                          "--config_path /models/config.json --rest_port 8000")


def write_kserve(b: Any, chosen: Any, name: str, tmp: Path, result: DeployResult, settings: DeploySettings) -> None:
    """The ``kserve`` row's writer: the whole bundle, a Dockerfile running ``edgeanomaly serve``
    on it and the ``InferenceService`` YAML (the trusted keys too, when given)."""
    import yaml  # from the [serve] extra

    written = result.files
    in_image = "/opt/edgeanomaly/bundle"
    # The whole bundle (already verified by read_bundle), so `serve` picks the artifact itself.
    shutil.copytree(b.root, tmp / "bundle")
    written += sorted(p for p in (tmp / "bundle").rglob("*") if p.is_file())
    docker = tmp / "Dockerfile"
    trust_dir = None
    if settings.trusted is not None:
        trust_dir = "/opt/edgeanomaly/trust"
        for i, key in enumerate(settings.trusted.keys.values()):
            _copy(key.source, tmp / "trust" / f"{i:02d}-{key.source.name}", written)
    docker.write_text(dockerfile(in_image, model_name=name, trust_dir=trust_dir))
    isvc = tmp / "inferenceservice.yaml"
    isvc.write_text(yaml.safe_dump(kserve_manifest(name, image=settings.image, bundle_dir=in_image, trust_dir=trust_dir), sort_keys=False))
    written += [docker, isvc]
    result.next_steps = [
        f"docker build -t {settings.image} {result.out} && kubectl apply -f {result.out}/inferenceservice.yaml",
    ]
