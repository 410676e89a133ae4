"""The whole user path writes nothing outside the paths it was given and sends no telemetry.

fit (one-pass and trained), export (with INT8, which runs NNCF), predict and validate run as subprocesses with HOME
set to an empty directory and a private TMPDIR: both must be empty afterwards. Before, OpenVINO
and NNCF wrote ~/intel/openvino_ga_cid and ~/intel/stats (and forked telemetry senders), and
ONNX Runtime wrote ~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid; and a trained
fit left torch's compile cache folder $TMPDIR/torchinductor_<user>.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_fit_export_predict_validate_leave_home_and_tmp_untouched(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("nncf")
    home, tmp, work = tmp_path / "home", tmp_path / "tmp", tmp_path / "work"
    for folder in (home, tmp, work):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "EDGEANOMALY_TELEMETRY", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "TORCH_HOME")}
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))

    def run(*args: str) -> None:
        done = subprocess.run([sys.executable, "-c", "from edgeanomaly.cli import main; main()", *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])

    run("data", "synth", "--out", "data", "--category", "metal", "--n-train", "8", "--n-test", "2", "--size", "64")
    run("fit", "--model", "padim", "--data", "data", "--category", "metal", "--out", "run", "--image-size", "64")
    # a model trained for epochs: torch's optimiser imports torch._dynamo, which made $TMPDIR/torchinductor_<user>
    run("fit", "--model", "fastflow", "--data", "data", "--category", "metal", "--out", "ff.run", "--image-size", "64",
        "--backbone", "resnet18", "--no-pretrained", "--epochs", "2", "--param", "flow_steps=2")
    run("export", "run", "--out", "b.bundle", "--format", "onnx,openvino", "--precision", "fp32,int8")
    run("predict", "b.bundle", "data/metal/test/good", "--backend", "onnxruntime", "--json")
    run("predict", "b.bundle", "data/metal/test/good", "--backend", "openvino", "--precision", "int8", "--json")
    run("validate", "b.bundle", "--data", "data", "--category", "metal", "--out", "report")
    assert _listing(home) == [], _listing(home)
    assert [name for name in _listing(tmp) if name.startswith("edgeanomaly")] == []
    assert _listing(tmp) == [], _listing(tmp)


def test_telemetry_opt_in_leaves_the_libraries_alone() -> None:
    code = (
        "import sys, edgeanomaly, os; "
        "print(sys.modules.get('openvino_telemetry', 'absent') is None, os.environ.get('ORT_DISABLE_TELEMETRY'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["PYTHONPATH"] = str(REPO)
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert off.stdout.split() == ["True", "1"]
    on = subprocess.run([sys.executable, "-c", code], env={**env, "EDGEANOMALY_TELEMETRY": "1"}, capture_output=True, text=True, check=True)
    assert on.stdout.split() == ["False", "None"]
