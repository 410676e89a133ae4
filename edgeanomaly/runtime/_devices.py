"""Device listing and the checks of load's generic settings, driven by :mod:`edgeanomaly.registry`.

Which devices a backend knows (and ONNX Runtime's execution provider for each) is a field
of its registry row, and each backend lists and resolves its own devices (its module, named
by the row); this module asks the rows. Device selection fails fast: a device that is not
present raises :class:`~edgeanomaly.errors.DeviceUnavailableError` listing what is present.
Fallback to another device happens only when the user asks for it (OpenVINO ``AUTO`` /
``AUTO:GPU,CPU``, or an ONNX Runtime list such as ``"CUDA,CPU"``).
"""

from __future__ import annotations

from edgeanomaly._optional import check_choice
from edgeanomaly.registry import EXECUTION_PRECISIONS, backends, get_backend

__all__ = [
    "INFERENCE_PRECISIONS",
    "PERFORMANCE_HINTS",
    "backend_installed",
    "list_devices",
    "check_inference_precision",
    "check_performance_hint",
]

#: Inference precisions a user may request from OpenVINO (``None`` = the artifact's own precision,
#: i.e. f32 for FP32/INT8 artifacts; see ``edgeanomaly.runtime.load``).
INFERENCE_PRECISIONS = EXECUTION_PRECISIONS

#: OpenVINO performance hints by their user-facing names.
PERFORMANCE_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


def backend_installed(name: str) -> bool:
    """True when the backend's package can be imported (checked without importing it)."""
    return get_backend(name).installed()


def list_devices(backend: str | None = None) -> list[str]:
    """Devices present for ``backend`` (default: the registry's first backend), as names
    ``load(device=...)`` accepts.

    >>> "CPU" in list_devices("onnxruntime")
    True
    """
    return (get_backend(backend) if backend is not None else backends()[0]).available_devices()


def check_inference_precision(value: str | None) -> str | None:
    """Validate a requested OpenVINO inference precision (``None`` = default rule)."""
    if value is None:
        return None
    return check_choice("inference precision", str(value).lower(), INFERENCE_PRECISIONS)


def check_performance_hint(value: str) -> str:
    """Validate ``latency`` / ``throughput``; return the OpenVINO spelling."""
    return PERFORMANCE_HINTS[check_choice("performance hint", str(value).lower(), PERFORMANCE_HINTS)]
