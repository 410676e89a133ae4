"""Pixel metrics at each image's own resolution, as MVTec AD results are reported.

A bundle's anomaly map comes out at the model input size (e.g. 256 x 256); the ground truth
of a 1024 x 1024 hazelnut image is drawn at 1024 x 1024. Shrinking the mask to the map (model
resolution) rounds thin defects away; papers instead resize the map back to the image, with
the same geometry the runtime uses for its predictions (``map_to_image``: undo the centre
crop, bilinear resize).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from edgeanomaly.metrics import evaluate_outputs
from edgeanomaly.runtime import map_to_image

__all__ = ["PIXEL_RESOLUTIONS", "maps_at_original_size", "pixel_metrics_at_original_size"]

PIXEL_RESOLUTIONS = ("original", "model")


def maps_at_original_size(raw_maps: np.ndarray, image_sizes: Sequence[tuple[int, int]], preprocessing: dict[str, Any]) -> list[np.ndarray]:
    """Raw (N, h, w) maps at model size -> a list of (H_i, W_i) float32 maps at each image's size."""
    resized = tuple(preprocessing["image_size"])
    crop = tuple(preprocessing["center_crop"]) if preprocessing.get("center_crop") else None
    if len(raw_maps) != len(image_sizes):
        raise ValueError(f"Expected one image size per map ({len(raw_maps)}), got {len(image_sizes)}")
    return [map_to_image(np.asarray(m, np.float32), tuple(hw), resized, crop) for m, hw in zip(raw_maps, image_sizes)]  # type: ignore[arg-type]


def pixel_metrics_at_original_size(
    scores: np.ndarray,
    labels: np.ndarray,
    raw_maps: np.ndarray,
    image_sizes: Sequence[tuple[int, int]],
    masks: Sequence[np.ndarray | None],
    preprocessing: dict[str, Any],
    calibration: Any,
) -> tuple[dict[str, float], str]:
    """The ``pixel_*`` metrics of ``evaluate_outputs`` with maps resized to each image's size.

    Args:
        masks: bool ground truth at each image's own size (all False for normal images); None
            for an anomalous image without a mask (the metrics are then not computed).

    Returns ``(metrics, note)``; ``metrics`` is empty and ``note`` says why when the images do
    not share one size (the metrics stack them) or a mask is missing.
    """
    sizes = {tuple(hw) for hw in image_sizes}
    if any(m is None for m in masks):
        return {}, "pixel metrics at model resolution only: an anomalous image has no ground-truth mask"
    if len(sizes) != 1:
        return {}, f"pixel metrics at model resolution only: the images have {len(sizes)} different sizes"
    wrong = [i for i, (m, hw) in enumerate(zip(masks, image_sizes)) if np.shape(m) != tuple(hw)]
    if wrong:
        return {}, (f"pixel metrics at model resolution only: {len(wrong)} mask(s) differ in size from their image "
                    f"(first: {np.shape(masks[wrong[0]])} vs {tuple(image_sizes[wrong[0]])})")
    maps = np.stack(maps_at_original_size(raw_maps, image_sizes, preprocessing))
    gt = np.stack([np.asarray(m, bool) for m in masks])  # type: ignore[arg-type]
    metrics = evaluate_outputs(scores, labels, maps, gt, calibration)
    (h, w), = sizes
    return ({k: v for k, v in metrics.items() if k.startswith("pixel_")},
            f"pixel metrics at each image's own resolution ({h} x {w}; maps resized as the runtime does)")
