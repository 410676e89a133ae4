"""``load(bundle)`` -> :class:`Detector`: images in, calibrated predictions out, no torch."""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from edgeanomaly._optional import check_choice
from edgeanomaly.data._preprocess import PreprocessConfig, preprocess
from edgeanomaly.errors import BackendUnavailableError, BundleError, ConfigError
from edgeanomaly.runtime._backends import Backend
from edgeanomaly.runtime._devices import (
    BACKENDS,
    backend_installed,
    check_inference_precision,
    check_performance_hint,
)
from edgeanomaly.runtime._inputs import as_rgb
from edgeanomaly.runtime._postprocess import postprocess
from edgeanomaly.runtime._prediction import Prediction

__all__ = ["Detector", "load", "select_artifact"]

log = logging.getLogger("edgeanomaly.runtime")

_DEFAULT_CHUNK = 16  # images per synchronous batch in predict_batch: bounded memory, full batches


def _artifact_table(bundle: Any) -> str:
    return ", ".join(f"{a.name} ({a.format}, {a.precision})" for a in bundle.artifacts) or "none"


def select_artifact(bundle: Any, backend: str = "auto", precision: str = "fp32", artifact: str | None = None) -> tuple[str, Any]:
    """Choose ``(backend, artifact)`` for a bundle.

    ``backend="auto"``: OpenVINO when it is installed and the bundle has an OpenVINO artifact
    of ``precision``, else ONNX Runtime on the ONNX artifact, else OpenVINO reading the ONNX
    file. ``artifact`` (a name such as ``"openvino-int8"``) overrides ``precision``.
    """
    check_choice("backend", backend, ["auto", *BACKENDS])
    installed = {name: backend_installed(name) for name in BACKENDS}
    if artifact is not None:
        names = [a.name for a in bundle.artifacts]
        check_choice(f"artifact of bundle {getattr(bundle, 'root', '')}", artifact, names)
        chosen = next(a for a in bundle.artifacts if a.name == artifact)
        runnable = [n for n, spec in BACKENDS.items() if chosen.format in spec.formats]
        if backend != "auto":
            if backend not in runnable:
                raise ConfigError(
                    f"Artifact {artifact!r} ({chosen.format}) cannot run on backend {backend!r}; "
                    f"use {' or '.join(runnable)}."
                )
            return backend, chosen
        # An ONNX artifact asked for by name runs on ONNX Runtime first, an IR on OpenVINO.
        prefs = ["onnxruntime", "openvino"] if chosen.format == "onnx" else runnable
        for name in prefs:
            if name in runnable and installed[name]:
                return name, chosen
        raise BackendUnavailableError(
            f"Artifact {artifact!r} needs {' or '.join(runnable)}, and none is installed."
        )

    def find(fmt: str) -> Any | None:
        return next((a for a in bundle.artifacts if a.format == fmt and a.precision == precision), None)

    if backend == "auto":
        order = [("openvino", "openvino"), ("onnxruntime", "onnx"), ("openvino", "onnx")]
    else:
        order = [(backend, fmt) for fmt in BACKENDS[backend].formats]
    for name, fmt in order:
        found = find(fmt)
        if found is not None and (installed[name] or backend != "auto"):
            return name, found
    if backend == "auto" and not any(installed.values()):
        raise BackendUnavailableError("Neither openvino nor onnxruntime is installed: pip install openvino")
    raise BundleError(
        f"Bundle {getattr(bundle, 'root', '')} has no {precision} artifact that backend {backend!r} can run. "
        f"Artifacts: {_artifact_table(bundle)}"
    )


