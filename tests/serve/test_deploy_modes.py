"""A deploy folder honours the umask (issue 20.8): OVMS runs as a non-root user and must read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


@pytest.mark.parametrize("target", ["ovms", "triton"])
def test_deploy_folder_follows_the_umask(tmp_path: Path, serve_bundle: Path, target: str) -> None:
    from edgeanomaly.serve import deploy

    old = os.umask(0o022)
    try:
        result = deploy(serve_bundle, target, tmp_path / "repo")
    finally:
        os.umask(old)
    paths = [result.out, *result.out.rglob("*")]
    bad = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths
           if stat.S_IMODE(p.stat().st_mode) != (0o755 if p.is_dir() else 0o644)}
    assert not bad, f"not readable by other users under umask 022: {bad}"
