"""OpenVINO backend: CPU, GPU, NPU and (when asked for) AUTO.

Precision policy: OpenVINO's CPU plugin silently runs FP32 graphs in bf16 on AMX/AVX512-BF16
machines and the GPU plugin in f16. An anomaly threshold calibrated on FP32 scores does not
transfer to that, so we always set ``INFERENCE_PRECISION_HINT`` (f32 unless the user asks for
another precision) and read the compiled model's value back: ``precision`` reports what was
verified, never what was merely requested. Under a reduced precision (bf16, f16) the nodes
finer than stride 4 (the backbone's stem, the map's full-resolution resize and blur) keep f32
(:data:`REDUCED_MIN_STRIDE`). Marking them costs an IR round trip at load (PaDiM's 98 MiB ONNX
file: about 4 s more on a loaded 2-core machine).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edgeanomaly._tempdirs import temp_dir
from edgeanomaly._threads import FinishingThread
from edgeanomaly.errors import BackendUnavailableError, ConfigError, DeviceUnavailableError, InferenceError
from edgeanomaly.registry import EXECUTION_CAPABILITIES, get_backend
from edgeanomaly.runtime._backends import TWIN_AFTER, TensorInfo, device_unavailable, inference_error, run_padded

__all__ = ["OpenVINOBackend", "core"]

log = logging.getLogger("edgeanomaly.runtime")

_CORE: Any = None
_CORE_LOCK = threading.Lock()


def core() -> Any:
    """The process-wide ``ov.Core`` (creating one per model would reload the plugins).

    Its creation also makes the first call of every OpenVINO binding the backend uses
    (:func:`_first_use`), once, in this one thread, under this lock, before any caller gets
    the core. A binding's first call initialises C++ function-local statics, and one whose
    initialiser gives up the GIL deadlocks against a second thread that holds the GIL and
    reaches the same static. Two threads' first ``infer`` together hung that way (issue 20
    item 14; stacks in docs/BENCHMARKS.md): ``Type.to_dtype`` (OpenVINO's input dispatch)
    initialises a static table of NumPy dtypes, whose first ``py::dtype`` sets up pybind11's
    NumPy API and releases the GIL for it; the other thread, holding the GIL, blocked in
    ``__cxa_guard_acquire`` on that table, and the first never got the GIL back.
    """
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            try:
                import openvino as ov
            except ImportError as exc:
                raise BackendUnavailableError(
                    f"The openvino backend needs the 'openvino' package ({exc}). Install it with: pip install openvino"
                ) from exc
            ov_core = ov.Core()
            try:
                _first_use(ov, ov_core)
            except RuntimeError as exc:  # OpenVINO's own errors: the core still works, one thread at a time
                log.warning("OpenVINO's one-time first use failed (%s); using OpenVINO from several threads "
                            "at once for the first time may hang", exc)
            _CORE = ov_core
        return _CORE


def _row() -> Any:
    return get_backend(OpenVINOBackend.name)


def available_devices() -> list[str]:
    """OpenVINO's devices on this machine (``CPU``, ``GPU.0``, ``NPU``...): the row's ``list_devices``."""
    return list(core().available_devices)


def device_facts(device: str) -> dict[str, Any]:
    """What ``device`` can run and what it is: the row's ``device_facts``.

    ``capabilities``: its ``OPTIMIZATION_CAPABILITIES`` (e.g. ``['FP32', 'BF16', 'INT8']``), or
    None when the device is absent or its plugin does not say; ``device_name``: its
    ``FULL_DEVICE_NAME`` ('' when absent); ``release``: the OpenVINO release running it.
    """
    import openvino as ov

    ov_core = core()
    try:
        capabilities: list[str] | None = [str(c) for c in ov_core.get_property(device, "OPTIMIZATION_CAPABILITIES")]
    except (RuntimeError, TypeError):
        capabilities = None
    try:
        name = str(ov_core.get_property(device, "FULL_DEVICE_NAME"))
    except RuntimeError:
        name = ""
    return {"capabilities": capabilities, "device_name": name, "release": str(ov.get_version())}


def _family(device: str) -> str:
    return device.split(".", 1)[0].upper()


def resolve_device(device: str, available: list[str]) -> str:
    """Check an OpenVINO device string against the devices present; return it normalised.

    Accepts ``CPU``, ``GPU``, ``GPU.1``, ``NPU`` and, only when asked for explicitly,
    ``AUTO`` or ``AUTO:GPU,CPU`` (OpenVINO then picks among the listed devices).

    >>> resolve_device("cpu", ["CPU"])
    'CPU'
    """
    text = str(device).strip()
    upper = text.upper()
    if upper == "AUTO" or upper.startswith("AUTO:"):
        candidates = [c.strip() for c in text.split(":", 1)[1].split(",") if c.strip()] if ":" in text else []
        present = []
        for cand in candidates:
            try:
                present.append(resolve_device(cand, available))
            except DeviceUnavailableError:
                if _family(cand.upper()) not in _row().devices:
                    raise  # a typo is an error, not a device to skip
        if not available or (candidates and not present):
            raise device_unavailable("openvino", text, available)
        skipped = [c.upper() for c in candidates if c.upper() not in present]
        if skipped:
            # An explicit list asks for fallback: the absent devices are skipped, and said so.
            log.warning("%s: %s not present on this machine; AUTO chooses among %s", text, ", ".join(skipped), ", ".join(present))
        return "AUTO" + (":" + ",".join(present) if candidates else "")
    known = _row().devices
    if _family(upper) not in known:
        raise device_unavailable("openvino", text, available, f" Known device types: {', '.join(known)}.")
    # "GPU" is present as "GPU" (one card) or "GPU.0", "GPU.1" (several): both spellings work.
    if upper in available or any(_family(a) == upper for a in available):
        return upper
    raise device_unavailable("openvino", text, available)


def _first_use(ov: Any, ov_core: Any) -> None:
    """Call, once, each binding that :class:`OpenVINOBackend` calls (the same overloads, the
    same argument and result types), on a 1-pixel model compiled for one CPU thread.

    Bindings listed here are never first called from two threads together; a binding added
    to the backend belongs here too (tests/runtime/test_openvino_threads.py lists those first
    called elsewhere). Nothing is written; it costs a compile of that model, once per process:
    +44 ms to the first load and prediction on a busy 2-core machine (docs/BENCHMARKS.md).
    """
    str(ov.get_version())
    list(ov_core.available_devices)
    if "CPU" not in ov_core.available_devices:
        return  # no plugin to compile the probe for; other devices' statics are their plugins'
    for prop in ("OPTIMIZATION_CAPABILITIES", "FULL_DEVICE_NAME"):
        ov_core.get_property("CPU", prop)
    from openvino import opset13 as ops

    param = ops.parameter([-1, 3, 1, 1], np.float32, name="x")
    param.output(0).get_tensor().set_names({"x"})
    result = ops.result(ops.multiply(param, np.float32(2.0)))
    result.output(0).get_tensor().set_names({"y"})
    model = ov.Model([result], [param], "first_use")
    [d.get_length() for d in model.input(0).get_partial_shape() if d.is_static]
    compiled = ov_core.compile_model(
        model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    )
    for port in (*compiled.inputs, *compiled.outputs):
        port.get_any_name()
        _shape(port.get_partial_shape())
        _type_name(port.get_element_type())
    list(compiled.get_property("EXECUTION_DEVICES"))
    _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
    str(compiled.get_property("PERFORMANCE_HINT"))
    int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    x = np.ones((2, 3, 1, 1), np.float32)
    request = compiled.create_infer_request()
    request.infer({0: x}, share_inputs=True)
    request.get_output_tensor(0).data.copy()
    request.start_async({0: x}, share_inputs=True)
    request.wait_for(0)
    request.wait()
    float(request.latency)
    request.get_output_tensor(0).data.copy()


def _default_precision_hint(family: str, artifact_precision: str, requested: str | None) -> str | None:
    if requested is not None:
        return requested
    if family == "CPU":
        # f32 for every artifact: FP32 and INT8 keep their precision, and an FP16 IR is only
        # a storage format on CPU (its weights are decompressed to f32).
        return "f32"
    if family == "GPU":
        # The GPU plugin defaults to f16; an FP32 artifact must still run at FP32.
        return "f16" if artifact_precision == "fp16" else "f32"
    return None  # NPU: the plugin chooses; we read back and report what it did.


#: Under a reduced execution precision (bf16, f16), nodes whose output is finer than this stride
#: keep f32: the backbone's stem and first stage on the full-resolution input, and the map's own
#: full-resolution resize and blur. Measured on hazelnut at bf16 (benchmarks/bench_bf16_drift.py):
#: those nodes carried nearly all the drift (PatchCore 99th-percentile map difference 0.054 with
#: every node at bf16, 0.0068 with them at f32; PaDiM 0.039 -> 0.0048); keeping the heads
#: (distances, Mahalanobis forms) at f32 as well changed nothing measurable and cost PaDiM 1.6x.
REDUCED_MIN_STRIDE = 4
#: A graph is ours (exported by edgeanomaly) when its backbone nodes carry this scope.
BACKBONE_SCOPE = re.compile(r"feature_extractor/")


def _port_dims(port: Any) -> list[int]:
    return [int(d.text) for d in port.findall("dim") if d.text is not None and d.text.strip().lstrip("-").isdigit()]


def _head_kept_f32(ov_core: Any, model_path: str) -> tuple[Any, int]:
    """The model at ``model_path`` with every node whose output is finer than
    :data:`REDUCED_MIN_STRIDE` marked ``precise`` (OpenVINO's "keep the original precision"
    runtime attribute, which the CPU plugin honours under a bf16 ``INFERENCE_PRECISION_HINT``),
    and how many nodes were marked. A graph without :data:`BACKBONE_SCOPE` is not one of ours:
    it is left as it is (the plugin's own reduced precision), never a "bf16" run that is f32.

    The attribute has no Python constructor, so it is written into the IR's XML and read back;
    an ONNX file is converted to IR first, in a temporary folder that is removed.
    """
    import xml.etree.ElementTree as ET

    import openvino as ov

    with temp_dir("ov") as tmp:
        path = Path(model_path)
        if path.suffix.lower() == ".xml":
            xml_path, bin_path = path, path.with_suffix(".bin")
        else:
            xml_path, bin_path = Path(tmp) / "model.xml", Path(tmp) / "model.bin"
            ov.save_model(ov_core.read_model(str(path)), str(xml_path), compress_to_fp16=False)
        tree = ET.parse(xml_path)
        layers = list(tree.getroot().iter("layer"))
        heights = [_port_dims(p)[-2] for layer in layers if layer.get("type") == "Parameter"
                   for p in layer.iter("port") if len(_port_dims(p)) == 4]
        ours = any(BACKBONE_SCOPE.search(layer.get("name", "")) for layer in layers)
        fine = max(heights) / REDUCED_MIN_STRIDE if ours and heights and max(heights) > 0 else None
        marked = 0
        for layer in layers if fine is not None else ():
            if layer.get("type") in ("Parameter", "Result", "Const"):
                continue
            out = layer.find("output")
            dims = [_port_dims(p) for p in out.findall("port")] if out is not None else []
            if not any(len(d) == 4 and d[-2] > fine for d in dims):
                continue
            rt = layer.find("rt_info")
            if rt is None:
                rt = ET.Element("rt_info")
                layer.insert(0, rt)
            ET.SubElement(rt, "attribute", {"name": "precise", "version": "0"})
            marked += 1
        marked_xml = Path(tmp) / "precise.xml"
        tree.write(marked_xml, encoding="utf-8", xml_declaration=True)
        return ov_core.read_model(str(marked_xml), str(bin_path)), marked


# Execution precisions and the device capability each needs (OPTIMIZATION_CAPABILITIES).
_CAPABILITY = EXECUTION_CAPABILITIES


def _check_capability(ov_core: Any, device: str, precision: str) -> None:
    """Refuse an execution precision the device lacks: the CPU plugin would quietly substitute
    another (f16 ran as bf16 on AMX CPUs, bf16 as f32 elsewhere)."""
    try:
        capabilities = [str(c) for c in ov_core.get_property(device, "OPTIMIZATION_CAPABILITIES")]
    except RuntimeError:
        return  # a plugin that does not report capabilities: the read-back check still applies
    needed = _CAPABILITY.get(precision)
    if needed is not None and needed not in capabilities:
        usable = [p for p, c in _CAPABILITY.items() if c in capabilities]
        raise ConfigError(
            f"Asked for {precision} execution on {device}, but this {device.split('.')[0]} lacks {needed} "
            f"arithmetic (it reports {', '.join(capabilities)}) and would run another precision instead. "
            f"Use inference_precision {' or '.join(repr(p) for p in usable) or 'unset'}."
        )


def _type_name(value: Any) -> str:
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


def _shape(partial_shape: Any) -> tuple[int, ...]:
    return tuple(d.get_length() if d.is_static else -1 for d in partial_shape)


@dataclass
class _Lane:
    """One compiled model's asynchronous requests within a run_async_many call."""

    compiled: Any
    jobs: int
    idle: deque = field(default_factory=deque)
    created: int = 0


@dataclass
class _Pending:
    """A batch handed to an asynchronous request, kept referenced until the request is done."""

    request: Any
    batch: np.ndarray | None
    outputs: dict[str, np.ndarray] | None = None
    ms: float = 0.0
    error: BaseException | None = None
    lane: _Lane | None = None

    def done(self) -> bool:
        if self.request is None:
            return True
        try:
            return bool(self.request.wait_for(0))
        except RuntimeError as exc:  # a failed request may report here instead of in wait()
            self.error = exc
            return True


class _RequestPool:
    """Synchronous infer requests of one compiled model, one per concurrent caller, created on
    demand up to ``limit`` (callers beyond it wait for a free one)."""

    def __init__(self, compiled: Any, limit: int) -> None:
        self.compiled, self.limit = compiled, limit
        self.idle: queue.SimpleQueue = queue.SimpleQueue()
        self.created = 0
        self.lock = threading.Lock()

    def acquire(self) -> Any:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            pass
        with self.lock:
            if self.created < self.limit:
                self.created += 1
                return self.compiled.create_infer_request()
        return self.idle.get()

    def release(self, request: Any) -> None:
        self.idle.put(request)

    def clear(self) -> None:
        while True:
            try:
                self.idle.get_nowait()
            except queue.Empty:
                return


def _compile_config(
    families: list[str], auto: bool, artifact_precision: str, inference_precision: str | None, performance_hint: str,
    cache_dir: Any, num_streams: int | None, num_threads: int | None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(compile_model config, per-device-family settings)``; AUTO forwards per-device
    settings only through ``DEVICE_PROPERTIES``."""
    per_device: dict[str, dict[str, Any]] = {}
    for fam in families:
        props: dict[str, Any] = {}
        hint = _default_precision_hint(fam, artifact_precision, inference_precision)
        if hint is not None:
            props["INFERENCE_PRECISION_HINT"] = hint
        if fam == "CPU":
            if num_threads is not None:
                props["INFERENCE_NUM_THREADS"] = int(num_threads)
            if num_streams is not None:
                props["NUM_STREAMS"] = int(num_streams)
        per_device[fam] = props
    config: dict[str, Any] = {"PERFORMANCE_HINT": performance_hint}
    if auto:
        config["DEVICE_PROPERTIES"] = {k: v for k, v in per_device.items() if v}
    else:
        config.update(per_device[families[0]])
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = str(cache_dir)
    return config, per_device


def _compile(ov_core: Any, model_path: str, device: str, config: dict[str, Any], reduced: str | None, needs_static: bool,
             auto: bool) -> tuple[Any, Any, int]:
    """``(compiled model, what a throughput twin compiles, nodes kept f32)``: at a reduced
    precision with the full-resolution nodes marked precise; for an NPU at a static batch of 1;
    else from the path, which lets OpenVINO mmap the weights and key its cache on the file."""
    try:
        if reduced in ("bf16", "f16") and not needs_static:
            source, kept = _head_kept_f32(ov_core, model_path)
            return ov_core.compile_model(source, device, config), source, kept
        if needs_static:
            model = ov_core.read_model(model_path)
            shape = [d.get_length() if d.is_static else 1 for d in model.input(0).get_partial_shape()]
            model.reshape({0: shape})
            return ov_core.compile_model(model, device, config), model_path, 0
        return ov_core.compile_model(model_path, device, config), model_path, 0
    except RuntimeError as exc:
        if not auto and device.split(".")[0] != "CPU":
            raise DeviceUnavailableError(
                f"OpenVINO could not compile {model_path} for {device}: {exc}. "
                f"Available devices: {', '.join(ov_core.available_devices)}"
            ) from exc
        raise BackendUnavailableError(f"OpenVINO could not compile {model_path}: {exc}") from exc


class OpenVINOBackend:
    """Run an OpenVINO IR (``.xml``) or ONNX file with OpenVINO.

    Args:
        model_path: ``model.xml`` (weights next to it) or ``model.onnx``.
        device: ``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ``AUTO`` or ``AUTO:GPU,CPU``.
        artifact_precision: ``fp32`` / ``fp16`` / ``int8``: the artifact's storage precision.
        inference_precision: ``None`` (policy above), ``"f32"``, ``"bf16"`` or ``"f16"``.
        performance_hint: ``"LATENCY"`` or ``"THROUGHPUT"``.
        cache_dir: compiled-model cache directory; no cache when None (never the cwd).
        num_streams, num_threads: override the hint's choice (CPU).
        static_batch: batch size fixed in the artifact, or None when dynamic.

    ``run`` uses the compiled model of ``performance_hint``. On a CPU compiled for latency (one
    stream whose threads share each image) with the default streams and threads,
    :meth:`run_async_many` (``Detector.predict_many``) uses a second compiled model of the
    same file with the THROUGHPUT hint (one stream per core or so, one image each), compiled
    in the background once a run has submitted a few batches, with the same settings, and
    used only if it runs the same execution precision: measured on 2 cores, more images per
    second (docs/BENCHMARKS.md, issue 15); it costs a second compile and its memory.
    :meth:`run_throughput` runs one batch on that twin, for callers that bring their own
    concurrency (``edgeanomaly serve``'s concurrent requests).
    """

    name = "openvino"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        device: str = "CPU",
        *,
        artifact_precision: str = "fp32",
        inference_precision: str | None = None,
        performance_hint: str = "LATENCY",
        cache_dir: str | os.PathLike[str] | None = None,
        num_streams: int | None = None,
        num_threads: int | None = None,
        static_batch: int | None = None,
    ) -> None:
        ov_core = core()
        self.requested_device = resolve_device(device, list(ov_core.available_devices))
        auto = self.requested_device.startswith("AUTO")
        if auto:
            families = [c.split(".")[0] for c in self.requested_device.partition(":")[2].split(",") if c]
            families = families or sorted({d.split(".")[0] for d in ov_core.available_devices})
        else:
            families = [self.requested_device.split(".")[0]]

        if inference_precision is not None and not auto:
            _check_capability(ov_core, self.requested_device, inference_precision)
        config, per_device = _compile_config(families, auto, artifact_precision, inference_precision, performance_hint,
                                             cache_dir, num_streams, num_threads)

        # NPUs compile static shapes only; a dynamic-batch graph is fixed at batch 1 for them.
        needs_static = static_batch is None and "NPU" in families
        self.static_batch = static_batch if static_batch is not None else (1 if needs_static else None)
        t0 = time.perf_counter()
        # A reduced precision runs everything but the full-resolution nodes (REDUCED_MIN_STRIDE).
        reduced = None if auto else per_device[families[0]].get("INFERENCE_PRECISION_HINT")
        self._model_path = str(model_path)
        self._compiled, source, self.head_kept_f32 = _compile(ov_core, str(model_path), self.requested_device, config,
                                                              reduced, needs_static, auto)
        self.compile_ms = (time.perf_counter() - t0) * 1e3

        self.inputs = [TensorInfo(p.get_any_name(), _shape(p.get_partial_shape()), _type_name(p.get_element_type())) for p in self._compiled.inputs]
        self.outputs = [TensorInfo(p.get_any_name(), _shape(p.get_partial_shape()), _type_name(p.get_element_type())) for p in self._compiled.outputs]
        if self.static_batch is None and self.inputs[0].shape and self.inputs[0].shape[0] > 0:
            self.static_batch = self.inputs[0].shape[0]
        self._output_names = [o.name for o in self.outputs]

        executed = list(self._compiled.get_property("EXECUTION_DEVICES"))
        self.device = ",".join(executed)
        self.execution_precision = self._read_precision(executed, auto)
        self.precision = (
            f"{artifact_precision} ({self.execution_precision} execution)"
            if self.execution_precision
            else f"{artifact_precision} (execution precision not reported by {self.device})"
        )
        if inference_precision is not None and self.execution_precision not in (None, inference_precision):
            raise ConfigError(
                f"Asked for {inference_precision} execution on {self.device}, but OpenVINO runs "
                f"{self.execution_precision}; ask for {self.execution_precision} or leave inference_precision unset."
            )
        self.performance_hint = str(self._compiled.get_property("PERFORMANCE_HINT"))
        try:
            self.optimal_requests = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        except RuntimeError:
            self.optimal_requests = 1

        # predict_many's throughput twin (see the class docstring), compiled when a run needs it.
        twin_ok = (
            families == ["CPU"] and not auto and not needs_static and num_streams is None and num_threads is None
            and self.performance_hint == "LATENCY" and self.optimal_requests == 1
        )
        self._twin_recipe = (source, {**config, "PERFORMANCE_HINT": "THROUGHPUT"}) if twin_ok else None
        self._twin: Any = None
        self._twin_thread: FinishingThread | None = None
        self._twin_lock = threading.Lock()

        # Synchronous path: a pool of infer requests, one per concurrent caller, created on demand;
        # run_throughput's pool on the twin is made with the twin.
        self._pool = _RequestPool(self._compiled, max(2, self.optimal_requests))
        self._twin_pool: _RequestPool | None = None

    def _read_precision(self, executed: list[str], auto: bool) -> str | None:
        try:
            if auto:
                props = self._compiled.get_property("DEVICE_PROPERTIES")
                values = {_type_name(props[d]["INFERENCE_PRECISION_HINT"]) for d in executed if d in props}
                return ",".join(sorted(values)) or None
            return _type_name(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        except (RuntimeError, KeyError, TypeError):
            return None

    # -- synchronous ---------------------------------------------------------------------------
    def _run_fixed(self, batch: np.ndarray, pool: _RequestPool) -> dict[str, np.ndarray]:
        request = pool.acquire()
        try:
            try:
                request.infer({0: batch}, share_inputs=True)
            except RuntimeError as exc:
                raise inference_error(self, batch, exc) from exc
            # Copy: the request's output buffers are reused by the next caller.
            return {name: request.get_output_tensor(i).data.copy() for i, name in enumerate(self._output_names)}
        finally:
            pool.release(request)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 3, H, W) float32 -> {output name: array}; thread-safe."""
        self._live()
        return self._run_on(self._pool, batch)

    def _run_on(self, pool: _RequestPool, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``batch`` on ``pool``'s model (latency or throughput twin), padded to a static batch."""
        return run_padded(lambda b: self._run_fixed(b, pool), np.ascontiguousarray(batch, dtype=np.float32), self.static_batch)

    def run_throughput(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """As :meth:`run`, on the throughput twin (class docstring) once it is compiled: for
        callers that run several batches at once from their own threads (a server's concurrent
        requests). The first call starts its compile in the background and nobody waits for
        it: the latency model serves until it is there, and for good when there is no twin.
        At most the twin's optimal number of requests run at once; other callers wait."""
        self._throughput_model(wait=False)  # starts the compile; raises when closed
        pool = self._twin_pool
        return self._run_on(pool or self._pool, batch)

    # -- asynchronous --------------------------------------------------------------------------
    def _start_twin(self) -> None:
        """Compile the throughput twin on a background thread, once (no-op without a recipe)."""
        with self._twin_lock:
            if self._twin_recipe is None or self._twin_thread is not None:
                return
            # Not a daemon: an interpreter exiting mid-compile must wait rather than tear OpenVINO down under it.
            self._twin_thread = FinishingThread(self._compile_twin, "edgeanomaly-compile")
            self._twin_thread.start()

    def _compile_twin(self) -> None:
        source, config = self._twin_recipe  # type: ignore[misc]
        path = self._model_path
        t0 = time.perf_counter()
        try:
            twin = core().compile_model(source, self.requested_device, config)
            precision = _type_name(twin.get_property("INFERENCE_PRECISION_HINT"))
            try:
                requests = int(twin.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            except RuntimeError:
                requests = 2
        except RuntimeError as exc:
            log.warning("throughput compile of %s failed (%s); predict_many keeps the latency model", path, exc)
            return
        if precision != self.execution_precision:
            # Never trade the verified precision for speed: keep the latency model.
            log.warning("throughput compile of %s runs %s, not %s; predict_many keeps the latency model",
                        path, precision, self.execution_precision)
            return
        self._twin_pool = _RequestPool(twin, max(2, requests))  # before _twin: whoever sees the twin sees its pool
        self._twin = (twin, requests)
        log.info("compiled %s for throughput (%d requests) in %.0f ms", path, requests, (time.perf_counter() - t0) * 1e3)

    def _throughput_model(self, wait: bool = True) -> tuple[Any, int] | None:
        """``(compiled model, optimal requests)`` of the throughput twin once it is compiled
        (started on the first call; ``wait`` blocks until it is), else None: no twin for this
        model (class docstring), its compile failed, or (``wait=False``) it is still compiling."""
        self._live()
        self._start_twin()
        thread = self._twin_thread
        if wait and thread is not None:
            thread.finish()
        return self._twin

    def run_async_many(
        self, batches: Iterable[np.ndarray], jobs: int | None = None, throughput: bool = True
    ) -> Iterator[tuple[dict[str, np.ndarray], float]]:
        """Pipeline batches through ``jobs`` asynchronous infer requests; yield ``(outputs, infer_ms)`` in input order.

        ``infer_ms`` is the request's own start-to-completion time. A request that fails
        raises :class:`~edgeanomaly.errors.InferenceError` here, in the caller's thread.
        ``jobs`` defaults to the optimal number of requests of the model used (at least 2).
        On a latency-compiled CPU model (class docstring) the first ``TWIN_AFTER`` batches run
        on it; then the throughput twin compiles in the background and, once ready, takes the
        following batches (a short run never waits for a compile; once a twin is compiled, a
        later run uses it from its first batch); ``throughput=False`` keeps every batch on the
        latency model.

        Why not ``AsyncInferQueue``: it never calls the Python callback of a failed request,
        so a consumer waiting for that callback waits forever (a graph that rejects its input
        hung ``predict``), and its callbacks run Python on OpenVINO's worker threads. Plain
        requests waited for in submission order report every failure from ``wait()`` and keep
        each input array referenced until its request is done, so no buffer handed to
        OpenVINO (``share_inputs=True``) is freed or reused while a request reads it.
        """
        if jobs is not None and int(jobs) < 1:
            raise ValueError(f"Expected jobs >= 1, got {jobs}")
        lane = _Lane(self._live(), int(jobs) if jobs else max(2, self.optimal_requests))
        switched = self._twin_recipe is None or not throughput  # nothing to switch to, or kept for latency
        in_flight: deque[_Pending] = deque()

        def collect() -> tuple[dict[str, np.ndarray], float]:
            pending = in_flight.popleft()
            if pending.request is None:  # ran synchronously (padding of a static-batch graph)
                return pending.outputs, pending.ms  # type: ignore[return-value]
            try:
                if pending.error is None:
                    try:
                        pending.request.wait()
                    except RuntimeError as exc:
                        pending.error = exc
                if pending.error is not None:
                    raise inference_error(self, pending.batch, pending.error) from pending.error
                request = pending.request
                return (
                    {name: request.get_output_tensor(i).data.copy() for i, name in enumerate(self._output_names)},
                    float(request.latency),
                )
            finally:
                pending.lane.idle.append(pending.request)  # type: ignore[union-attr]

        try:
            for count, batch in enumerate(batches):
                batch = np.ascontiguousarray(batch, dtype=np.float32)
                if not switched and (count >= TWIN_AFTER or self._twin is not None):
                    twin = self._throughput_model(wait=False)
                    if twin is not None:  # requests of the old lane in flight finish there, in order
                        lane, switched = _Lane(twin[0], int(jobs) if jobs else max(2, twin[1])), True
                    elif self._twin_thread is None or not self._twin_thread.is_alive():
                        switched = True  # no twin after all: stay on this model
                if self.static_batch is not None and batch.shape[0] != self.static_batch:
                    # Padding/chunking is the synchronous path; its result queues behind those in flight.
                    t0 = time.perf_counter()
                    out = self.run(batch)
                    in_flight.append(_Pending(None, None, out, (time.perf_counter() - t0) * 1e3))
                else:
                    if not lane.idle and lane.created < lane.jobs:
                        lane.idle.append(lane.compiled.create_infer_request())
                        lane.created += 1
                    while not lane.idle:
                        yield collect()
                    request = lane.idle.popleft()
                    try:
                        request.start_async({0: batch}, share_inputs=True)
                    except RuntimeError as exc:
                        lane.idle.append(request)
                        raise inference_error(self, batch, exc) from exc
                    in_flight.append(_Pending(request, batch, lane=lane))
                while in_flight and in_flight[0].done():
                    yield collect()
            while in_flight:
                yield collect()
        finally:
            # A consumer that stops early (or an error) must not leave requests reading freed arrays.
            for pending in in_flight:
                if pending.request is not None and pending.error is None:
                    try:
                        pending.request.wait()
                    except RuntimeError:
                        pass  # the consumer has gone: nobody wants this result or its error

    def _live(self) -> Any:
        if self._compiled is None:
            raise InferenceError("This OpenVINO backend is closed; load the bundle again.")
        return self._compiled

    def close(self) -> None:
        """Release the compiled model and its requests."""
        self._pool.clear()
        if self._twin_pool is not None:
            self._twin_pool.clear()
        thread = self._twin_thread
        if thread is not None:
            thread.finish()  # a compile in progress cannot be cancelled; let it end before releasing
        self._compiled = None
        self._twin = None
        self._twin_pool = None
