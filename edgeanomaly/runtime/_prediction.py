"""The result of one image: :class:`Prediction`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Prediction"]


@dataclass
class Prediction:
    """What the detector says about one image.

    Attributes:
        score: normalised anomaly score in [0, 1]; the calibrated threshold sits at 0.5.
        label: True when anomalous (``score >= 0.5``, i.e. ``raw_score >= image_threshold``).
        raw_score: the graph's ``pred_score`` before normalisation.
        anomaly_map: (H, W) float32 normalised map at the ORIGINAL image size (threshold at
            0.5), or None for classification-only models.
        raw_anomaly_map: (h, w) float32 graph output at the model input size, or None.
        mask: (H, W) bool, ``anomaly_map >= 0.5``, or None.
        timings: milliseconds per stage: ``decode`` (file inputs only), ``preprocess``,
            ``infer`` (the image's share of its batch), ``postprocess``, ``total``.
        source: file path, frame index or None.

    >>> p = Prediction(score=0.7, label=True, raw_score=3.2)
    >>> p.to_dict()["label"]
    True
    """

    score: float
    label: bool
    raw_score: float
    anomaly_map: np.ndarray | None = None
    raw_anomaly_map: np.ndarray | None = None
    mask: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    source: str | int | None = None

    def __post_init__(self) -> None:
        if self.anomaly_map is not None and self.mask is not None and self.anomaly_map.shape != self.mask.shape:
            raise ValueError(
                f"Expected mask of the anomaly map's shape {self.anomaly_map.shape}, got {self.mask.shape}"
            )

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the original image when a map is present."""
        return None if self.anomaly_map is None else tuple(self.anomaly_map.shape)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary without the arrays (one JSON line per image in the CLI)."""
        source = str(self.source) if isinstance(self.source, Path) else self.source
        out: dict[str, Any] = {
            "source": source,
            "score": round(float(self.score), 6),
            "label": bool(self.label),
            "raw_score": float(self.raw_score),
        }
        if self.mask is not None:
            out["anomalous_pixels"] = int(np.count_nonzero(self.mask))
            out["image_size"] = list(self.mask.shape)
        out["timings_ms"] = {k: round(float(v), 3) for k, v in self.timings.items()}
        return out
