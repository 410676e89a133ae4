"""Help that teaches: an example in every command's --help, layer and model names that exist,
commands that need the [train] extra marked in a base install (issue 14.6)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgeanomaly.cli import COMMANDS, main

SUBCOMMANDS = [[name] for name in COMMANDS] + [["data", "synth"], ["data", "check"]]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_help_has_a_runnable_looking_example(command: list[str]) -> None:
    r = CliRunner().invoke(main, [*command, "--help"])
    assert r.exit_code == 0, r.output
    examples = r.output.split("Example", 1)
    assert len(examples) == 2, f"no example in 'edgeanomaly {' '.join(command)} --help'"
    assert f"edgeanomaly {' '.join(command)} " in examples[1]


def test_static_help_tables_match_the_registries() -> None:
    pytest.importorskip("torch")
    from edgeanomaly.cli._fit import BACKBONE_NAMES, LAYER_HELP, LAYER_NAMES, MODEL_NAMES, TRAINED_NAMES
    from edgeanomaly.components import list_backbones
    from edgeanomaly.components._backbones import backbone_spec
    from edgeanomaly.models import list_models, model_class
    from edgeanomaly.models._trained import TrainedModel

    assert sorted(MODEL_NAMES) == list_models()
    assert sorted(TRAINED_NAMES) == [m for m in list_models() if issubclass(model_class(m), TrainedModel)]
    assert sorted(BACKBONE_NAMES) == list_backbones() == sorted(LAYER_NAMES)
    for name in BACKBONE_NAMES:
        spec = backbone_spec(name)
        assert LAYER_NAMES[name] == tuple(f.name for f in spec.feature_info)
        for layer in (LAYER_NAMES[name][0], LAYER_NAMES[name][-1], *spec.default_layers):
            assert layer in LAYER_HELP, (name, layer)


def test_fit_help_names_layers_of_the_default_backbone() -> None:
    r = CliRunner().invoke(main, ["fit", "--help"])
    text = " ".join(r.output.split())
    assert "blocks.4,blocks.10" in text and "patchcore, padim, dfkde, dfm" in text


def test_the_command_list_says_fit_also_trains_for_epochs() -> None:
    # it said "Fit a model on normal images in one pass", though fastflow and efficientad train for epochs
    line = next(line for line in CliRunner().invoke(main, ["--help"]).output.splitlines() if line.strip().startswith("fit "))
    assert "epochs" in line and "in one pass and" not in line, line


def test_base_install_help_marks_train_commands() -> None:
    from test_import_isolation import run_blocked

    proc = run_blocked(
        """
        from click.testing import CliRunner
        from edgeanomaly.cli import main
        print(CliRunner().invoke(main, ["--help"]).output)
        """
    )
    assert proc.returncode == 0, proc.stderr
    marked = {line.split()[0] for line in proc.stdout.splitlines() if "[needs train]" in line}
    assert marked == {"quickstart", "fit", "export", "[needs"}, proc.stdout
    assert 'pip install "edgeanomaly[train]"' in proc.stdout
    r = CliRunner().invoke(main, ["--help"])  # this environment has torch: nothing marked
    assert "[needs" not in r.output


def test_progress_off_a_terminal_is_one_line_per_stage(capsys: pytest.CaptureFixture[str]) -> None:
    from edgeanomaly.cli._common import Activity, StageBar

    bar = StageBar()
    for stage, total in (("fit", 3), ("test", 2)):
        for done in range(1, total + 1):
            bar(stage, done, total)
    bar.close()
    with Activity() as activity:
        activity("openvino-int8: writing")
        activity("openvino-int8: parity against torch")
    err = capsys.readouterr().err
    assert err.splitlines() == ["  ... fit (3)", "  ... test (2)", "  ... openvino-int8: writing", "  ... openvino-int8: parity against torch"]


def test_activity_on_a_terminal_redraws_elapsed_seconds() -> None:
    import io
    import time

    from edgeanomaly.cli._common import Activity

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    with Activity(term) as activity:
        activity("quantising")
        time.sleep(1.2)
    text = term.getvalue()
    assert text.count("\r  ... quantising") >= 1 and " s" in text and text.endswith("\r\033[K")
