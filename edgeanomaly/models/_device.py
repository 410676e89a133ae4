"""Which torch device a fit runs on: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``."""

from __future__ import annotations

import torch

from edgeanomaly.errors import ConfigError

__all__ = ["resolve_device", "DEVICE_HELP"]

DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA when torch sees one, else cpu)"


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """The torch device for ``spec`` (None means ``"cpu"``), checked to exist.

    >>> resolve_device("cpu")
    device(type='cpu')

    Raises:
        ConfigError: a string that is none of the forms above, or a CUDA device that torch
            cannot see (no CUDA build, no driver, no GPU, or an index past the last GPU).
    """
    if spec is None:
        return torch.device("cpu")
    if isinstance(spec, torch.device):
        text = str(spec)
    elif isinstance(spec, str):
        text = spec.strip().lower()
    else:
        raise ConfigError(f"Expected device as {DEVICE_HELP}, got {spec!r}")
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index = text[5:]
        if text != "cuda" and not index.isdigit():
            raise ConfigError(f"Expected device as {DEVICE_HELP}, got {spec!r}")
        if not torch.cuda.is_available():
            build = torch.version.cuda
            why = (f"this torch {torch.__version__} is built without CUDA" if build is None
                   else f"torch {torch.__version__} (CUDA {build}) finds no usable GPU or driver")
            raise ConfigError(f"Device {spec!r} asked for, but {why}. Use --device cpu (or auto).")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ConfigError(f"Device {spec!r} asked for, but torch sees {count} CUDA device{'s' * (count != 1)} "
                              f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
        return torch.device(text)
    raise ConfigError(f"Expected device as {DEVICE_HELP}, got {spec!r}")
