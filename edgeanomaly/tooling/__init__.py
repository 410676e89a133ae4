"""Device tooling (torch-free): the verdict on an artifact, calibration checks, reports.

``judge`` is the one place that decides whether an artifact reproduces the torch model:
``edgeanomaly export`` and ``edgeanomaly validate`` both call it on the same kind of paired
outputs, so the two cannot disagree.
"""

from __future__ import annotations

from edgeanomaly.tooling._verdict import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    TOLERANCES,
    Check,
    Tolerance,
    Verdict,
    judge,
    one_image_share,
    sample_key,
    worst,
)

__all__ = [
    "PASS",
    "FAIL",
    "INCONCLUSIVE",
    "TOLERANCES",
    "Check",
    "Tolerance",
    "Verdict",
    "judge",
    "one_image_share",
    "sample_key",
    "worst",
]
