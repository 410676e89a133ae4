"""``validate`` on another category than the bundle was fitted on (issue 20.11): the report
named "an artifact does not reproduce the torch model" although every artifact reproduced it
exactly. The bundle records its category (``reference.category``), and the diagnosis says
the categories differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeanomaly.bundle import read_bundle
from edgeanomaly.cli import main

pytestmark = pytest.mark.slow


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_validate_on_another_category_names_the_mismatch(small_dfm_bundle: Path, synthetic_root: Path, tmp_path: Path) -> None:
    with read_bundle(small_dfm_bundle) as b:
        assert b.manifest.reference["category"] == "metal"

    r = run("validate", small_dfm_bundle, "--data", synthetic_root, "--category", "fabric", "--out", tmp_path / "rep")
    assert "fitted on category 'metal'" in r.output and "'fabric'" in r.output, r.output
    assert "does not reproduce" not in r.output
    doc = json.loads((tmp_path / "rep" / "validation.json").read_text())
    assert any("category" in note for note in doc["notes"])
    assert "fitted on category" in (tmp_path / "rep" / "validation.html").read_text()

    r = run("validate", small_dfm_bundle, "--data", synthetic_root, "--category", "metal")
    assert "fitted on category" not in r.output, r.output
