"""The one table of artifact formats and inference backends (torch-free).

Everything that needs to know which formats exist, which backend runs which format on which
device, in which order precisions are preferred, where an artifact lives in a bundle and
how it is written reads it: ``runtime.load`` and its artifact choice, the bundle schema
checks, export dispatch and parity, ``validate``, ``benchmark``, ``info`` and the CLI
choices. Rows name their code by import path (``"package.module:attribute"``), so reading
the table imports neither a backend nor torch; the code loads when a row is used.

Adding a backend is one module (a class following :class:`edgeanomaly.runtime.Backend`)
plus one :func:`register_backend` call; adding a format is its writer plus one
:func:`register_format` call.

>>> from edgeanomaly.registry import get_backend, get_format
>>> get_backend("onnxruntime").formats
('onnx',)
>>> get_format("openvino").artifact_path("int8")
'openvino-int8/model.xml'
>>> get_backend("openvino").precision_order("NPU")
('int8', 'fp16')
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

from edgeanomaly._optional import check_choice
from edgeanomaly.errors import BackendUnavailableError, ConfigError

__all__ = [
    "PRECISIONS",
    "EXECUTION_PRECISIONS",
    "EXECUTION_CAPABILITIES",
    "BackendSpec",
    "DeployTargetSpec",
    "FormatSpec",
    "SOURCE_FORMAT",
    "backend_names",
    "backends",
    "backends_for",
    "deploy_target_names",
    "deploy_targets",
    "get_deploy_target",
    "measured_release",
    "register_deploy_target",
    "release_keys",
    "format_names",
    "formats",
    "get_backend",
    "get_format",
    "register_backend",
    "register_format",
    "server_backend",
    "resolve",
    "unregister_backend",
    "unregister_deploy_target",
    "unregister_format",
]

#: Storage precisions of artifacts, most exact first.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
#: Execution (arithmetic) precisions a backend may run an artifact at, most exact first; what
#: export measures against torch and ``load`` chooses among (see ``BackendSpec.executions``).
EXECUTION_PRECISIONS: tuple[str, ...] = ("f32", "bf16", "f16")
#: Execution precision -> the device capability it needs, as a backend's ``device_facts``
#: report it (OpenVINO's ``OPTIMIZATION_CAPABILITIES`` spelling).
EXECUTION_CAPABILITIES: dict[str, str] = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}

def resolve(ref: Any) -> Any:
    """Load ``"package.module:attribute"`` (anything else is returned as it is).

    >>> resolve("math:sqrt")(9.0)
    3.0
    """
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    if not attribute:
        raise ConfigError(f"Expected a reference of the form 'package.module:attribute', got {ref!r}")
    obj: Any = importlib.import_module(module)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def _default_paths(name: str, suffix: str) -> Callable[[str], str]:
    def path(precision: str) -> str:
        return f"{name}/model{suffix}" if precision == "fp32" else f"{name}-{precision}/model{suffix}"

    return path


@dataclass(frozen=True)
class FormatSpec:
    """An artifact format.

    Attributes:
        name: ``--format`` value and bundle ``Artifact.format``.
        suffix: suffix of the file a backend loads (``Artifact.path`` ends with it).
        precisions: precisions written in this format, most exact first.
        path: precision -> the artifact's path inside a bundle (default ``<name>[-<precision>]/model<suffix>``).
        companions: suffixes of files that must come with the loadable one (OpenVINO's ``.bin``).
        model_info_reader: ``(path) -> {key: value}``: the ``model_info`` written into a graph
            file of this format, read without loading it (None: graphs of this format are not
            checked against the manifest before compiling).
        writer: ``(ExportContext, precision, dest) -> [files written]``, the loadable file first;
            an import path, so the torch-free table never imports the training side.
        notes: one line for help texts and docs.
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    path: Callable[[str], str] | None = None
    companions: tuple[str, ...] = ()
    writer: Any = None
    notes: str = ""
    model_info_reader: Any = None

    def artifact_name(self, precision: str) -> str:
        """Bundle artifact name, e.g. ``openvino-int8``."""
        return f"{self.name}-{precision}"

    def artifact_path(self, precision: str) -> str:
        """Relative path of the loadable file inside a bundle."""
        check_choice(f"precision of the {self.name} format", precision, self.precisions)
        return (self.path or _default_paths(self.name, self.suffix))(precision)

    def load_writer(self) -> Callable[..., Any]:
        if self.writer is None:
            raise ConfigError(f"Format {self.name!r} has no writer registered: it can be run but not exported")
        return resolve(self.writer)


@dataclass(frozen=True)
class BackendSpec:
    """An inference backend.

    Attributes:
        name: what users pass as ``backend=`` / ``--backend``.
        factory: ``(model_path, device, *, artifact_precision, static_batch, **options) -> Backend``.
        module: the Python package it needs (checked without importing it).
        formats: artifact formats it runs, preferred first.
        devices: device family (what users ask for) -> the backend's own name for it
            (ONNX Runtime's execution provider; OpenVINO's device name).
        list_devices: ``() -> [device names present]``.
        precisions: device family -> artifact precisions in order of preference when none is
            asked for; ``"*"`` is every other family.
        static_devices: families that run only static-batch artifacts (NPUs).
        options: ``load()`` options it takes besides device and artifact.
        install_hint: what to install when ``module`` is missing.
        auto: whether ``backend="auto"`` may choose it.
        connects: the backend runs no local file (an inference server): ``factory`` is then
            ``(bundle, device, *, precision, artifact, **options) -> (Backend, artifact)`` and
            reports the artifact it runs, instead of ``load`` choosing one.
        executions: device family -> execution precisions it can run, fastest first, ending
            with ``"f32"`` (OpenVINO: CPU bf16 > f32, GPU f16 > f32). Export measures each
            reduced one against torch; ``load`` runs the fastest that passed there and that
            the device supports now. A family not listed runs the backend's own policy.
        device_facts: ``(device) -> {"capabilities": [...] or None, "device_name": str,
            "release": str}``: what a device can run (:data:`EXECUTION_CAPABILITIES` names),
            what it is and the backend release running it, for the execution precision a
            measurement was made at; None for a backend that reports nothing. A measurement
            record stores that release under the row's :attr:`name` (see :func:`measured_release`).
        title: the backend's name in messages (``"OpenVINO"``); default :attr:`name`.
    """

    name: str
    factory: Any
    module: str
    formats: tuple[str, ...]
    devices: dict[str, str]
    list_devices: Any
    precisions: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"*": PRECISIONS})
    static_devices: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    install_hint: str = ""
    auto: bool = True
    connects: bool = False
    executions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    device_facts: Any = None
    title: str = ""

    @property
    def label(self) -> str:
        """:attr:`title`, or :attr:`name` when the row has none."""
        return self.title or self.name

    def installed(self) -> bool:
        """True when :attr:`module` can be imported (checked without importing it)."""
        return importlib.util.find_spec(self.module) is not None

    def require(self) -> None:
        if not self.installed():
            raise BackendUnavailableError(
                f"The {self.name} backend needs the {self.module!r} package. Install it with: {self.install_hint or 'pip install ' + self.module}"
            )

    def available_devices(self) -> list[str]:
        """Devices present on this machine, as names ``load(device=...)`` accepts."""
        self.require()
        return list(resolve(self.list_devices)())

    def facts(self, device: str) -> dict[str, Any] | None:
        """:attr:`device_facts` of ``device`` (None when this backend reports none)."""
        if self.device_facts is None:
            return None
        self.require()
        return dict(resolve(self.device_facts)(device))

    def family(self, device: str) -> str:
        """Device family of a device string: ``"GPU.1"`` -> ``"GPU"``, ``"CUDA,CPU"`` -> ``"CUDA"``."""
        head = str(device).split(",", 1)[0].split(":", 1)[0].split(".", 1)[0].strip()
        by_upper = {k.upper(): k for k in self.devices}
        return by_upper.get(head.upper(), head.upper())

    def knows(self, device: str) -> bool:
        return self.family(device) in self.devices

    def precision_order(self, device: str) -> tuple[str, ...]:
        """Artifact precisions this backend prefers on ``device``, best first."""
        return self.precisions.get(self.family(device), self.precisions.get("*", PRECISIONS))

    def execution_order(self, device: str) -> tuple[str, ...]:
        """Execution precisions on ``device``, fastest first (empty: the backend's own policy).

        >>> get_backend("openvino").execution_order("CPU")
        ('bf16', 'f32')
        """
        return self.executions.get(self.family(device), ())

    def needs_static_batch(self, device: str) -> bool:
        return self.family(device) in self.static_devices

    def create(self, model_path: Any, device: str, **kwargs: Any) -> Any:
        """Instantiate the backend on one artifact file."""
        self.require()
        return resolve(self.factory)(model_path, device, **kwargs)

    def connect(self, bundle: Any, device: str, **kwargs: Any) -> tuple[Any, Any]:
        """``(Backend, artifact)`` of a backend that runs no local file (``connects=True``)."""
        self.require()
        return resolve(self.factory)(bundle, device, **kwargs)


