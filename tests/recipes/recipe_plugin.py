"""A plugin: one module adding one of each kind that docs/ARCHITECTURE.md's recipes describe,
with one registration each and no file of the package changed.

- a backbone (``tinynet``: two convolution stages at strides 4 and 8),
- a model (``meandist``: the squared distance of each position's features to their mean over
  the training images),
- a format (``onnx-external``: the ONNX graph with its weights in a separate ``model.data``
  file, as graphs beyond protobuf's 2 GB limit are stored),
- a backend (``ort-external``: ONNX Runtime running that format),
- a report metric (``image_balanced_accuracy`` at the bundle's image threshold).

``tests/recipes/test_plugin_recipes.py`` imports it and names it in ``$EDGEANOMALY_PLUGINS`` so the
child processes of export, benchmark and ``edgeanomaly serve`` import it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeanomaly.components import Backbone, FeatureInfo, register_backbone
from edgeanomaly.metrics import ReportMetric, register_report_metric
from edgeanomaly.models import AnomalyModel, register_model
from edgeanomaly.registry import BackendSpec, FormatSpec, get_format, register_backend, register_format

BACKBONE, MODEL, FORMAT, BACKEND, METRIC = "tinynet", "meandist", "onnx-external", "ort-external", "image_balanced_accuracy"


# -- a backbone -----------------------------------------------------------------------------
class TinyNet(Backbone):
    """Two convolution stages: ``stem`` (16 channels, stride 4) and ``stage`` (32, stride 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.feature_info = (FeatureInfo("stem", 16, 4), FeatureInfo("stage", 32, 8))

    def _nodes(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        return [("stem", self.stem), ("stage", self.stage)]

    def _drop_after(self, name: str) -> None:
        if name == "stem":
            del self.stage


register_backbone(BACKBONE, TinyNet, ("stage",))


# -- a model --------------------------------------------------------------------------------
@register_model
class MeanDistance(AnomalyModel):
    """Squared distance of each position's features to their mean over the training images."""

    name = MODEL
    task = "segmentation"
    default_layers = {BACKBONE: ("stage",)}

    def __init__(self, backbone: str = BACKBONE, layers: Any = None, pretrained: bool = False, weights: Any = None,
                 cache_dir: Any = None, random_state: int | None = 0) -> None:
        super().__init__(backbone, layers, pretrained, weights, cache_dir, random_state, {})
        self.register_buffer("mean", torch.empty(0))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor(images)[self.layers[-1]]

    def _finish(self) -> None:
        self.mean = self._take_rows().mean(dim=0, keepdim=True)

    def _fitted_tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.mean,)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distance = (self.embed(images) - self.mean).pow(2).sum(dim=1, keepdim=True)
        amap = F.interpolate(distance, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return amap.flatten(1).amax(dim=1), amap


# -- a format and the backend that runs it ---------------------------------------------------
def write_onnx_external(ctx: Any, precision: str, dest: Path) -> list[Path]:
    """The export's FP32 ONNX graph (``ExportContext.onnx_fp32``), saved with external weights."""
    import onnx

    graph = ctx.onnx_fp32()[0]
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(onnx.load(graph), dest, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.data", size_threshold=0)
    return [dest, dest.with_suffix(".data")]


register_format(FormatSpec(
    name=FORMAT, suffix=".onnx", precisions=("fp32",), companions=(".data",),
    writer=f"{__name__}:write_onnx_external", model_info_reader=get_format("onnx").model_info_reader,
    notes="ONNX with external weights (model.data)",
))
register_backend(BackendSpec(
    name=BACKEND, factory="edgeanomaly.runtime._backends._onnxruntime:ONNXRuntimeBackend", module="onnxruntime",
    formats=(FORMAT,), devices={"CPU": "CPUExecutionProvider"},
    list_devices="edgeanomaly.runtime._backends._onnxruntime:available_devices", options=("num_threads",),
    install_hint="pip install onnxruntime",
))


# -- a report metric ------------------------------------------------------------------------
def balanced_accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float | None) -> float:
    """Mean of the true-positive and true-negative rates of ``scores >= threshold``."""
    predicted = np.asarray(scores) >= threshold
    labels = np.asarray(labels).astype(bool)
    return float((predicted[labels].mean() + (~predicted[~labels]).mean()) / 2)


register_report_metric(ReportMetric(METRIC, balanced_accuracy, thresholded=True))
