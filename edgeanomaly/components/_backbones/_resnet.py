"""ResNet-18 and Wide-ResNet-50-2 with torchvision's parameter names.

torchvision does not import on every torch build this project supports, so the two networks
are defined here. Module and parameter names (``conv1``, ``bn1``, ``layer1``..``layer4``,
``downsample.0/1``, ``fc``) match torchvision's, so its published checkpoints load with
``strict=True``. Bottleneck blocks put the stride on the 3x3 convolution ("ResNet v1.5"),
as torchvision does.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from edgeanomaly.components._backbones._base import Backbone, FeatureInfo

__all__ = ["ResNet", "resnet18", "wide_resnet50_2"]


def _conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 width_per_group: int = 64) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 width_per_group: int = 64) -> None:
        super().__init__()
        width = planes * width_per_group // 64
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(Backbone):
    """ResNet classifier; feature nodes ``stem`` (stride 2) and ``layer1``..``layer4``.

    Input ``(N, 3, H, W)`` normalised with ImageNet mean/std; ``forward`` returns
    ``(N, num_classes)`` logits.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], depths: tuple[int, int, int, int],
                 width_per_group: int = 64, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        info = [FeatureInfo("stem", 64, 2)]
        for index, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            stride = 1 if index == 0 else 2
            cout = planes * block.expansion
            downsample = None
            if stride != 1 or cin != cout:
                downsample = nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
            blocks = [block(cin, planes, stride, downsample, width_per_group)]
            blocks += [block(cout, planes, 1, None, width_per_group) for _ in range(depth - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            info.append(FeatureInfo(f"layer{index + 1}", cout, 4 * 2**index))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.feature_info = tuple(info)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def _nodes(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        nodes: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [("stem", self._stem)]
        for index in range(1, 5):
            layer = getattr(self, f"layer{index}", None)
            if layer is None:
                break
            # The max-pool belongs to layer1 so that "stem" is the last full-resolution map.
            if index == 1:
                nodes.append(("layer1", lambda x, layer=layer: layer(self.maxpool(x))))
            else:
                nodes.append((f"layer{index}", layer))
        return nodes

    def _drop_after(self, name: str) -> None:
        keep = self.layer_names.index(name)  # 0 = stem, 1..4 = layer1..layer4
        for index in range(max(keep + 1, 1), 5):
            if hasattr(self, f"layer{index}"):
                delattr(self, f"layer{index}")
        for attr in ("avgpool", "fc"):
            if hasattr(self, attr):
                delattr(self, attr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.truncated_after is not None:
            raise RuntimeError(f"This backbone was truncated after {self.truncated_after!r}; "
                               "use forward_features().")
        x = self.maxpool(self._stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18() -> ResNet:
    """ResNet-18 (11.7 M parameters): stem 64/2, layer1 64/4, layer2 128/8, layer3 256/16,
    layer4 512/32 (channels/stride)."""
    return ResNet(BasicBlock, (2, 2, 2, 2))


def wide_resnet50_2() -> ResNet:
    """Wide-ResNet-50-2 (68.9 M parameters): stem 64/2, layer1 256/4, layer2 512/8,
    layer3 1024/16, layer4 2048/32 (channels/stride)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), width_per_group=128)