@dataclass(frozen=True)
class DeployTargetSpec:
    """A server ``edgeanomaly deploy`` writes a model repository for.

    Attributes:
        name: ``--target`` value.
        formats: artifact formats the server runs, preferred first (the default artifact is
            the first of them the bundle has at fp32).
        writer: ``(bundle, chosen artifact, model name, folder, DeployResult, settings) -> None``,
            an import path: writes the repository's files into the folder.
        server_backends: format -> the server's own name for the backend that runs it
            (Triton's ``backend:`` field); empty where the server does not ask.
        notes: one line for help texts and docs.
    """

    name: str
    formats: tuple[str, ...]
    writer: Any
    server_backends: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    def server_backend(self, fmt: str) -> str:
        """The server's backend name for artifact format ``fmt``."""
        return self.server_backends[check_choice(f"artifact format served by {self.name}", fmt, self.server_backends)]


#: The format export writes first, from torch; every other format is converted from it.
SOURCE_FORMAT = "onnx"

_FORMATS: dict[str, FormatSpec] = {}
_BACKENDS: dict[str, BackendSpec] = {}
_TARGETS: dict[str, DeployTargetSpec] = {}


def register_format(spec: FormatSpec, *, replace: bool = False) -> FormatSpec:
    """Add a format row (``replace=True`` to redefine an existing one)."""
    if spec.name in _FORMATS and not replace:
        raise ConfigError(f"Format {spec.name!r} is already registered")
    unknown = [p for p in spec.precisions if p not in PRECISIONS]
    if unknown:
        raise ConfigError(f"Format {spec.name!r}: expected precisions among {', '.join(PRECISIONS)}, got {unknown}")
    _FORMATS[spec.name] = spec
    return spec


