"""Ctrl-C and SIGTERM (how systemd, a container runtime or a CI job stops a process) end every
command the same way: its cleanup runs, it says what stopped it, and it exits with the shell's
code (130 for Ctrl-C, 143 for SIGTERM). SIGTERM used to end a command at once: an export killed
mid-way left its staging folder in the temp directory, and Ctrl-C ended in click's "Aborted!"
(exit 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _interrupt import cli_stopped_when
from click.testing import CliRunner


@pytest.fixture(scope="module")
def padim_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from edgeanomaly.cli import main

    run = tmp_path_factory.mktemp("signals") / "pd.run"
    r = CliRunner().invoke(main, ["fit", "--model", "padim", "--data", str(synthetic_root), "--category", "metal",
                                  "--image-size", "128", "--backbone", "resnet18", "--no-pretrained", "--out", str(run)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return run


@pytest.mark.parametrize("signum, said", [(signal.SIGTERM, "Stopped by SIGTERM"), (signal.SIGINT, "Interrupted (Ctrl-C)")])
def test_a_stopped_export_cleans_up_says_so_and_exits_with_the_shells_code(padim_run: Path, tmp_path: Path, signum: int,
                                                                            said: str) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    r = cli_stopped_when(["export", str(padim_run), "--out", str(out / "pd.bundle"), "--format", "onnx,openvino",
                          "--precision", "fp32,fp16,int8"], lambda line: "writing" in line, signum, env)
    assert r.returncode == 128 + signum, r.stderr
    assert said in r.stderr and "Aborted!" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(temp.iterdir()) == []  # the staging folder is removed
    assert list(out.iterdir()) == []  # no bundle, whole or half-written, and nothing hidden beside it


def test_what_a_killed_export_left_in_the_temp_folder_goes_with_the_next_command(padim_run: Path, tmp_path: Path) -> None:
    # SIGKILL (the kernel's OOM killer, `kill -9`, a power cut) runs no cleanup: the export's
    # staging folder stayed in the temp directory for good, one more with every killed export
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    r = cli_stopped_when(["export", str(padim_run), "--out", str(tmp_path / "pd.bundle"), "--format", "onnx",
                          "--precision", "fp32"], lambda line: "writing" in line, signal.SIGKILL, env)
    assert r.returncode == -signal.SIGKILL
    left = sorted(p.name for p in temp.iterdir())
    assert any(name.startswith("edgeanomaly-export-") for name in left), left
    for p in temp.iterdir():  # as if killed a while ago: a fresh one may be a live process's, not yet locked
        os.utime(p, (p.stat().st_atime - 120, p.stat().st_mtime - 120), follow_symlinks=False)
    subprocess.run([sys.executable, "-m", "edgeanomaly.cli", "keygen", "--out", str(tmp_path / "keys")], env=env, check=True,
                   capture_output=True, timeout=120)
    # (a library's own temp file, had the kill caught one, is not edgeanomaly's to remove)
    assert [p.name for p in temp.iterdir() if p.name.startswith("edgeanomaly-")] == []