class Detector:
    """A loaded bundle on one backend and device. Create it with :func:`load`.

    Attributes:
        backend: ``"openvino"`` or ``"onnxruntime"``.
        device: the device that actually runs the graph (e.g. ``"CPU"``, also after ``AUTO``).
        precision: verified precision, e.g. ``"fp32 (f32 execution)"``.
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
        output_names = [o.name for o in engine.outputs]
        expected = [o["name"] for o in manifest.outputs]
        if sorted(output_names) != sorted(expected):
            raise BundleError(
                f"Artifact {artifact.name} of {bundle.root} has outputs {output_names}, "
                f"but its manifest declares {expected}"
            )
        self.calibration = manifest.calibration
        self.root = Path(bundle.root)

    # -- info ----------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What runs where, for logs and the CLI summary."""
        return {
            "bundle": str(self.root),
            "model": self.manifest.model_info.get("model"),
            "task": self.task,
            "artifact": self.artifact.name,
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "input_size": list(self.input_size),
            "compile_ms": round(float(getattr(self._engine, "compile_ms", float("nan"))), 1),
        }

    def __repr__(self) -> str:
        return (
            f"Detector(model={self.manifest.model_info.get('model')!r}, artifact={self.artifact.name!r}, "
            f"backend={self.backend!r}, device={self.device!r}, precision={self.precision!r})"
        )

    # -- core steps ----------------------------------------------------------------------------
    def _prepare(self, image: Any, color: str, source: Any) -> tuple[np.ndarray, tuple[int, int], Any, dict[str, float]]:
        t0 = time.perf_counter()
        rgb, path, decode_ms = as_rgb(image, color)
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
    def predict(self, image: Any, *, color: str = "RGB", source: Any = None) -> Prediction:
        """Score one image.

        Args:
            image: a file path, or an array (H, W[, 3|4]) uint8 of any size.
            color: channel order of an array input, ``"RGB"`` or ``"BGR"`` (OpenCV frames);
                ignored for files, which are always decoded to RGB.
            source: recorded in ``Prediction.source`` (default: the path for file inputs).

        Returns:
            :class:`Prediction` with the map at the image's original size.

        >>> det = load("bundle_dir")                       # doctest: +SKIP
        >>> p = det.predict("part_0042.png")               # doctest: +SKIP
        >>> p.score, p.label, p.anomaly_map.shape          # doctest: +SKIP
        (0.83, True, (1080, 1440))
        """
        x, hw, src, timings = self._prepare(image, color, source)
        t0 = time.perf_counter()
        outputs = self._engine.run(x[None])
        timings["infer"] = (time.perf_counter() - t0) * 1e3
        return self._finish(outputs, 0, hw, src, timings)

    def predict_tensor(self, batch: np.ndarray) -> list[Prediction]:
        """Score images that are already preprocessed: the graph contract's ``image`` input.

        Args:
            batch: (N, 3, H, W) float32 RGB in [0, 1], (H, W) the model input size, e.g. the
                output of :func:`edgeanomaly.data.preprocess` stacked.

        Returns:
            one :class:`Prediction` per row, maps at the model input size (H, W).

        >>> det.predict_tensor(np.zeros((2, 3, 256, 256), np.float32))[0].anomaly_map.shape   # doctest: +SKIP
        (256, 256)
        """
        expected = (3, *self.input_size)
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            got = batch.shape if isinstance(batch, np.ndarray) else type(batch).__name__
            raise ValueError(f"Expected image of shape (N, {', '.join(map(str, expected))}), got {got}")
        if batch.dtype != np.float32:
            raise ValueError(f"Expected image of dtype float32, got {batch.dtype}")
        if batch.shape[0] == 0:
            return []
        t0 = time.perf_counter()
        outputs = self._engine.run(batch)
        share = (time.perf_counter() - t0) * 1e3 / batch.shape[0]
        return [
            self._finish(outputs, row, self.input_size, None, {"infer": share}, preprocessed=True)
            for row in range(batch.shape[0])
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
        if async_:
            return list(self.predict_many(images, color=color, sources=sources, batch_size=batch_size or 1))
        size = int(batch_size or getattr(self._engine, "static_batch", None) or _DEFAULT_CHUNK)
        if size < 1:
            raise ValueError(f"Expected batch_size >= 1, got {batch_size}")
        results: list[Prediction] = []
        for start in range(0, len(images), size):
            chunk = images[start : start + size]
            prepared = [
                self._prepare(img, color, sources[start + i] if sources is not None else None)
                for i, img in enumerate(chunk)
            ]
            batch = np.stack([p[0] for p in prepared])
            t0 = time.perf_counter()
            outputs = self._engine.run(batch)
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
    ) -> Iterator[Prediction]:
        """Stream predictions for an iterable of images, overlapping input preparation with inference.

        OpenVINO runs an ``AsyncInferQueue`` (``jobs`` requests in flight, default: the compiled
        model's optimal number, at least 2); ONNX Runtime runs inference on a worker thread.
        Results come back in input order; ``timings["infer"]`` is the submit-to-result time
        of the image's batch, which includes queueing.

        >>> for p in det.predict_many(sorted(Path("frames").glob("*.png"))):   # doctest: +SKIP
        ...     print(p.source, p.score)
        """
        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1, got {batch_size}")
        pending: deque[list[tuple[tuple[int, int], Any, dict[str, float]]]] = deque()
        source_iter = iter(sources) if sources is not None else None

        def batches() -> Iterator[np.ndarray]:
            group: list[np.ndarray] = []
            meta: list[tuple[tuple[int, int], Any, dict[str, float]]] = []
            for image in images:
                src = next(source_iter) if source_iter is not None else None
                x, hw, src, timings = self._prepare(image, color, src)
                group.append(x)
                meta.append((hw, src, timings))
                if len(group) == batch_size:
                    pending.append(meta)
                    yield np.stack(group) if batch_size > 1 else x[None]
                    group, meta = [], []
            if group:
                pending.append(meta)
                yield np.stack(group)

        run_many = getattr(self._engine, "run_async_many", None)
        if run_many is None:  # a backend without an async path: plain sequential runs
            def run_many(bs: Iterable[np.ndarray], jobs: int | None = None) -> Iterator[tuple[dict[str, np.ndarray], float]]:
                for b in bs:
                    t0 = time.perf_counter()
                    out = self._engine.run(b)
                    yield out, (time.perf_counter() - t0) * 1e3

        for outputs, infer_ms in run_many(batches(), jobs=jobs):
            meta = pending.popleft()
            for row, (hw, src, timings) in enumerate(meta):
                timings["infer"] = infer_ms
                yield self._finish(outputs, row, hw, src, timings)

    def stream(self, source: Any, **kwargs: Any) -> Iterator[tuple[Any, Prediction]]:
        """Predict on a video file, a camera index or a watched folder; see :func:`edgeanomaly.runtime.stream`."""
        from edgeanomaly.runtime._stream import stream

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


