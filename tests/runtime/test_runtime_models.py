"""The torch-free runtime on real bundles of every registered model, both backends.

The bundles come from the session fixture ``exported`` (fit + export of each model); the
runtime runs in a subprocess where importing torch fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _cpu import expected_execution
from edgeanomaly.export import FP32_RTOL

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
FP16_RTOL = 0.05


def test_every_model_bundle_reproduces_torch_without_torch(exported) -> None:
    bundles = [str(report.out) for _, report in exported.values()]
    proc = subprocess.run([sys.executable, str(HERE / "_torchfree_worker.py"), *bundles], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    defaults = [r for r in records if "artifact" in r and not r["exact"]]
    # onnx-fp32 on both backends + openvino fp32/fp16/int8, for each bundle
    assert len(defaults) == 5 * len(bundles)
    exact = {(r["bundle"], r["artifact"], r["backend"]): r for r in records if r.get("exact")}
    checks = []
    for r in defaults:
        # the default follows this CPU: f32 on AVX2, bf16 where the CPU has it and export earned it
        assert r["execution"] == expected_execution(r["path"], r["artifact"], r["backend"]), r
        if r["execution"] == "f32":
            checks.append(r)
            continue
        # A reduced precision runs only after it passed the verdict at export; its drift is
        # bounded by that verdict (decisions), and forcing f32 is still exact (below).
        assert r["export_outcome"] == "PASS" and r["label_flips"] <= max(1, r["n_images"] // 4), r
        checks.append(exact.pop((r["bundle"], r["artifact"], r["backend"])))
    assert not exact, exact  # an exact run only where the default was not f32
    for r in checks:
        assert "(f32 execution" in r["precision"], r
        worst = max(r["score_err"], r["async_score_err"], r.get("map_err", 0.0))
        if r["artifact"].endswith("fp32"):
            assert worst <= FP32_RTOL and r["label_flips"] == 0, r
        elif r["artifact"].endswith("fp16"):
            assert worst <= FP16_RTOL, r
        else:  # int8 refits its head (see edgeanomaly.export._int8): judge the decisions
            assert r["label_flips"] <= max(1, r["n_images"] // 4), r
        if "map_shape_ok" in r:
            assert r["map_shape_ok"], r
    for r in (r for r in records if "cli" in r):
        assert r["exit_code"] == 0 and r["lines"] == r["n_images"] + 1, r
    assert records[-1] == {"torch_imported": False}
