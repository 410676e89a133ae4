"""Input checks shared by the components: one message format, TypeError vs ValueError."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_float_tensor", "fit_matrix"]


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


def fit_matrix(x: Any, name: str = "x") -> torch.Tensor:
    """Training data for a fit: ``(N, D)`` float with N >= 2, D >= 1, all finite -> float64, detached."""
    x = check_float_tensor(x, name)
    n, d = x.shape
    if n < 2 or d < 1:
        raise ValueError(f"Expected {name} of shape (N, D) with N >= 2 and D >= 1, got {tuple(x.shape)}")
    data = x.detach().to(torch.float64)
    if not bool(torch.isfinite(data).all()):
        raise ValueError(f"Expected finite {name}, got NaN or infinite values")
    return data