def load(
    bundle: str | os.PathLike[str] | Any,
    backend: str = "auto",
    device: str = "CPU",
    *,
    precision: str = "fp32",
    artifact: str | None = None,
    inference_precision: str | None = None,
    performance_hint: str = "latency",
    cache_dir: str | os.PathLike[str] | None = None,
    num_streams: int | None = None,
    num_threads: int | None = None,
    verify: bool = True,
    url: str | None = None,
    model_name: str | None = None,
    timeout: float = 30.0,
) -> Detector:
    """Load a bundle for inference, without torch.

    Args:
        bundle: bundle directory, ``.zip`` file, or an open ``edgeanomaly.bundle.Bundle``.
        backend: ``"auto"`` (OpenVINO if installed and the bundle has an OpenVINO artifact of
            ``precision``, else ONNX Runtime), ``"openvino"`` or ``"onnxruntime"``.
        device: OpenVINO ``CPU``/``GPU``/``GPU.1``/``NPU``, or ``AUTO``/``AUTO:GPU,CPU`` to let
            OpenVINO choose; ONNX Runtime ``CPU``/``CUDA``/``TensorRT`` or a fallback list
            ``"CUDA,CPU"``. A device that is not present raises
            :class:`~edgeanomaly.errors.DeviceUnavailableError` listing those that are.
        precision: artifact precision to pick (``fp32``, ``fp16``, ``int8``).
        artifact: artifact name (``"openvino-int8"``); overrides ``precision``.
        inference_precision: OpenVINO execution precision ``"f32"``, ``"bf16"`` or ``"f16"``.
            Default: f32 on CPU for every artifact, f32 on GPU unless the artifact is FP16.
        performance_hint: ``"latency"`` (one image at a time) or ``"throughput"`` (OpenVINO).
        cache_dir: OpenVINO compiled-model cache (faster second load); none by default.
        num_streams, num_threads: override OpenVINO streams / threads (both backends: threads).
        verify: check the bundle's checksums while reading it.
        url, model_name, timeout: ``backend="remote"`` only: the Open Inference Protocol server
            (``http://host:8080`` or ``grpc://host:8081``), the model's name there (default:
            the bundle's folder name without ``.bundle``/``.zip``, as ``edgeanomaly serve``
            names it) and seconds per request. The graph runs on the server; preprocessing and
            calibration stay here.

    >>> det = load("bundles/patchcore", backend="openvino", device="CPU")   # doctest: +SKIP
    >>> det.precision                                                      # doctest: +SKIP
    'fp32 (f32 execution)'
    """
    from edgeanomaly.bundle import read_bundle

    inference_precision = check_inference_precision(inference_precision)
    hint = check_performance_hint(performance_hint)
    owns = isinstance(bundle, (str, os.PathLike))
    opened = read_bundle(bundle, verify=verify) if owns else bundle
    try:
        if (backend == "remote") != (url is not None):
            raise ConfigError(f"url= goes with backend='remote' (and remote needs a url); got backend={backend!r}, url={url!r}")
        if backend == "remote":  # the one wiring point of the remote backend (a registry row after issue 10)
            from edgeanomaly.runtime._backends._remote import connect

            backend_name = "remote"
            engine, chosen = connect(opened, url, model_name, precision=precision, artifact=artifact, timeout=timeout)  # type: ignore[arg-type]
        else:
            backend_name, chosen = select_artifact(opened, backend, precision, artifact)
        model_path = opened.path(chosen)
        static_batch = getattr(chosen, "static_batch", None)
        if backend_name == "openvino":
            from edgeanomaly.runtime._backends._openvino import OpenVINOBackend

            engine: Backend = OpenVINOBackend(
                model_path,
                device,
                artifact_precision=chosen.precision,
                inference_precision=inference_precision,
                performance_hint=hint,
                cache_dir=cache_dir,
                num_streams=num_streams,
                num_threads=num_threads,
                static_batch=static_batch,
            )
        elif backend_name == "onnxruntime":
            if inference_precision is not None:
                raise ConfigError(
                    "inference_precision is an OpenVINO setting; ONNX Runtime runs the graph's own precision. "
                    "Pick an artifact of the precision you want instead (precision=... or artifact=...)."
                )
            from edgeanomaly.runtime._backends._onnxruntime import ONNXRuntimeBackend

            engine = ONNXRuntimeBackend(
                model_path,
                device,
                artifact_precision=chosen.precision,
                num_threads=num_threads,
                static_batch=static_batch,
            )
    except BaseException:
        if owns:
            opened.close()
        raise
    detector = Detector(engine, opened, chosen, owns_bundle=owns)
    log.info(
        "loaded %s artifact %s on %s/%s, precision %s (compiled in %.0f ms)",
        detector.root,
        chosen.name,
        detector.backend,
        detector.device,
        detector.precision,
        getattr(engine, "compile_ms", float("nan")),
    )
    return detector
