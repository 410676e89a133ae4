"""A module whose buffers take the shape of the state dict they are loaded from."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["DynamicBufferModule"]


class DynamicBufferModule(nn.Module):
    """``nn.Module`` whose registered buffers are resized to the incoming shapes on load.

    Fitted state often has a size known only after ``fit`` (a PatchCore memory bank of
    ``(n_patches, D)``, a PaDiM mean of ``(D, h * w)``). Registering the buffer empty, e.g.
    ``torch.empty(0, D)``, and subclassing this module lets an unfitted instance load a
    fitted state dict; plain ``nn.Module`` would raise a size-mismatch error.

    Only buffers registered directly on this module are resized (each submodule loads its own
    part of the state dict); parameters keep strict shape checks. Dtype and device stay
    those of the existing buffer.

    >>> class Bank(DynamicBufferModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.register_buffer("memory_bank", torch.empty(0, 4))
    >>> fitted = Bank(); fitted.memory_bank = torch.ones(10, 4)
    >>> fresh = Bank(); _ = fresh.load_state_dict(fitted.state_dict())
    >>> tuple(fresh.memory_bank.shape)
    (10, 4)
    """

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for name, buffer in self._buffers.items():
            key = prefix + name
            if key not in state_dict or name in self._non_persistent_buffers_set:
                continue
            incoming = state_dict[key]
            if not isinstance(incoming, torch.Tensor):
                continue  # let nn.Module report the type error
            if buffer is None:
                self._buffers[name] = torch.empty_like(incoming)
            elif buffer.shape != incoming.shape:
                self._buffers[name] = torch.empty(incoming.shape, dtype=buffer.dtype, device=buffer.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
