"""Calibration and verdict maths, torch-free: the rules every other layer judges by.

Two questions have one answer each in this package, so that the training machine and a device
cannot disagree:

- **where the thresholds go** (:func:`compute_calibration`, :func:`calibration_split`,
  :func:`threshold_sample_warnings`, :func:`calibration_warnings`): fitting (``models``),
  ``export`` and ``edgeanomaly calibrate`` (``tooling``) all call them;
- **does an artifact do what the torch model did, and can this data tell** (:func:`judge`,
  :data:`TOLERANCES`): ``export`` (parity at export time) and ``validate`` (on the device)
  both call it on the same kind of paired outputs.

It sits above ``metrics`` and ``bundle`` (the metrics it computes with, the ``Calibration``
record it returns) and below everything that decides: the training side, the runtime's
execution choice, export and the device tooling. It imports neither torch nor a backend.

>>> from edgeanomaly.judging import compute_calibration
>>> c = compute_calibration([0.1, 0.2, 0.9, 1.0], [0, 0, 1, 1])
>>> 0.2 < c.image_threshold < 0.9
True
"""

from __future__ import annotations

from edgeanomaly.judging._calibration import DEFAULT_QUANTILE, compute_calibration
from edgeanomaly.judging._calibration_checks import (
    MIN_IMAGES_PER_CLASS,
    THRESHOLD_METRICS,
    calibration_warnings,
    refreshed_reference_metrics,
    threshold_sample_warnings,
)
from edgeanomaly.judging._split import CALIBRATION_SPLITS, calibration_split
from edgeanomaly.judging._verdict import (
    FAIL,
    INCONCLUSIVE,
    MAP_PERCENTILE,
    PASS,
    TOLERANCES,
    UNIT_ROUNDOFF,
    Check,
    Tolerance,
    Verdict,
    judge,
    map_difference,
    one_image_share,
    sample_key,
    tolerance_for,
    worst,
)

__all__ = [
    "CALIBRATION_SPLITS",
    "DEFAULT_QUANTILE",
    "FAIL",
    "INCONCLUSIVE",
    "MAP_PERCENTILE",
    "MIN_IMAGES_PER_CLASS",
    "PASS",
    "THRESHOLD_METRICS",
    "TOLERANCES",
    "UNIT_ROUNDOFF",
    "Check",
    "Tolerance",
    "Verdict",
    "calibration_split",
    "calibration_warnings",
    "compute_calibration",
    "judge",
    "map_difference",
    "one_image_share",
    "refreshed_reference_metrics",
    "sample_key",
    "threshold_sample_warnings",
    "tolerance_for",
    "worst",
]
