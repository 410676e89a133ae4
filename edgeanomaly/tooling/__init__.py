"""Device tooling, torch-free: the verdict, calibration maths and checks, reproduce, validate,
benchmark, recalibrate, reports.

It sits between the CLI and the runtime: it loads bundles through the public runtime API and
judges what they produce. ``judge`` is the one place that decides whether an artifact
reproduces the torch model: ``edgeanomaly export`` and ``edgeanomaly validate`` both call it
on the same kind of paired outputs, so the two cannot disagree. The training side imports only
its calibration maths (:func:`compute_calibration`, :func:`calibration_split`), which need
nothing but ``metrics`` and ``bundle``.

>>> from edgeanomaly.tooling import validate_bundle       # doctest: +SKIP
>>> validate_bundle("pc.bundle", "data", category="metal").ok   # doctest: +SKIP
True
"""

from __future__ import annotations

from edgeanomaly._lazy import lazy_exports

# Names resolve lazily: importing compute_calibration must not import the runtime.
_BY_MODULE = {
    "_calibration": ("compute_calibration", "DEFAULT_QUANTILE"),
    "_split": ("CALIBRATION_SPLITS", "calibration_split"),
    "_calibration_checks": ("threshold_sample_warnings",),
    "_verdict": (
        "PASS", "FAIL", "INCONCLUSIVE", "Tolerance", "TOLERANCES", "Check", "Verdict", "judge",
        "one_image_share", "sample_key", "tolerance_for", "worst",
    ),
    "_recalibrate": ("recalibrate", "SPLITS"),
    "_validation": (
        "ArtifactValidation",
        "ValidationReport",
        "validate_bundle",
        "validation_markdown",
        "write_validation_report",
    ),
    "_resolution": ("PIXEL_RESOLUTIONS",),
    "_html_report": ("render_html", "write_html_report"),
    "_reproduce": ("reproduce", "raw_outputs", "run_artifact", "compare_outputs"),
    "_isolated": ("run_isolated", "IsolatedRunError"),
    "_benchmark": ("BenchmarkRow", "benchmark_bundle", "benchmark_markdown", "write_benchmark"),
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _BY_MODULE.items() for name in names}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
