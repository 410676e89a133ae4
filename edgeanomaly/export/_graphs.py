"""Writing forward graphs: ONNX (torch exporter), OpenVINO IR (FP32, FP16, NNCF INT8).

Every graph follows the bundle contract: input ``image`` float32 [N, 3, H, W] RGB in [0, 1]
(mean/std normalisation inside), outputs ``pred_score`` [N] and, for segmentation models,
``anomaly_map`` [N, 1, H, W]. The same ``model_info`` strings are written into ONNX
``metadata_props`` and OpenVINO ``rt_info``, so a lone ``.onnx`` or ``.xml`` still describes
itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from edgeanomaly._optional import require
from edgeanomaly.errors import ExportError

__all__ = ["INT8_BACKEND", "ONNX_OPSET", "AccuracyControl", "export_onnx", "fold_zero_pads", "onnx_to_openvino", "quantize_openvino_int8"]

#: The backend that runs what :func:`quantize_openvino_int8` writes (NNCF quantises OpenVINO IR).
INT8_BACKEND = "openvino"

#: Chosen explicitly: supported by ONNX Runtime >= 1.14 and OpenVINO >= 2023.0.
ONNX_OPSET = 17
#: Node names of the exported graphs outside the backbone (torch module path "feature_extractor").
_OUTSIDE_BACKBONE = r"^(?!.*feature_extractor/).*$"
#: Protobuf's hard limit; beyond it weights go to an external data file.
_PROTOBUF_LIMIT = 2**31 - 1


def export_onnx(
    model: "object",
    path: Path,
    input_hw: tuple[int, int],
    model_info: dict[str, str],
    static_batch: int | None = None,
) -> list[Path]:
    """Export ``model`` (an ``AnomalyModel``) to ONNX; return the files written.

    With ``static_batch`` the batch dimension is fixed (NPUs and some accelerators need it);
    otherwise it is dynamic, for any batch size.
    """
    torch = require("torch", "ONNX export")
    onnx = require("onnx", "ONNX export")
    output_names = list(model.output_names)  # type: ignore[attr-defined]
    batch = static_batch or 1
    dummy = torch.rand(batch, 3, *input_hw, generator=torch.Generator().manual_seed(0))
    dynamic_axes = None
    if static_batch is None:
        dynamic_axes = {"image": {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings are about python control flow we do not have
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                input_names=["image"],
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; one clear message for the user
        raise ExportError(f"ONNX export of {type(model).__name__} failed: {type(exc).__name__}: {exc}") from exc

    proto = onnx.load(str(path), load_external_data=True)
    fold_zero_pads(proto)
    del proto.metadata_props[:]
    for key, value in sorted(model_info.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    files = [path]
    if proto.ByteSize() > _PROTOBUF_LIMIT:
        data_name = path.name + ".data"
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name, size_threshold=1024)
        files.append(path.with_name(data_name))
        onnx.checker.check_model(str(path))
    else:
        onnx.checker.check_model(proto)
        onnx.save_model(proto, str(path))
    return files


def _constant_value(graph: Any, name: str, producers: dict[str, Any], opset: Any) -> np.ndarray | None:
    """The value of tensor ``name`` when it is computed from Constant nodes and initializers
    only (the exporter writes a Pad's amounts as a small Concat/Reshape/Slice chain), else None."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    initializers = {t.name: t for t in graph.initializer}
    if name in initializers:
        return numpy_helper.to_array(initializers[name])
    needed: set[int] = set()
    stack, seen = [name], set()
    while stack:
        tensor = stack.pop()
        if tensor in initializers or tensor == "" or tensor in seen:
            continue
        seen.add(tensor)
        node = producers.get(tensor)
        if node is None:  # a graph input: not a constant
            return None
        needed.add(id(node))
        stack.extend(node.input)
    nodes = [n for n in graph.node if id(n) in needed]
    used = [initializers[i] for n in nodes for i in n.input if i in initializers]
    sub = helper.make_graph(nodes, "constant", [], [helper.make_tensor_value_info(name, 0, None)], used)
    return np.asarray(ReferenceEvaluator(helper.make_model(sub, opset_imports=opset)).run(None, {})[0])


def fold_zero_pads(proto: Any) -> int:
    """Fold each zero constant ``Pad`` whose only reader is a ``Conv`` into that Conv's
    ``pads``, in place; return how many were folded.

    Exact: a convolution over zero-padded input is the convolution with that padding. The
    EfficientNet backbones' TensorFlow "same" padding (asymmetric, for stride 2) exports as
    Pad -> Conv, and ONNX Runtime ran each Pad as a separate copy with layout reorders around it
    (docs/BENCHMARKS.md, issue 15). Pads of another mode, of a non-zero value, on the batch or
    channel axes, or read by anything else are left as they are; the constant nodes only a
    folded Pad read are removed.
    """
    from onnx import helper

    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    folded = []
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        users = readers.get(pad.output[0], [])
        if attrs.get("mode", b"constant") not in (b"constant", "constant") or pad.output[0] in graph_outputs:
            continue
        if len(users) != 1 or users[0].op_type != "Conv" or len(pad.input) > 3 and pad.input[3]:
            continue  # (a fourth input, axes, appears from opset 18: not written by this exporter)
        conv = users[0]
        conv_attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if conv_attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        if len(pad.input) > 2 and pad.input[2]:
            value = _constant_value(graph, pad.input[2], producers, proto.opset_import)
            if value is None or np.any(value != 0):
                continue
        amounts = _constant_value(graph, pad.input[1], producers, proto.opset_import)
        if amounts is None:
            continue
        amounts = [int(v) for v in amounts.reshape(-1)]
        rank = len(amounts) // 2
        spatial = rank - 2
        if rank < 3 or any(amounts[i] or amounts[rank + i] for i in range(2)) or any(v < 0 for v in amounts):
            continue
        own = [int(v) for v in conv_attrs.get("pads", [0] * (2 * spatial))]
        new = [own[i] + amounts[2 + i] for i in range(spatial)] + [own[spatial + i] + amounts[rank + 2 + i] for i in range(spatial)]
        for attribute in [a for a in conv.attribute if a.name == "pads"]:
            conv.attribute.remove(attribute)
        conv.attribute.append(helper.make_attribute("pads", new))
        conv.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    # Drop what only the folded Pads read (their amount chains), until nothing else goes.
    while folded:
        read = {name for n in graph.node for name in n.input} | graph_outputs
        dead = [n for n in graph.node if n.op_type in ("Constant", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Unsqueeze", "Shape", "Gather")
                and not any(o in read for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    return len(folded)


def _set_rt_info(ov_model: "object", model_info: dict[str, str]) -> None:
    for key, value in model_info.items():
        ov_model.set_rt_info(str(value), ["model_info", key])  # type: ignore[attr-defined]


def onnx_to_openvino(onnx_path: Path, xml_path: Path, model_info: dict[str, str], fp16: bool) -> list[Path]:
    """Convert an ONNX graph to OpenVINO IR (FP32, or FP16-compressed weights)."""
    ov = require("openvino", "OpenVINO export")
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ov_model = ov.convert_model(str(onnx_path))
    except Exception as exc:
        raise ExportError(f"OpenVINO conversion of {onnx_path.name} failed: {type(exc).__name__}: {exc}") from exc
    _set_rt_info(ov_model, {**model_info, "precision": "fp16" if fp16 else "fp32"})
    # save_model compresses to FP16 by default; an FP32 artifact must stay FP32.
    ov.save_model(ov_model, str(xml_path), compress_to_fp16=fp16)
    return [xml_path, xml_path.with_suffix(".bin")]


#: INT8 covers the backbone up to this stride. Deeper, coarser stages hold little of the
#: compute but accumulate most of the quantisation error; measured on the synthetic metal set
#: (EfficientNet-Lite0, 256 px, image AUROC FP32 -> INT8): DFKDE 1.00 -> 0.98 with the whole
#: backbone in INT8, 1.00 -> 1.00 up to stride 8; DFM 0.98 -> 0.95 and 0.98 -> 0.96.
INT8_MAX_STRIDE = 8


def _deep_backbone_nodes(model: Any, max_stride: int) -> list[str]:
    """Names of backbone nodes whose outputs are coarser than ``max_stride`` (kept FP32)."""
    import re

    in_h = model.input(0).get_partial_shape()[2]
    if not in_h.is_static:
        return []
    limit = in_h.get_length() // max_stride
    names = []
    outside = re.compile(_OUTSIDE_BACKBONE)
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        if outside.match(name) or op.get_output_size() == 0:
            continue
        shape = op.get_output_partial_shape(0)
        if shape.rank.is_static and shape.rank.get_length() == 4 and shape[2].is_static and shape[2].get_length() < limit:
            names.append(name)
    return names


def _validation_fn(metric: Callable[[Any, Iterable[Any]], float]) -> Callable[[Any, Iterable[Any]], tuple[float, list[list[np.ndarray]]]]:
    """NNCF's validation function: the metric over the items, and every item's outputs.

    Returning the outputs puts NNCF in its output-difference mode for ranking layers: it also
    calls the function with single items, where a ranking metric such as AUROC is undefined.
    """

    def validate(compiled: Any, items: Iterable[Any]) -> tuple[float, list[list[np.ndarray]]]:
        items = list(items)
        outputs = [[np.asarray(v) for v in compiled(item[0]).values()] for item in items]
        return float(metric(compiled, items)), outputs

    return validate


@contextlib.contextmanager
def _quiet_nncf(nncf: Any) -> Iterator[None]:
    """NNCF logs at INFO and draws rich progress bars on stdout; export prints its own steps.

    The bars have no off switch; rich writes to whatever ``sys.stdout`` is, so it is
    redirected for the duration.
    """
    logger = logging.getLogger("nncf")
    level = logger.level
    nncf.set_log_level(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class AccuracyControl:
    """What NNCF's ``quantize_with_accuracy_control`` keeps: ``metric(compiled_model, items)``
    (higher is better) may drop by at most ``max_drop`` from the floating-point graph's value.

    ``items``: ``(input (1, 3, H, W) float32, index)`` pairs; the index lets ``metric`` find
    each image's label and mask, whatever subset NNCF passes.
    """

    items: Sequence[tuple[np.ndarray, int]]
    metric: Callable[[Any, Iterable[tuple[np.ndarray, int]]], float]
    max_drop: float


def quantize_openvino_int8(
    fp32_xml: Path,
    xml_path: Path,
    calibration_inputs: Sequence[np.ndarray],
    model_info: dict[str, str],
    accuracy_control: AccuracyControl | None = None,
    max_stride: int = INT8_MAX_STRIDE,
) -> list[Path]:
    """NNCF post-training INT8 quantisation of the FP32 IR, calibrated on normal images.

    With ``accuracy_control`` NNCF quantises the same scope, then returns quantised layers to
    floating point, the most harmful first, until the metric drops by at most ``max_drop``.

    Only the convolutional backbone is quantised, up to stride ``max_stride`` (default
    ``INT8_MAX_STRIDE``; a model may allow more, see ``AnomalyModel.int8_max_stride``): the heads (nearest-neighbour distances to
    a memory bank, Mahalanobis distances, PCA, KDE) are matrix products comparing feature
    vectors whose small differences are the anomaly signal; INT8 there costs accuracy for
    little speed.

    ``calibration_inputs``: float32 batches (1, 3, H, W) in [0, 1] of normal images.
    """
    ov = require("openvino", "INT8 export")
    nncf = require("nncf", "INT8 export")
    if not calibration_inputs:
        raise ExportError("INT8 export needs calibration images (normal training images); got none")
    core = ov.Core()
    fp32 = core.read_model(str(fp32_xml))
    # Only the backbone: every node outside the feature extractor keeps FP32. Without this,
    # NNCF also fake-quantises distances, their square roots, the resized map and the blur
    # output, which turns maps into a handful of levels (PaDiM maps become constant), and
    # OpenVINO 2026.4's CPU plugin crashes compiling PaDiM's quantised Concat -> Gather.
    ignored = nncf.IgnoredScope(
        patterns=[_OUTSIDE_BACKBONE], names=_deep_backbone_nodes(fp32, max_stride), validate=False
    )
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    # Activation ranges come from normal images only. NNCF's default (mean of per-image
    # extremes) clips what an anomaly adds, exactly the signal we need; the global min/max
    # keeps it. Full bias correction instead of the fast one: measured on the synthetic metal
    # set (EfficientNet-Lite0, 256 px) it halves the AUROC loss of DFM and DFKDE.
    advanced = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    calibration = nncf.Dataset(list(calibration_inputs))
    try:
        with warnings.catch_warnings(), _quiet_nncf(nncf):
            warnings.simplefilter("ignore")
            if accuracy_control is None:
                q = nncf.quantize(
                    fp32, calibration, subset_size=len(calibration_inputs), ignored_scope=ignored,
                    fast_bias_correction=False, advanced_parameters=advanced,
                )
            else:
                q = nncf.quantize_with_accuracy_control(
                    fp32, calibration, nncf.Dataset(list(accuracy_control.items), lambda item: item[0]),
                    _validation_fn(accuracy_control.metric), max_drop=accuracy_control.max_drop,
                    subset_size=len(calibration_inputs), ignored_scope=ignored, fast_bias_correction=False,
                    advanced_quantization_parameters=advanced,
                )
    except Exception as exc:
        raise ExportError(f"NNCF INT8 quantisation failed: {type(exc).__name__}: {exc}") from exc
    _set_rt_info(q, {**model_info, "precision": "int8"})
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    # compress_to_fp16 is not applied to graphs holding FakeQuantize: to store the remaining
    # floating-point constants in FP16, pass an FP16-compressed IR in (see export._export).
    ov.save_model(q, str(xml_path), compress_to_fp16=False)
    return [xml_path, xml_path.with_suffix(".bin")]
