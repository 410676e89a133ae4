"""ONNX Runtime backend: CPU, and CUDA / TensorRT when ``onnxruntime-gpu`` is installed.

ONNX Runtime falls back to the CPU provider with only a log line when a GPU provider cannot
be created. We check the requested providers before creating the session and again after
(``session.get_providers()``), and raise instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Iterable, Iterator

import numpy as np

from edgeanomaly._threads import FinishingThread
from edgeanomaly.errors import BackendUnavailableError, DeviceUnavailableError, InferenceError
from edgeanomaly.registry import get_backend
from edgeanomaly.runtime._backends import TWIN_AFTER, TensorInfo, device_unavailable, inference_error, pipelined, run_padded

__all__ = ["ONNXRuntimeBackend"]

log = logging.getLogger("edgeanomaly.runtime")

_MAX_PARALLEL = 4  # images run_async_many runs at once by default (bounded memory on many-core machines)
_DTYPES = {"tensor(float)": "f32", "tensor(float16)": "f16", "tensor(double)": "f64"}


def _import_ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailableError(
            f"The onnxruntime backend needs the 'onnxruntime' package ({exc}). "
            'Install it with: pip install onnxruntime (or "edgeanomaly[gpu]")'
        ) from exc
    return ort


def _shape(shape: Any) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else -1 for d in shape)


def physical_cores() -> int:
    """Cores this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _row() -> Any:
    return get_backend(ONNXRuntimeBackend.name)


def available_devices() -> list[str]:
    """Devices whose ONNX Runtime execution provider is present, in the row's order: its ``list_devices``."""
    available = set(_import_ort().get_available_providers())
    return [dev for dev, prov in _row().devices.items() if prov in available]


