"""The runtime without torch: every bundle, every artifact, both backends, against the torch reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_runtime_reproduces_torch_reference_with_torch_blocked(toy_bundles: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, str(HERE / "_torchfree_worker.py"), *map(str, toy_bundles.values())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    checks = [r for r in records if "artifact" in r]
    # 3 artifacts per bundle, the ONNX one on both backends.
    assert len(checks) == 4 * len(toy_bundles)
    assert {(r["backend"], r["artifact"]) for r in checks} >= {
        ("openvino", "openvino-fp32"), ("openvino", "openvino-fp16"), ("openvino", "onnx-fp32"), ("onnxruntime", "onnx-fp32")
    }
    for r in checks:
        assert "(f32 execution" in r["precision"], r
        assert r["score_err"] <= r["score_tolerance"], r
        assert r["async_score_err"] <= r["score_tolerance"], r
        if "map_err" in r:
            assert r["map_err"] <= r["map_tolerance"] and r["map_shape_ok"], r
        if r["artifact"].endswith("fp32"):  # the toy graphs are shallow: hold them to 1e-5
            assert max(r["score_err"], r.get("map_err", 0.0)) <= 1e-5, r
    for r in (r for r in records if "cli" in r):
        assert r["exit_code"] == 0 and r["lines"] == r["n_images"] + 1, r  # one line per image + summary
    assert records[-1] == {"torch_imported": False}
