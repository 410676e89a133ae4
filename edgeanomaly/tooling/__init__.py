"""Device tooling, torch-free: the commands a device runs on a bundle.

``validate_bundle`` (does each artifact still do what the torch model did, on this backend and
device, and on this data), ``benchmark_bundle`` (every artifact on every backend and device
here), ``recalibrate`` (new thresholds from this line's images), ``reproduce`` and
``run_isolated`` (an artifact's raw outputs, in this process or a fresh one).

The rules these commands judge by (calibration, the verdict, tolerances) live one floor down,
in :mod:`edgeanomaly.judging`, shared with fitting and export; the files a report is written
to are :mod:`edgeanomaly.reports`.

>>> from edgeanomaly.tooling import validate_bundle       # doctest: +SKIP
>>> validate_bundle("pc.bundle", "data", category="metal").ok   # doctest: +SKIP
True
"""

from __future__ import annotations

from edgeanomaly._lazy import lazy_exports

# Names resolve lazily: ``from edgeanomaly.tooling import BenchmarkRow`` need not load a backend.
_BY_MODULE = {
    "_recalibrate": ("recalibrate", "SPLITS"),
    "_validation": ("ArtifactValidation", "ValidationReport", "validate_bundle"),
    "_resolution": ("PIXEL_RESOLUTIONS",),
    "_reproduce": ("reproduce", "raw_outputs", "run_artifact", "compare_outputs"),
    "_isolated": ("run_isolated", "IsolatedRunError"),
    "_benchmark": ("BenchmarkRow", "benchmark_bundle"),
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _BY_MODULE.items() for name in names}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
