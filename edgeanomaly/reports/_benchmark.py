"""The benchmark rows as files: ``benchmark.md`` (what the CLI prints) and ``benchmark.json``."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgeanomaly.bundle import format_bytes
from edgeanomaly.tooling import BenchmarkRow

__all__ = ["LEGEND", "benchmark_markdown", "write_benchmark"]


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def _export_drift(r: BenchmarkRow) -> str:
    """What export measured for the execution precision this row ran at."""
    if r.export_outcome is None:
        return "-"
    return f"{r.export_outcome} {_fmt(r.export_max_rel_diff, '.1e')}"


def _speedup(r: BenchmarkRow) -> str:
    if r.speedup_vs_fp32 is None:
        return "-"
    if r.speedup_reference.split(" at ")[0] == r.artifact:
        return "1.00x (ref)"
    return f"{r.speedup_vs_fp32:.2f}x ({_fmt(r.reference_infer_ms, '.1f')} / {_fmt(r.interleaved_infer_ms, '.1f')})"


#: What the columns mean, printed under the table.
LEGEND = (
    "Columns: `exec` is the execution precision the row ran at (`execution` says why). `p50 ms` / `p95 ms`: "
    "per decoded image at batch 1 (decode + preprocess + infer + postprocess), each row timed on its own, "
    "one after another. `vs fp32`: the FP32 artifact's inference median over this row's, both timed in turns "
    "in one interleaved run on the same backend and device, the FP32 artifact run at this row's execution "
    "precision (like with like; the two medians in ms in brackets): above 1 = faster than FP32. The two "
    "columns are measured at different times and the first includes decoding: when other work shares the "
    "cores they can disagree, and the interleaved ratio is the one to trust."
)


def benchmark_markdown(rows: list[BenchmarkRow]) -> str:
    """One table row per combination. ``vs fp32``: the FP32 artifact's infer median over this one's,
    timed interleaved on the same backend and device (above 1 = faster than FP32)."""
    head = "| artifact | backend | device | status | size | exec | execution | export drift | max rel diff | img AUROC | px AUPRO | p50 ms | p95 ms | infer p50 ms | vs fp32 | img/s | cold start s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        status = r.status if r.status == "ok" else f"FAILED: {r.reason}"
        lines.append(
            f"| {r.artifact} | {r.backend} | {r.device} | {status} | {format_bytes(r.size_bytes)} | {r.execution_precision or '-'} | {r.execution or '-'} | "
            f"{_export_drift(r)} | "
            f"{_fmt(r.max_rel_diff, '.1e')} | {_fmt(r.image_auroc, '.4f')} | {_fmt(r.pixel_aupro, '.4f')} | "
            f"{_fmt(r.latency_ms_p50, '.1f')} | {_fmt(r.latency_ms_p95, '.1f')} | {_fmt(r.infer_ms_p50, '.1f')} | "
            f"{_speedup(r)} | "
            f"{_fmt(r.throughput_ips, '.1f')} | {_fmt(r.cold_start_s, '.2f')} |"
        )
    lines += ["", LEGEND]
    # one per artifact and backend: the ONNX file runs on both, each for its own reason
    reasons = sorted({(f"{r.artifact} on {r.backend} {r.device}", r.execution_reason) for r in rows if r.execution_reason})
    if reasons:
        lines += ["", "Execution precision: " + "; ".join(f"{where}: {why}" for where, why in reasons)]
    return "\n".join(lines) + "\n"


def write_benchmark(rows: list[BenchmarkRow], out: str | Path) -> list[Path]:
    """Write ``benchmark.json`` and ``benchmark.md`` into ``out``; never over an earlier benchmark.

    Raises:
        FileExistsError: ``out`` already holds one of them (nothing is written).
    """
    out = Path(out)
    j, m = out / "benchmark.json", out / "benchmark.md"
    present = [p.name for p in (j, m) if p.exists()]
    if present:
        raise FileExistsError(f"{out} already holds {' and '.join(present)} from an earlier benchmark; "
                              f"give another --out folder (nothing was overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    j.write_text(json.dumps([asdict(r) for r in rows], indent=2, default=float) + "\n")
    m.write_text(benchmark_markdown(rows))
    return [j, m]
