"""INT8 artifacts whose head is refitted on the quantised backbone's own features.

Post-training INT8 quantisation perturbs backbone features by several percent (more on
depthwise-convolution backbones such as EfficientNet-Lite). The models compare features
with statistics fitted on FP32 features (PatchCore's memory bank, PaDiM's Gaussians, DFM's
PCA, DFKDE's density), and those comparisons are exactly where anomalies show: a memory bank
of FP32 features seen through an INT8 backbone makes every patch look a little anomalous
and flattens the map.

So the INT8 artifact is built in three steps:
1. the model's embedding graph is quantised with NNCF on normal calibration images;
2. the training images go through that INT8 embedding graph, and a copy of the model refits
   its statistics on those features (same settings, same ``random_state``);
3. the refitted model is exported and quantised with the same settings: its backbone
   quantises exactly as in step 1 (same weights, same calibration images), its head now
   matches the INT8 features. The head itself (distances, Mahalanobis, PCA, KDE) is not
   quantised (see ``quantize_openvino_int8``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edgeanomaly._optional import require
from edgeanomaly.export._graphs import export_onnx, onnx_to_openvino, quantize_openvino_int8

__all__ = ["refit_on_int8_features"]


class _EmbeddingGraph(torch.nn.Module):
    """Exports ``model.embed`` as a graph with the single output ``embedding``."""

    output_names = ("embedding",)

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.embed(images)


def refit_on_int8_features(
    model: Any,
    train_batches: Sequence[np.ndarray],
    calibration_inputs: Sequence[np.ndarray],
    workdir: Path,
    input_hw: tuple[int, int],
    model_info: dict[str, str],
    max_stride: int | None = None,
) -> Any:
    """A copy of ``model`` whose fitted statistics come from INT8 backbone features.

    Args:
        train_batches: the training images, float32 (B, 3, H, W) in [0, 1], as fitted.
        calibration_inputs: (1, 3, H, W) normal images for NNCF (as for the final artifact).
        max_stride: quantise the backbone up to this stride (as for the final artifact);
            default ``model.int8_max_stride``.
    """
    ov = require("openvino", "INT8 export")
    onnx_path = workdir / "embed.onnx"
    export_onnx(_EmbeddingGraph(model), onnx_path, input_hw, model_info)
    fp32_xml = workdir / "embed" / "model.xml"
    onnx_to_openvino(onnx_path, fp32_xml, model_info, fp16=False)
    int8_xml = workdir / "embed-int8" / "model.xml"
    quantize_openvino_int8(fp32_xml, int8_xml, calibration_inputs, model_info, max_stride=max_stride or model.int8_max_stride)
    compiled = ov.Core().compile_model(str(int8_xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    output = compiled.outputs[0]

    refitted = copy.deepcopy(model)
    refitted.eval()
    return refitted.fit_embeddings(torch.from_numpy(np.ascontiguousarray(compiled(batch)[output])) for batch in train_batches)


def affine_to(own: Any, target: Any, pixel: bool) -> tuple[float, float]:
    """(a, b) with ``a * raw + b`` mapping ``own`` calibration's threshold and range onto ``target``'s.

    Normalisation is ``(raw - t) / (max - min) + 0.5``; under this map an artifact normalised
    with ``target`` gives exactly what it would give with its ``own`` calibration, and its
    labels (``raw >= t``) are unchanged.
    """
    if pixel:
        t_own, r_own = own.pixel_threshold, own.pixel_max - own.pixel_min
        t_tgt, r_tgt = target.pixel_threshold, target.pixel_max - target.pixel_min
    else:
        t_own, r_own = own.image_threshold, own.image_max - own.image_min
        t_tgt, r_tgt = target.image_threshold, target.image_max - target.image_min
    a = r_tgt / r_own if r_own > 0 else 1.0
    return float(a), float(t_tgt - a * t_own)


def append_output_affine(xml_in: Path, xml_out: Path, coefficients: dict[str, tuple[float, float]], model_info: dict[str, str]) -> list[Path]:
    """Rewrite an IR so that each named output becomes ``a * output + b`` (names kept)."""
    ov = require("openvino", "INT8 export")
    from openvino import opset13 as ops

    core = ov.Core()
    model = core.read_model(str(xml_in))
    for result in model.get_results():
        source = result.input_value(0)
        names = source.get_names()
        key = next((n for n in names if n in coefficients), None)
        if key is None:
            continue
        a, b = coefficients[key]
        scaled = ops.add(ops.multiply(source, ops.constant(np.float32(a))), ops.constant(np.float32(b)))
        source.set_names(set())
        scaled.output(0).set_names(names)
        result.input(0).replace_source_output(scaled.output(0))
    model.validate_nodes_and_infer_types()
    for key, (a, b) in coefficients.items():
        model.set_rt_info(f"{a!r},{b!r}", ["model_info", f"int8_alignment_{key}"])
    for k, v in model_info.items():
        model.set_rt_info(str(v), ["model_info", k])
    model.set_rt_info("int8", ["model_info", "precision"])
    xml_out.parent.mkdir(parents=True, exist_ok=True)
    # The weights are already INT8 / FP16 from quantisation; keep the new scalars exact.
    ov.save_model(model, str(xml_out), compress_to_fp16=False)
    return [xml_out, xml_out.with_suffix(".bin")]
