"""Visualisation with OpenCV: heat map, mask contours, label and score on the image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edgeanomaly.data import read_image, to_rgb_uint8

if TYPE_CHECKING:
    from edgeanomaly.runtime._prediction import Prediction

__all__ = ["overlay"]

_RED = (255, 0, 0)  # RGB
_GREEN = (0, 200, 0)


def overlay(
    image: Any,
    prediction: "Prediction",
    *,
    color: str = "RGB",
    alpha: float = 0.4,
    contours: bool = True,
    text: bool = True,
) -> np.ndarray:
    """Draw a prediction on its image.

    Args:
        image: the image that was scored: a path or an (H, W[, 3]) uint8 array in ``color`` order.
        prediction: its :class:`Prediction` (map at the image size).
        color: channel order of an array ``image`` AND of the returned image (``"RGB"`` or
            ``"BGR"``; pass ``"BGR"`` to feed ``cv2.imwrite`` / ``cv2.imshow``). A path input
            returns ``color`` order too.
        alpha: weight of the heat map (JET colour map of the normalised map; 0.5 = threshold).
        contours: draw the outline of the predicted mask.
        text: write ``ANOMALOUS 0.83`` / ``normal 0.12`` in the corner.

    Returns:
        (H, W, 3) uint8 in ``color`` order.

    >>> vis = overlay(frame_bgr, det.predict(frame_bgr, color="BGR"), color="BGR")   # doctest: +SKIP
    """
    if isinstance(image, np.ndarray):
        rgb = to_rgb_uint8(image, color)
    else:
        rgb = read_image(image)
    out = rgb.copy()
    h, w = out.shape[:2]
    if prediction.anomaly_map is not None:
        amap = prediction.anomaly_map
        if amap.shape != (h, w):
            raise ValueError(f"Expected the prediction's map at the image size {(h, w)}, got {amap.shape}")
        heat = cv2.applyColorMap(np.clip(amap * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        out = cv2.addWeighted(heat, float(alpha), out, 1.0 - float(alpha), 0.0)
    if contours and prediction.mask is not None and prediction.mask.any():
        found, _ = cv2.findContours(prediction.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, found, -1, _RED, thickness=max(1, round(min(h, w) / 200)))
    if text:
        label = "ANOMALOUS" if prediction.label else "normal"
        caption = f"{label} {prediction.score:.2f}"
        scale = max(0.4, min(h, w) / 500)
        thick = max(1, round(scale * 2))
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), thickness=-1)
        cv2.putText(
            out, caption, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, _RED if prediction.label else _GREEN, thick, cv2.LINE_AA
        )
    if str(color).upper() == "BGR":
        out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    return out
