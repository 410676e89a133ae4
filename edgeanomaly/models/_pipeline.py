"""Fit a registered model on a dataset, calibrate it, measure it, save a checkpoint.

This is what ``edgeanomaly fit`` (and the first half of ``export --recipe`` and
``quickstart``) runs.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from edgeanomaly import __version__
from edgeanomaly.data import Dataset, PreprocessConfig, load_dataset
from edgeanomaly.models._checkpoint import Checkpoint, save_checkpoint
from edgeanomaly.models._fit import fit_model, predict_samples
from edgeanomaly.models._registry import create_model

__all__ = ["FitResult", "fit_run", "calibrate_and_evaluate", "training_split"]

Progress = Callable[[str, int, int], None]


@dataclass
class FitResult:
    checkpoint: Checkpoint
    out: Path | None
    seconds: dict[str, float]


def calibrate_and_evaluate(
    scores: np.ndarray,
    maps: np.ndarray | None,
    dataset: Dataset,
    preprocessing: PreprocessConfig,
) -> tuple[Any, dict[str, float]]:
    """Calibration (F1-adaptive on the labelled test split) and its metrics, from raw torch outputs.

    Returns ``(Calibration, metrics)``. The metrics use the calibration computed on the same
    split, as anomalib does by default; the calibration records that split, so nobody
    mistakes its F1 for a held-out number.
    """
    from edgeanomaly.data import sample_labels, sample_masks
    from edgeanomaly.metrics import evaluate_outputs
    from edgeanomaly.tooling import compute_calibration

    labels = sample_labels(dataset.test)
    masks = sample_masks(dataset.test, preprocessing) if maps is not None else None
    calibration = compute_calibration(
        scores,
        labels=labels,
        raw_maps=maps,
        masks=None if masks is None else list(masks),
        source={"split": "test", "data": str(dataset.root)},
    )
    metrics = evaluate_outputs(scores, labels, maps, masks, calibration)
    return calibration, metrics


def training_split(dataset: Dataset) -> tuple[list, list]:
    """(images to fit on, images held out for calibration) of ``dataset``.

    With a test split everything in train/ is fitted on. With normal images only, every 10th
    is kept aside so the threshold comes from images the model has not memorised (a quantile
    of training scores would sit far too low).
    """
    train = list(dataset.train)
    if dataset.test:
        return train, []
    holdout = train[9::10] or train[-1:]
    return [s for s in train if s not in holdout] or train, holdout


def fit_run(
    model_name: str,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    category: str | None = None,
    image_size: int | Sequence[int] = 256,
    center_crop: int | Sequence[int] | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
    **model_kwargs: Any,
) -> FitResult:
    """Fit ``model_name`` on ``data`` (normal train split), calibrate and measure on the test split.

    Args:
        model_name: a registered model.
        data: dataset folder (MVTec layout or a folder of normal images).
        out: run directory for the checkpoint (None: do not save).
        model_kwargs: model settings (backbone, layers, random_state, ...).
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    dataset = load_dataset(data, category=category).check()
    preprocessing = PreprocessConfig(image_size, center_crop=center_crop)
    model = create_model(model_name, **model_kwargs)
    model.check_input_size(*preprocessing.input_size)
    seconds["setup"] = time.perf_counter() - t0

    def tick(stage: str, total: int) -> Callable[[int], None]:
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(stage, done[0], total)

        return step

    train, holdout = training_split(dataset)
    t0 = time.perf_counter()
    fit_model(model, train, preprocessing, batch_size, tick("fit", len(train)))
    seconds["fit"] = time.perf_counter() - t0

    calibration_dict = None
    metrics: dict[str, float] = {}
    if holdout:
        from edgeanomaly.tooling import compute_calibration

        t0 = time.perf_counter()
        outputs = predict_samples(model, holdout, preprocessing, batch_size)
        calibration = compute_calibration(
            outputs.scores,
            raw_maps=outputs.maps,
            source={"split": f"train holdout (every 10th image, {len(holdout)})", "data": str(dataset.root)},
        )
        calibration_dict = calibration.to_dict()
        seconds["calibrate"] = time.perf_counter() - t0
    elif dataset.test:
        t0 = time.perf_counter()
        outputs = predict_samples(model, dataset.test, preprocessing, batch_size, tick("test", len(dataset.test)))
        seconds["test_inference"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if dataset.is_labelled:
            calibration, metrics = calibrate_and_evaluate(outputs.scores, outputs.maps, dataset, preprocessing)
        else:
            from edgeanomaly.tooling import compute_calibration

            normal = np.array([s.label == 0 for s in dataset.test])
            calibration = compute_calibration(
                outputs.scores[normal],
                raw_maps=None if outputs.maps is None else outputs.maps[normal],
                source={"split": "test (normal only)", "data": str(dataset.root)},
            )
        calibration_dict = calibration.to_dict()
        seconds["calibrate_evaluate"] = time.perf_counter() - t0

    info = {
        "data": str(Path(data)),
        "dataset": dataset.name,
        "layout": dataset.layout,
        "category": category or dataset.name,
        "n_train": len(train),
        "n_calibration_holdout": len(holdout),
        "n_test": len(dataset.test),
        "fit_seconds": round(seconds["fit"], 3),
        "edgeanomaly_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    ckpt = Checkpoint(model, preprocessing, calibration_dict, info, metrics)
    out_path = save_checkpoint(out, ckpt) if out is not None else None
    return FitResult(ckpt, out_path, seconds)
