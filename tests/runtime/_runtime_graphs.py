"""Small real graphs that follow the bundle graph contract, written into real bundles.

Torch is used here to MAKE fixtures only (export ONNX, reference outputs); the runtime under
test never imports it. The model mimics a feature-distance detector: mean/std normalisation
in the graph, a conv feature map, squared distance to the "normal" feature, smoothing, and
the image score as the map maximum.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from edgeanomaly.data._preprocess import PreprocessConfig, preprocess_batch

INPUT_HW = (64, 80)  # non-square on purpose: catches height/width swaps
STATIC_BATCH = 2


def reference_images(hw: tuple[int, int] = INPUT_HW, n_normal: int = 3, n_anomalous: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, h, w, 3) uint8 RGB: grey parts with noise; anomalous ones carry a coloured square."""
    rng = np.random.default_rng(seed)
    h, w = hw
    images, labels = [], []
    for i in range(n_normal + n_anomalous):
        img = np.clip(rng.normal(128, 6, size=(h, w, 3)), 0, 255).astype(np.uint8)
        if i >= n_normal:
            s = h // 4
            top, left = rng.integers(0, h - s), rng.integers(0, w - s)
            img[top : top + s, left : left + s] = (230, 40, 40)
        images.append(img)
        labels.append(int(i >= n_normal))
    return np.stack(images), np.array(labels)


def build_torch_model(task: str = "segmentation"):
    import torch
    from torch import nn

    class ToyAnomalyModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(0)
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            with torch.no_grad():
                self.conv.weight.copy_(torch.randn(8, 3, 3, 3, generator=gen) * 0.3)
                self.conv.bias.zero_()
                grey = torch.full((1, 3, 8, 8), 128 / 255)
                self.register_buffer("normal", self.conv((grey - self.mean) / self.std).mean(dim=(0, 2, 3)).view(1, 8, 1, 1))

        def forward(self, image):
            feats = self.conv((image - self.mean) / self.std)
            dist = ((feats - self.normal) ** 2).mean(dim=1, keepdim=True)
            amap = nn.functional.avg_pool2d(dist, 5, stride=1, padding=2, count_include_pad=False)
            score = amap.amax(dim=(1, 2, 3))
            return (score, amap) if task == "segmentation" else score

    return ToyAnomalyModel().eval()


def make_bundle(out: Path, task: str = "segmentation", static_batch: int | None = None, work: Path | None = None,
                model_name: str | None = None) -> Path:
    """Export the toy model to ONNX + OpenVINO FP32/FP16 and write a bundle with reference.npz."""
    import openvino as ov
    import torch

    from edgeanomaly.bundle import Artifact, Calibration, Manifest, input_spec, output_specs, write_bundle

    work = Path(work or out.parent / f".{out.name}-work")
    work.mkdir(parents=True, exist_ok=True)
    h, w = INPUT_HW
    model = build_torch_model(task)
    outputs = ["pred_score", "anomaly_map"] if task == "segmentation" else ["pred_score"]
    batch = static_batch or 1
    dynamic = None if static_batch else {name: {0: "batch"} for name in ["image", *outputs]}
    onnx_path = work / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is what we want here
        torch.onnx.export(
            model,
            (torch.zeros(batch, 3, h, w),),
            str(onnx_path),
            input_names=["image"],
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    images, labels = reference_images()
    config = PreprocessConfig(image_size=INPUT_HW)
    preprocessing = config.to_dict()
    model_info = {
        "model": model_name or f"toy-{task}",
        "task": task,
        "backbone": "conv3x3",
        "layers": "conv",
        "input_height": str(h),
        "input_width": str(w),
        "edgeanomaly_version": "0.1.0",
        "created_utc": "2026-01-01T00:00:00Z",
        "pretrained": "false",
        "weights_source": "random",
        "schema_version": "1",
        "preprocessing": json.dumps(preprocessing),
        "normalization": "imagenet-in-graph",
    }
    # The graphs carry model_info as the exporter writes it (ONNX metadata_props, OpenVINO
    # rt_info): load() compares it with the manifest's before compiling.
    import onnx

    proto = onnx.load(str(onnx_path))
    for key, value in sorted(model_info.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(onnx_path))
    ov_model = ov.convert_model(str(onnx_path))
    for (folder, fp16) in (("openvino", False), ("openvino-fp16", True)):
        for key, value in {**model_info, "precision": "fp16" if fp16 else "fp32"}.items():
            ov_model.set_rt_info(value, ["model_info", key])
        ov.save_model(ov_model, str(work / folder / "model.xml"), compress_to_fp16=fp16)

    with torch.no_grad():
        result = model(torch.from_numpy(preprocess_batch(list(images), config)))
    scores = (result[0] if task == "segmentation" else result).numpy().astype(np.float32)
    ref = {"images": images, "pred_score": scores, "names": np.array([f"ref_{i}.png" for i in range(len(images))])}
    if task == "segmentation":
        ref["anomaly_map"] = result[1].numpy().astype(np.float32)
    ref_path = work / "reference.npz"
    np.savez(ref_path, **ref)

    # Manual calibration half-way between the classes of the reference images.
    threshold = float((scores[labels == 0].max() + scores[labels == 1].min()) / 2)
    pixel = {}
    if task == "segmentation":
        amap = ref["anomaly_map"]
        pixel = {"pixel_threshold": threshold, "pixel_min": float(amap.min()), "pixel_max": float(amap.max())}
    calibration = Calibration(
        image_threshold=threshold,
        image_min=float(scores.min()),
        image_max=float(scores.max()),
        method="manual",
        source={"split": "reference", "n_images": len(labels), "n_normal": int((labels == 0).sum()), "n_anomalous": int(labels.sum()), "data": "synthetic"},
        **pixel,
    )
    manifest = Manifest(
        model_info=model_info,
        preprocessing=preprocessing,
        input=input_spec(h, w, static_batch),
        outputs=output_specs(task, h, w, static_batch),
        calibration=calibration,
        artifacts=[
            Artifact("onnx-fp32", "onnx", "fp32", "model.onnx", static_batch=static_batch),
            Artifact("openvino-fp32", "openvino", "fp32", "openvino/model.xml", static_batch=static_batch),
            Artifact("openvino-fp16", "openvino", "fp16", "openvino-fp16/model.xml", static_batch=static_batch),
        ],
        reference={"data": "synthetic grey parts with coloured squares"},
    )
    files = {
        "model.onnx": onnx_path,
        "openvino/model.xml": work / "openvino" / "model.xml",
        "openvino/model.bin": work / "openvino" / "model.bin",
        "openvino-fp16/model.xml": work / "openvino-fp16" / "model.xml",
        "openvino-fp16/model.bin": work / "openvino-fp16" / "model.bin",
        "reference.npz": ref_path,
    }
    return write_bundle(out, manifest, files, overwrite=True)
