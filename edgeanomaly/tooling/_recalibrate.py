"""Recalibrate a bundle on the device from new images (``edgeanomaly calibrate``), torch-free."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeanomaly._optional import check_choice
from edgeanomaly.bundle import read_bundle, update_calibration
from edgeanomaly.data import file_sha256, load_dataset, preprocess_mask
from edgeanomaly.errors import DatasetError
from edgeanomaly.judging import DEFAULT_QUANTILE, calibration_warnings, compute_calibration, refreshed_reference_metrics
from edgeanomaly.runtime import load

__all__ = ["SPLITS", "recalibrate"]

log = logging.getLogger("edgeanomaly.runtime")

#: Which images of a dataset are used: ``auto`` = the labelled test split when it holds both
#: classes, else every normal image.
SPLITS = ("auto", "train", "test", "all")


def recalibrate(
    bundle: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    backend: str = "auto",
    device: str = "CPU",
    precision: str | None = None,
    artifact: str | None = None,
    split: str = "auto",
    quantile: float = DEFAULT_QUANTILE,
    category: str | None = None,
    write: bool = True,
    on_image: Callable[[int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    sign_key: Any = None,
):
    """Run a bundle over a dataset, compute a new calibration, and (optionally) write it.

    Args:
        bundle: bundle directory (or ``.zip``).
        data: MVTec-layout category folder (``train/good``, ``test/<defect>``,
            ``ground_truth/<defect>``) or a folder of normal images.
        backend, device, precision, artifact: as in :func:`edgeanomaly.runtime.load`; the
            calibration then matches the graph that will run on this device.
        split: ``auto`` (labelled test split if it has both classes, else all normal images),
            ``train``, ``test`` or ``all``.
        quantile: for normal-only data; see :func:`compute_calibration`.
        write: rewrite the manifest atomically with ``edgeanomaly.bundle.update_calibration``
            (the previous calibration goes into ``calibration.history``), together with the
            torch reference metrics at the new thresholds (the old ones go into
            ``reference.history``), so ``validate`` afterwards compares like with like.
        on_image: called as ``on_image(done, total)`` after each image (progress bars).
        on_warning: called with each reason not to trust the new calibration (see
            ``edgeanomaly.judging._calibration_checks``); default: logged as warnings.
        sign_key: with ``write``, sign the new manifest with this key (an
            ``edgeanomaly.bundle.SigningKey`` or its path); without one, the signature of a
            signed bundle no longer holds and is removed (see ``update_calibration``).

    Returns:
        The new ``Calibration``.
    """
    check_choice("split", split, SPLITS)
    dataset = load_dataset(data, category=category).check()
    if split == "auto":
        samples = dataset.test if dataset.is_labelled else [s for s in dataset if s.label == 0]
        split_name = "test" if dataset.is_labelled else "normal"
    elif split == "all":
        samples, split_name = list(dataset), "all"
    else:
        samples, split_name = list(getattr(dataset, split)), split
    if not samples:
        raise DatasetError(f"No images to calibrate on in {data} (split {split!r})")

    scores: list[float] = []
    maps: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    labels = np.array([s.label for s in samples], dtype=np.int64)
    with load(bundle, backend=backend, device=device, precision=precision, artifact=artifact) as detector:
        segmentation = detector.task == "segmentation"
        for done, (sample, prediction) in enumerate(zip(samples, detector.predict_many(s.path for s in samples)), 1):
            scores.append(prediction.raw_score)
            if segmentation:
                maps.append(prediction.raw_anomaly_map)
                mask = sample.mask(prediction.image_size) if sample.label else None
                masks.append(None if mask is None else preprocess_mask(mask, detector.preprocessing))
            if on_image is not None:
                on_image(done, len(samples))
        info = detector.info()
    calibration = compute_calibration(
        np.asarray(scores),
        labels=labels,
        raw_maps=maps if maps else None,
        masks=masks if maps else None,
        quantile=quantile,
        source={"split": split_name, "data": str(Path(data))},
    )
    log.info(
        "calibrated %s on %d images (%s, %s/%s): image threshold %.6g",
        bundle,
        len(samples),
        calibration.method,
        info["backend"],
        info["device"],
        calibration.image_threshold,
    )

    with read_bundle(bundle) as opened:
        reference = opened.reference() or {}
        old_metrics = dict(opened.manifest.reference["metrics"])
    eval_scores, eval_labels = reference.get("eval_pred_score"), reference.get("eval_labels")
    known_good = None if eval_scores is None or eval_labels is None else eval_scores[eval_labels == 0]
    for reason in calibration_warnings(calibration, np.asarray(scores), labels, known_good_scores=known_good,
                                       image_hashes=[file_sha256(s.path) for s in samples],
                                       training_hashes=[str(h) for h in reference.get("train_sha256", ())]):
        (on_warning or log.warning)(reason)
    if write:
        metrics, note = refreshed_reference_metrics(old_metrics, calibration, eval_scores, eval_labels)
        update_calibration(bundle, calibration, reference_metrics=metrics, note=note, sign_key=sign_key)
    return calibration
