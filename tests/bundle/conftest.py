"""Fixtures of the bundle tests; the fakes themselves live in bundle_fakes.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_fakes import files, manifest

from edgeanomaly.bundle import write_bundle


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A valid bundle directory with three artifacts and a reference file."""
    return write_bundle(tmp_path / "bundle", manifest(), files())
