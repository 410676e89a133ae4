"""Outputs honour the umask (issue 20.8): a service account or a non-root container (OVMS
runs as one) must be able to read a bundle, a run folder or a deploy folder made by another
user. ``tempfile.mkdtemp``/``mkstemp`` create 0700/0600, which an atomic write used to keep."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgeanomaly.bundle import write_bundle

from bundle_fakes import files, manifest  # type: ignore[import-not-found]


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        out[p.relative_to(root).as_posix()] = stat.S_IMODE(p.stat().st_mode)
    return out


def _expected(path: Path, umask: int) -> int:
    return (0o777 if path.is_dir() else 0o666) & ~umask


def test_bundle_directory_and_zip_follow_the_umask(tmp_path: Path, umask: int) -> None:
    out = write_bundle(tmp_path / "b", manifest(), files())
    for rel, mode in _modes(out).items():
        assert mode == _expected(out / rel, umask), f"{rel}: {oct(mode)} with umask {oct(umask)}"
    z = write_bundle(tmp_path / "b.zip", manifest(), files())
    assert stat.S_IMODE(z.stat().st_mode) == 0o666 & ~umask
