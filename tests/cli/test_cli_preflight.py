"""Arguments are checked before any work: a mistake costs milliseconds, never a fit, and
never replaces a run directory or bundle that was not asked for (issues 13.5 and 14.4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeanomaly.cli import main

RECIPE = ('[model]\nname = "patchcore"\nbackbone = "resnet18"\npretrained = false\n'
          '[data]\nimage_size = 128\n[export]\nformats = ["onnx"]\nprecisions = ["fp32"]\n')


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(RECIPE)
    return path


def test_export_recipe_to_existing_out_fails_before_fit_and_keeps_the_run(synthetic_root: Path, recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    run_dir = tmp_path / "b.run"
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes(b"old weights")
    r = run("export", "--recipe", recipe, "--data", synthetic_root, "--category", "metal", "--out", out)
    assert r.exit_code == 1, r.output
    assert "--overwrite" in r.output and "overwrite=True" not in r.output
    assert "Fitting" not in r.output
    assert (run_dir / "model.pt").read_bytes() == b"old weights"
    assert (out / "keep.txt").read_text() == "mine"


def test_export_recipe_refuses_an_existing_run_dir(synthetic_root: Path, recipe: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "b.run"
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes(b"old weights")
    r = run("export", "--recipe", recipe, "--data", synthetic_root, "--category", "metal", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "b.run" in r.output and "--overwrite" in r.output, r.output
    assert (run_dir / "model.pt").read_bytes() == b"old weights"
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--format", "tflite", "Unknown format 'tflite'"),
        ("--precision", "int4", "Unknown precision 'int4'"),
        ("--category", "metall", "metal"),
    ],
)
def test_export_recipe_bad_argument_fails_before_fit(synthetic_root: Path, recipe: Path, tmp_path: Path, option: str, value: str, expected: str) -> None:
    args = ["export", "--recipe", recipe, "--data", synthetic_root, "--out", tmp_path / "b", option, value]
    if option != "--category":
        args += ["--category", "metal"]
    r = run(*args)
    assert r.exit_code in (1, 2), r.output
    assert expected in r.output and "Fitting" not in r.output
    assert not (tmp_path / "b.run").exists() and not (tmp_path / "b").exists()


def test_wrong_category_lists_the_categories(synthetic_root: Path, tmp_path: Path) -> None:
    r = run("fit", "--data", synthetic_root, "--category", "metall", "--out", tmp_path / "run")
    assert r.exit_code == 1
    assert "fabric, metal" in r.output and "Did you mean 'metal'" in r.output, r.output
    assert not (tmp_path / "run").exists()


def test_fit_refuses_an_existing_run_dir(synthetic_root: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.pt").write_bytes(b"old weights")
    r = run("fit", "--data", synthetic_root, "--category", "metal", "--out", tmp_path / "run")
    assert r.exit_code == 1 and "--overwrite" in r.output, r.output
    assert (tmp_path / "run" / "model.pt").read_bytes() == b"old weights"


def test_export_checkpoint_to_existing_bundle_fails_before_work(tmp_path: Path) -> None:
    ckpt = tmp_path / "run"
    ckpt.mkdir()
    (ckpt / "checkpoint.json").write_text("{}")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    r = run("export", ckpt, "--out", tmp_path / "b")
    assert r.exit_code == 1 and "--overwrite" in r.output, r.output


def test_names_are_case_insensitive_but_still_checked(synthetic_root: Path, recipe: Path, tmp_path: Path) -> None:
    r = run("export", "--recipe", recipe, "--data", synthetic_root, "--category", "metal", "--out", tmp_path / "b",
            "--format", "ONNX", "--precision", "FP16")
    # FP16 is a known precision now (case-insensitive) but ONNX offers only fp32: still refused before fit
    assert r.exit_code == 1 and "No asked format offers precision 'fp16'" in r.output, r.output
    assert not (tmp_path / "b.run").exists()
