"""Reduced-precision execution earned at export: each artifact OpenVINO can run (its IR, and an
ONNX file, which OpenVINO reads too) is run on OpenVINO at every execution precision the export
machine's devices support (bf16 on a CPU with ``BF16`` among its ``OPTIMIZATION_CAPABILITIES``,
f16 on a GPU) and judged against the torch reference on the held-out images with the verdict
``validate`` uses (``edgeanomaly.judging.judge``, row ``tolerance_for(artifact precision,
execution precision)``). For an ONNX file the record is OpenVINO's: ONNX Runtime's CPU provider
runs the graph's own types, so OpenVINO is the backend that can earn a faster precision for it.

The record goes into the artifact's parity entry as ``execution_precisions`` (see
export/BUNDLE.md): per execution precision the verdict's outcome, the relative output
differences it judged (score, 99th percentile of the map) and the largest map difference, the
metric deltas, decision flips and swapped pairs, the device and the OpenVINO version. A
precision this machine cannot run is ``NOT_MEASURED`` with the reason, never guessed. The f32
entry is the export's own parity run for an IR (OpenVINO pinned to f32 on the CPU), and a run of
OpenVINO at f32 for an ONNX file (whose parity run is ONNX Runtime's), so the f32 exactness claim
(1e-4 relative for FP32) stays visible next to the reduced ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeanomaly.judging import tolerance_for
from edgeanomaly.registry import backends_for
from edgeanomaly.runtime import EXECUTION_CAPABILITIES, NOT_MEASURED, device_capabilities, device_description

log = logging.getLogger("edgeanomaly.export")

__all__ = ["execution_entry", "measure_executions", "measuring_backend"]

_OUTPUT_CHECKS = ("max_rel_score_diff", "p99_rel_map_diff", "decision_flips")


def execution_entry(verdict: Any, tolerance: str, where: dict[str, str]) -> dict[str, Any]:
    """One measured execution precision: the verdict's outcome and the drift it reports.

    Every number comes from the verdict's own measures, so the record and the reasons it
    gives are the same numbers (the record once took its map difference from another set of
    images than the verdict judged: 0.0709 stored against 0.0756 in the FAIL reason).

    Args:
        verdict: the :class:`~edgeanomaly.tooling.Verdict` of these outputs.
        tolerance: the ``TOLERANCES`` row that judged them.
        where: ``device_description`` of the device that ran them.
    """
    m = verdict.measures
    score = float(m.get("max_rel_score_diff", 0.0) or 0.0)
    entry: dict[str, Any] = {
        "outcome": verdict.outcome,
        **where,
        "tolerance": tolerance,
        "max_rel_diff": max(score, float(m.get("max_rel_map_diff", 0.0) or 0.0)),
        "max_rel_score_diff": score,
        "decision_flips": int(m.get("decision_flips", 0) or 0),
        "borderline_flips": int(m.get("borderline_flips", 0) or 0),
        "metric_deltas": {c.name: c.value for c in verdict.checks if c.name not in _OUTPUT_CHECKS and c.value is not None},
        "reasons": verdict.reasons,
    }
    for key in ("max_rel_map_diff", "p99_rel_map_diff"):
        if m.get(key) is not None:
            entry[key] = float(m[key])  # type: ignore[arg-type]
    if m.get("swapped_pairs") is not None:
        entry["swapped_pairs"] = int(m["swapped_pairs"])  # type: ignore[arg-type]
    return entry


def measuring_backend(fmt: str) -> Any:
    """The backend row whose execution precisions export measures for format ``fmt``: the first
    installed one that has a choice to make (OpenVINO, also for ONNX), or None."""
    return next((b for b in backends_for(fmt) if b.executions and b.installed()), None)


def measure_executions(
    path: Path,
    fmt: str,
    precision: str,
    f32_outputs: dict[str, np.ndarray],
    run: Callable[..., dict[str, np.ndarray]],
    assess: Callable[[dict[str, np.ndarray], str, dict[str, str]], dict[str, Any]],
) -> dict[str, Any] | None:
    """The ``execution_precisions`` record of one artifact, or None for a format that no
    backend with execution precisions to choose from runs.

    Args:
        path: the artifact's loadable file.
        fmt, precision: its format and storage precision.
        f32_outputs: its raw outputs from the export's parity run (CPU, f32 execution), by the
            backend that prefers ``fmt``.
        run: ``(path, device, inference_precision, backend) -> raw outputs`` on the held-out images.
        assess: ``(outputs, tolerance row, device description) -> entry`` (:func:`execution_entry`).
    """
    spec = measuring_backend(fmt)
    if spec is None:
        return None
    record: dict[str, Any] = {}
    if spec is backends_for(fmt)[0]:
        record["f32"] = assess(f32_outputs, tolerance_for(precision, "f32"), device_description("CPU"))
    else:  # the parity run was another backend's: measure this one's f32 too
        try:
            record["f32"] = assess(run(path, "CPU", "f32", spec.name), tolerance_for(precision, "f32"), device_description("CPU"))
        except Exception as exc:  # noqa: BLE001 - whatever stops the run is the recorded reason
            log.warning("%s: f32 execution on %s could not be measured: %s", path, spec.name, exc)
            record["f32"] = {"outcome": NOT_MEASURED, **device_description("CPU"), "reason": f"{type(exc).__name__}: {exc}"}
    present = spec.available_devices()
    for family, order in spec.executions.items():
        devices = [d for d in present if spec.family(d) == family]
        for execution in order:
            if execution == "f32" or execution in record:
                continue
            needed = EXECUTION_CAPABILITIES[execution]
            if not devices:
                record[execution] = {"outcome": NOT_MEASURED, "device": family,
                                     "reason": f"no {family} device ({spec.name} devices here: {', '.join(present) or 'none'})"}
                continue
            device = devices[0]
            where = device_description(device)
            capabilities = device_capabilities(device)
            if capabilities is None or needed not in capabilities:
                said = ", ".join(capabilities) if capabilities is not None else "none reported"
                record[execution] = {"outcome": NOT_MEASURED, **where,
                                     "reason": f"{family} lacks {needed}: capabilities {said}"}
                continue
            try:
                outputs = run(path, device, execution, spec.name)
            except Exception as exc:  # noqa: BLE001 - whatever stops the run is the recorded reason
                log.warning("%s: %s execution on %s could not be measured: %s", path, execution, device, exc)
                record[execution] = {"outcome": NOT_MEASURED, **where, "reason": f"{type(exc).__name__}: {exc}"}
                continue
            record[execution] = assess(outputs, tolerance_for(precision, execution), where)
    return record
