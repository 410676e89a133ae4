"""A short run of the loopback load test (tests/benchmarks/bench_serve.py): no errors, answers equal predict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_serve.py"


def test_short_load_run_has_no_errors(server, serve_bundle, serve_data):
    proc = subprocess.run(
        [sys.executable, str(BENCH), str(serve_bundle), "--images", str(serve_data / "metal" / "test"), "--url", server.url,
         "--model-name", "dfm", "--clients", "4", "--requests", "60", "--max-seconds", "120", "--baseline", "5", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    # every answer checked against in-process predict inside the script (FP32 tolerance)
    assert report["requests"] == 60 and report["errors"] == 0, report
    assert report["p99_ms"] >= report["p50_ms"] > 0
    # Four clients at once: one-image requests that met others in flight ran on the throughput model.
    status, data = server.get("/metrics")
    lines = data.decode().splitlines()
    counts = [line for line in lines if line.startswith('edgeanomaly_concurrent_images_total{model="dfm"}')]
    answered = sum(float(line.split()[-1]) for line in lines
                   if line.startswith("edgeanomaly_requests_total{") and 'model="dfm"' in line)
    assert status == 200 and len(counts) == 1, data.decode()[-2000:]
    assert 0 < float(counts[0].split()[-1]) <= answered, (counts, answered)
