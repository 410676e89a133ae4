"""``load(bundle)`` -> :class:`Detector`: images in, calibrated predictions out, no torch."""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from edgeanomaly._optional import check_choice
from edgeanomaly.bundle import check_graph, read_bundle, resolve_trust, verify_signature
from edgeanomaly.data import PreprocessConfig, preprocess
from edgeanomaly.errors import BackendUnavailableError, BundleError, ConfigError, EdgeAnomalyError, InferenceError
from edgeanomaly.judging import PASS
from edgeanomaly.registry import PRECISIONS, BackendSpec, backends, backends_for, get_backend
from edgeanomaly.runtime._autoselect import contenders, measure_by_default, measure_choice
from edgeanomaly.runtime._backends import Backend
from edgeanomaly.runtime._execution import ExecutionChoice, resolve_execution
from edgeanomaly.runtime._options import LoadOptions
from edgeanomaly.runtime._inputs import as_rgb, check_image_size
from edgeanomaly.runtime._postprocess import postprocess
from edgeanomaly.runtime._prediction import Prediction
from edgeanomaly.runtime._stream import stream

__all__ = ["Detector", "load", "select_artifact"]

log = logging.getLogger("edgeanomaly.runtime")

_DEFAULT_CHUNK = 16  # images per synchronous batch in predict_batch: bounded memory, full batches
_PREPARE_WORKERS = 2  # threads decoding/preprocessing ahead in predict_many (OpenCV releases the GIL)
_READ_AHEAD = 4  # images predict_many prepares ahead of the batch it submits: bounded memory


def _artifact_table(bundle: Any) -> str:
    return ", ".join(f"{a.name} ({a.format}, {a.precision})" for a in bundle.artifacts) or "none"


def _by_name(bundle: Any, backend: str, artifact: str, device: str) -> tuple[str, Any, str]:
    names = [a.name for a in bundle.artifacts]
    check_choice(f"artifact of bundle {getattr(bundle, 'root', '')}", artifact, names)
    chosen = next(a for a in bundle.artifacts if a.name == artifact)
    able = backends_for(chosen.format)
    runnable = [b.name for b in able]
    if backend != "auto":
        if backend not in runnable:
            raise ConfigError(
                f"Artifact {artifact!r} ({chosen.format}) cannot run on backend {backend!r}; use {' or '.join(runnable)}."
            )
        return backend, chosen, "asked for by name"
    # The backend that prefers this format first (an ONNX file on ONNX Runtime, an IR on
    # OpenVINO), among those installed; one that knows the device before one that does not.
    installed = sorted((b for b in able if b.auto and b.installed()), key=lambda b: not b.knows(device))
    if not installed:
        raise BackendUnavailableError(f"Artifact {artifact!r} needs {' or '.join(runnable)}, and none is installed.")
    return installed[0].name, chosen, "asked for by name"


def _choose(bundle: Any, backend: str, device: str, precision: str | None) -> tuple[str, Any, str]:
    if backend != "auto":
        candidates: list[BackendSpec] = [get_backend(backend)]
    else:
        candidates = [b for b in backends() if b.auto and b.installed() and b.knows(device)]
        if not candidates:
            if not any(b.installed() for b in backends()):
                raise BackendUnavailableError("No inference backend is installed: pip install openvino (or onnxruntime)")
            known = sorted({d for b in backends() if b.installed() for d in b.devices})
            raise ConfigError(f"No installed backend knows device {device!r}; known devices: {', '.join(known)}")
    prefs = (precision,) if precision else tuple(dict.fromkeys(p for c in candidates for p in c.precision_order(device)))
    depth = max(len(c.formats) for c in candidates)
    for prec in prefs:
        # Format rank before backend: each backend's own format first (IR on OpenVINO, ONNX
        # on ONNX Runtime), then the formats a backend reads as a fallback.
        for rank in range(depth):
            for cand in candidates:
                if rank >= len(cand.formats) or (precision is None and prec not in cand.precision_order(device)):
                    continue
                static = cand.needs_static_batch(device)
                for art in bundle.artifacts:
                    if art.format == cand.formats[rank] and art.precision == prec and (not static or art.static_batch):
                        why = (
                            f"precision {prec} as asked"
                            if precision
                            else f"best precision for {device} on {cand.name} ({' > '.join(cand.precision_order(device))})"
                        )
                        return cand.name, art, why + (", static batch" if static else "")
    static_note = " static-batch" if any(c.needs_static_batch(device) for c in candidates) else ""
    raise BundleError(
        f"Bundle {getattr(bundle, 'root', '')} has no{static_note} {'/'.join(prefs)} artifact that backend {backend!r} "
        f"can run on {device}. Artifacts: {_artifact_table(bundle)}"
    )


