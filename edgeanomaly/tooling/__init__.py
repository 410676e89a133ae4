"""Device tooling, torch-free: calibration maths, reproduce, validate, benchmark, recalibrate.

It sits between the CLI and the runtime: it loads bundles through the public runtime API and
judges what they produce. The training side imports only its calibration maths
(:func:`compute_calibration`), which needs nothing but ``metrics`` and ``bundle``.

>>> from edgeanomaly.tooling import validate_bundle       # doctest: +SKIP
>>> validate_bundle("pc.bundle", "data", category="metal").ok   # doctest: +SKIP
True
"""

from __future__ import annotations

from edgeanomaly._lazy import lazy_exports

# Names resolve lazily: importing compute_calibration must not import the runtime.
_BY_MODULE = {
    "_calibration": ("compute_calibration", "DEFAULT_QUANTILE"),
    "_recalibrate": ("recalibrate", "SPLITS"),
    "_validation": (
        "Tolerance",
        "TOLERANCES",
        "ArtifactValidation",
        "ValidationReport",
        "validate_bundle",
        "validation_markdown",
        "write_validation_report",
    ),
    "_reproduce": ("reproduce", "raw_outputs", "compare_outputs"),
    "_benchmark": ("BenchmarkRow", "benchmark_bundle", "benchmark_markdown", "write_benchmark"),
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _BY_MODULE.items() for name in names}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
