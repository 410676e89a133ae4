"""Calibration: thresholds and normalisation ranges that turn raw model outputs into decisions."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np

from edgeanomaly.bundle import _fields as F
from edgeanomaly.bundle._schema import CALIBRATION_METHODS
from edgeanomaly.errors import BundleError

__all__ = ["Calibration", "utc_now", "normalize"]

_SOURCE_KEYS = ("split", "n_images", "n_normal", "n_anomalous", "data")


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string with a ``Z`` suffix (second resolution).

    >>> utc_now().endswith("Z")
    True
    """
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _default_source() -> dict[str, Any]:
    return {"split": "", "n_images": 0, "n_normal": 0, "n_anomalous": 0, "data": ""}


def normalize(raw: Any, threshold: float, minimum: float, maximum: float) -> np.ndarray | np.float32:
    """``clip((raw - threshold) / (maximum - minimum) + 0.5, 0, 1)`` as float32.

    When ``maximum == minimum`` (every calibration score was equal) the range is taken as
    1.0 rather than dividing by zero. Computed in float64, returned as float32 with the
    shape of ``raw`` (a NumPy scalar for a scalar input).

    >>> float(normalize(3.0, threshold=3.0, minimum=1.0, maximum=5.0))
    0.5
    >>> normalize(np.array([1.0, 7.0]), 3.0, 1.0, 5.0).tolist()
    [0.0, 1.0]
    """
    span = float(maximum) - float(minimum)
    if not span > 0.0:
        span = 1.0
    values = np.asarray(raw, dtype=np.float64)
    out = np.clip((values - float(threshold)) / span + 0.5, 0.0, 1.0).astype(np.float32)
    return out if out.ndim else out[()]