def select_artifact(
    bundle: Any, backend: str = "auto", precision: str | None = None, artifact: str | None = None, *, device: str = "CPU"
) -> tuple[str, Any]:
    """Choose ``(backend, artifact)`` for a bundle from the registry's backend rows.

    With no ``precision`` and no ``artifact``: the best artifact the device can run, in the
    backend row's precision order (CPU: fp32 > fp16 > int8; NPU: static int8 > fp16).
    ``backend="auto"`` tries the installed backends that know ``device`` in registration
    order, each backend's own format first (OpenVINO IR, then ONNX on ONNX Runtime, then
    ONNX on OpenVINO). ``artifact`` (a name such as ``"openvino-int8"``) overrides ``precision``.
    """
    name, chosen, _ = _select(bundle, backend, precision, artifact, device)
    return name, chosen


def _select(bundle: Any, backend: str, precision: str | None, artifact: str | None, device: str) -> tuple[str, Any, str]:
    if backend != "auto":
        get_backend(backend)  # an unknown name fails here, with suggestions
    if precision is not None:
        check_choice("precision", precision, PRECISIONS)
    if artifact is not None:
        return _by_name(bundle, backend, artifact, device)
    return _choose(bundle, backend, device, precision)
def _compatible(graph: Sequence[int], declared: Sequence[int]) -> bool:
    """Same rank, and every dimension equal where both are fixed (-1 = dynamic)."""
    return len(graph) == len(declared) and all(g < 0 or d < 0 or g == d for g, d in zip(graph, declared))


def _check_signature(engine: Backend, manifest: Any, what: str) -> None:
    """Refuse a graph whose input or outputs disagree with the manifest, before any inference.

    A manifest edited (and re-signed) to another input size would otherwise feed the graph
    tensors it rejects at the first request.
    """
    declared_outputs = {o["name"]: list(o["shape"]) for o in manifest.outputs}
    graph_outputs = {o.name: list(o.shape) for o in engine.outputs}
    if sorted(graph_outputs) != sorted(declared_outputs):
        raise BundleError(f"{what} has outputs {list(graph_outputs)}, but its manifest declares {list(declared_outputs)}")
    problems = []
    graph_input = engine.inputs[0]
    declared_input = list(manifest.input["shape"])
    if not _compatible(graph_input.shape, declared_input):
        problems.append(f"input {graph_input.name!r} has shape {list(graph_input.shape)}, the manifest declares {declared_input}")
    for name, shape in graph_outputs.items():
        if not _compatible(shape, declared_outputs[name]):
            problems.append(f"output {name!r} has shape {shape}, the manifest declares {declared_outputs[name]}")
    if problems:
        raise BundleError(
            f"{what}: the graph does not match manifest.json ({'; '.join(problems)}; -1 = any size). "
            "The manifest or the graph was changed after export; re-export the bundle."
        )


def _runner(engine: Backend, throughput: bool) -> Any:
    """The engine's synchronous run: on its throughput model when asked and it has one."""
    return getattr(engine, "run_throughput", engine.run) if throughput else engine.run


def _run_many(
    engine: Backend, batches: Iterable[np.ndarray], jobs: int | None, throughput: bool = True
) -> Iterator[tuple[dict[str, np.ndarray], float]]:
    """The throughput path of every backend: ``(outputs, infer_ms)`` per batch, in input order.

    The backend's ``run_async_many`` where it has one; plain sequential runs otherwise.
    ``throughput=False`` asks it to keep the model loaded for latency (no throughput twin).
    """
    run_many = getattr(engine, "run_async_many", None)
    if run_many is not None:
        if not throughput and "throughput" in inspect.signature(run_many).parameters:
            yield from run_many(batches, jobs=jobs, throughput=False)
        else:
            yield from run_many(batches, jobs=jobs)
        return
    for batch in batches:
        t0 = time.perf_counter()
        out = engine.run(batch)
        yield out, (time.perf_counter() - t0) * 1e3


