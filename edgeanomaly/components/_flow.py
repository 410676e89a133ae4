"""Invertible flow blocks over feature maps (FastFlow, CFlow and CS-Flow build on these).

One :class:`AffineCouplingBlock` is the step FrEIA calls ``AllInOneBlock``, reduced to what
those models use: an affine coupling with soft clamping, a learned global affine (actnorm)
and a fixed random channel permutation. :class:`FlowSequence` composes blocks. Both map
``(N, C, H, W)`` to ``(z, log_jac_det)`` with the exact log-determinant of the Jacobian, have
an exact :meth:`inverse`, and export to ONNX and OpenVINO (slices, convolutions, a gather).

Written here rather than taken from FrEIA (docs/ARCHITECTURE.md says why): the block is about
a hundred lines, FrEIA would add SciPy to the training install, and its graph-building API
(``SequenceINN``/``GraphINN``) is more than a sequence of blocks needs.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from edgeanomaly.errors import ConfigError

__all__ = ["AffineCouplingBlock", "FlowSequence", "conv_subnet", "fastflow_blocks"]

#: ``subnet(in_channels, out_channels) -> nn.Module`` mapping (N, in, H, W) to (N, out, H, W).
SubnetFactory = Callable[[int, int], nn.Module]


def conv_subnet(kernel_size: int = 3, hidden_ratio: float = 1.0) -> SubnetFactory:
    """FastFlow's coupling subnet: conv(k) -> ReLU -> conv(k), ``hidden = int(in * ratio)``.

    >>> conv_subnet(3, 1.0)(4, 8)(torch.zeros(1, 4, 5, 5)).shape
    torch.Size([1, 8, 5, 5])
    """
    if kernel_size not in (1, 3, 5, 7):
        raise ConfigError(f"Expected kernel_size 1, 3, 5 or 7, got {kernel_size!r}")
    if not hidden_ratio > 0:
        raise ConfigError(f"Expected hidden_ratio > 0, got {hidden_ratio!r}")

    def make(in_channels: int, out_channels: int) -> nn.Module:
        hidden = max(1, int(in_channels * hidden_ratio))
        pad = kernel_size // 2
        return nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size, padding=pad),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, kernel_size, padding=pad),
        )

    return make


def _generator(random_state: int | torch.Generator | None) -> torch.Generator:
    if isinstance(random_state, torch.Generator):
        return random_state
    if random_state is not None and not isinstance(random_state, int):
        raise TypeError(f"Expected random_state an int, a torch.Generator or None, got {type(random_state).__name__}")
    gen = torch.Generator()
    if random_state is None:
        gen.seed()  # nondeterministic, as scikit-learn's None
    else:
        gen.manual_seed(random_state)
    return gen


def _init_convolutions(module: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default Conv2d initialisation, drawn from ``gen`` instead of the global RNG,
    so that a block is a function of its ``random_state`` alone."""
    for conv in (m for m in module.modules() if isinstance(m, nn.Conv2d)):
        nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5), generator=gen)
        if conv.bias is not None:
            fan_in = conv.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(conv.bias, -bound, bound, generator=gen)


