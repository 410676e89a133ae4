"""Is a new calibration to be trusted? Warnings for ``calibrate``, and the reference it implies.

A threshold is only as good as the images it came from. ``calibrate`` warns when:

- the new threshold flags most known-good images (the calibration images themselves, or the
  normal images of the bundle's reference data, whose torch scores ``reference.npz`` holds);
- calibration images are training images (identical files, by the content hashes export
  records): the model has memorised them, their scores sit far below those of new good
  parts, and a threshold from them flags good parts;
- there are too few images for a stable threshold: a quantile ``q`` of fewer than
  ``1 / (1 - q)`` normal scores is just their maximum; F1 on fewer than
  :data:`MIN_IMAGES_PER_CLASS` images of a class moves with one image. This rule,
  :func:`threshold_sample_warnings`, is also what ``fit`` and ``export`` warn with.

After a re-calibration the torch reference metrics that depend on a threshold (image F1,
pixel PRO and F1) no longer describe the bundle: :func:`refreshed_reference_metrics`
recomputes what the stored torch scores allow and drops what needs maps that are not stored.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from edgeanomaly.metrics import f1_score

__all__ = ["MIN_IMAGES_PER_CLASS", "calibration_warnings", "refreshed_reference_metrics",
           "THRESHOLD_METRICS", "threshold_sample_warnings"]

#: Fewer images than this in a class make an F1-adaptive threshold hinge on single images.
MIN_IMAGES_PER_CLASS = 10
#: Reference metrics computed at the bundle's thresholds (the rest are threshold-free).
THRESHOLD_METRICS = ("image_f1", "pixel_pro", "pixel_f1")


def _flagged(scores: np.ndarray, threshold: float) -> int:
    return int(np.count_nonzero(np.asarray(scores, np.float64) >= threshold))


def calibration_warnings(
    calibration: Any,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    known_good_scores: np.ndarray | None = None,
    image_hashes: Iterable[str] = (),
    training_hashes: Iterable[str] = (),
) -> list[str]:
    """Reasons not to trust ``calibration`` (empty when there are none).

    Args:
        calibration: the new ``edgeanomaly.bundle.Calibration``.
        scores, labels: (N,) raw image scores and 0/1 labels of the calibration images.
        known_good_scores: (M,) raw torch scores of other known-good images (the normal
            images of the bundle's reference data), or None.
        image_hashes: sha256 of each calibration image file.
        training_hashes: sha256 of each training image file (recorded at export).

    >>> from edgeanomaly.bundle import Calibration
    >>> cal = Calibration(1.0, 0.0, 2.0, method="quantile", quantile=0.99)
    >>> calibration_warnings(cal, np.array([1.5, 1.2, 0.5]), np.array([0, 0, 0]))[0][:38]
    'the threshold flags 2 of 3 calibration'
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    t = float(calibration.image_threshold)
    out: list[str] = []
    normal = s[y == 0]
    if 2 * _flagged(normal, t) > normal.size:
        out.append(f"the threshold flags {_flagged(normal, t)} of {normal.size} calibration images known to be good as anomalous")
    if known_good_scores is not None and np.size(known_good_scores):
        k, n = _flagged(known_good_scores, t), int(np.size(known_good_scores))
        if 2 * k > n:
            out.append(
                f"the new image threshold {t:.6g} flags {k} of {n} good images of the bundle's reference data as anomalous "
                "(the torch model's scores of them): the calibration images do not look like the parts this bundle was made for"
            )
    train = set(training_hashes)
    hashes = list(image_hashes)
    overlap = sum(h in train for h in hashes)
    if overlap:
        out.append(
            f"{overlap} of {len(hashes)} calibration images are training images (identical files): the model has memorised "
            "them, so their scores are lower than those of new good parts and the threshold will flag good parts; "
            "calibrate on images the model was not fitted on"
        )
    out += _too_few(calibration, normal.size, int(np.count_nonzero(y == 1)))
    return out


def _too_few(calibration: Any, n_normal: int, n_anomalous: int) -> list[str]:
    if calibration.method == "quantile" and calibration.quantile is not None and calibration.quantile < 1.0:
        needed = math.ceil(1.0 / (1.0 - calibration.quantile) - 1e-9)
        if n_normal < needed:
            return [
                f"{n_normal} normal images are too few for the {calibration.quantile:g} quantile (it needs at least {needed}; "
                f"with fewer it is close to their largest score): add images or lower the quantile (calibrate --quantile)"
            ]
    elif calibration.method == "f1_adaptive" and min(n_normal, n_anomalous) < MIN_IMAGES_PER_CLASS:
        return [
            f"{n_normal} normal and {n_anomalous} anomalous images are too few for a stable F1 threshold (one image moves it; "
            f"use at least {MIN_IMAGES_PER_CLASS} of each)"
        ]
    return []


def threshold_sample_warnings(calibration: Any) -> list[str]:
    """Reasons the thresholds of ``calibration`` rest on too few images (empty when enough).

    The rule ``calibrate`` applies, read from the image counts the calibration records
    (``source["n_normal"]``, ``source["n_anomalous"]``): a quantile ``q`` needs at least
    ``1 / (1 - q)`` normal images; an F1-adaptive threshold at least
    :data:`MIN_IMAGES_PER_CLASS` of each class. ``fit`` and ``export`` print these.

    >>> from edgeanomaly.tooling import compute_calibration
    >>> threshold_sample_warnings(compute_calibration(np.array([0.1, 0.9, 0.8]), labels=np.array([0, 1, 1])))[0][:33]
    '1 normal and 2 anomalous images a'
    """
    src = calibration.source or {}
    if "n_normal" not in src:  # an old calibration without counts: nothing to judge by
        return []
    return _too_few(calibration, int(src["n_normal"]), int(src.get("n_anomalous") or 0))


def refreshed_reference_metrics(
    metrics: Mapping[str, float],
    calibration: Any,
    eval_scores: np.ndarray | None,
    eval_labels: np.ndarray | None,
) -> tuple[dict[str, float], str]:
    """The torch reference metrics at a new calibration, and a note on what could not be redone.

    Threshold-free metrics (AUROC, AUPR, AUPRO, AUPIMO) do not depend on the calibration and
    are kept. Image F1 is recomputed from the torch scores of the reference images when the
    bundle stores them (``reference.npz``: ``eval_pred_score``, ``eval_labels``). Pixel PRO
    and F1 need the torch maps of every reference image, which a bundle does not store: they
    are dropped (no longer judged) rather than compared with numbers from other thresholds.
    """
    out = {k: float(v) for k, v in metrics.items() if k not in THRESHOLD_METRICS}
    dropped = [k for k in THRESHOLD_METRICS if k in metrics]
    if "image_f1" in metrics and eval_scores is not None and eval_labels is not None and len(np.unique(eval_labels)) == 2:
        out["image_f1"] = float(f1_score(np.asarray(eval_scores, np.float64), np.asarray(eval_labels), calibration.image_threshold))
        dropped.remove("image_f1")
    note = "recalibrated: threshold-free metrics kept"
    if "image_f1" in out:
        note += ", image_f1 recomputed from the stored torch scores"
    if dropped:
        note += f"; {', '.join(dropped)} dropped (they need torch outputs the bundle does not store)"
    return out, note
