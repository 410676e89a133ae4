"""Input checks shared by the components: one message format, TypeError vs ValueError."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_float_tensor"]


def check_float_tensor(x: Any, name: str = "x", shape: str = "(N, D)") -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor with as many dimensions as ``shape`` names.

    Raises TypeError for a non-tensor or an integer tensor, ValueError for a wrong rank, with
    messages like "Expected x of shape (N, D), got (3,)".
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Expected {name} as a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"Expected {name} of a floating dtype, got {x.dtype}")
    if x.ndim != shape.count(",") + 1:
        raise ValueError(f"Expected {name} of shape {shape}, got {tuple(x.shape)}")
    return x
