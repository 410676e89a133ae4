"""A bundle from the NPU recipe (OpenVINO FP16 + INT8, static batch 1, no FP32) predicts,
validates and benchmarks with no artifact flags, in a process that cannot import torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow

RECIPE = Path(__file__).resolve().parents[2] / "export" / "patchcore-npu.toml"
#: A process with torch made unimportable: what a device with the base install runs.
NO_TORCH = "import sys; sys.modules['torch'] = None\nfrom edgeanomaly.cli import main\nmain(sys.argv[1:], prog_name='edgeanomaly')"


def without_torch(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)], capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def npu_bundle(tmp_path_factory: pytest.TempPathFactory, synthetic_metal_256: Path) -> Path:
    from edgeanomaly.cli import main

    out = tmp_path_factory.mktemp("npu") / "pc-npu.bundle"
    r = CliRunner().invoke(main, ["export", "--recipe", str(RECIPE), "--data", str(synthetic_metal_256),
                                  "--category", "metal", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_npu_recipe_bundle_runs_on_a_cpu_with_no_flags(npu_bundle: Path, synthetic_metal_256: Path, tmp_path: Path) -> None:
    from edgeanomaly.bundle import read_bundle

    with read_bundle(npu_bundle) as b:
        assert sorted(a.name for a in b.artifacts) == ["openvino-fp16", "openvino-int8"]
        assert all(a.static_batch == 1 for a in b.artifacts)
    image = next((synthetic_metal_256 / "metal" / "test").glob("*/*.png"))

    r = without_torch("predict", npu_bundle, image, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert (summary["scored"], summary["artifact"]) == (1, "openvino-fp16")  # CPU: fp32 > fp16 > int8; no fp32 here
    assert "best precision for CPU" in summary["selection"]

    r = without_torch("validate", npu_bundle, "--data", synthetic_metal_256, "--category", "metal", "--out", tmp_path / "v", "--no-figures")
    assert r.returncode in (0, 1), r.stderr  # 1 = a verdict of drift, still a report: not a crash
    doc = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert [(a["artifact"], a["error"]) for a in doc["artifacts"]] == [("openvino-fp16", None), ("openvino-int8", None)]

    r = without_torch("benchmark", npu_bundle, "--repeats", "3", "--throughput-images", "4", "--no-cold-start", "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert {(row["artifact"], row["status"]) for row in rows} == {("openvino-fp16", "ok"), ("openvino-int8", "ok")}
