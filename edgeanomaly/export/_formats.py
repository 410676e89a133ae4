"""One table of export formats. It drives argument checks, export dispatch, the artifact
names in a bundle, backend choice at runtime and the benchmark loop."""

from __future__ import annotations

from dataclasses import dataclass

from edgeanomaly._optional import check_choice
from edgeanomaly.errors import ConfigError

__all__ = ["ExportFormat", "FORMATS", "PRECISIONS", "artifact_name", "artifact_path", "check_targets"]

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ExportFormat:
    """An export target.

    Attributes:
        name: ``--format`` value and bundle ``Artifact.format``.
        suffix: file suffix of the loadable file.
        precisions: precisions this format is written in.
        backends: runtime backends that run it.
        devices: devices those backends can target.
        notes: shown in ``export --help`` and docs.
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    backends: tuple[str, ...]
    devices: tuple[str, ...]
    notes: str


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(
        name="onnx",
        suffix=".onnx",
        precisions=("fp32",),
        backends=("onnxruntime", "openvino"),
        devices=("CPU", "CUDA", "TensorRT"),
        notes="opset 17, dynamic batch unless --static; external data beyond 2 GB",
    ),
    "openvino": ExportFormat(
        name="openvino",
        suffix=".xml",
        precisions=("fp32", "fp16", "int8"),
        backends=("openvino",),
        devices=("CPU", "GPU", "NPU", "AUTO"),
        notes="IR v11; fp16 = compressed weights; int8 = NNCF post-training quantisation of the backbone",
    ),
}


def artifact_name(fmt: str, precision: str) -> str:
    """Bundle artifact name, e.g. ``openvino-int8``."""
    return f"{fmt}-{precision}"


def artifact_path(fmt: str, precision: str) -> str:
    """Relative path of the loadable file inside a bundle."""
    if fmt == "onnx":
        return "model.onnx" if precision == "fp32" else f"model-{precision}.onnx"
    folder = "openvino" if precision == "fp32" else f"openvino-{precision}"
    return f"{folder}/model.xml"


def check_targets(formats: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """Validate ``--format``/``--precision`` and return the (format, precision) pairs to write.

    A precision a format does not offer is skipped for that format, but each asked
    precision must be offered by at least one asked format.
    """
    if not formats:
        raise ConfigError("Expected at least one --format (onnx, openvino)")
    if not precisions:
        raise ConfigError("Expected at least one --precision (fp32, fp16, int8)")
    for f in formats:
        check_choice("format", f, FORMATS)
    for p in precisions:
        check_choice("precision", p, PRECISIONS)
    pairs = [(f, p) for f in formats for p in precisions if p in FORMATS[f].precisions]
    for p in precisions:
        if not any(pp == p for _, pp in pairs):
            offered = ", ".join(f"{f}: {'/'.join(FORMATS[f].precisions)}" for f in formats)
            raise ConfigError(f"No asked format offers precision {p!r} ({offered})")
    # fp32 first: it is the reference every other artifact is compared with.
    return sorted(set(pairs), key=lambda fp: (PRECISIONS.index(fp[1]), list(FORMATS).index(fp[0])))
