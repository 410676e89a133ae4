from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edgeanomaly import __version__
from edgeanomaly.cli import main


def test_version_and_help() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "data" in r.output


def test_unknown_command_suggests() -> None:
    r = CliRunner().invoke(main, ["dta"])
    assert r.exit_code == 2 and "Did you mean" in r.output and "data" in r.output


def test_synth_then_check(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path), "--n-train", "3", "--n-test", "2", "--size", "64", "--seed", "1"])
    assert r.exit_code == 0, r.output
    for cat in ("fabric", "metal"):
        r = CliRunner().invoke(main, ["data", "check", str(tmp_path / cat)])
        assert r.exit_code == 0, r.output
        assert "train     3 images" in r.output and "defect types: 4" in r.output and "OK" in r.output


def test_check_reports_every_problem(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path), "--category", "metal", "--n-train", "2", "--n-test", "1", "--size", "64"])
    root = tmp_path / "metal"
    (root / "ground_truth" / "crack" / "000_mask.png").unlink()
    (root / "test" / "dent" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    r = CliRunner().invoke(main, ["data", "check", str(root)])
    assert r.exit_code == 1
    assert "2 problem(s)" in r.output
    assert "crack/000.png" in r.output and "dent/000.png" in r.output


def test_check_real_subset(tmp_path: Path, mvtec_root: Path) -> None:
    r = CliRunner().invoke(main, ["data", "check", str(mvtec_root)])
    assert r.exit_code == 0, r.output
    assert "train    50 images" in r.output
    assert "test     10 images  (good: 2" in r.output
    assert "defect types: 4 (crack, cut, hole, print)" in r.output
