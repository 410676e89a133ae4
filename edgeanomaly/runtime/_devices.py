"""Device listing and checks for the built-in backends, driven by :mod:`edgeanomaly.registry`.

Which devices a backend knows (and ONNX Runtime's execution provider for each) is a field
of its registry row; this module lists what is present and checks requests against it.

Device selection fails fast: a device that is not present raises
:class:`~edgeanomaly.errors.DeviceUnavailableError` listing what is present. Fallback to
another device happens only when the user asks for it (OpenVINO ``AUTO`` / ``AUTO:GPU,CPU``,
or an ONNX Runtime list such as ``"CUDA,CPU"``).
"""

from __future__ import annotations

import difflib
import logging

from edgeanomaly._optional import check_choice
from edgeanomaly.errors import DeviceUnavailableError
from edgeanomaly.registry import EXECUTION_PRECISIONS, get_backend

log = logging.getLogger("edgeanomaly.runtime")

__all__ = [
    "INFERENCE_PRECISIONS",
    "PERFORMANCE_HINTS",
    "backend_installed",
    "list_devices",
    "openvino_devices",
    "onnxruntime_devices",
    "resolve_openvino_device",
    "resolve_onnxruntime_providers",
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


def list_devices(backend: str = "openvino") -> list[str]:
    """Devices present for ``backend``, as names ``load(device=...)`` accepts.

    >>> "CPU" in list_devices("onnxruntime")
    True
    """
    return get_backend(backend).available_devices()


def openvino_devices() -> list[str]:
    """OpenVINO's devices on this machine (``CPU``, ``GPU.0``, ``NPU``...)."""
    from edgeanomaly.runtime._backends._openvino import core

    return list(core().available_devices)


def onnxruntime_devices() -> list[str]:
    """Devices whose ONNX Runtime execution provider is present, in the registry row's order."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [dev for dev, prov in get_backend("onnxruntime").devices.items() if prov in available]


def _unavailable(backend: str, requested: str, available: list[str], extra: str = "") -> DeviceUnavailableError:
    known = tuple(get_backend(backend).devices)
    close = difflib.get_close_matches(requested, [*known, *available], n=2, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close and requested not in close else ""
    return DeviceUnavailableError(
        f"Device {requested!r} is not available for the {backend} backend on this machine. "
        f"Available: {', '.join(available) or 'none'}.{extra}{hint}"
    )


def _family(device: str) -> str:
    return device.split(".", 1)[0].upper()


def resolve_openvino_device(device: str, available: list[str]) -> str:
    """Check an OpenVINO device string against the devices present; return it normalised.

    Accepts ``CPU``, ``GPU``, ``GPU.1``, ``NPU`` and, only when asked for explicitly,
    ``AUTO`` or ``AUTO:GPU,CPU`` (OpenVINO then picks among the listed devices).

    >>> resolve_openvino_device("cpu", ["CPU"])
    'CPU'
    """
    text = str(device).strip()
    upper = text.upper()
    if upper == "AUTO" or upper.startswith("AUTO:"):
        candidates = [c.strip() for c in text.split(":", 1)[1].split(",") if c.strip()] if ":" in text else []
        present = []
        for cand in candidates:
            try:
                present.append(resolve_openvino_device(cand, available))
            except DeviceUnavailableError:
                if _family(cand.upper()) not in get_backend("openvino").devices:
                    raise  # a typo is an error, not a device to skip
        if not available or (candidates and not present):
            raise _unavailable("openvino", text, available)
        skipped = [c.upper() for c in candidates if c.upper() not in present]
        if skipped:
            # An explicit list asks for fallback: the absent devices are skipped, and said so.
            log.warning("%s: %s not present on this machine; AUTO chooses among %s", text, ", ".join(skipped), ", ".join(present))
        return "AUTO" + (":" + ",".join(present) if candidates else "")
    known = get_backend("openvino").devices
    if _family(upper) not in known:
        raise _unavailable("openvino", text, available, f" Known device types: {', '.join(known)}.")
    # "GPU" is present as "GPU" (one card) or "GPU.0", "GPU.1" (several): both spellings work.
    if upper in available or any(_family(a) == upper for a in available):
        return upper
    raise _unavailable("openvino", text, available)


def resolve_onnxruntime_providers(device: str, available_providers: list[str]) -> list[str]:
    """Map a device (or an explicit fallback list ``"CUDA,CPU"``) to ONNX Runtime providers.

    A single device must be present: ONNX Runtime's own silent fallback to the CPU would turn
    a missing GPU driver into a missed cycle time nobody notices. A list asks for fallback
    explicitly: devices of the list that are absent are skipped with a warning, and at least
    one must be present (the device used is reported by the backend).

    >>> resolve_onnxruntime_providers("CPU", ["CPUExecutionProvider"])
    ['CPUExecutionProvider']
    """
    table = get_backend("onnxruntime").devices
    by_upper = {k.upper(): k for k in table}
    present = [d for d, p in table.items() if p in available_providers]
    names = []
    for part in (p.strip() for p in str(device).split(",") if p.strip()):
        name = by_upper.get(part.upper())
        if name is None:
            raise _unavailable("onnxruntime", part, present, f" Known devices: {', '.join(table)}.")
        names.append(name)
    usable = [n for n in names if table[n] in available_providers]
    if not names or (len(names) == 1 and not usable) or not usable:
        missing = next((n for n in names if n not in usable), str(device))
        raise _unavailable(
            "onnxruntime",
            missing,
            present,
            f" ONNX Runtime providers present: {', '.join(available_providers)}."
            + (" CUDA/TensorRT need onnxruntime-gpu (pip install \"edgeanomaly[gpu]\")." if missing != "CPU" else ""),
        )
    skipped = [n for n in names if n not in usable]
    if skipped:
        # A list asks for fallback: the absent providers are skipped, and said so.
        log.warning("%s: %s not present on this machine; using %s as the list allows", device, ", ".join(skipped), ", ".join(usable))
    return [table[n] for n in usable]


def check_inference_precision(value: str | None) -> str | None:
    """Validate a requested OpenVINO inference precision (``None`` = default rule)."""
    if value is None:
        return None
    return check_choice("inference precision", str(value).lower(), INFERENCE_PRECISIONS)


def check_performance_hint(value: str) -> str:
    """Validate ``latency`` / ``throughput``; return the OpenVINO spelling."""
    return PERFORMANCE_HINTS[check_choice("performance hint", str(value).lower(), PERFORMANCE_HINTS)]
