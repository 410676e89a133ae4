"""Every command that fit, export and quickstart print as a next step runs as printed (issue 14.1)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeanomaly.cli import main

pytestmark = pytest.mark.slow

TITLES = ("Next:", "Next, on the device:", "Try:")


def run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def printed_commands(output: str) -> list[list[str]]:
    """The indented ``edgeanomaly ...`` lines after a Next/Try title, as argument lists."""
    commands, inside = [], False
    for line in output.splitlines():
        if line.strip() in TITLES:
            inside = True
        elif inside and line.startswith("  edgeanomaly "):
            commands.append(shlex.split(line.strip())[1:])
        else:
            inside = False
    return commands


def run_printed(output: str) -> list[str]:
    """Run every printed command in order; returns the outputs."""
    commands = printed_commands(output)
    assert commands, f"no next step printed:\n{output}"
    outputs = []
    for args in commands:
        assert not any(a.isupper() for a in args), f"placeholder in a printed command: {args}"
        r = run(args)
        assert r.exit_code == 0, f"printed command failed: edgeanomaly {shlex.join(args)}\n{r.output}"
        outputs.append(r.output)
    return outputs


def test_fit_then_export_next_steps_run(synthetic_root: Path, tmp_path: Path) -> None:
    r = run(["fit", "--model", "dfm", "--data", str(synthetic_root), "--category", "metal", "--image-size", "128",
             "--backbone", "resnet18", "--no-pretrained", "--out", str(tmp_path / "dfm.run")])
    assert r.exit_code == 0, r.output
    assert printed_commands(r.output) == [["export", str(tmp_path / "dfm.run"), "--out", str(tmp_path / "dfm.bundle")]]
    (export_output,) = run_printed(r.output)
    commands = printed_commands(export_output)
    assert [c[0] for c in commands] == ["info", "predict", "validate"]
    assert commands[2][-2:] == ["--category", "metal"]
    info, predicted, validated = run_printed(export_output)
    # the suggested folder holds its images in one subfolder per defect type: all of them are scored
    assert '"scored": 30' in predicted and "PASS" in validated
    # quickstart prints the same helper's commands for its bundle and dataset (cli/_quickstart.py)
    from edgeanomaly.cli._export import next_commands

    quickstart = [shlex.split(c)[1:] for c in next_commands(tmp_path / "dfm.bundle", synthetic_root, "metal")]
    assert quickstart == commands


def test_export_from_a_category_folder_suggests_no_category(synthetic_root: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\nname = "dfkde"\nbackbone = "resnet18"\npretrained = false\n'
                      '[data]\nimage_size = 64\n[export]\nartifacts = ["onnx-fp32", "openvino-fp16"]\n')
    r = run(["export", "--recipe", str(recipe), "--data", str(synthetic_root / "fabric"), "--out", str(tmp_path / "b.zip")])
    assert r.exit_code == 0, r.output
    assert "--category" not in r.output
    run_printed(r.output)
    from edgeanomaly.bundle import read_bundle

    with read_bundle(tmp_path / "b.zip") as b:  # exactly the recipe's artifacts, no openvino-fp32
        assert [a.name for a in b.manifest.artifacts] == ["onnx-fp32", "openvino-fp16"]