def _normalized(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate one calibration (without its history) and return it with plain Python types."""
    out: dict[str, Any] = {}
    for key in ("image_threshold", "image_min", "image_max"):
        out[key] = F.as_float(values[key], f"{where}.{key}")
    pixel_keys = ("pixel_threshold", "pixel_min", "pixel_max")
    for key in pixel_keys:
        out[key] = F.as_optional_float(values[key], f"{where}.{key}")
    present = [out[k] is not None for k in pixel_keys]
    if any(present) and not all(present):
        F.fail(f"{where}.pixel_threshold", "pixel_threshold, pixel_min and pixel_max are set together or all null")
    for prefix in ("image", "pixel"):
        lo, hi = out[f"{prefix}_min"], out[f"{prefix}_max"]
        if lo is not None and hi is not None and lo > hi:
            F.fail(f"{where}.{prefix}_min", f"{prefix}_min {lo} is larger than {prefix}_max {hi}")
    out["method"] = F.as_choice(values["method"], f"{where}.method", CALIBRATION_METHODS)
    quantile = F.as_optional_float(values["quantile"], f"{where}.quantile")
    if out["method"] == "quantile":
        if quantile is None or not 0.0 < quantile <= 1.0:
            F.fail(f"{where}.quantile", f"method 'quantile' needs a quantile in (0, 1], got {quantile}")
    elif quantile is not None:
        F.fail(f"{where}.quantile", f"is only set when method is 'quantile' (method is {out['method']!r})")
    out["quantile"] = quantile
    source = F.check_keys(values["source"], f"{where}.source", _SOURCE_KEYS)
    src = {
        "split": F.as_str(source["split"], f"{where}.source.split"),
        "n_images": F.as_int(source["n_images"], f"{where}.source.n_images", minimum=0),
        "n_normal": F.as_int(source["n_normal"], f"{where}.source.n_normal", minimum=0),
        "n_anomalous": F.as_int(source["n_anomalous"], f"{where}.source.n_anomalous", minimum=0),
        "data": F.as_str(source["data"], f"{where}.source.data"),
    }
    if src["n_normal"] + src["n_anomalous"] != src["n_images"]:
        F.fail(
            f"{where}.source.n_images",
            f"n_normal ({src['n_normal']}) + n_anomalous ({src['n_anomalous']}) must equal "
            f"n_images ({src['n_images']})",
        )
    out["source"] = src
    out["created_utc"] = F.as_timestamp(values["created_utc"], f"{where}.created_utc")
    return out


@dataclass(frozen=True)
class Calibration:
    """Thresholds and normalisation ranges of a bundle, with where they came from.

    Normalised score = ``clip((raw - t) / (max - min) + 0.5, 0, 1)``, so the threshold sits
    at 0.5. One convention everywhere: a threshold ``t`` marks ``raw >= t`` as anomalous.

    Attributes:
        image_threshold, image_min, image_max: image-level threshold and normalisation range.
        pixel_threshold, pixel_min, pixel_max: the same for anomaly maps; all ``None`` for
            classification-only models.
        method: ``"f1_adaptive"`` (best F1 on a labelled split), ``"quantile"`` (a quantile
            of the scores of normal images) or ``"manual"``.
        quantile: the quantile used when ``method == "quantile"``, else ``None``.
        source: ``{"split", "n_images", "n_normal", "n_anomalous", "data"}``: what the
            calibration was computed on.
        created_utc: ISO 8601 UTC timestamp.
        history: earlier calibrations of the same bundle (each without its own history),
            oldest first, newest last.

    >>> cal = Calibration(image_threshold=3.0, image_min=1.0, image_max=5.0)
    >>> float(cal.normalize_score(3.0)), bool(cal.label_score(3.0))
    (0.5, True)
    """

    image_threshold: float
    image_min: float
    image_max: float
    pixel_threshold: float | None = None
    pixel_min: float | None = None
    pixel_max: float | None = None
    method: str = "manual"
    quantile: float | None = None
    source: dict[str, Any] = field(default_factory=_default_source)
    created_utc: str = field(default_factory=utc_now)
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in _normalized(values, "calibration").items():
            object.__setattr__(self, key, value)
        if not isinstance(self.history, (list, tuple)):
            F.fail("calibration.history", f"expected a list, got {type(self.history).__name__}")
        history = []
        for i, entry in enumerate(self.history):
            where = f"calibration.history[{i}]"
            if isinstance(entry, Calibration):
                entry = entry.history_entry()
            keys = [f.name for f in fields(Calibration) if f.name != "history"]
            F.check_keys(entry, where, keys)
            history.append(_normalized(entry, where))
        object.__setattr__(self, "history", history)

    @property
    def has_pixel(self) -> bool:
        """True when pixel-level values are set (segmentation models)."""
        return self.pixel_threshold is not None

    def normalize_score(self, raw: Any) -> np.ndarray | np.float32:
        """Normalise raw image scores ``(N,)`` (or a scalar) to float32 in [0, 1].

        >>> Calibration(2.0, 0.0, 4.0).normalize_score(np.array([0.0, 2.0, 4.0])).tolist()
        [0.0, 0.5, 1.0]
        """
        return normalize(raw, self.image_threshold, self.image_min, self.image_max)

    def normalize_map(self, raw: Any) -> np.ndarray | np.float32:
        """Normalise raw anomaly maps (any shape, e.g. ``(N, 1, H, W)``) to float32 in [0, 1]."""
        self._require_pixel("normalize_map")
        return normalize(raw, self.pixel_threshold, self.pixel_min, self.pixel_max)  # type: ignore[arg-type]

    def label_score(self, raw: Any) -> np.ndarray | np.bool_:
        """Image labels: ``raw >= image_threshold``.

        Decide on raw values rather than on ``normalize_score(raw) >= 0.5``: both express the
        same rule, but float rounding can move a value a hair from the threshold onto 0.5.
        """
        out = np.asarray(raw) >= self.image_threshold
        return out if out.ndim else out[()]

    def mask_map(self, raw: Any) -> np.ndarray | np.bool_:
        """Pixel masks: ``raw >= pixel_threshold`` (same shape as ``raw``)."""
        self._require_pixel("mask_map")
        out = np.asarray(raw) >= self.pixel_threshold  # type: ignore[operator]
        return out if out.ndim else out[()]

    def _require_pixel(self, what: str) -> None:
        if not self.has_pixel:
            raise BundleError(
                f"Calibration.{what} needs pixel_threshold/pixel_min/pixel_max, but this calibration "
                "has none (a classification-only model has no anomaly map)"
            )

    def history_entry(self) -> dict[str, Any]:
        """This calibration as a history entry: ``to_dict()`` without ``history``."""
        entry = self.to_dict()
        del entry["history"]
        return entry

    def with_history(self, previous: Calibration) -> Calibration:
        """A copy of this calibration whose history is ``previous.history + [previous]``.

        Used when a calibration replaces ``previous``; this calibration's own ``history`` is
        discarded in favour of the bundle's.

        >>> old = Calibration(1.0, 0.0, 2.0, created_utc="2026-01-01T00:00:00Z")
        >>> new = Calibration(1.5, 0.0, 3.0).with_history(old)
        >>> [h["image_threshold"] for h in new.history]
        [1.0]
        """
        if not isinstance(previous, Calibration):
            raise TypeError(f"Expected previous as a Calibration, got {type(previous).__name__}")
        return replace(self, history=[*previous.history, previous.history_entry()])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every field (``history`` entries copied)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["source"] = dict(self.source)
        out["history"] = [dict(h, source=dict(h["source"])) for h in self.history]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Build from a dict as written by :meth:`to_dict`; every key is required.

        Raises:
            BundleError: a key is missing or unknown, or a value has the wrong type or range;
                the message names the field (``calibration.image_min``).
        """
        F.check_keys(d, "calibration", [f.name for f in fields(cls)])
        return cls(**d)
