"""Inference backends behind one small protocol.

A backend turns a preprocessed batch ``(N, 3, H, W) float32`` into the graph's named outputs
(``pred_score (N,)``, ``anomaly_map (N, 1, H, W)``). It knows nothing about images, bundles
or calibration: the :class:`~edgeanomaly.runtime.Detector` does that once for all backends.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, runtime_checkable

import numpy as np

from edgeanomaly.errors import DeviceUnavailableError, InferenceError
from edgeanomaly.registry import get_backend

__all__ = ["Backend", "TensorInfo", "TWIN_AFTER", "device_unavailable", "inference_error", "run_padded", "pipelined"]

#: Batches ``run_async_many`` runs on the model loaded for latency before it starts building
#: the backend's second model for throughput (a short run never pays for it).
TWIN_AFTER = 8


def device_unavailable(backend: str, requested: str, available: list[str], extra: str = "") -> DeviceUnavailableError:
    """The error for a device that ``backend`` does not have here, with what it has and close names."""
    known = tuple(get_backend(backend).devices)
    close = difflib.get_close_matches(requested, [*known, *available], n=2, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close and requested not in close else ""
    return DeviceUnavailableError(
        f"Device {requested!r} is not available for the {backend} backend on this machine. "
        f"Available: {', '.join(available) or 'none'}.{extra}{hint}"
    )


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (``-1`` for a dynamic dimension) and dtype of a graph input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@runtime_checkable
class Backend(Protocol):
    """What the Detector needs from an inference engine.

    Attributes:
        name: ``"openvino"`` or ``"onnxruntime"``.
        device: the device that actually runs the graph (after AUTO resolution), e.g. ``"CPU"``.
        precision: verified description, e.g. ``"fp32 (f32 execution)"``.
        inputs / outputs: graph signature.

    ``run`` accepts any batch size (a static-batch graph is padded and chunked) and must be
    safe to call from several threads. Backends may also offer
    ``run_async_many(batches, jobs=None[, throughput=True]) -> Iterator[(outputs, infer_ms)]``
    yielding in input order (``throughput=False``: keep the model loaded for latency), and
    ``run_throughput(batch)``: as ``run``, on the model ``run_async_many`` uses for throughput,
    for callers that run several batches at once from their own threads.
    """

    name: str
    device: str
    precision: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def inference_error(backend: Backend, batch: np.ndarray | None, exc: BaseException) -> InferenceError:
    """The one message for a request the engine refused or failed: which backend, what came, what the graph takes."""
    shape = "" if batch is None else f" for a batch of shape {list(batch.shape)}"
    expected = list(backend.inputs[0].shape) if backend.inputs else "?"
    return InferenceError(
        f"{backend.name} inference failed on {backend.device}{shape} (the graph takes {expected}, "
        f"-1 = any size): {str(exc).strip()}"
    )


def run_padded(
    run_fixed: Callable[[np.ndarray], dict[str, np.ndarray]], batch: np.ndarray, static_batch: int | None
) -> dict[str, np.ndarray]:
    """Run a graph whose batch dimension may be fixed at ``static_batch``.

    A batch smaller than the static size is zero-padded (the padded rows are dropped from the
    outputs); a larger one is split into chunks.
    """
    n = batch.shape[0]
    if static_batch is None or n == static_batch:
        return run_fixed(batch)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n, static_batch):
        chunk = batch[start : start + static_batch]
        k = chunk.shape[0]
        if k < static_batch:
            padded = np.zeros((static_batch, *batch.shape[1:]), dtype=batch.dtype)
            padded[:k] = chunk
            chunk = padded
        out = run_fixed(chunk)
        parts.append({name: value[:k] for name, value in out.items()})
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def pipelined(
    run: Callable[[np.ndarray], dict[str, np.ndarray]], batches: Iterable[np.ndarray], depth: int = 2, workers: int = 1
) -> Iterator[tuple[dict[str, np.ndarray], float]]:
    """Run ``run`` on ``workers`` threads so the caller prepares batch i+1 while batch i runs.

    Yields ``(outputs, infer_ms)`` in input order; at most ``depth`` batches are in flight
    (``depth > workers`` keeps a batch queued for the worker that finishes first). Used by
    backends without a native asynchronous API (ONNX Runtime releases the GIL while it
    computes, so this overlaps decoding/preprocessing with inference, and ``workers > 1``
    runs several inferences at once).
    """
    if workers < 1 or depth < 1:
        raise ValueError(f"Expected workers >= 1 and depth >= 1, got workers={workers}, depth={depth}")

    def timed(batch: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
        t0 = time.perf_counter()
        out = run(batch)
        return out, (time.perf_counter() - t0) * 1e3

    pending: deque[concurrent.futures.Future] = deque()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgeanomaly-infer") as pool:
        try:
            for batch in batches:
                pending.append(pool.submit(timed, batch))
                while len(pending) >= depth or (pending and pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # A consumer that stops early (or an error): drop what has not started, wait for
            # what runs (leaving the with-block joins the workers).
            for fut in pending:
                fut.cancel()