class Detector:
    """A loaded bundle on one backend and device. Create it with :func:`load`.

    Attributes:
        backend: the registry name of the backend, e.g. ``"openvino"`` or ``"onnxruntime"``.
        device: the device that actually runs the graph (e.g. ``"CPU"``, also after ``AUTO``).
        precision: verified precision, e.g. ``"fp32 (f32 execution)"``.
        execution: :class:`~edgeanomaly.runtime.ExecutionChoice`: the execution precision
            (``.precision``), why it was chosen (``.reason``) and what export measured for it
            on this artifact (``.drift``: verdict outcome, max relative output difference,
            metric deltas, decision flips, device and OpenVINO version; None if not recorded).
        artifact: the bundle artifact that was loaded (``.name``, ``.format``, ``.precision``).
        task: ``"segmentation"`` (score + map) or ``"classification"`` (score only).
        input_size: (h, w) model input size.
        preprocessing: the bundle's :class:`~edgeanomaly.data.PreprocessConfig`.
        calibration: the bundle's calibration used for normalisation and thresholds.

    ``predict`` is thread-safe. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, engine: Backend, bundle: Any, artifact: Any, *, owns_bundle: bool = True) -> None:
        self._engine = engine
        self._bundle = bundle
        self._owns_bundle = owns_bundle
        manifest = bundle.manifest
        self.manifest = manifest
        self.artifact = artifact
        self.backend: str = engine.name
        self.device: str = engine.device
        self.precision: str = engine.precision
        self.preprocessing = PreprocessConfig.from_dict(manifest.preprocessing)
        self.input_size: tuple[int, int] = self.preprocessing.input_size
        self.task: str = manifest.task
        self.calibration = manifest.calibration
        self.root = Path(bundle.root)
        #: Why this artifact was chosen (set by :func:`load`).
        self.selection: str = ""
        #: the settings ``load`` ran with (:class:`LoadOptions`)
        self.options = LoadOptions()
        #: The execution precision it runs at, why, and its export-measured drift (set by :func:`load`).
        self.execution = ExecutionChoice(None, "", measured=None).loaded(engine)
        self._lock = threading.Lock()
        self._uses = 0  # calls that have taken the engine
        #: Set by :func:`load` for ``backend="auto"`` without a measurement: times the
        #: backends at the first :meth:`predict_many` or :meth:`stream`, see there.
        self._measure_later: Any = None

    # -- info ----------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What runs where, for logs and the CLI summary."""
        return {
            "bundle": str(self.root),
            "model": self.manifest.model_info.get("model"),
            "task": self.task,
            "artifact": self.artifact.name,
            "selection": self.selection,
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "execution": self.execution.to_dict(),
            "input_size": list(self.input_size),
            "compile_ms": round(float(getattr(self._engine, "compile_ms", float("nan"))), 1),
        }

    def __repr__(self) -> str:
        return (
            f"Detector(model={self.manifest.model_info.get('model')!r}, artifact={self.artifact.name!r}, "
            f"backend={self.backend!r}, device={self.device!r}, precision={self.precision!r})"
        )

    def _measure_first(self) -> None:
        """Choose the backend by measurement before the first call, when it runs many images.

        A detector loaded with ``backend="auto"`` and ``measure_backends`` left at None runs
        the registry's choice; the first :meth:`predict_many` or :meth:`stream` (a caller
        that will run many images) times the contending backends once (under a second, see
        :func:`~edgeanomaly.runtime._autoselect.measure_choice`) and keeps the best. Only
        when no call has run yet, so no request is in flight on the engine it may replace;
        a call from another thread meanwhile waits for the choice.
        """
        if self._measure_later is None:
            return
        with self._lock:
            later, self._measure_later = self._measure_later, None
            if later is None or self._uses or self._engine is None:
                return
            try:
                engine, backend, artifact, why, execution = later(self._engine)
            except EdgeAnomalyError as exc:  # the loaded engine was never closed: it keeps running
                self.selection += f"; backend measurement at the first predict_many failed ({exc}), kept"
                log.warning("backend measurement failed, keeping %s: %s", self.backend, exc)
                return
            self._engine, self.backend, self.artifact, self.selection = engine, backend, artifact, why
            self.device, self.precision = engine.device, engine.precision
            self.execution = execution.loaded(engine)
            log.info("backend chosen at the first predict_many: %s on %s (%s)", artifact.name, backend, why)

    # -- core steps ----------------------------------------------------------------------------
    def _live(self) -> Backend:
        with self._lock:  # waits for a backend measurement in progress (_measure_first)
            self._uses += 1
            engine = self._engine
        if engine is None:
            raise InferenceError(f"This Detector ({self.root}) is closed; load the bundle again to predict.")
        return engine

    def _prepare(self, image: Any, color: str, source: Any) -> tuple[np.ndarray, tuple[int, int], Any, dict[str, float]]:
        t0 = time.perf_counter()
        rgb, path, decode_ms = as_rgb(image, color)
        check_image_size(rgb.shape[:2], self.input_size, path if path is not None else (None if source is None else str(source)))
        t1 = time.perf_counter()
        x = preprocess(rgb, self.preprocessing)
        timings = {"preprocess": (time.perf_counter() - t1) * 1e3}
        if decode_ms is not None:
            timings = {"decode": decode_ms, **timings}
        elif t1 - t0 > 0:
            # Array conversion (BGR->RGB, gray->RGB) is part of preparing the input.
            timings["preprocess"] += (t1 - t0) * 1e3
        return x, rgb.shape[:2], (source if source is not None else path), timings

    def _finish(
        self, outputs: dict[str, np.ndarray], row: int, image_hw: tuple[int, int], source: Any, timings: dict[str, float],
        *, preprocessed: bool = False,
    ) -> Prediction:
        t0 = time.perf_counter()
        raw_score = float(outputs["pred_score"].reshape(-1)[row])
        raw_map = outputs["anomaly_map"][row].reshape(self.input_size) if "anomaly_map" in outputs else None
        # A preprocessed input is already resized (and cropped): its map stays at that size.
        resized = self.input_size if preprocessed else self.preprocessing.image_size
        crop = None if preprocessed else self.preprocessing.center_crop
        score, label, norm_map, mask = postprocess(self.calibration, raw_score, raw_map, image_hw, resized, crop)
        timings["postprocess"] = (time.perf_counter() - t0) * 1e3
        timings["total"] = sum(v for k, v in timings.items() if k != "total")
        return Prediction(
            score=score,
            label=label,
            raw_score=raw_score,
            anomaly_map=norm_map,
            raw_anomaly_map=raw_map,
            mask=mask,
            timings=timings,
            source=source,
        )

    # -- public --------------------------------------------------------------------------------
    def predict(self, image: Any, *, color: str = "RGB", source: Any = None, throughput: bool = False) -> Prediction:
        """Score one image.

        Args:
            image: a file path, or an array (H, W[, 3|4]) uint8 of any size.
            color: channel order of an array input, ``"RGB"`` or ``"BGR"`` (OpenCV frames);
                ignored for files, which are always decoded to RGB.
            source: recorded in ``Prediction.source`` (default: the path for file inputs).
            throughput: run on the model :meth:`predict_many` uses for throughput (same file,
                same execution precision), for a caller that runs several ``predict`` at once
                from its own threads, as ``edgeanomaly serve`` does with concurrent requests:
                more images per second across the calls, each call slower alone. Its first
                use starts that model's compile in the background; until it is ready, and on
                a backend or setting without one, the latency model runs the image.

        Returns:
            :class:`Prediction` with the map at the image's original size.

        >>> det = load("bundle_dir")                       # doctest: +SKIP
        >>> p = det.predict("part_0042.png")               # doctest: +SKIP
        >>> p.score, p.label, p.anomaly_map.shape          # doctest: +SKIP
        (0.83, True, (1080, 1440))
        """
        engine = self._live()
        x, hw, src, timings = self._prepare(image, color, source)
        t0 = time.perf_counter()
        outputs = _runner(engine, throughput)(x[None])
        timings["infer"] = (time.perf_counter() - t0) * 1e3
        return self._finish(outputs, 0, hw, src, timings)

    def predict_tensor(self, batch: np.ndarray, *, throughput: bool = False) -> list[Prediction]:
        """Score images that are already preprocessed: the graph contract's ``image`` input.

        Args:
            batch: (N, 3, H, W) float32 RGB in [0, 1], (H, W) the model input size, e.g. the
                output of :func:`edgeanomaly.data.preprocess` stacked.

        Returns:
            one :class:`Prediction` per row, maps at the model input size (H, W).

        One row runs like :meth:`predict` (``throughput`` as there); several rows take the
        throughput path of :meth:`predict_many` (one row per request, several requests at
        once), so ``timings["infer"]`` is each row's submit-to-result time.

        >>> det.predict_tensor(np.zeros((2, 3, 256, 256), np.float32))[0].anomaly_map.shape   # doctest: +SKIP
        (256, 256)
        """
        expected = (3, *self.input_size)
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            got = batch.shape if isinstance(batch, np.ndarray) else type(batch).__name__
            raise ValueError(f"Expected image of shape (N, {', '.join(map(str, expected))}), got {got}")
        if batch.dtype != np.float32:
            raise ValueError(f"Expected image of dtype float32, got {batch.dtype}")
        engine = self._live()
        if batch.shape[0] == 0:
            return []
        if batch.shape[0] == 1:
            t0 = time.perf_counter()
            outputs = _runner(engine, throughput)(batch)
            return [self._finish(outputs, 0, self.input_size, None, {"infer": (time.perf_counter() - t0) * 1e3}, preprocessed=True)]
        rows = (batch[i : i + 1] for i in range(batch.shape[0]))
        return [
            self._finish(outputs, 0, self.input_size, None, {"infer": infer_ms}, preprocessed=True)
            for outputs, infer_ms in _run_many(engine, rows, None)
        ]

    def predict_batch(
        self,
        images: Sequence[Any],
        *,
        color: str = "RGB",
        sources: Sequence[Any] | None = None,
        batch_size: int | None = None,
        async_: bool = False,
    ) -> list[Prediction]:
        """Score several images (any sizes); results in input order.

        Synchronous mode stacks up to ``batch_size`` images (default 16, or the static batch
        of the artifact) into one inference call; ``timings["infer"]`` is then each image's
        share of the batch time. ``async_=True`` pipelines single images through the
        backend's asynchronous queue (see :meth:`predict_many`), which usually gives the best
        throughput on CPUs.
        """
        if sources is not None and len(sources) != len(images):
            raise ValueError(f"Expected {len(images)} sources, got {len(sources)}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1, got {batch_size}")
        engine = self._live()
        if async_:
            return list(self.predict_many(images, color=color, sources=sources, batch_size=batch_size or 1))
        size = int(batch_size or getattr(engine, "static_batch", None) or _DEFAULT_CHUNK)
        results: list[Prediction] = []
        for start in range(0, len(images), size):
            chunk = images[start : start + size]
            prepared = [
                self._prepare(img, color, sources[start + i] if sources is not None else None)
                for i, img in enumerate(chunk)
            ]
            batch = np.stack([p[0] for p in prepared])
            t0 = time.perf_counter()
            outputs = engine.run(batch)
            share = (time.perf_counter() - t0) * 1e3 / len(prepared)
            for row, (_, hw, src, timings) in enumerate(prepared):
                timings["infer"] = share
                results.append(self._finish(outputs, row, hw, src, timings))
        return results

    def predict_many(
        self,
        images: Iterable[Any],
        *,
        color: str = "RGB",
        sources: Iterable[Any] | None = None,
        batch_size: int = 1,
        jobs: int | None = None,
        throughput: bool = True,
    ) -> Iterator[Prediction]:
        """Stream predictions for an iterable of images: the throughput path.

        Decoding and preprocessing of the next images run on a small thread pool (OpenCV
        releases the GIL) while the backend infers: OpenVINO runs asynchronous infer requests
        (``jobs`` in flight, default: the optimal number, at least 2); ONNX Runtime runs
        ``jobs`` batches at once on worker threads (default: one per core, at most 4). With
        the default load settings on a CPU, after the first 8 batches both switch to a second
        model of the same file built in the background for throughput (OpenVINO: THROUGHPUT
        hint; ONNX Runtime: fewer threads per image, one on 2 cores), same execution
        precision: more images per second on 2 cores, at the cost of a second compile and its
        memory (docs/BENCHMARKS.md, issue 15); each backend's docstring says when it does what.
        ``throughput=False`` keeps the model loaded for latency, every core on each image:
        what :meth:`stream` uses, since a camera gives one frame at a time and a frame run on
        one core comes back later.

        The iterable is read lazily, in the caller's thread: besides the batches in flight, at
        most 4 images plus one batch are prepared ahead (bounded memory, also for an endless
        generator). Results come back in input order; an image that cannot be read or prepared
        raises here, at its place in the order (results still in flight before it are
        dropped). ``timings["infer"]`` is the submit-to-result time of the image's batch,
        which includes queueing.

        >>> for p in det.predict_many(sorted(Path("frames").glob("*.png"))):   # doctest: +SKIP
        ...     print(p.source, p.score)
        """
        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1, got {batch_size}")
        self._measure_first()
        engine = self._live()
        return self._predict_many(
            engine, iter(images), color, None if sources is None else iter(sources), batch_size, jobs, throughput
        )

    def _predict_many(
        self, engine: Backend, image_iter: Iterator[Any], color: str, source_iter: Iterator[Any] | None,
        batch_size: int, jobs: int | None, throughput: bool = True,
    ) -> Iterator[Prediction]:
        pending: deque[list[tuple[tuple[int, int], Any, dict[str, float]]]] = deque()
        prepared: deque[concurrent.futures.Future] = deque()
        workers = min(_PREPARE_WORKERS, os.cpu_count() or 1)
        read_ahead = _READ_AHEAD + batch_size

        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="edgeanomaly-prepare") as pool:

            def fill() -> None:
                # The caller's iterable is only ever advanced here, in the consumer's thread.
                while len(prepared) < read_ahead:
                    try:
                        image = next(image_iter)
                    except StopIteration:
                        return
                    src = next(source_iter) if source_iter is not None else None
                    prepared.append(pool.submit(self._prepare, image, color, src))

            def batches() -> Iterator[np.ndarray]:
                fill()
                while prepared:
                    group: list[np.ndarray] = []
                    meta: list[tuple[tuple[int, int], Any, dict[str, float]]] = []
                    while prepared and len(group) < batch_size:
                        x, hw, src, timings = prepared.popleft().result()  # a bad image raises here, in order
                        fill()
                        group.append(x)
                        meta.append((hw, src, timings))
                    pending.append(meta)
                    yield np.stack(group) if len(group) > 1 else group[0][None]

            try:
                for outputs, infer_ms in _run_many(engine, batches(), jobs, throughput):
                    meta = pending.popleft()
                    for row, (hw, src, timings) in enumerate(meta):
                        timings["infer"] = infer_ms
                        yield self._finish(outputs, row, hw, src, timings)
            finally:
                for fut in prepared:  # a consumer that stops early: drop what has not started
                    fut.cancel()

    def stream(self, source: Any, **kwargs: Any) -> Iterator[tuple[Any, Prediction]]:
        """Predict on a video file, a camera index or a watched folder; see :func:`edgeanomaly.runtime.stream`."""
        self._measure_first()
        return stream(self, source, **kwargs)

    def close(self) -> None:
        """Release the backend (and the bundle's temporary files when it was a zip)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()
        if self._owns_bundle and self._bundle is not None:
            self._bundle.close()
            self._bundle = None

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _prefer_earned_precision(
    bundle: Any, spec: BackendSpec, chosen: Any, device: str, explicit: set[str], why: str, execution_for: Any
) -> tuple[BackendSpec, Any, str]:
    """Another contending backend (the ones ``measure_backends`` would time) when it runs a
    reduced execution precision that its artifact earned at export on this device kind, and
    ``spec`` would run f32.

    An ONNX file goes to ONNX Runtime first (registry order), whose CPU provider runs the graph's
    own types; export also measures OpenVINO reading that file, and a bf16 that passed there
    (and that this CPU supports, on the device kind and release it was measured on) is the
    faster default the issue asks for. Returns ``(backend row, artifact, selection reason)``;
    the reason also says when such a precision passed but cannot run here.
    """
    if execution_for(spec, chosen).requested not in (None, "f32"):
        return spec, chosen, why
    for row, art in contenders(bundle, device, (spec.name, chosen), explicit)[1:]:
        other = execution_for(row, art)
        on = row.name if art is chosen else f"{row.name} ({art.name})"
        if other.requested not in (None, "f32"):
            return row, art, f"{why}; on {on} rather than {spec.name}: {other.reason}"
        earned = [p for p in row.execution_order(device) if p != "f32" and ((other.measured or {}).get(p) or {}).get("outcome") == PASS]
        if earned:
            return spec, chosen, f"{why}; not {on}: {other.reason}"
    return spec, chosen, why


def _speed_settings(given: dict[str, Any], exact: bool) -> dict[str, Any]:
    """The load settings that change a backend's speed: part of a measured choice's cache key."""
    speed = {k: given.get(k) for k in ("num_threads", "num_streams", "performance_hint", "inference_precision", "memory_arena")}
    speed["exact"] = exact or None
    return speed


def _open(bundle: Any, verify: bool, trusted: Any) -> tuple[Any, bool]:
    """``(opened bundle, whether load owns it)``, its signature checked under ``trusted`` keys."""
    if trusted is not None and not verify:
        raise ConfigError("verify=False cannot be combined with trusted keys: a signature covers the files through "
                          "their sha256, which verify=False skips.")
    if isinstance(bundle, (str, os.PathLike)):
        return read_bundle(bundle, verify=verify, trust=trusted), True
    if trusted is not None:
        if not getattr(bundle, "verified", False):
            raise ConfigError(f"Bundle {bundle.source} was opened with verify=False; open it with "
                              "read_bundle(path, trust=...) to load it under trusted keys.")
        bundle.signature = verify_signature(bundle.root, trusted, str(bundle.source))
    return bundle, False


def _settle_backend(
    opened: Any, backend: str, precision: str | None, artifact: str | None, device: str, explicit: set[str], measure: bool
) -> tuple[BackendSpec, Any, str]:
    """``(backend row, artifact, why)`` before any engine exists: the registry's choice, or under
    ``auto`` the first contender that takes every setting given; a setting the backend does
    not take is a :class:`ConfigError` saying what it takes."""
    if backend != "auto" and get_backend(backend).connects:
        return get_backend(backend), None, ""  # an inference server: it reports the artifact it runs
    name, chosen, why = _select(opened, backend, precision, artifact, device)
    spec = get_backend(name)
    rejected = sorted(explicit - set(spec.options) - ({"cache_dir"} if measure else set()))
    if rejected and backend == "auto" and artifact is None:
        # auto: the first contender that takes every setting given (a setting is a choice too)
        others = contenders(opened, device, (name, chosen), explicit)[1:]
        taker = next((c for c in others if set(rejected) <= set(c[0].options)), None)
        if taker is not None:
            spec, chosen = taker
            return spec, chosen, f"{why}; on {spec.name} ({chosen.name}): it takes {', '.join(rejected)}, {name} does not"
    if rejected:
        extra = (
            " It runs the graph's own precision: pick an artifact of the precision you want instead (precision=... or artifact=...)."
            if "inference_precision" in rejected
            else ""
        )
        raise ConfigError(
            f"{', '.join(rejected)}: not a setting of the {spec.name} backend "
            f"(it takes {', '.join(spec.options) or 'none'}).{extra}"
        )
    return spec, chosen, why


class _Engines:
    """How :func:`load` makes engines for one opened bundle and device: each (backend row,
    artifact) at its own execution precision, the graph checked before compiling and the
    signature after."""

    def __init__(self, opened: Any, device: str, given: dict[str, Any], exact: bool) -> None:
        self.opened, self.device, self.given, self.exact = opened, device, given, exact
        self._executions: dict[tuple[str, str], ExecutionChoice] = {}

    def execution_for(self, row: BackendSpec, art: Any) -> ExecutionChoice:
        """The execution precision ``row`` runs ``art`` at (each contender its own)."""
        key = (row.name, getattr(art, "name", ""))
        if key not in self._executions:
            self._executions[key] = resolve_execution(
                row, art, self.opened.manifest, self.device, self.given["inference_precision"], self.exact
            )
        return self._executions[key]

    def create(self, row: BackendSpec, art: Any) -> Backend:
        check_graph(self.opened, art)  # a graph from another model or export is refused before compiling
        settings = {**self.given, "inference_precision": self.execution_for(row, art).requested}
        options = {k: v for k, v in settings.items() if k in row.options and v is not None}
        return row.create(
            self.opened.path(art), self.device, artifact_precision=art.precision, static_batch=getattr(art, "static_batch", None), **options
        )

    def check(self, engine: Backend, art: Any) -> None:
        """The compiled graph's signature against the manifest; the engine is closed if it differs."""
        try:
            _check_signature(engine, self.opened.manifest, f"Artifact {art.name} of {self.opened.root}")
        except BaseException:
            engine.close()
            raise

    def measure_later(self, first: tuple[str, Any, str], explicit: set[str], input_size: tuple[int, int],
                      cache_dir: Any) -> Callable[[Backend], tuple[Backend, str, Any, str, ExecutionChoice]]:
        """What :meth:`Detector._measure_first` calls: time the contenders of the loaded engine (reused)."""

        def measure(current: Backend) -> tuple[Backend, str, Any, str, ExecutionChoice]:
            new, name, art, because = measure_choice(
                self.opened, self.device, first, explicit, self.create, settings=_speed_settings(self.given, self.exact),
                input_size=input_size, cache_dir=cache_dir, loaded=current,
            )
            if new is not current:
                self.check(new, art)
            return new, name, art, because, self.execution_for(get_backend(name), art)

        return measure