class AffineCouplingBlock(nn.Module):
    """One invertible step: affine coupling, global affine, fixed channel permutation.

    Forward, with ``x = [x1, x2]`` split on channels (``C // 2`` and the rest):

    - coupling: ``[a_s, a_t] = 0.1 * subnet(x1)``, ``s = clamp * tanh(a_s)``, ``t = a_t`` (as
      FrEIA's ``AllInOneBlock``, which anomalib's FastFlow uses: the factor 0.1 starts the
      coupling near identity; soft clamping keeps ``|s| < clamp``, so ``exp(s)`` cannot
      overflow), ``y2 = x2 * exp(s) + t``;
    - global affine (actnorm): ``y = [x1, y2] * exp(log_scale) + offset``, per channel;
    - permutation: ``y = y[:, perm]``, a fixed random permutation drawn from ``random_state``.

    ``log_jac_det = sum(s) + H * W * sum(log_scale)`` per sample, exact.

    Args:
        channels: C, at least 2.
        subnet: factory of the coupling network (default :func:`conv_subnet` 3x3).
        clamp: soft clamping bound of the log-scale, > 0 (FrEIA's default 2.0).
        random_state: seed (or generator) of the subnet's initial weights and the permutation;
            None: not reproducible.

    Input ``(N, C, H, W)`` float -> ``(y (N, C, H, W), log_jac_det (N,))``.

    >>> block = AffineCouplingBlock(4, random_state=0)
    >>> x = torch.randn(2, 4, 3, 3)
    >>> y, logdet = block(x)
    >>> torch.allclose(block.inverse(y), x, atol=1e-5), logdet.shape
    (True, torch.Size([2]))
    """

    def __init__(
        self,
        channels: int,
        subnet: SubnetFactory | None = None,
        *,
        clamp: float = 2.0,
        random_state: int | torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 2:
            raise ConfigError(f"Expected channels >= 2 (the coupling splits them in two), got {channels!r}")
        if not (isinstance(clamp, (int, float)) and clamp > 0):
            raise ConfigError(f"Expected clamp > 0, got {clamp!r}")
        self.channels = channels
        self.clamp = float(clamp)
        self.split = channels // 2
        kept, changed = self.split, channels - self.split
        self.subnet = (subnet or conv_subnet())(kept, 2 * changed)
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.offset = nn.Parameter(torch.zeros(channels))
        gen = _generator(random_state)
        _init_convolutions(self.subnet, gen)
        perm = torch.randperm(channels, generator=gen)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"Expected a torch.Tensor, got {type(x).__name__}")
        if not torch.jit.is_tracing() and (x.ndim != 4 or x.shape[1] != self.channels):
            raise ValueError(f"Expected x of shape (N, {self.channels}, H, W), got {tuple(x.shape)}")

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = 0.1 * self.subnet(kept)  # FrEIA's AllInOneBlock: the coefficients start small
        changed = self.channels - self.split
        s = self.clamp * torch.tanh(a[:, :changed])
        return s, a[:, changed:]

    def _affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.log_scale.view(1, -1, 1, 1), self.offset.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x)
        x1, x2 = x[:, : self.split], x[:, self.split :]
        s, t = self._scale_shift(x1)
        y = torch.cat([x1, x2 * torch.exp(s) + t], dim=1)
        log_scale, offset = self._affine()
        y = y * torch.exp(log_scale) + offset
        log_jac_det = s.sum(dim=(1, 2, 3)) + x.shape[2] * x.shape[3] * self.log_scale.sum()
        return y[:, self.perm], log_jac_det

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The ``x`` whose :meth:`forward` is ``y``: ``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        self._check(y)
        y = y[:, self.inverse_perm]
        log_scale, offset = self._affine()
        y = (y - offset) * torch.exp(-log_scale)
        y1, y2 = y[:, : self.split], y[:, self.split :]
        s, t = self._scale_shift(y1)
        return torch.cat([y1, (y2 - t) * torch.exp(-s)], dim=1)


class FlowSequence(nn.Module):
    """Blocks applied in order; log-determinants add up; :meth:`inverse` runs them backwards.

    Input ``(N, C, H, W)`` -> ``(z (N, C, H, W), log_jac_det (N,))``.

    >>> flow = fastflow_blocks(4, steps=2, random_state=0)
    >>> z, logdet = flow(torch.randn(1, 4, 3, 3))
    >>> z.shape, logdet.shape
    (torch.Size([1, 4, 3, 3]), torch.Size([1]))
    """

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        if not blocks:
            raise ConfigError("Expected at least one flow block, got none")
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_jac_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for block in self.blocks:
            x, step = block(x)
            log_jac_det = log_jac_det + step
        return x, log_jac_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for block in reversed(self.blocks):
            z = block.inverse(z)
        return z


def fastflow_blocks(
    channels: int,
    *,
    steps: int = 8,
    conv3x3_only: bool = False,
    hidden_ratio: float = 1.0,
    clamp: float = 2.0,
    random_state: int | None = 0,
) -> FlowSequence:
    """FastFlow's 2-D flow for one feature level: ``steps`` blocks whose subnets alternate
    3x3 and 1x1 convolutions (all 3x3 with ``conv3x3_only``), each with its own permutation,
    all drawn from one seeded generator."""
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"Expected steps >= 1, got {steps!r}")
    gen = _generator(random_state)
    return FlowSequence([
        AffineCouplingBlock(
            channels,
            conv_subnet(3 if conv3x3_only or i % 2 == 0 else 1, hidden_ratio),
            clamp=clamp,
            random_state=gen,
        )
        for i in range(steps)
    ])
