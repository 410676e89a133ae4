"""Export (torch, onnx, openvino, nncf): fitted checkpoint -> versioned bundle with proven parity."""

from __future__ import annotations

from edgeanomaly.export._export import FP32_RTOL, ArtifactReport, ExportReport, export_checkpoint
from edgeanomaly.export._formats import FORMATS, PRECISIONS, ExportFormat, artifact_name, artifact_path, check_targets
from edgeanomaly.export._graphs import ONNX_OPSET
from edgeanomaly.export._recipe import Recipe, load_recipe

__all__ = [
    "FORMATS",
    "FP32_RTOL",
    "ONNX_OPSET",
    "PRECISIONS",
    "ArtifactReport",
    "ExportFormat",
    "ExportReport",
    "Recipe",
    "artifact_name",
    "artifact_path",
    "check_targets",
    "export_checkpoint",
    "load_recipe",
]
