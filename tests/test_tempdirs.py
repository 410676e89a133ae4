"""Private temporary folders: removed with their lock file however a command ends, and what a
process killed outright left is removed by the next one (``edgeanomaly._tempdirs``), never a
live process's folder, a young one, another program's or anything behind a link."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeanomaly import _tempdirs
from edgeanomaly._tempdirs import make_temp_dir, remove_temp_dir, sweep, temp_dir

pytestmark = pytest.mark.skipif(_tempdirs.fcntl is None, reason="no flock on this platform (Windows): folders are not swept")

_HOLDER = textwrap.dedent("""
    import sys
    from edgeanomaly._tempdirs import make_temp_dir
    folder = make_temp_dir("export")
    (folder / "artifact.onnx").write_bytes(b"x" * 1000)
    print(folder, flush=True)
    sys.stdin.readline()
""")


def _holder(temp: Path) -> tuple[subprocess.Popen, Path]:
    """A live process holding a folder in ``temp``, and that folder."""
    p = subprocess.Popen([sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "TMPDIR": str(temp)})
    return p, Path(p.stdout.readline().strip())


def test_a_live_process_keeps_its_folder_and_a_killed_ones_is_swept(tmp_path: Path) -> None:
    live, kept = _holder(tmp_path)
    dead, left = _holder(tmp_path)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        assert sweep(tmp_path, min_age_s=0) == [left]
        assert not left.exists() and not Path(f"{left}.lock").exists()
        assert kept.is_dir() and Path(f"{kept}.lock").is_file()  # locked by a live process
    finally:
        live.communicate("\n", timeout=30)
        dead.kill()
    assert sweep(tmp_path, min_age_s=0) == [kept]  # its holder ended without removing it
    assert list(tmp_path.iterdir()) == []


def test_a_young_or_foreign_entry_is_left(tmp_path: Path) -> None:
    dead, young = _holder(tmp_path)
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=30)
    assert sweep(tmp_path) == [] and young.is_dir()  # unlocked, but younger than a minute
    foreign = tmp_path / "edgeanomaly-export-foreign"  # no lock file: another program's, or an older version's
    foreign.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (tmp_path / "edgeanomaly-bundle-link").symlink_to(outside)  # a link with an unlocked lock file beside it
    (tmp_path / "edgeanomaly-bundle-link.lock").write_text("")
    assert sweep(tmp_path, min_age_s=0) == [young]
    assert foreign.is_dir() and (outside / "keep").is_file() and (tmp_path / "edgeanomaly-bundle-link").is_symlink()


def test_a_with_block_removes_the_folder_and_its_lock_however_it_ends(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        with temp_dir("bench") as folder:
            (folder / "x").write_text("x")
            assert Path(f"{folder}.lock").is_file() and folder.name.startswith("edgeanomaly-bench-")
            raise KeyboardInterrupt
    folder = make_temp_dir("bundle")
    remove_temp_dir(folder)
    assert list(tmp_path.iterdir()) == []


def test_a_folders_own_process_never_sweeps_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    folder = make_temp_dir("export")
    try:
        assert sweep(tmp_path, min_age_s=0) == [] and folder.is_dir()
    finally:
        remove_temp_dir(folder)


def test_a_library_process_sweeps_what_killed_processes_left_when_it_makes_its_first_folder(tmp_path: Path) -> None:
    # Only the CLI swept: a notebook whose kernel the OOM killer stopped mid-export left its
    # staging folder, and exports from Python (no edgeanomaly command run) never removed it.
    dead, left = _holder(tmp_path)
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=30)
    old = os.stat(left).st_mtime - 2 * _tempdirs.MIN_AGE_S
    os.utime(f"{left}.lock", (old, old))  # killed a while ago
    live, kept = _holder(tmp_path)  # a library process: makes a folder, runs no CLI
    try:
        assert not left.exists() and not Path(f"{left}.lock").exists()
        assert kept.is_dir()
    finally:
        live.communicate("\n", timeout=30)
