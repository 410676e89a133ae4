"""The fit loop and torch-side batch prediction over dataset samples.

Images go through ``edgeanomaly.data.preprocess``, the same function the runtime calls, so
what the model saw while fitting is exactly what it sees on the device.
"""

from __future__ import annotations

import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from edgeanomaly.data import PreprocessConfig, Sample, preprocess
from edgeanomaly.errors import DatasetError, ImageReadError
from edgeanomaly.models._base import AnomalyModel

__all__ = ["iter_batches", "fit_model", "loader_workers", "predict_samples", "TorchOutputs"]

Progress = Callable[[int], None]


def iter_batches(
    samples: Sequence[Sample],
    config: PreprocessConfig,
    batch_size: int = 16,
    progress: Progress | None = None,
    workers: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield (B, 3, h, w) float32 tensors in [0, 1] for ``samples``, in order.

    ``workers > 0`` decodes and preprocesses on that many threads (OpenCV and numpy release
    the GIL), one batch ahead of the one being yielded, so the model does not wait for the
    files; ``0`` does it in the calling thread.

    An unreadable image stops the fit with an error naming the file: silently skipping a
    training image would change the model without anybody knowing.
    """
    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1, got {batch_size}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"Expected workers as an int >= 0, got {workers!r}")
    h, w = config.input_size

    def load(s: Sample) -> np.ndarray:
        try:
            return preprocess(s.image(), config)
        except ImageReadError as exc:
            raise DatasetError(f"Cannot use training/test image {s.path}: {exc}") from exc

    chunks = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    if workers == 0:
        for chunk in chunks:
            batch = np.empty((len(chunk), 3, h, w), dtype=np.float32)
            for i, s in enumerate(chunk):
                batch[i] = load(s)
            yield torch.from_numpy(batch)
            if progress is not None:
                progress(len(chunk))
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgeanomaly-load")
    try:
        ahead = [pool.submit(load, s) for s in chunks[0]] if chunks else []
        for k, chunk in enumerate(chunks):
            current = ahead
            ahead = [pool.submit(load, s) for s in chunks[k + 1]] if k + 1 < len(chunks) else []
            batch = np.empty((len(chunk), 3, h, w), dtype=np.float32)
            for i, future in enumerate(current):
                batch[i] = future.result()
            yield torch.from_numpy(batch)
            if progress is not None:
                progress(len(chunk))
    finally:  # also when the consumer stops early or an image fails: no decoding left behind
        pool.shutdown(wait=True, cancel_futures=True)


def loader_workers(device: torch.device) -> int:
    """Decoding threads for a fit on ``device``: on a GPU the model outruns one thread, so up
    to 4 (at most the CPU count); on the CPU one thread ahead of the model (the cores are
    the model's: measured on 2 cores, decoding is 2 % of a PatchCore fit, docs/BENCHMARKS.md)."""
    if device.type == "cpu":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def fit_model(
    model: AnomalyModel,
    samples: Sequence[Sample],
    config: PreprocessConfig,
    batch_size: int = 16,
    progress: Progress | None = None,
    stage_progress: Callable[[str, int, int], None] | None = None,
    workers: int | None = None,
) -> AnomalyModel:
    """Fit ``model`` on the normal ``samples`` (``model.fit`` may iterate them once per epoch).

    ``progress(n_images)`` follows the pass over the images, ``stage_progress(stage, done,
    total)`` the steps after it (PatchCore's coreset selection). ``workers``: threads that
    decode ahead of the model (see :func:`iter_batches`); None: :func:`loader_workers`.
    """
    if not samples:
        raise DatasetError("No training images: the training split is empty (expected normal images in train/good)")
    bad = [s.path for s in samples if s.label != 0]
    if bad:
        raise DatasetError(f"Training images must all be normal; got {len(bad)} anomalous, e.g. {bad[0]}")
    model.check_input_size(*config.input_size)
    if workers is None:
        workers = loader_workers(model.device)
    batches = _Batches(samples, config, batch_size, progress, workers)
    # A model that trains its head overrides fit(batches) and may not take progress.
    if stage_progress is not None and "progress" in inspect.signature(model.fit).parameters:
        model.fit(batches, progress=stage_progress)
    else:
        model.fit(batches)
    return model


class _Batches:
    """The training set as batches, re-iterable: a model that trains for several epochs
    iterates once per epoch (images are decoded again each time; nothing is held in memory).
    ``progress`` reports the first pass only."""

    def __init__(self, samples: Sequence[Sample], config: PreprocessConfig, batch_size: int, progress: Progress | None,
                 workers: int = 0) -> None:
        self.samples, self.config, self.batch_size, self.progress = samples, config, batch_size, progress
        self.workers = workers
        self.passes = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        self.passes += 1
        return iter_batches(self.samples, self.config, self.batch_size, self.progress if self.passes == 1 else None,
                            self.workers)

    def __len__(self) -> int:
        return -(-len(self.samples) // self.batch_size)


@dataclass(frozen=True)
class TorchOutputs:
    """Raw outputs of the torch model: ``scores`` (N,) float32, ``maps`` (N, h, w) float32 or None."""

    scores: np.ndarray
    maps: np.ndarray | None


def predict_samples(
    model: AnomalyModel,
    samples: Sequence[Sample],
    config: PreprocessConfig,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> TorchOutputs:
    """Raw torch outputs for ``samples`` at model input size (no normalisation)."""
    model.check_is_fitted()
    model.eval()
    scores: list[np.ndarray] = []
    maps: list[np.ndarray] = []
    # A model whose forward holds a block per image that grows with its fitted state
    # (PatchCore: patches x bank) says how many images to give it at once.
    limit = getattr(model, "predict_batch_limit", None)
    step = limit(*config.input_size) if limit is not None else batch_size
    with torch.no_grad():
        for batch in iter_batches(samples, config, batch_size, progress):
            for part in batch.split(step):
                out = model.predict(part.to(model.device))
                scores.append(out["pred_score"].cpu().numpy().astype(np.float32))
                if "anomaly_map" in out:
                    maps.append(out["anomaly_map"][:, 0].cpu().numpy().astype(np.float32))
    return TorchOutputs(np.concatenate(scores), np.concatenate(maps) if maps else None)
