"""Device tooling, torch-free: calibration maths, validate, benchmark, recalibrate.

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
_EXPORTS = {
    "compute_calibration": "edgeanomaly.tooling._calibration",
    "DEFAULT_QUANTILE": "edgeanomaly.tooling._calibration",
    "recalibrate": "edgeanomaly.tooling._recalibrate",
    "SPLITS": "edgeanomaly.tooling._recalibrate",
    "Tolerance": "edgeanomaly.tooling._validation",
    "TOLERANCES": "edgeanomaly.tooling._validation",
    "ArtifactValidation": "edgeanomaly.tooling._validation",
    "ValidationReport": "edgeanomaly.tooling._validation",
    "validate_bundle": "edgeanomaly.tooling._validation",
    "write_validation_report": "edgeanomaly.tooling._validation",
    "BenchmarkRow": "edgeanomaly.tooling._benchmark",
    "benchmark_bundle": "edgeanomaly.tooling._benchmark",
    "benchmark_markdown": "edgeanomaly.tooling._benchmark",
    "write_benchmark": "edgeanomaly.tooling._benchmark",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
