"""Fit a registered model on a dataset, calibrate it, measure it, save a checkpoint.

This is what ``edgeanomaly fit`` (and the first half of ``export --recipe`` and
``quickstart``) runs.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from edgeanomaly import __version__
from edgeanomaly.data import Dataset, PreprocessConfig, file_sha256, load_dataset, sample_labels, sample_masks
from edgeanomaly.errors import ConfigError
from edgeanomaly.judging import calibration_split, compute_calibration
from edgeanomaly.metrics import evaluate_outputs
from edgeanomaly.models._checkpoint import Checkpoint, save_checkpoint
from edgeanomaly.models._device import resolve_device
from edgeanomaly.models._fit import fit_model, loader_workers, predict_samples
from edgeanomaly.models._registry import create_model
from edgeanomaly.models._trained import TrainedModel, mark_finished

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
    split: str = "from_test",
    seed: int = 0,
) -> tuple[Any, dict[str, float]]:
    """Calibration (F1-adaptive) and metrics on the labelled test split, from raw torch outputs.

    Args:
        split: ``"from_test"``: thresholds from a stratified half of the test images (seeded),
            metrics from the other half, so F1 and PRO at the threshold are not measured on
            the images that set it; ``"same_as_test"``: both on every test image (anomalib's
            default; optimistic). See ``edgeanomaly.judging._split``.

    Returns ``(Calibration, metrics)``; ``calibration.source["split"]`` says which images
    calibrated and which measured.
    """
    labels = sample_labels(dataset.test)
    masks = sample_masks(dataset.test, preprocessing) if maps is not None else None
    cal_idx, eval_idx = calibration_split(labels, split, seed=seed)
    if len(cal_idx) == len(labels):
        described = "test (thresholds and metrics on all test images)"
    else:
        described = (f"test, calibration part: {len(cal_idx)} of {len(labels)} images (stratified, seed {seed}); "
                     f"metrics on the other {len(eval_idx)}")
    calibration = compute_calibration(
        scores[cal_idx],
        labels=labels[cal_idx],
        raw_maps=None if maps is None else maps[cal_idx],
        masks=None if masks is None else list(masks[cal_idx]),
        source={"split": described, "data": str(dataset.root)},
    )
    metrics = evaluate_outputs(scores[eval_idx], labels[eval_idx], None if maps is None else maps[eval_idx],
                               None if masks is None else masks[eval_idx], calibration)
    return calibration, metrics


#: A model trained for epochs saves its state here (inside the run directory) after each epoch.
TRAINING_STATE = "training-state.pt"


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


def _calibrate(model: Any, dataset: Any, holdout: list[Any], preprocessing: PreprocessConfig, batch_size: int,
               calibration_split: str, seed: Any, seconds: dict[str, float],
               tick: Callable[[str, int], Callable[[int], None]]) -> tuple[dict[str, Any] | None, dict[str, float]]:
    """``(calibration dict or None, test metrics)``: from the train holdout when there is one,
    else from the test split (calibrated and evaluated when labelled, normal images only when not)."""
    calibration_dict = None
    metrics: dict[str, float] = {}
    if holdout:
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
            calibration, metrics = calibrate_and_evaluate(outputs.scores, outputs.maps, dataset, preprocessing,
                                                          calibration_split, seed if isinstance(seed, int) else 0)
        else:
            normal = np.array([s.label == 0 for s in dataset.test])
            calibration = compute_calibration(
                outputs.scores[normal],
                raw_maps=None if outputs.maps is None else outputs.maps[normal],
                source={"split": "test (normal only)", "data": str(dataset.root)},
            )
        calibration_dict = calibration.to_dict()
        seconds["calibrate_evaluate"] = time.perf_counter() - t0
    return calibration_dict, metrics


def _training_hooks(model: Any, model_name: str, out: Any, resume: bool, progress: Progress | None,
                    on_epoch: Callable[[dict[str, Any]], None] | None, train_sha256: Sequence[str]) -> None:
    """A model trained for epochs: where it saves its state (and whether it resumes, on the
    same training files: ``train_sha256``), and who hears of each epoch. ``resume`` for a
    one-pass model, or without ``out``, is refused."""
    trained = hasattr(model, "training_state_path")
    if resume and not (trained and out is not None):
        raise ConfigError(f"resume continues an interrupted training in its run directory: {model_name} "
                          + ("fits in one pass" if not trained else "was given no out directory"))
    if trained and out is not None:
        model.training_state_path = Path(out) / TRAINING_STATE
        model.resume_training = resume
        if not resume:  # a fit that starts again (overwrite): an earlier fit's state is not this one's
            model.training_state_path.unlink(missing_ok=True)
        model.training_data_digest = hashlib.sha256("\n".join(train_sha256).encode()).hexdigest()
    if hasattr(model, "epoch_callback"):  # a model trained for epochs reports each

        def report(record: dict[str, Any]) -> None:
            if progress is not None:
                progress("train", record["epoch"], record["epochs"])
            if on_epoch is not None:
                on_epoch(record)

        model.epoch_callback = report


def fit_run(
    model_name: str,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    category: str | None = None,
    image_size: int | Sequence[int] = 256,
    center_crop: int | Sequence[int] | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
    calibration_split: str = "from_test",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    device: str | torch.device | None = "cpu",
    resume: bool = False,
    **model_kwargs: Any,
) -> FitResult:
    """Fit ``model_name`` on ``data`` (normal train split), calibrate and measure on the test split.

    Args:
        model_name: a registered model.
        data: dataset folder (MVTec layout or a folder of normal images).
        out: run directory for the checkpoint (None: do not save).
        calibration_split: ``"from_test"`` or ``"same_as_test"``; see :func:`calibrate_and_evaluate`.
        on_epoch: for a model trained for epochs (FastFlow), called after each epoch with its
            record (``epoch``, ``epochs``, ``train_loss``, ``val_loss``, ``held_out``: False where no
            image was held out and ``val_loss`` is the training loss, ``best_epoch``, ``seconds``,
            ``seconds_left`` (of ``max_minutes``, None without one); EfficientAD's also
            ``stage``, and its teacher's ``seconds_left`` is of its ``teacher_time_share``).
        resume: a model trained for epochs saves its state in ``out`` after each epoch
            (``training-state.pt``, kept beside the checkpoint, marked finished); ``resume=True``
            continues an interrupted fit from there, or trains a finished one on where its
            stopping rules now let it. Without ``resume`` a state already there is removed first.
        device: where the features and the estimators are computed: ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"auto"`` (CUDA when torch sees one); see ``resolve_device``.
            The checkpoint is the same whatever the device (its tensors are saved on the CPU;
            ``info["fit_device"]`` records where it was fitted).
        model_kwargs: model settings (backbone, layers, random_state, ...).
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    preprocessing = PreprocessConfig(image_size, center_crop=center_crop)
    torch_device = resolve_device(device)
    model = create_model(model_name, **model_kwargs).to(torch_device)  # a wrong setting is said before the data are read
    model.check_input_size(*preprocessing.input_size)
    dataset = load_dataset(data, category=category).check()
    seconds["setup"] = time.perf_counter() - t0

    def tick(stage: str, total: int) -> Callable[[int], None]:
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(stage, done[0], total)

        return step

    train, holdout = training_split(dataset)
    train_sha256 = [file_sha256(s.path) for s in train]  # content hashes: recorded, and a resume checks them
    _training_hooks(model, model_name, out, resume, progress, on_epoch, train_sha256)
    t0 = time.perf_counter()
    workers = loader_workers(torch_device)
    fit_model(model, train, preprocessing, batch_size, tick("fit", len(train)), progress, workers)
    seconds["fit"] = time.perf_counter() - t0

    calibration_dict, metrics = _calibrate(model, dataset, holdout, preprocessing, batch_size, calibration_split,
                                           model_kwargs.get("random_state"), seconds, tick)
    model.to("cpu")  # the checkpoint's model is the same whatever fitted it

    info = {
        "data": str(Path(data)),
        "dataset": dataset.name,
        "layout": dataset.layout,
        "category": category or dataset.name,
        "n_train": len(train),
        "n_calibration_holdout": len(holdout),
        "n_test": len(dataset.test),
        "fit_seconds": round(seconds["fit"], 3),
        "fit_loader": {"workers": workers, "batch_size": batch_size},
        "fit_device": str(torch_device) + (f" ({torch.cuda.get_device_name(torch_device)})" if torch_device.type == "cuda" else ""),
        "edgeanomaly_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # content hashes of the fitted images: calibrate warns when it is given them again
        "train_sha256": train_sha256,
    }
    if getattr(model, "training_history_", None):  # a trained model: its epochs, losses and why it stopped
        info["training"] = {**model.training_summary_, "history": model.training_history_}
    ckpt = Checkpoint(model, preprocessing, calibration_dict, info, metrics)
    out_path = save_checkpoint(out, ckpt) if out is not None else None
    if out is not None:
        state = Path(out) / TRAINING_STATE
        if isinstance(model, TrainedModel) and state.is_file():
            # kept, so that a resume can train it on (more epochs, a longer time, more patience)
            mark_finished(state, model.training_summary_["stopped_by"])
        else:  # a one-pass model fitted over a trained run
            state.unlink(missing_ok=True)
    return FitResult(ckpt, out_path, seconds)
