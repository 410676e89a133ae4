"""What every backbone offers the feature extractor: named feature nodes, run in order."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from edgeanomaly._optional import check_choice

__all__ = ["Backbone", "FeatureInfo", "init_weights"]


@dataclass(frozen=True)
class FeatureInfo:
    """One feature node a backbone can return.

    Attributes:
        name: layer name accepted by ``FeatureExtractor(layers=...)``.
        channels: number of channels of the feature map.
        stride: input pixels per feature-map pixel (a 256x256 input gives 256/stride).
    """

    name: str
    channels: int
    stride: int


class Backbone(nn.Module):
    """Base of the backbones: a classifier whose intermediate nodes can be returned by name.

    Subclasses set ``feature_info`` (every node, shallow to deep), ``mean``/``std`` (the
    normalisation the weights were trained with, applied by the feature extractor) and
    implement ``_nodes`` and ``_drop_after``. Parameter names follow the published
    checkpoints, so their state dicts load with ``strict=True``.
    """

    feature_info: tuple[FeatureInfo, ...] = ()
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    weights_source: str = "unset"
    name: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.truncated_after: str | None = None

    def _nodes(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        """Feature nodes in execution order: ``(name, function of the previous output)``."""
        raise NotImplementedError

    def _drop_after(self, name: str) -> None:
        """Delete every submodule that is only needed after node ``name``."""
        raise NotImplementedError

    @property
    def layer_names(self) -> list[str]:
        """Names accepted as feature layers, shallow to deep."""
        return [info.name for info in self.feature_info]

    def check_layers(self, layers: Iterable[str]) -> list[str]:
        """Validate layer names (close-match suggestions on typos); return them in depth order."""
        names = self.layer_names
        requested = list(layers)
        for layer in requested:
            check_choice(f"{self.name or type(self).__name__} layer", layer, names)
        return sorted(set(requested), key=names.index)

    def truncate(self, last: str) -> None:
        """Remove everything after node ``last`` so it is neither stored nor computed.

        After this, ``forward`` (the classifier) is unavailable; ``forward_features`` works
        for every node up to ``last``.
        """
        self.check_layers([last])
        self._drop_after(last)
        self.truncated_after = last

    def forward_features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run the network up to the deepest of ``layers`` and return those feature maps.

        Args:
            x: ``(N, 3, H, W)`` float32, already normalised with ``mean``/``std``.
            layers: node names (see ``feature_info``).

        Returns:
            ``{name: (N, channels, H / stride, W / stride)}`` in depth order.
        """
        wanted = self.check_layers(layers)
        remaining = set(wanted)
        features: dict[str, torch.Tensor] = {}
        for name, node in self._nodes():
            x = node(x)
            if name in remaining:
                features[name] = x
                remaining.discard(name)
                if not remaining:
                    break  # nothing past the deepest requested node is computed
        return {name: features[name] for name in wanted}


def init_weights(module: nn.Module) -> None:
    """Random initialisation used when ``pretrained=False``.

    He-normal (fan-out, as torchvision's ResNet and TF's EfficientNet do) for convolutions;
    identity batch norm. Depthwise convolutions count fan-out per group, otherwise their
    weights would be far too small and the features would vanish with depth.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