def resolve_providers(device: str, available_providers: list[str]) -> list[str]:
    """Map a device (or an explicit fallback list ``"CUDA,CPU"``) to ONNX Runtime providers.

    A single device must be present: ONNX Runtime's own silent fallback to the CPU would turn
    a missing GPU driver into a missed cycle time nobody notices. A list asks for fallback
    explicitly: devices of the list that are absent are skipped with a warning, and at least
    one must be present (the device used is reported by the backend).

    >>> resolve_providers("CPU", ["CPUExecutionProvider"])
    ['CPUExecutionProvider']
    """
    table = _row().devices
    by_upper = {k.upper(): k for k in table}
    present = [d for d, p in table.items() if p in available_providers]
    names = []
    for part in (p.strip() for p in str(device).split(",") if p.strip()):
        name = by_upper.get(part.upper())
        if name is None:
            raise device_unavailable("onnxruntime", part, present, f" Known devices: {', '.join(table)}.")
        names.append(name)
    usable = [n for n in names if table[n] in available_providers]
    if not names or (len(names) == 1 and not usable) or not usable:
        missing = next((n for n in names if n not in usable), str(device))
        raise device_unavailable(
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


class ONNXRuntimeBackend:
    """Run an ONNX file with ONNX Runtime.

    Args:
        model_path: ``model.onnx`` (external data next to it).
        device: ``CPU``, ``CUDA``, ``TensorRT`` or an explicit fallback list such as ``"CUDA,CPU"``.
        artifact_precision: the artifact's storage precision, for reporting.
        num_threads: intra-op threads (default: the cores available to this process).
        memory_arena: keep ONNX Runtime's CPU memory arena (default on: see below).
        static_batch: batch size fixed in the artifact, or None when dynamic.

    ``run`` uses one session whose operators spread over ``num_threads`` cores (lowest latency
    per image). :meth:`run_async_many` (``Detector.predict_many``) on the CPU provider with the
    default thread count uses a second session of the same file with fewer threads per image
    and runs several images at once (one per core up to 4 at once; on more cores, cores / 4
    threads each): measured on 2 cores, more images per second than two threads sharing each
    image (see docs/BENCHMARKS.md, issue 15). It is created in the background once a run has
    submitted a few batches, and costs a second session's memory. :meth:`run_throughput` runs
    one batch on it, for callers that bring their own concurrency (``edgeanomaly serve``).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        device: str = "CPU",
        *,
        artifact_precision: str = "fp32",
        num_threads: int | None = None,
        memory_arena: bool = True,
        static_batch: int | None = None,
    ) -> None:
        ort = _import_ort()
        available = list(ort.get_available_providers())
        providers = resolve_providers(device, available)

        self._model_path = str(model_path)
        self._memory_arena = bool(memory_arena)
        options = self._session_options(ort, int(num_threads) if num_threads else physical_cores())

        t0 = time.perf_counter()
        try:
            self._session = ort.InferenceSession(self._model_path, sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise BackendUnavailableError(f"ONNX Runtime could not load {model_path}: {exc}") from exc
        self.compile_ms = (time.perf_counter() - t0) * 1e3

        used = list(self._session.get_providers())
        missing = [p for p in providers if p not in used]
        if missing:
            raise DeviceUnavailableError(
                f"ONNX Runtime could not create {', '.join(missing)} for {model_path} "
                f"(the session fell back to {', '.join(used)}). Available providers: {', '.join(available)}"
            )
        self.providers = used
        first = used[0]
        self.device = {v: k for k, v in {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider", "TensorRT": "TensorrtExecutionProvider"}.items()}.get(first, first)

        self.inputs = [TensorInfo(i.name, _shape(i.shape), _DTYPES.get(i.type, i.type)) for i in self._session.get_inputs()]
        self.outputs = [TensorInfo(o.name, _shape(o.shape), _DTYPES.get(o.type, o.type)) for o in self._session.get_outputs()]
        self._input_name = self.inputs[0].name
        self._output_names = [o.name for o in self.outputs]
        if static_batch is None and self.inputs[0].shape and self.inputs[0].shape[0] > 0:
            static_batch = self.inputs[0].shape[0]
        self.static_batch = static_batch

        graph_precision = self.inputs[0].dtype
        if first == "CPUExecutionProvider":
            # The CPU provider executes the graph's own types; it never lowers precision.
            self.execution_precision = "f32" if artifact_precision in ("fp32", "int8") else graph_precision
            self.precision = f"{artifact_precision} ({self.execution_precision} execution, {first})"
        else:
            # GPU providers may use TF32/FP16 math internally; we cannot read that back.
            self.execution_precision = None
            self.precision = f"{artifact_precision} (execution precision not reported by {first})"

        # predict_many's throughput session: CPU provider, default threads, 2+ cores.
        cores = physical_cores()
        self._parallel_images = min(cores, _MAX_PARALLEL) if (used == ["CPUExecutionProvider"] and not num_threads) else 1
        self._per_image_threads = max(1, cores // self._parallel_images)
        self._per_core: Any = None
        self._per_core_thread: FinishingThread | None = None
        self._per_core_lock = threading.Lock()
        # run_throughput: at most one image per core on the twin session at once.
        self._per_core_slots = threading.BoundedSemaphore(self._parallel_images)

    def _session_options(self, ort: Any, threads: int) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The arena keeps peak buffers between runs. Without it every run allocates its large
        # intermediates afresh (page faults on fresh memory): the PatchCore recipe's distances
        # to its memory bank ran 2x slower (docs/BENCHMARKS.md, issue 15). Off returns peak
        # buffers to the OS between runs, for a device short of memory.
        options.enable_cpu_mem_arena = self._memory_arena
        options.log_severity_level = 3  # errors only: fallbacks are detected below, not logged
        return options

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 3, H, W) float32 -> {output name: array}; thread-safe (``InferenceSession.run`` is)."""
        return self._run_on(self._live(), batch)

    def _live(self) -> Any:
        session = self._session  # close() from another thread must not turn into an AttributeError
        if session is None:
            raise InferenceError("This ONNX Runtime backend is closed; load the bundle again.")
        return session

    def _run_on(self, session: Any, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``batch`` on ``session`` (the main one or the throughput twin), padded to a static batch."""
        return run_padded(lambda b: self._run_fixed(b, session), np.ascontiguousarray(batch, dtype=np.float32), self.static_batch)

    def _run_fixed(self, batch: np.ndarray, session: Any) -> dict[str, np.ndarray]:
        try:
            values = session.run(self._output_names, {self._input_name: batch})
        except Exception as exc:  # ORT raises its own exception types (InvalidArgument, Fail, ...)
            raise inference_error(self, batch, exc) from exc
        return dict(zip(self._output_names, values))

    def _start_per_core(self) -> None:
        """Create the throughput twin session on a background thread, once."""
        with self._per_core_lock:
            if self._parallel_images < 2 or self._per_core_thread is not None:
                return
            self._per_core_thread = FinishingThread(self._create_per_core, "edgeanomaly-session")
            self._per_core_thread.start()

    def _create_per_core(self) -> None:
        ort = _import_ort()
        try:
            self._per_core = ort.InferenceSession(
                self._model_path, sess_options=self._session_options(ort, self._per_image_threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # ORT raises its own exception types; the main session still serves
            log.warning("throughput session of %s failed (%s); predict_many keeps the main session", self._model_path, exc)

    def _per_core_session(self, wait: bool = True) -> Any:
        """The twin session once created (started on the first call; ``wait`` blocks until it
        exists), else None: no twin for this backend, creation failed, or still under way."""
        self._live()
        self._start_per_core()
        thread = self._per_core_thread
        if wait and thread is not None:
            thread.finish()
        return self._per_core

    def run_throughput(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """As :meth:`run`, on the throughput twin session (class docstring) once it exists: for
        callers that run several batches at once from their own threads (a server's concurrent
        requests). The first call starts creating it in the background and nobody waits for
        it: the main session serves until it is there, and for good when there is no twin. At
        most one batch per core runs on the twin at once; other callers wait."""
        main = self._live()
        self._start_per_core()  # a no-op without a twin for this backend
        session = self._per_core
        if session is None:
            return self._run_on(main, batch)
        with self._per_core_slots:
            return self._run_on(session, batch)

    def run_async_many(
        self, batches: Iterable[np.ndarray], jobs: int | None = None, throughput: bool = True
    ) -> Iterator[tuple[dict[str, np.ndarray], float]]:
        """Run batches on worker threads while the caller prepares the next ones; input order kept.

        With the CPU provider and the default thread count, ``jobs`` (default: one per core,
        at most 4) batches run at once: the first ``TWIN_AFTER`` on the main session, the
        following ones on the throughput twin session (class docstring) once the background thread
        that creates it is done (a short run never waits for it). Otherwise, and with
        ``throughput=False``, one batch at a time on the main session (``jobs`` in flight, default 2).
        """
        if jobs is not None and int(jobs) < 1:
            raise ValueError(f"Expected jobs >= 1, got {jobs}")
        main = self._live()
        if self._parallel_images < 2 or not throughput:  # throughput=False: every core on each image
            return pipelined(self.run, batches, depth=max(2, int(jobs or 2)))
        workers = int(jobs or self._parallel_images)

        def counted() -> Iterator[np.ndarray]:
            for count, batch in enumerate(batches):
                if count == TWIN_AFTER:
                    self._start_per_core()
                yield batch

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            return self._run_on(self._per_core or main, batch)  # the main session until the twin exists

        return pipelined(run, counted(), depth=workers + 1, workers=workers)

    def close(self) -> None:
        """Release the sessions."""
        thread = self._per_core_thread
        if thread is not None:
            thread.finish()  # a session being created cannot be cancelled; let it end before releasing
        self._session = None
        self._per_core = None
