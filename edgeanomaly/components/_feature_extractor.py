"""A frozen backbone that returns named feature maps from [0, 1] RGB input.

Normalisation with the backbone's mean/std happens inside ``forward``: an exported graph
therefore takes the ``image`` input of the bundle contract (float32 RGB in [0, 1]) and a
device never has to know the statistics the backbone was trained with.

Layers available at a 256x256 input (channels / stride -> spatial size):

================== ============================================================================
backbone           layers
================== ============================================================================
resnet18           ``stem`` 64/2 (128), ``layer1`` 64/4 (64), ``layer2`` 128/8 (32),
                   ``layer3`` 256/16 (16), ``layer4`` 512/32 (8)
wide_resnet50_2    ``stem`` 64/2 (128), ``layer1`` 256/4 (64), ``layer2`` 512/8 (32),
                   ``layer3`` 1024/16 (16), ``layer4`` 2048/32 (8)
efficientnet_lite0 ``stem`` 32/2 (128), ``blocks.0`` 16/2 (128), ``blocks.1``-``.2`` 24/4 (64),
                   ``blocks.3``-``.4`` 40/8 (32), ``blocks.5``-``.7`` 80/16 (16),
                   ``blocks.8``-``.10`` 112/16 (16), ``blocks.11``-``.14`` 192/32 (8),
                   ``blocks.15`` 320/32 (8), ``head`` 1280/32 (8)
================== ============================================================================
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from edgeanomaly.components._backbones import (
    DEFAULT_BACKBONE,
    Backbone,
    RandomState,
    backbone_spec,
    create_backbone,
)
from edgeanomaly._optional import check_choice
from edgeanomaly.errors import ConfigError

__all__ = ["FeatureExtractor"]


class FeatureExtractor(nn.Module):
    """Frozen backbone returning the feature maps of ``layers``; always in eval mode.

    The network is cut after the deepest requested layer: later stages are neither stored
    (no parameters, smaller state dicts and exported graphs) nor computed.

    Args:
        backbone: a name from ``list_backbones()``; default ``"efficientnet_lite0"``.
        layers: feature layers (see the module docstring); ``None`` uses the backbone's
            default layers (stride 8 and 16). Returned in depth order whatever the order given.
        pretrained, weights, cache_dir, download, random_state: as in ``create_backbone``.

    Attributes:
        backbone_name: registry name of the backbone.
        layers: the requested layers, shallow to deep.
        channels: ``{layer: channels}``.
        strides: ``{layer: stride}`` (input pixels per feature pixel).
        weights_source: where the weights came from (recorded in bundles).
        mean, std: the per-channel normalisation applied inside ``forward``.

    Input ``images``: ``(N, 3, H, W)`` float32 RGB in [0, 1]. Output: ``{layer: (N, C_layer,
    H / stride, W / stride)}``.

    >>> import torch
    >>> fe = FeatureExtractor("resnet18", layers=("layer2", "layer3"), pretrained=False, random_state=0)
    >>> fe.channels, fe.strides
    ({'layer2': 128, 'layer3': 256}, {'layer2': 8, 'layer3': 16})
    >>> {k: tuple(v.shape) for k, v in fe(torch.rand(2, 3, 64, 64)).items()}
    {'layer2': (2, 128, 8, 8), 'layer3': (2, 256, 4, 4)}
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        layers: Sequence[str] | str | None = None,
        *,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        download: bool = True,
        random_state: RandomState = None,
    ) -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        if isinstance(layers, str):
            layers = (layers,)  # a lone name would otherwise be read as its characters
        requested = tuple(spec.default_layers if layers is None else layers)
        if not requested:
            raise ConfigError(f"Expected at least one layer for backbone {backbone!r}, got {layers!r}")
        names = [f.name for f in spec.feature_info]
        for layer in requested:  # before loading any weights: typos fail fast, with suggestions
            check_choice(f"{backbone} layer", layer, names)
        net = create_backbone(
            backbone,
            pretrained=pretrained,
            weights=weights,
            cache_dir=cache_dir,
            download=download,
            random_state=random_state,
        )
        ordered = net.check_layers(requested)
        net.truncate(ordered[-1])
        net.requires_grad_(False)
        # Channels-last runs the convolutions (depthwise above all) about 1.5-2x faster on
        # CPU; the returned maps are made contiguous again, so callers see ordinary tensors.
        net.to(memory_format=torch.channels_last)
        self.backbone: Backbone = net
        self.backbone_name = backbone
        self.layers: tuple[str, ...] = tuple(ordered)
        info = {f.name: f for f in net.feature_info}
        self.channels: dict[str, int] = {name: info[name].channels for name in self.layers}
        self.strides: dict[str, int] = {name: info[name].stride for name in self.layers}
        self.weights_source: str = net.weights_source
        self.mean: tuple[float, float, float] = tuple(net.mean)  # type: ignore[assignment]
        self.std: tuple[float, float, float] = tuple(net.std)  # type: ignore[assignment]
        # Not persistent: derived from the backbone, so state dicts hold only learned weights.
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)
        self.train(False)

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stay in eval mode: batch-norm statistics of a pretrained backbone must never update."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(N, 3, H, W)`` RGB in [0, 1] -> ``{layer: (N, C, H / stride, W / stride)}``."""
        x = ((images - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        features = self.backbone.forward_features(x, self.layers)
        return {name: f.contiguous() for name, f in features.items()}

    def extra_repr(self) -> str:
        return f"backbone={self.backbone_name!r}, layers={self.layers}, weights={self.weights_source!r}"
