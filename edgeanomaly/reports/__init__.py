"""Reports, torch-free: what the device tooling found, written for people and for machines.

:func:`validation_markdown` and :func:`write_validation_report` (``validation.md``, ``.json``,
the self-contained ``validation.html`` of :func:`render_html`, matplotlib PNGs with ``[plot]``);
:func:`benchmark_markdown` and :func:`write_benchmark` (``benchmark.md``, ``.json``). Rendering
only: the numbers come from :mod:`edgeanomaly.tooling` (``ValidationReport``, ``BenchmarkRow``)
and the rules from :mod:`edgeanomaly.judging`.
"""

from __future__ import annotations

from edgeanomaly._lazy import lazy_exports

# Lazy: the CLI imports this package before it knows whether a command renders anything.
_BY_MODULE = {
    "_validation": ("validation_markdown", "write_validation_report"),
    "_html": ("render_html", "write_html_report", "COLUMN_NOTES"),
    "_benchmark": ("LEGEND", "benchmark_markdown", "write_benchmark"),
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _BY_MODULE.items() for name in names}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
