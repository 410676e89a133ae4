"""``export`` on a full disk (issue 20.5), on a real small filesystem: a tmpfs mounted in a
private mount namespace (``unshare -m`` as root, ``unshare -rm`` otherwise), so nothing is
mounted outside the test. It used to end in raw tracebacks (``unexpected pos 64 vs 0`` from
torch, ``OSError: [Errno 28]`` after 80-104 s of work) and leave an empty ``OUT.run``.

Now: a clear error naming the destination, the space needed and free; nothing left behind;
the space is checked before the long work when it can be estimated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("_disk_full_worker.py")

pytestmark = pytest.mark.slow


def _namespace_prefix() -> list[str] | None:
    """A command prefix that runs the rest in a private mount namespace with a tmpfs, or None."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return None
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    probe = subprocess.run(["unshare", *flags, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=1m tmpfs \"$0\"", "/tmp"], capture_output=True)
    return ["unshare", *flags] if probe.returncode == 0 else None


def test_export_on_a_full_disk(synthetic_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs Linux and root or user namespaces)")
    from edgeanomaly.cli import main

    r = CliRunner().invoke(main, ["fit", "--model", "dfm", "--data", str(synthetic_root), "--category", "metal", "--image-size", "128",
                                  "--backbone", "resnet18", "--no-pretrained", "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    model_mb = (tmp_path / "run" / "model.pt").stat().st_size / 1e6  # about 12.6 MB
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\nname = "dfm"\nbackbone = "resnet18"\npretrained = false\n'
                      '[data]\nimage_size = 128\n[export]\nformats = ["onnx", "openvino"]\nprecisions = ["fp32"]\n')
    mount = tmp_path / "disk"
    mount.mkdir()
    assert 8 < model_mb < 18  # the free space each scenario leaves is sized for this checkpoint
    script = 'mount -t tmpfs -o size=120m tmpfs "$0" && exec "$@"'
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([*prefix, "sh", "-c", script, str(mount), sys.executable, str(WORKER), str(mount), str(tmp_path / "run"),
                           str(recipe), str(synthetic_root)], capture_output=True, text=True, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.splitlines()[-1])

    pre = res["precheck"]
    assert pre["rc"] == 1 and "Traceback" not in pre["output"], pre["output"]
    assert "Not enough free disk space" in pre["output"] and "b.bundle" in pre["output"] and "free" in pre["output"]
    assert "torch reference" not in pre["output"]  # refused before the work
    assert pre["left"] == ["filler"], pre["left"]

    mid = res["midway"]
    assert mid["filled"], mid["output"]
    assert mid["rc"] == 1 and "Traceback" not in mid["output"], mid["output"]
    assert "ran out of space" in mid["output"] and "b.bundle" in mid["output"], mid["output"]
    assert mid["left"] == ["filler", "tmp"], mid["left"]  # no bundle, no stage, no temporary graphs

    rec = res["recipe_checkpoint"]
    assert rec["rc"] == 1 and "Traceback" not in rec["output"], rec["output"]
    assert "r.bundle.run" in rec["output"] and "free" in rec["output"], rec["output"]
    assert rec["left"] == ["filler"], rec["left"]  # no empty run folder

    rec = res["recipe_bundle"]
    assert rec["rc"] == 1 and "Traceback" not in rec["output"], rec["output"]
    assert "Not enough free disk space" in rec["output"], rec["output"]
    assert "kept" in rec["output"] and "edgeanomaly export" in rec["output"] and "r.bundle.run" in rec["output"], rec["output"]
    assert sorted(rec["left"]) == ["filler", "r.bundle.run", "r.bundle.run/checkpoint.json", "r.bundle.run/model.pt"], rec["left"]
