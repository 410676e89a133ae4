"""Recipes ship with the package: export/*.toml == edgeanomaly/recipes/*.toml, usable by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeanomaly.cli import main
from edgeanomaly.errors import ConfigError
from edgeanomaly.recipes import RECIPE_DIR, list_recipes, resolve_recipe

REPO = Path(__file__).resolve().parents[2]


def test_packaged_recipes_are_the_repository_recipes() -> None:
    top = {p.name: p.read_bytes() for p in (REPO / "export").glob("*.toml")}
    packaged = {p.name: p.read_bytes() for p in RECIPE_DIR.glob("*.toml")}
    assert top, "no recipes in export/"
    # Edit export/<name>.toml, then copy it to edgeanomaly/recipes/ (the wheel ships that copy).
    assert packaged == top


def test_resolve_by_name_or_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # far from the repository's export/ folder
    assert resolve_recipe("patchcore") == RECIPE_DIR / "patchcore.toml"
    assert resolve_recipe("padim.toml") == RECIPE_DIR / "padim.toml"
    own = tmp_path / "mine.toml"
    own.write_text("[model]\nname = 'dfm'\n")
    assert resolve_recipe(own) == own
    with pytest.raises(ConfigError, match=r"Did you mean 'patchcore'.*") as err:
        resolve_recipe("patchcor")
    assert "padim" in str(err.value)
    with pytest.raises(ConfigError, match="neither a file nor a packaged recipe"):
        resolve_recipe("export/patchcore.toml")


def test_every_packaged_recipe_loads() -> None:
    pytest.importorskip("torch")
    from edgeanomaly.export import load_recipe
    from edgeanomaly.models import list_models

    names = list_recipes()
    assert {"patchcore", "padim", "dfm", "dfkde", "patchcore-npu"} <= set(names)
    for name, about in names.items():
        recipe = load_recipe(name)
        assert recipe.model in list_models() and about, name


def test_list_recipes_cli() -> None:
    r = CliRunner().invoke(main, ["export", "--list-recipes"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert [line.split()[0] for line in lines] == sorted(list_recipes())
    assert any(line.startswith("patchcore-npu") and "static" in line for line in lines)
    # the descriptions start in one column, after the longest name and two spaces
    width = max(map(len, list_recipes()))
    assert all(line[width : width + 2] == "  " and line[width + 2] != " " for line in lines), lines


def test_recipe_artifacts(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from edgeanomaly.export import load_recipe

    padim = load_recipe("padim")
    assert padim.artifacts == ["onnx-fp32", "openvino-int8"]
    assert padim.formats == ["onnx", "openvino"] and padim.precisions == ["fp32", "int8"]
    both = tmp_path / "both.toml"
    both.write_text('[model]\nname = "dfm"\n[export]\nformats = ["onnx"]\nartifacts = ["onnx-fp32"]\n')
    with pytest.raises(ConfigError, match="either artifacts or formats"):
        load_recipe(both)
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nname = "dfm"\n[export]\nartifacts = ["onnx"]\n')
    with pytest.raises(ConfigError, match="FORMAT-PRECISION"):
        load_recipe(bad)


def test_the_any_orientation_fastflow_recipe_is_the_fastflow_recipe_trained_on_turned_views() -> None:
    # it claims to be the fastflow recipe with augment="dihedral" (for the shifts): nothing else may drift apart
    pytest.importorskip("torch")
    from edgeanomaly.export import load_recipe

    plain, turned = load_recipe("fastflow"), load_recipe("fastflow-any-orientation")
    assert (plain.model_kwargs["augment"], plain.model_kwargs["shift_grid"]) == ("shifts", 3)  # any line: a part a few pixels off
    without_grid = {k: v for k, v in plain.model_kwargs.items() if k != "shift_grid"}  # a setting of the shifts only
    assert turned.model_kwargs == {**without_grid, "augment": "dihedral"}
    assert (turned.model, turned.image_size, turned.formats, turned.precisions, turned.static_batch) == \
        (plain.model, plain.image_size, plain.formats, plain.precisions, plain.static_batch)
