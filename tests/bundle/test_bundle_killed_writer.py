"""A bundle writer killed outright (SIGKILL, the OOM killer) while it writes: its hidden staging
folder beside the destination goes with the next write to that path, and a live writer's stays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bundle_fakes import files, manifest

from edgeanomaly import _tempdirs
from edgeanomaly.bundle import write_bundle

pytestmark = pytest.mark.skipif(_tempdirs.fcntl is None, reason="no flock on this platform (Windows): nothing is swept")

_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from bundle_fakes import files, manifest
    import edgeanomaly.bundle._io as io
    from edgeanomaly.bundle import write_bundle

    real = io._write_manifest

    def stalled(stage, m):  # stops while the bundle is being written, until told to go on
        print(stage, flush=True)
        sys.stdin.readline()
        real(stage, m)

    io._write_manifest = stalled
    write_bundle(sys.argv[1], manifest(), files(), overwrite=True)
""")


def _kill_a_while_ago(writer: subprocess.Popen, folder: Path) -> None:
    """SIGKILL ``writer``, then age what is in ``folder`` by two minutes, past the sweep's minimum age."""
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    for p in folder.iterdir():
        os.utime(p, (p.stat().st_atime - 120, p.stat().st_mtime - 120), follow_symlinks=False)


def test_a_bundle_half_written_by_a_killed_writer_goes_with_the_next_write_to_that_path(tmp_path: Path) -> None:
    # SIGKILL while write_bundle wrote: the hidden '.NAME.tmp-xxxx' folder (the artifacts so
    # far, hundreds of MiB for a large bundle) stayed beside the bundle for good
    out = tmp_path / "out" / "pd.bundle"
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(out), str(Path(__file__).parent)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    dead, live = writers
    try:
        dead_stage, live_stage = (Path(w.stdout.readline().strip()) for w in writers)
        assert dead_stage.parent == out.parent and dead_stage.name.startswith(".pd.bundle.tmp-")
        _kill_a_while_ago(dead, out.parent)
        write_bundle(out, manifest(), files())
        assert not dead_stage.exists()
        assert live_stage.is_dir()  # a live writer's staging folder is left to it
        live.communicate("\n", timeout=60)
    finally:
        for w in writers:
            w.kill()
    assert live.returncode == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["pd.bundle"]


_ZIP_WRITER = textwrap.dedent("""
    import shutil, sys
    sys.path.insert(0, sys.argv[2])
    from bundle_fakes import files, manifest
    from edgeanomaly.bundle import write_bundle

    real = shutil.copyfileobj

    def stalled(src, dst, *args):  # stops while the zip is being packed, until told to go on
        print("packing", flush=True)
        sys.stdin.readline()
        real(src, dst, *args)

    shutil.copyfileobj = stalled
    write_bundle(sys.argv[1], manifest(), files(), overwrite=True)
""")


def test_a_zip_half_written_by_a_killed_writer_goes_with_the_next_write_to_that_path(tmp_path: Path) -> None:
    # SIGKILL while write_bundle packed a .zip: the hidden '.NAME.zip.tmp-xxxx' file (the zip so
    # far) stayed beside it for good, as the staging folder did before it was held by a lock
    out = tmp_path / "out" / "pd.zip"

    def writer() -> subprocess.Popen:
        w = subprocess.Popen([sys.executable, "-c", _ZIP_WRITER, str(out), str(Path(__file__).parent)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        writers.append(w)
        assert w.stdout.readline().strip() == "packing"
        return w

    def zips() -> set[Path]:
        return {p for p in out.parent.iterdir() if p.is_file() and not p.name.endswith(".lock")}

    writers: list[subprocess.Popen] = []
    try:
        dead = writer()
        dead_zips = zips()
        assert len(dead_zips) == 1 and next(iter(dead_zips)).name.startswith(".pd.zip.tmp-")
        live = writer()
        live_zips = zips() - dead_zips
        _kill_a_while_ago(dead, out.parent)
        write_bundle(out, manifest(), files())
        assert not any(p.exists() for p in dead_zips)
        assert len(live_zips) == 1 and all(p.is_file() for p in live_zips)  # a live writer's zip is left to it
        live.communicate("\n", timeout=60)
    finally:
        for w in writers:
            w.kill()
    assert live.returncode == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["pd.zip"]
