"""Thresholds and normalisation ranges from raw model outputs: one implementation, torch-free.

Fitting (on the training machine) and ``edgeanomaly calibrate`` (on the device) both call
:func:`compute_calibration`, so a bundle calibrated in either place follows the same rules:

- labelled data (normal and anomalous images): the image threshold maximises F1
  (``edgeanomaly.metrics.f1_adaptive_threshold``); with ground-truth masks the pixel
  threshold maximises pixel-level F1 as well; without masks it maximises F1 of the per-image
  map maxima against the image labels. Every threshold between the optimal calibration value
  and the next lower one has the same F1; the midpoint is used, so no calibration image sits
  exactly on the boundary.
- normal images only: the image threshold is the ``quantile`` (default 0.99) of the normal
  images' scores, so about 1% of normal parts are flagged on the calibration set. A lower
  quantile flags more; with fewer than ~100 images 0.99 is close to the maximum score.
  The pixel threshold is the same quantile of the normal images' per-image map maxima: a
  normal image then shows a mask about as often as it is labelled anomalous, instead of
  every normal image carrying 1% speckle.
- min/max are those of all raw scores (and of all raw map values) seen.

Convention: a threshold t marks values >= t as anomalous.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgeanomaly.bundle import Calibration
from edgeanomaly.errors import ConfigError
from edgeanomaly.metrics import f1_adaptive_threshold, pixel_f1_adaptive_threshold

__all__ = ["DEFAULT_QUANTILE", "compute_calibration"]

#: Quantile of normal scores used as threshold when only normal images are available.
DEFAULT_QUANTILE = 0.99


def _as_maps(raw_maps: Any, n: int) -> list[np.ndarray]:
    if isinstance(raw_maps, np.ndarray):
        arr = raw_maps
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 3:
            raise ValueError(f"Expected raw_maps of shape (N, H, W) or (N, 1, H, W), got {raw_maps.shape}")
        maps = list(arr)
    else:
        maps = [np.asarray(m).reshape(np.asarray(m).shape[-2:]) for m in raw_maps]
    if len(maps) != n:
        raise ValueError(f"Expected {n} raw_maps (one per score), got {len(maps)}")
    return maps


def _between(values: np.ndarray, threshold: float) -> float:
    """Move an optimal threshold from a calibration value down to the midpoint of the gap below it.

    Every threshold in (largest value below t, t] gives the same F1 on the calibration data;
    the midpoint keeps the calibration images themselves away from the decision boundary, so
    float differences between torch, ONNX Runtime and OpenVINO cannot flip their labels. When
    t is the lowest value (every image flagged), it moves below it by half the gap above.
    """
    below = values[values < threshold]
    if below.size == 0:
        # Every calibration image is flagged: keep the lowest one off the boundary too, by half
        # the gap to the next value (mirrored below it), or a relative hair when all are equal.
        above = values[values > threshold]
        gap = float(above.min()) - float(threshold) if above.size else 2e-3 * max(abs(float(threshold)), 1.0)
        return float(threshold) - gap / 2.0
    return float((float(below.max()) + float(threshold)) / 2.0)


def _f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    return _between(scores, float(f1_adaptive_threshold(scores, labels).threshold))


def _checked_inputs(raw_scores: Any, labels: Any, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """``(scores float64 (N,), labels int64 (N,))``, refusing what cannot be calibrated on."""
    scores = np.asarray(raw_scores, dtype=np.float64).reshape(-1)
    n = scores.size
    if n == 0:
        raise ValueError("Expected at least one raw score, got none")
    if not np.isfinite(scores).all():
        raise ValueError("Expected finite raw scores, got NaN or inf (check the model outputs)")
    if not 0.0 < float(quantile) <= 1.0:
        raise ConfigError(f"Expected quantile in (0, 1], got {quantile}")
    if labels is None:
        return scores, np.zeros(n, dtype=np.int64)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if y.size != n:
        raise ValueError(f"Expected {n} labels (one per score), got {y.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"Expected labels of 0 (normal) or 1 (anomalous), got values {np.unique(y).tolist()}")
    return scores, y


def _pixel_threshold(maps: list[np.ndarray], y: np.ndarray, masks: Any, labelled: bool, quantile: float) -> float:
    """The pixel threshold: adaptive F1 over the masks where there are any; with labels but no
    masks, the one that best separates images by their map maxima (a mask then appears on an
    image iff the map "labels" it anomalous); normal images only: the quantile of the maxima."""
    mask_list = None
    if labelled and masks is not None:
        mask_list = list(masks)
        if len(mask_list) != len(maps):
            raise ValueError(f"Expected {len(maps)} masks (one per score), got {len(mask_list)}")
    if mask_list is not None and any(m is not None and np.any(m) for m in mask_list):
        values, truth = [], []
        for m, mask, label in zip(maps, mask_list, y):
            if mask is None:
                if label:  # an anomalous image without ground truth says nothing about its pixels
                    continue
                mask = np.zeros(m.shape, dtype=bool)
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != m.shape:
                raise ValueError(f"Expected masks at the maps' size {m.shape}, got {mask.shape}")
            values.append(m)
            truth.append(mask)
        stacked = np.stack(values)
        return _between(stacked, float(pixel_f1_adaptive_threshold(stacked, np.stack(truth)).threshold))
    if labelled:
        return _f1_threshold(np.array([float(m.max()) for m in maps]), y)
    maxima = np.array([float(m.max()) for m, label in zip(maps, y) if label == 0])
    return float(np.quantile(maxima, quantile))


def compute_calibration(
    raw_scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray | None = None,
    raw_maps: np.ndarray | Sequence[np.ndarray] | None = None,
    masks: np.ndarray | Sequence[np.ndarray | None] | None = None,
    quantile: float = DEFAULT_QUANTILE,
    source: dict[str, Any] | None = None,
):
    """Compute a bundle ``Calibration`` from raw model outputs.

    Args:
        raw_scores: (N,) raw ``pred_score`` values.
        labels: (N,) 0 normal / 1 anomalous, or None when every image is normal.
        raw_maps: (N, H, W) or (N, 1, H, W) raw ``anomaly_map`` values at model input size
            (or a list of (H, W) maps); None for classification models.
        masks: (N, H, W) bool ground truth at the maps' size (or a list with None for images
            without a mask: normal ones count as all-normal pixels, anomalous ones are left
            out of the pixel F1); only used with labels.
        quantile: for normal-only data, in (0, 1].
        source: ``{"split", "data"}`` describing the images (counts are filled in).

    Returns:
        ``edgeanomaly.bundle.Calibration`` with ``method`` ``"f1_adaptive"`` (labels with both
        classes) or ``"quantile"``.

    >>> cal = compute_calibration(np.array([1.0, 1.2, 0.9, 1.1]))            # doctest: +SKIP
    >>> cal.method, round(cal.image_threshold, 3)                            # doctest: +SKIP
    ('quantile', 1.194)
    """
    scores, y = _checked_inputs(raw_scores, labels, quantile)
    n = scores.size
    n_anomalous = int(y.sum())
    n_normal = n - n_anomalous
    if n_normal == 0:
        raise ValueError("Expected normal images for calibration, got only anomalous ones")
    labelled = n_normal > 0 and n_anomalous > 0

    maps = _as_maps(raw_maps, n) if raw_maps is not None else None

    if labelled:
        image_threshold = _f1_threshold(scores, y)
        method, used_quantile = "f1_adaptive", None
    else:
        image_threshold = float(np.quantile(scores[y == 0], quantile))
        method, used_quantile = "quantile", float(quantile)

    pixel = {"pixel_threshold": None, "pixel_min": None, "pixel_max": None}
    if maps is not None:
        pixel = {
            "pixel_threshold": _pixel_threshold(maps, y, masks, labelled, quantile),
            "pixel_min": float(min(float(m.min()) for m in maps)),
            "pixel_max": float(max(float(m.max()) for m in maps)),
        }

    src = {"split": "", "data": "", **(source or {})}
    return Calibration(
        image_threshold=image_threshold,
        image_min=float(scores.min()),
        image_max=float(scores.max()),
        method=method,
        quantile=used_quantile,
        source={
            "split": str(src["split"]),
            "n_images": n,
            "n_normal": n_normal,
            "n_anomalous": n_anomalous,
            "data": str(src["data"]),
        },
        **pixel,
    )
