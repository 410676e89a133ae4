"""The one table of inference backends and devices, and the checks it drives.

Every argument check (backend name, device name, inference precision, performance hint),
the ``auto`` backend choice and the error messages come from :data:`BACKENDS`, so adding a
device means adding one row here.

Device selection fails fast: a device that is not present raises
:class:`~edgeanomaly.errors.DeviceUnavailableError` listing what is present. Fallback to
another device happens only when the user asks for it (OpenVINO ``AUTO`` / ``AUTO:GPU,CPU``,
or an ONNX Runtime list such as ``"CUDA,CPU"``).
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
from dataclasses import dataclass, field

from edgeanomaly._optional import check_choice, require
from edgeanomaly.errors import BackendUnavailableError, DeviceUnavailableError

log = logging.getLogger("edgeanomaly.runtime")

__all__ = [
    "BackendSpec",
    "BACKENDS",
    "INFERENCE_PRECISIONS",
    "PERFORMANCE_HINTS",
    "backend_installed",
    "list_devices",
    "resolve_openvino_device",
    "resolve_onnxruntime_providers",
    "check_inference_precision",
    "check_performance_hint",
]


@dataclass(frozen=True)
class BackendSpec:
    """One inference backend.

    Attributes:
        name: name users pass as ``backend=``.
        module: Python module that provides it (imported lazily).
        formats: artifact formats it can load, preferred first.
        devices: device families it knows (what the user may ask for).
        providers: ONNX Runtime execution provider per device (empty for OpenVINO).
        install_hint: what to install when it is missing.
    """

    name: str
    module: str
    formats: tuple[str, ...]
    devices: tuple[str, ...]
    providers: dict[str, str] = field(default_factory=dict)
    install_hint: str = ""


BACKENDS: dict[str, BackendSpec] = {
    "openvino": BackendSpec(
        name="openvino",
        module="openvino",
        # OpenVINO reads ONNX too, so a bundle without IR still runs on it.
        formats=("openvino", "onnx"),
        devices=("CPU", "GPU", "NPU", "AUTO"),
        install_hint="pip install openvino",
    ),
    "onnxruntime": BackendSpec(
        name="onnxruntime",
        module="onnxruntime",
        formats=("onnx",),
        devices=("CPU", "CUDA", "TensorRT"),
        providers={
            "CPU": "CPUExecutionProvider",
            "CUDA": "CUDAExecutionProvider",
            "TensorRT": "TensorrtExecutionProvider",
        },
        install_hint='pip install onnxruntime (or "edgeanomaly[gpu]" for CUDA/TensorRT)',
    ),
}

#: Inference precisions a user may request from OpenVINO (``None`` = the artifact's own precision,
#: i.e. f32 for FP32/INT8 artifacts; see ``edgeanomaly.runtime.load``).
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")

#: OpenVINO performance hints by their user-facing names.
PERFORMANCE_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


def backend_installed(name: str) -> bool:
    """True when the backend's module can be imported (checked without importing it)."""
    spec = BACKENDS[check_choice("backend", name, BACKENDS)]
    return importlib.util.find_spec(spec.module) is not None


def _import_backend(name: str):
    spec = BACKENDS[name]
    try:
        return require(spec.module, purpose=f"the {name} backend")
    except ImportError as exc:
        raise BackendUnavailableError(f"{exc}. Install with: {spec.install_hint}") from exc


def list_devices(backend: str = "openvino") -> list[str]:
    """Devices present for ``backend``, as names ``load(device=...)`` accepts.

    >>> "CPU" in list_devices("onnxruntime")
    True
    """
    check_choice("backend", backend, BACKENDS)
    if backend == "openvino":
        from edgeanomaly.runtime._backends._openvino import core

        return list(core().available_devices)
    ort = _import_backend("onnxruntime")
    available = set(ort.get_available_providers())
    return [dev for dev, prov in BACKENDS["onnxruntime"].providers.items() if prov in available]


def _unavailable(backend: str, requested: str, available: list[str], extra: str = "") -> DeviceUnavailableError:
    known = BACKENDS[backend].devices
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
                if _family(cand.upper()) not in BACKENDS["openvino"].devices:
                    raise  # a typo is an error, not a device to skip
        if not available or (candidates and not present):
            raise _unavailable("openvino", text, available)
        skipped = [c.upper() for c in candidates if c.upper() not in present]
        if skipped:
            # An explicit list asks for fallback: the absent devices are skipped, and said so.
            log.warning("%s: %s not present on this machine; AUTO chooses among %s", text, ", ".join(skipped), ", ".join(present))
        return "AUTO" + (":" + ",".join(present) if candidates else "")
    if _family(upper) not in BACKENDS["openvino"].devices:
        raise _unavailable(
            "openvino", text, available, f" Known device types: {', '.join(BACKENDS['openvino'].devices)}."
        )
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
    table = BACKENDS["onnxruntime"].providers
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