def register_backend(spec: BackendSpec, *, replace: bool = False) -> BackendSpec:
    """Add a backend row (``replace=True`` to redefine an existing one)."""
    if spec.name in _BACKENDS and not replace:
        raise ConfigError(f"Backend {spec.name!r} is already registered")
    if spec.name == "auto":
        raise ConfigError("'auto' is reserved for automatic backend choice")
    unknown = [f for f in spec.formats if f not in _FORMATS]
    if unknown:
        raise ConfigError(f"Backend {spec.name!r} runs unregistered formats {unknown}; registered: {', '.join(_FORMATS)}")
    _BACKENDS[spec.name] = spec
    return spec


def unregister_backend(name: str) -> None:
    """Remove a backend row (for plugins and tests that registered one)."""
    _BACKENDS.pop(get_backend(name).name)


def unregister_format(name: str) -> None:
    """Remove a format row (for plugins and tests that registered one); refused while a
    registered backend still runs it or a deploy target serves it."""
    spec = get_format(name)  # an unknown name is a ConfigError with close matches, not a KeyError
    users = [b.name for b in _BACKENDS.values() if spec.name in b.formats] + [t.name for t in _TARGETS.values() if spec.name in t.formats]
    if users:
        raise ConfigError(f"Format {name!r} is run by backend(s) or deploy target(s) {users}: unregister them first")
    _FORMATS.pop(spec.name)