def load(
    bundle: str | os.PathLike[str] | Any,
    backend: str = "auto",
    device: str = "CPU",
    options: LoadOptions | None = None,
    **settings: Any,
) -> Detector:
    """Load a bundle for inference, without torch.

    Args:
        bundle: bundle directory, ``.zip`` file, or an open ``edgeanomaly.bundle.Bundle``.
        backend: ``"auto"`` (the installed backends that know ``device``, in the order of
            :mod:`edgeanomaly.registry`: OpenVINO, then ONNX Runtime; an ONNX artifact runs on
            OpenVINO rather than ONNX Runtime where OpenVINO earned a reduced execution
            precision for it at export that can run here, see ``inference_precision``) or a
            registered name.
        device: OpenVINO ``CPU``/``GPU``/``GPU.1``/``NPU``, or ``AUTO``/``AUTO:GPU,CPU`` to let
            OpenVINO choose; ONNX Runtime ``CPU``/``CUDA``/``TensorRT`` or a fallback list
            ``"CUDA,CPU"``. A single device that is not present raises
            :class:`~edgeanomaly.errors.DeviceUnavailableError` listing those that are; in a
            list (``AUTO:GPU,CPU``, ``CUDA,CPU``) absent devices are skipped with a warning and
            at least one must be present. ``Detector.device`` says which one runs.
        options: every other setting, one :class:`~edgeanomaly.runtime.LoadOptions` (the
            artifact precision, the execution precision, threads and streams, the compiled-model
            cache, the backend measurement, the trusted keys, a server's address; documented
            there). Default: its defaults.
        **settings: the same settings as keywords (``load(b, exact=True)``); they override
            those of ``options``. An unknown one is a :class:`~edgeanomaly.errors.ConfigError`.

    Before a graph is compiled, its own ``model_info`` (ONNX ``metadata_props``, OpenVINO
    ``rt_info``) is compared with the manifest's: a graph from another model or export is a
    :class:`~edgeanomaly.errors.GraphMismatchError`, signed or not. After compiling, the graph's
    input and output shapes are compared with the manifest; a mismatch is a
    :class:`~edgeanomaly.errors.BundleError`. A request the engine
    fails later raises :class:`~edgeanomaly.errors.InferenceError`; it never hangs.

    >>> det = load("bundles/patchcore", backend="openvino", device="CPU")   # doctest: +SKIP
    >>> det.precision                                                      # doctest: +SKIP
    'fp32 (f32 execution)'
    """
    opts = LoadOptions.of(options, settings)
    precision, artifact, exact, cache_dir, hint = opts.precision, opts.artifact, opts.exact, opts.cache_dir, opts.openvino_hint
    opened, owns = _open(bundle, opts.verify, resolve_trust(opts.trust))
    given = {
        "url": opts.url,
        "model_name": opts.model_name,
        "timeout": opts.timeout,
        "inference_precision": opts.inference_precision,
        "performance_hint": hint,
        "cache_dir": cache_dir,
        "num_streams": opts.num_streams,
        "num_threads": opts.num_threads,
        **(opts.backend_options or {}),
    }
    explicit = {k for k, v in given.items() if v is not None} - ({"performance_hint"} if hint == "LATENCY" else set())
    auto = backend == "auto" and artifact is None
    measure = auto and (measure_by_default(cache_dir) if opts.measure_backends is None else opts.measure_backends)
    engines = _Engines(opened, device, given, exact)
    try:
        spec, chosen, why = _settle_backend(opened, backend, precision, artifact, device, explicit, measure)
        if auto and not spec.connects:
            # What load runs without measuring; a measurement times the others against it.
            spec, chosen, why = _prefer_earned_precision(opened, spec, chosen, device, explicit, why, engines.execution_for)
        backend_name = spec.name
        if spec.connects:
            options = {k: v for k, v in given.items() if k in spec.options and v is not None}
            engine, chosen = spec.connect(opened, device, precision=precision, artifact=artifact, **options)
            why = f"{chosen.name}: the artifact the {spec.name} backend reports it runs"
        elif measure:
            engine, backend_name, chosen, why = measure_choice(
                opened, device, (backend_name, chosen, why), explicit, engines.create, settings=_speed_settings(given, exact),
                input_size=PreprocessConfig.from_dict(opened.manifest.preprocessing).input_size, cache_dir=cache_dir,
            )
        else:
            engine = engines.create(spec, chosen)
        execution = engines.execution_for(get_backend(backend_name), chosen)
        engines.check(engine, chosen)
    except BaseException:
        if owns:
            opened.close()
        raise
    detector = Detector(engine, opened, chosen, owns_bundle=owns)
    detector.backend = backend_name  # the registry row, also when two rows share a backend class
    detector.selection = why
    detector.options = opts
    detector.execution = execution.loaded(engine)
    if auto and opts.measure_backends is None and not measure and not spec.connects:
        detector._measure_later = engines.measure_later((backend_name, chosen, why), explicit, detector.input_size, cache_dir)
    log.info(
        "loaded %s artifact %s (%s) on %s/%s, precision %s (%s; compiled in %.0f ms)",
        detector.root,
        chosen.name,
        why,
        detector.backend,
        detector.device,
        detector.precision,
        detector.execution.reason,
        getattr(engine, "compile_ms", float("nan")),
    )
    return detector
