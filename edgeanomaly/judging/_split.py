"""Which labelled test images set the thresholds and which measure the model (anomalib's
``val_split_mode``): thresholds fitted and metrics reported on the same images make F1 and
PRO at the threshold optimistic.

Modes: ``from_test`` (default when the test split is labelled): a stratified, seeded part of
the test images calibrates, the rest measures; ``same_as_test``: every test image does both
(the old behaviour; recorded as such).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CALIBRATION_SPLITS", "calibration_split"]

CALIBRATION_SPLITS = ("from_test", "same_as_test")


def calibration_split(labels: np.ndarray, mode: str = "from_test", fraction: float = 0.5,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(calibration indices, evaluation indices) of labelled images, both sorted.

    ``from_test`` puts ``ceil(fraction * n)`` images of each class (at least 1, at most n - 1)
    into calibration, chosen by a seeded permutation, so both parts hold both classes. A class
    with fewer than 2 images cannot be split: ``same_as_test`` is used instead (both returned
    index arrays are then every image).

    >>> cal, ev = calibration_split(np.array([0, 0, 1, 1, 1, 1]))
    >>> len(cal), len(ev), sorted(set(cal) | set(ev)) == list(range(6))
    (3, 3, True)
    """
    y = np.asarray(labels).reshape(-1)
    if mode not in CALIBRATION_SPLITS:
        raise ValueError(f"Expected calibration split one of {', '.join(CALIBRATION_SPLITS)}, got {mode!r}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"Expected a calibration fraction in (0, 1), got {fraction}")
    everything = np.arange(y.size)
    classes = [np.flatnonzero(y == c) for c in (0, 1)]
    if mode == "same_as_test" or any(idx.size < 2 for idx in classes):
        return everything, everything
    rng = np.random.default_rng(seed)
    calibration = []
    for idx in classes:
        k = min(idx.size - 1, max(1, math.ceil(fraction * idx.size)))
        calibration.append(rng.permutation(idx)[:k])
    cal = np.sort(np.concatenate(calibration))
    return cal, np.setdiff1d(everything, cal)