def register_deploy_target(spec: DeployTargetSpec, *, replace: bool = False) -> DeployTargetSpec:
    """Add a deploy target row (``replace=True`` to redefine an existing one)."""
    if spec.name in _TARGETS and not replace:
        raise ConfigError(f"Deploy target {spec.name!r} is already registered")
    unknown = [f for f in spec.formats if f not in _FORMATS]
    if unknown or not spec.formats:
        raise ConfigError(f"Deploy target {spec.name!r}: expected formats among {', '.join(_FORMATS)}, got {list(spec.formats)}")
    _TARGETS[spec.name] = spec
    return spec


def unregister_deploy_target(name: str) -> None:
    """Remove a deploy target row (for plugins and tests that registered one)."""
    _TARGETS.pop(get_deploy_target(name).name)


def deploy_targets() -> tuple[DeployTargetSpec, ...]:
    """Every deploy target row, in registration order."""
    return tuple(_TARGETS.values())


def deploy_target_names() -> tuple[str, ...]:
    return tuple(_TARGETS)


def get_deploy_target(name: str) -> DeployTargetSpec:
    return _TARGETS[check_choice("deploy target", name, _TARGETS)]


def measured_release(entry: Any) -> tuple[str, str] | None:
    """``(backend title, release)`` recorded in a measurement entry, or None.

    A measurement (an execution record entry, a device description) stores the release of the
    backend that made it under that backend row's name, e.g. ``{"openvino": "2026.4.1-..."}``.

    >>> measured_release({"device": "CPU", "openvino": "2026.4.1"})
    ('OpenVINO', '2026.4.1')
    """
    for key in release_keys():
        if entry.get(key):
            return _BACKENDS[key].label, str(entry[key])
    return None


def release_keys() -> tuple[str, ...]:
    """Keys a measurement may store a backend release under: the names of the rows that
    describe devices (``device_facts``)."""
    return tuple(b.name for b in _BACKENDS.values() if b.device_facts is not None)


def formats() -> tuple[FormatSpec, ...]:
    """Every format row, in registration order."""
    return tuple(_FORMATS.values())


def format_names() -> tuple[str, ...]:
    return tuple(_FORMATS)


def backends() -> tuple[BackendSpec, ...]:
    """Every backend row, in registration order (the ``auto`` preference)."""
    return tuple(_BACKENDS.values())


def server_backend() -> str:
    """The name of the backend row that connects to an inference server (``connects=True``)."""
    return next(b.name for b in _BACKENDS.values() if b.connects)


def backend_names() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def get_format(name: str) -> FormatSpec:
    return _FORMATS[check_choice("format", name, _FORMATS)]


def get_backend(name: str) -> BackendSpec:
    return _BACKENDS[check_choice("backend", name, _BACKENDS)]


def backends_for(fmt: str) -> tuple[BackendSpec, ...]:
    """Backends that run ``fmt``: those that prefer it most first, then in registration order.

    >>> [b.name for b in backends_for("onnx")]
    ['onnxruntime', 'openvino']
    """
    able = [b for b in _BACKENDS.values() if fmt in b.formats]
    return tuple(sorted(able, key=lambda b: b.formats.index(fmt)))


# -- the built-in rows ------------------------------------------------------------------------
register_format(
    FormatSpec(
        name="onnx",
        suffix=".onnx",
        precisions=("fp32",),
        path=lambda precision: "model.onnx" if precision == "fp32" else f"model-{precision}.onnx",
        writer="edgeanomaly.export._export:write_onnx",
        model_info_reader="edgeanomaly.bundle._graphinfo:_onnx_metadata",
        notes="opset 17, dynamic batch unless --static; external data beyond 2 GB",
    )
)
register_format(
    FormatSpec(
        name="openvino",
        suffix=".xml",
        precisions=("fp32", "fp16", "int8"),
        companions=(".bin",),
        writer="edgeanomaly.export._export:write_openvino",
        model_info_reader="edgeanomaly.bundle._graphinfo:_openvino_metadata",
        notes="IR v11; fp16 = compressed weights; int8 = NNCF post-training quantisation of the backbone",
    )
)
register_backend(
    BackendSpec(
        name="openvino",
        factory="edgeanomaly.runtime._backends._openvino:OpenVINOBackend",
        module="openvino",
        # OpenVINO reads ONNX too, so a bundle without IR still runs on it.
        formats=("openvino", "onnx"),
        devices={"CPU": "CPU", "GPU": "GPU", "NPU": "NPU", "AUTO": "AUTO"},
        list_devices="edgeanomaly.runtime._backends._openvino:available_devices",
        device_facts="edgeanomaly.runtime._backends._openvino:device_facts",
        # NPUs compile static shapes only and run integer kernels best.
        precisions={"NPU": ("int8", "fp16"), "*": PRECISIONS},
        static_devices=("NPU",),
        options=("inference_precision", "performance_hint", "cache_dir", "num_streams", "num_threads"),
        install_hint="pip install openvino",
        # bf16 needs AMX or AVX512-BF16 (OPTIMIZATION_CAPABILITIES lists BF16); GPUs run f16.
        executions={"CPU": ("bf16", "f32"), "GPU": ("f16", "f32")},
        title="OpenVINO",
    )
)
register_backend(
    BackendSpec(
        name="onnxruntime",
        factory="edgeanomaly.runtime._backends._onnxruntime:ONNXRuntimeBackend",
        module="onnxruntime",
        formats=("onnx",),
        devices={"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider", "TensorRT": "TensorrtExecutionProvider"},
        list_devices="edgeanomaly.runtime._backends._onnxruntime:available_devices",
        options=("num_threads", "memory_arena"),
        install_hint='pip install onnxruntime (or "edgeanomaly[gpu]" for CUDA/TensorRT)',
        title="ONNX Runtime",
    )
)


register_backend(
    BackendSpec(
        name="remote",
        factory="edgeanomaly.runtime._backends._remote:connect_backend",
        module="http.client",  # http(s):// needs the standard library only; grpc:// needs the [serve] extra
        # No local file: the server runs whatever artifact it was given (load asks it which);
        # the bundle supplies pre- and postprocessing.
        formats=(),
        devices={"REMOTE": "REMOTE"},
        list_devices="edgeanomaly.runtime._backends._remote:remote_devices",
        options=("url", "model_name", "timeout"),
        install_hint='pip install "edgeanomaly[serve]" (for grpc:// URLs)',
        auto=False,
        connects=True,
    )
)


# The servers `edgeanomaly deploy` writes for; each row's writer is serve._deploy.write_<name>.
for _name, _formats, _server_backends, _notes in (
    ("triton", ("onnx", "openvino"), {"onnx": "onnxruntime", "openvino": "openvino"},
     "NVIDIA Triton: <model>/config.pbtxt + <model>/1/ graph; serves the raw graph"),
    ("ovms", ("openvino", "onnx"), {}, "OpenVINO Model Server: config.json + <model>/1/ graph; serves the raw graph"),
    ("kserve", ("onnx", "openvino"), {}, "KServe: InferenceService YAML + Dockerfile running `edgeanomaly serve` on the bundle"),
):
    register_deploy_target(DeployTargetSpec(name=_name, formats=_formats, writer=f"edgeanomaly.serve._deploy:write_{_name}",
                                            server_backends=_server_backends, notes=_notes))

del _name, _formats, _server_backends, _notes
