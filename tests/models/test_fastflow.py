"""FastFlow: the map against a naive recomputation from the flows, training (loss falls, the
best epoch's weights are kept, early stopping and the time limit), the history in the
checkpoint, and its settings' errors."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _interrupt import cli_stopped_when
from click.testing import CliRunner

from edgeanomaly.errors import ConfigError
from edgeanomaly.models import UndertrainedWarning, create_model

SIZE = 64


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _model(**kwargs):
    settings = {"backbone": "resnet18", "pretrained": False, "random_state": 0, "flow_steps": 2, "epochs": 3, **kwargs}
    return create_model("fastflow", **settings)


@pytest.fixture(scope="module")
def fitted():
    return _model(epochs=6).fit([_images(4, 1), _images(4, 2)])


def test_map_and_score_against_a_naive_recomputation(fitted) -> None:
    x = _images(2, 7)
    out = fitted.predict(x)
    with torch.no_grad():
        feats = fitted.feature_extractor(x)
        likelihoods = []
        for layer, flow in zip(fitted.layers, fitted.flows):
            f = feats[layer]
            mean = f.mean(dim=(1, 2, 3), keepdim=True)
            var = f.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
            z = (f - mean) / torch.sqrt(var + 1e-5)  # layer norm over (C, h, w), no affine
            for block in flow.blocks:  # block by block, not through the sequence
                z, _ = block(z)
            per_position = torch.exp(-0.5 * (z ** 2).sum(dim=1, keepdim=True) / z.shape[1])
            likelihoods.append(F.interpolate(per_position, size=(SIZE, SIZE), mode="bilinear", align_corners=False))
        expected = 1.0 - sum(likelihoods) / len(likelihoods)
    torch.testing.assert_close(out["anomaly_map"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["pred_score"], expected.flatten(1).max(dim=1).values, rtol=1e-6, atol=1e-7)
    assert ((out["anomaly_map"] >= 0) & (out["anomaly_map"] <= 1)).all()


@pytest.mark.parametrize("fraction, count", [(0.01, 40), (0.1, 409), (1e-9, 1)])
def test_score_top_fraction_is_the_mean_of_the_highest_map_values(fitted, fraction: float, count: int) -> None:
    """With ``score_top_fraction`` the image score is the mean of that share of the map's
    highest values (int(fraction * 64 * 64), at least one), checked against NumPy's sort of
    the map; the map itself is unchanged."""
    x = _images(3, 8)
    reference = fitted.predict(x)
    model = _model(epochs=6, score_top_fraction=fraction)
    model.load_state_dict(fitted.state_dict())
    model.eval()
    out = model.predict(x)
    torch.testing.assert_close(out["anomaly_map"], reference["anomaly_map"], rtol=0, atol=0)
    values = np.sort(out["anomaly_map"].numpy().reshape(3, -1).astype(np.float64), axis=1)[:, ::-1]
    expected = values[:, :count].mean(axis=1)
    np.testing.assert_allclose(out["pred_score"].numpy(), expected, rtol=1e-6)
    # below the maximum whenever the top values differ, so the option is not the maximum
    if count > 1:
        assert (out["pred_score"] < reference["pred_score"]).all()
    else:
        assert torch.equal(out["pred_score"], reference["pred_score"])


def test_training_lowers_the_loss_and_keeps_the_best_epoch(fitted) -> None:
    history = fitted.training_history_
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    best = min(history, key=lambda r: r["val_loss"])
    assert [r["epoch"] for r in history if r["best"]] == [best["epoch"]] == [fitted.training_summary_["best_epoch"]]
    # the weights kept are the best epoch's: the held-out loss measured now is that epoch's
    features = fitted._extract([_images(4, 1), _images(4, 2)])
    _, val_idx = fitted._split(8)
    assert len(val_idx) == 1 and fitted.training_summary_["n_validation"] == 1
    assert fitted._loss(features, val_idx) == pytest.approx(best["val_loss"], rel=1e-6)


def test_time_limit_and_epoch_limit_stop_training() -> None:
    train = [_images(4, 1), _images(4, 2)]
    with pytest.warns(UndertrainedWarning, match="trained 1 of its 50 epochs"):
        quick = _model(epochs=50, max_minutes=1e-9).fit(train)
    assert quick.training_summary_["stopped_by"] == "max_minutes" and quick.training_summary_["epochs_run"] == 1
    capped = _model(epochs=2, patience=5).fit(train)
    assert capped.training_summary_["stopped_by"] == "epochs" and capped.training_summary_["epochs_run"] == 2
    seen = []
    m = _model(epochs=2)
    m.epoch_callback = seen.append
    m.fit(train)
    assert [(r["epoch"], r["epochs"]) for r in seen] == [(1, 2), (2, 2)]


@pytest.mark.parametrize("max_minutes, warned", [(3, True), (6, False), (30, False)])
def test_a_fit_its_time_limit_stopped_before_half_its_epochs_warns_in_python(monkeypatch, max_minutes: float,
                                                                            warned: bool) -> None:
    # ea.fit("fastflow", ..., max_minutes=...) and FastFlow.fit in Python said nothing when the
    # time limit ended training after a few of its epochs: only the CLI's epoch lines warned
    # (scikit-learn's ConvergenceWarning is the Python user's expectation)
    import warnings

    from edgeanomaly.models._trained import TrainingRun

    monkeypatch.setattr(TrainingRun, "seconds", lambda run: 60.0 * len(run.history))  # each epoch "takes" a minute
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = _model(epochs=10, patience=100, max_minutes=max_minutes).fit([_images(4, 1), _images(4, 2)])
    said = [w for w in caught if issubclass(w.category, UndertrainedWarning)]
    assert m.training_summary_["epochs_run"] == min(10, max_minutes)
    if not warned:
        assert said == []
        return
    assert len(said) == 1 and said[0].filename == __file__, said  # points at the caller's line
    assert re.search(r"FastFlow trained 3 of its 10 epochs: the time limit \(max_minutes=3\) stopped it", str(said[0].message))
    assert "may be undertrained" in str(said[0].message) and "max_minutes" in str(said[0].message)


def test_ea_fit_warns_at_the_callers_line_and_the_cli_says_it_its_own_way(tmp_path, monkeypatch) -> None:
    import warnings

    import edgeanomaly as ea
    from edgeanomaly.cli import main
    from edgeanomaly.data import generate_synthetic_dataset
    from edgeanomaly.errors import UndertrainedWarning
    from edgeanomaly.models._trained import TrainingRun

    monkeypatch.setattr(TrainingRun, "seconds", lambda run: 60.0 * len(run.history))  # each epoch "takes" a minute
    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=SIZE)
    common = dict(backbone="resnet18", pretrained=False, flow_steps=2, image_size=SIZE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ea.fit("fastflow", tmp_path / "data", category="metal", epochs=10, max_minutes=2, **common)
    said = [w for w in caught if issubclass(w.category, UndertrainedWarning)]
    assert len(said) == 1 and said[0].filename == __file__ and "trained 2 of its 10 epochs" in str(said[0].message), said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = CliRunner().invoke(main, ["fit", "--model", "fastflow", "--data", str(tmp_path / "data"), "--category", "metal",
                                      "--out", str(tmp_path / "ff.run"), "--image-size", str(SIZE), "--backbone", "resnet18",
                                      "--no-pretrained", "--param", "flow_steps=2", "--epochs", "10", "--max-minutes", "2"])
    assert r.exit_code == 0, r.output
    assert not [w for w in caught if issubclass(w.category, UndertrainedWarning)]  # not the Python warning too
    assert "Trained 2 of 10 epochs" in r.output and "stopped by max_minutes" in r.output, r.output


def test_early_stopping_after_patience_epochs_without_improvement() -> None:
    # A learning rate so large that the held-out loss gets worse after the first steps.
    m = _model(epochs=40, patience=2, learning_rate=5.0).fit([_images(4, 1), _images(4, 2)])
    summary = m.training_summary_
    assert summary["stopped_by"] == "early stopping"
    assert summary["epochs_run"] == summary["best_epoch"] + 2


def test_fit_cli_with_nothing_held_out_says_so(tmp_path) -> None:
    # validation_fraction=0: every image trains, the training loss picks the best epoch; the lines
    # said "1 held out" (0 held one out) and "held-out" losses that were the training loss
    from edgeanomaly.cli import main
    from edgeanomaly.data import generate_synthetic_dataset

    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=SIZE)
    r = CliRunner().invoke(main, ["fit", "--model", "fastflow", "--data", str(tmp_path / "data"), "--category", "metal",
                                  "--image-size", str(SIZE), "--backbone", "resnet18", "--no-pretrained", "--epochs", "2",
                                  "--param", "flow_steps=2", "--param", "validation_fraction=0", "--out", str(tmp_path / "ff.run")])
    assert r.exit_code == 0, r.output
    assert "epoch 2/2: loss " in r.output and "held-out" not in r.output, r.output
    assert re.search(r"Trained 2 of 2 epochs on 8 images, none held out: best epoch [12] \(training loss ", r.output), r.output


def test_fit_cli_records_the_training_in_the_checkpoint(tmp_path) -> None:
    from edgeanomaly.cli import main
    from edgeanomaly.data import generate_synthetic_dataset

    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=SIZE)
    r = CliRunner().invoke(main, ["fit", "--model", "fastflow", "--data", str(tmp_path / "data"), "--category", "metal",
                                  "--image-size", str(SIZE), "--backbone", "resnet18", "--no-pretrained",
                                  "--epochs", "2", "--max-minutes", "30", "--param", "flow_steps=2", "--out", str(tmp_path / "ff.run")])
    assert r.exit_code == 0, r.output
    assert "epoch 1/2: loss " in r.output and "epoch 2/2: loss " in r.output and "min left" in r.output
    assert "Trained 2 of 2 epochs on 7 images, 1 held out: best epoch" in r.output  # 8 normal images
    info = json.loads((tmp_path / "ff.run" / "checkpoint.json").read_text())["info"]
    assert info["training"]["epochs_run"] == 2 and len(info["training"]["history"]) == 2
    assert {"epoch", "train_loss", "val_loss", "seconds", "best"} <= set(info["training"]["history"][0])


def test_epoch_options_are_refused_for_one_pass_models(tmp_path) -> None:
    from edgeanomaly.cli import main

    r = CliRunner().invoke(main, ["fit", "--model", "padim", "--data", str(tmp_path), "--epochs", "3", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--epochs applies to models trained for epochs (fastflow, efficientad); padim fits in one pass" in r.output


@pytest.mark.parametrize("setting, value, message", [
    ("epochs", 0, "epochs as an integer >= 1"),
    ("learning_rate", 0.0, "learning_rate > 0"),
    ("validation_fraction", 1.0, r"validation_fraction in \[0, 1\)"),
    ("max_minutes", -1, "max_minutes > 0"),
    ("patience", 1.5, "patience as an integer"),
    ("score_top_fraction", 1.5, r"score_top_fraction in \[0, 1\]"),
    ("score_top_fraction", -0.1, r"score_top_fraction in \[0, 1\]"),
    ("augment", "rot90", "augment as one of 'none', 'flips', 'dihedral', 'shifts', got 'rot90'"),
    ("shift_grid", 2.5, "shift_grid as an integer( >= 1)?, got 2.5"),
    # these were taken as int(2.5) == 2, bool("no") == True, and "steps >= 1" named no setting
    ("flow_steps", 0, "flow_steps as an integer >= 1, got 0"),
    ("flow_steps", 2.5, "flow_steps as an integer( >= 1)?, got 2.5"),
    ("conv3x3_only", "no", "conv3x3_only as true or false, got 'no'"),
    ("conv3x3_only", 1, "conv3x3_only as true or false, got 1"),
])
def test_bad_settings(setting: str, value, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _model(**{setting: value})


def test_an_interrupted_fit_resumes_and_ends_as_the_uninterrupted_one(tmp_path) -> None:
    train = [_images(4, 1), _images(4, 2)]
    whole = _model(epochs=4, patience=10).fit(train)
    state = tmp_path / "training-state.pt"
    first = _model(epochs=4, patience=10)
    first.training_state_path = state

    def interrupt(record) -> None:
        if record["epoch"] == 2:
            raise KeyboardInterrupt  # as Ctrl-C, after epoch 2's state was saved

    first.epoch_callback = interrupt
    with pytest.raises(KeyboardInterrupt):
        first.fit(train)
    again = _model(epochs=4, patience=10)
    again.training_state_path, again.resume_training = state, True
    again.fit(train)
    assert again.training_summary_["resumed_after_epoch"] == 2 and whole.training_summary_["resumed_after_epoch"] is None
    assert [r["train_loss"] for r in again.training_history_] == [r["train_loss"] for r in whole.training_history_]
    x = _images(2, 9)
    for key, value in whole.predict(x).items():
        torch.testing.assert_close(again.predict(x)[key], value, rtol=0, atol=0)
    other = _model(epochs=4, patience=10, flow_steps=3)  # another fit's settings
    other.training_state_path, other.resume_training = state, True
    with pytest.raises(ConfigError, match="of another fit"):
        other.fit(train)
    missing = _model()
    missing.training_state_path, missing.resume_training = tmp_path / "none.pt", True
    with pytest.raises(ConfigError, match="Nothing to resume"):
        missing.fit(train)


def _interrupted_at_epoch_2(state: Path, train, **kwargs) -> None:
    first = _model(**kwargs)
    first.training_state_path = state

    def interrupt(record) -> None:
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    first.epoch_callback = interrupt
    with pytest.raises(KeyboardInterrupt):
        first.fit(train)


def test_a_resumed_fit_may_run_more_epochs_and_ends_as_a_fit_asked_for_them_at_first(tmp_path) -> None:
    # The stopping rules (epochs, patience, max_minutes) were part of the state's identity: a user
    # who interrupted a 3-epoch fit could not resume it for 5 ("of another fit").
    train = [_images(4, 1), _images(4, 2)]
    whole = _model(epochs=5, patience=10).fit(train)
    state = tmp_path / "training-state.pt"
    _interrupted_at_epoch_2(state, train, epochs=3, patience=10, max_minutes=30.0)
    again = _model(epochs=5, patience=20, max_minutes=60.0)
    again.training_state_path, again.resume_training = state, True
    again.fit(train)
    assert again.training_summary_["resumed_after_epoch"] == 2 and again.training_summary_["epochs_run"] == 5
    assert [r["train_loss"] for r in again.training_history_] == [r["train_loss"] for r in whole.training_history_]
    assert again.get_config()["params"]["epochs"] == 5  # the checkpoint says what the model was trained for
    x = _images(2, 9)
    for key, value in whole.predict(x).items():
        torch.testing.assert_close(again.predict(x)[key], value, rtol=0, atol=0)


def test_resuming_another_fit_names_the_settings_that_differ(tmp_path) -> None:
    train = [_images(4, 1), _images(4, 2)]
    state = tmp_path / "training-state.pt"
    _interrupted_at_epoch_2(state, train, epochs=4, patience=10)
    other = _model(epochs=4, patience=10, flow_steps=3, hidden_ratio=0.5)
    other.training_state_path, other.resume_training = state, True
    with pytest.raises(ConfigError, match=r"flow_steps 2 \(now 3\), hidden_ratio 1\.0 \(now 0\.5\).*only epochs, patience "
                                          r"and max_minutes may change"):
        other.fit(train)
    fewer = _model(epochs=1, patience=10)
    fewer.training_state_path, fewer.resume_training = state, True
    with pytest.raises(ConfigError, match=r"has run 2 epochs: epochs=1 is fewer; pass at least 2"):
        fewer.fit(train)
    images = _model(epochs=4, patience=10)
    images.training_state_path, images.resume_training = state, True
    with pytest.raises(ConfigError, match=r"8 training images \(now 4\)"):
        images.fit([_images(4, 1)])
    same = _model(epochs=2, patience=10)  # as many epochs as it ran: it ends there
    same.training_state_path, same.resume_training = state, True
    assert same.fit(train).training_summary_["epochs_run"] == 2


def test_a_state_saved_before_a_setting_existed_resumes_when_the_setting_is_at_its_default(tmp_path) -> None:
    # a fit interrupted under an older edgeanomaly (before conv3x3_only, augment, shift_grid were added)
    # could not go on after the upgrade: "of another fit: augment unset (now 'none'),
    # conv3x3_only unset (now False)", though their defaults are what that version trained
    train = [_images(4, 1), _images(4, 2)]
    whole = _model(epochs=4, patience=10).fit(train)
    state = tmp_path / "training-state.pt"
    _interrupted_at_epoch_2(state, train, epochs=4, patience=10)
    saved = torch.load(state, weights_only=True)
    for key in ("conv3x3_only", "augment", "shift_grid"):  # as the older versions saved it
        del saved["identity"]["params"][key]
    torch.save(saved, state)
    again = _model(epochs=4, patience=10)
    again.training_state_path, again.resume_training = state, True
    again.fit(train)
    assert again.training_summary_["resumed_after_epoch"] == 2
    assert [r["train_loss"] for r in again.training_history_] == [r["train_loss"] for r in whole.training_history_]
    other = _model(epochs=4, patience=10, conv3x3_only=True)  # not what the older version trained
    other.training_state_path, other.resume_training = state, True
    with pytest.raises(ConfigError, match=r"conv3x3_only False \(now True\)"):
        other.fit(train)


def test_ctrl_c_while_the_state_is_saved_leaves_the_last_whole_state_and_no_partial_file(tmp_path, monkeypatch) -> None:
    # an interrupted save left training-state.pt.tmp (7 MB at the recipe's settings) in the run directory
    state = tmp_path / "training-state.pt"
    saves = []
    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 2:  # epoch 2's save, cut short after some bytes
            Path(path).write_bytes(b"partial")
            raise KeyboardInterrupt
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    model = _model(epochs=4, patience=10)
    model.training_state_path = state
    with pytest.raises(KeyboardInterrupt):
        model.fit([_images(4, 1)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training-state.pt"]
    assert torch.load(state, weights_only=True)["epoch"] == 1


def _fit_interrupted_after_epoch_1(tmp_path: Path, epochs: int) -> Path:
    """``ea.fit`` of FastFlow on a small synthetic ``tmp_path/data`` into ``tmp_path/ff.run``,
    interrupted after its first epoch (the state saved, no checkpoint); the run directory."""
    import edgeanomaly as ea
    from edgeanomaly.data import generate_synthetic_dataset

    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=SIZE)
    run_dir = tmp_path / "ff.run"

    def interrupt(record) -> None:
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ea.fit("fastflow", tmp_path / "data", category="metal", out=run_dir, image_size=SIZE, backbone="resnet18",
               pretrained=False, epochs=epochs, flow_steps=2, on_epoch=interrupt)
    return run_dir


def test_fit_resume_from_the_run_directory(tmp_path) -> None:
    from edgeanomaly.cli import main
    from edgeanomaly.frontdoor._run import TRAINING_STATE
    from edgeanomaly.models._pipeline import TRAINING_STATE as WRITTEN

    assert TRAINING_STATE == WRITTEN
    run_dir = _fit_interrupted_after_epoch_1(tmp_path, epochs=3)
    args = ["--image-size", str(SIZE), "--backbone", "resnet18", "--no-pretrained", "--epochs", "3", "--param", "flow_steps=2"]
    assert (run_dir / "training-state.pt").is_file() and not (run_dir / "checkpoint.json").exists()
    fit = ["fit", "--model", "fastflow", "--data", str(tmp_path / "data"), "--category", "metal", "--out", str(run_dir), *args]
    r = CliRunner().invoke(main, fit)
    assert r.exit_code == 1 and "holds an interrupted training" in r.output and "--resume" in r.output
    r = CliRunner().invoke(main, [*fit, "--resume"])
    assert r.exit_code == 0, r.output
    assert "epoch 1/3" not in r.output and "epoch 2/3" in r.output and "epoch 3/3" in r.output
    info = json.loads((run_dir / "checkpoint.json").read_text())["info"]["training"]
    assert info["resumed_after_epoch"] == 1 and info["epochs_run"] == 3
    assert (run_dir / "training-state.pt").is_file()  # kept, marked finished: a resume with more epochs trains on
    r = CliRunner().invoke(main, [*fit, "--resume"])
    assert r.exit_code == 1 and "finished (stopped by epochs after epoch 3)" in r.output
    r = CliRunner().invoke(main, ["fit", "--model", "padim", "--data", str(tmp_path / "data"), "--category", "metal",
                                  "--out", str(tmp_path / "p.run"), "--resume"])
    assert r.exit_code == 1 and "Nothing to resume" in r.output


def test_fit_resume_with_more_epochs_from_the_cli(tmp_path) -> None:
    from edgeanomaly.cli import main

    run_dir = _fit_interrupted_after_epoch_1(tmp_path, epochs=2)
    fit = ["fit", "--model", "fastflow", "--data", str(tmp_path / "data"), "--category", "metal", "--out", str(run_dir),
           "--image-size", str(SIZE), "--backbone", "resnet18", "--no-pretrained", "--param", "flow_steps=2", "--resume"]
    r = CliRunner().invoke(main, [*fit, "--epochs", "4", "--param", "hidden_ratio=0.5"])
    assert r.exit_code == 1 and "hidden_ratio 1.0 (now 0.5)" in r.output, r.output
    r = CliRunner().invoke(main, [*fit, "--epochs", "4"])
    assert r.exit_code == 0, r.output
    assert "epoch 1/" not in r.output and "epoch 2/4" in r.output and "epoch 4/4" in r.output
    ckpt = json.loads((run_dir / "checkpoint.json").read_text())
    assert ckpt["info"]["training"]["epochs_run"] == 4 and ckpt["info"]["training"]["resumed_after_epoch"] == 1


def test_resume_on_other_images_of_the_same_count_is_refused(tmp_path) -> None:
    # The state's identity held the number of training images only: an image replaced (or
    # another folder of as many) between the interruption and --resume went on silently.
    import shutil

    from edgeanomaly.cli import main

    run_dir = _fit_interrupted_after_epoch_1(tmp_path, epochs=3)
    good = sorted((tmp_path / "data" / "metal" / "train" / "good").iterdir())
    shutil.copyfile(good[1], good[0])  # one image replaced by another: the count is the same
    fit = ["fit", "--model", "fastflow", "--data", str(tmp_path / "data"), "--category", "metal", "--out", str(run_dir),
           "--image-size", str(SIZE), "--backbone", "resnet18", "--no-pretrained", "--epochs", "3", "--param", "flow_steps=2",
           "--resume"]
    r = CliRunner().invoke(main, fit)
    assert r.exit_code == 1 and "other training images" in r.output, r.output


_RECIPE = """
[model]
name = "fastflow"
backbone = "resnet18"
pretrained = false
layers = ["layer1", "layer2"]
params = { flow_steps = 2, epochs = 1000, max_minutes = 0.15 }
[data]
image_size = 64
[export]
formats = ["onnx"]
precisions = ["fp32"]
"""


def test_export_recipe_takes_the_stopping_rules_as_fit_does(tmp_path) -> None:
    # export --recipe had no --epochs / --max-minutes: a recipe's stopping rules changed only in
    # a copy of the recipe, and so did a resume that should go on for longer
    from edgeanomaly.cli import main
    from edgeanomaly.data import generate_synthetic_dataset

    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=SIZE)
    (tmp_path / "tiny.toml").write_text(_RECIPE)  # epochs = 1000, max_minutes = 0.15
    data = ["--data", str(tmp_path / "data"), "--category", "metal"]
    r = CliRunner().invoke(main, ["export", "--recipe", str(tmp_path / "tiny.toml"), *data, "--out", str(tmp_path / "ff.bundle"),
                                  "--epochs", "2", "--max-minutes", "5"])
    assert r.exit_code == 0, r.output
    ckpt = json.loads((tmp_path / "ff.bundle.run" / "checkpoint.json").read_text())
    assert ckpt["info"]["training"]["epochs_run"] == 2 and ckpt["info"]["training"]["stopped_by"] == "epochs"
    assert ckpt["model"]["params"]["epochs"] == 2 and ckpt["model"]["params"]["max_minutes"] == 5.0
    assert "training state is kept in" in r.output and "patience in the recipe" in r.output  # and how to train it on:
    r = CliRunner().invoke(main, ["export", "--recipe", str(tmp_path / "tiny.toml"), *data, "--out", str(tmp_path / "ff.bundle"),
                                  "--epochs", "3", "--max-minutes", "5", "--resume", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert "epoch 2/" not in r.output and "epoch 3/3" in r.output
    training = json.loads((tmp_path / "ff.bundle.run" / "checkpoint.json").read_text())["info"]["training"]
    assert training["epochs_run"] == 3 and training["resumed_after_epoch"] == 2
    r = CliRunner().invoke(main, ["export", str(tmp_path / "ff.bundle.run"), "--out", str(tmp_path / "b2"), "--epochs", "2"])
    assert r.exit_code != 0 and "--epochs" in r.output and "--recipe" in r.output, r.output
    r = CliRunner().invoke(main, ["export", "--recipe", "patchcore", *data, "--out", str(tmp_path / "pc.bundle"), "--epochs", "2"])
    assert r.exit_code != 0 and "trained for epochs" in r.output, r.output


@pytest.mark.parametrize("command, signum", [("fit", signal.SIGINT), ("export", signal.SIGINT), ("fit", signal.SIGTERM)])
def test_ctrl_c_says_how_to_resume_and_the_command_it_prints_finishes(tmp_path, command: str, signum: int) -> None:
    # SIGTERM (a supervisor's stop) ended fit at once, with no word of where to go on from
    # A real Ctrl-C used to end in click's bare "Aborted!" (and a SIGABRT from the training
    # thread), and 'export --recipe' said "pass --resume" for a flag it did not have.
    from edgeanomaly.data import generate_synthetic_dataset

    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=SIZE)
    data = ["--data", str(tmp_path / "data"), "--category", "metal"]
    if command == "fit":
        run_dir = tmp_path / "ff.run"
        args = ["fit", "--model", "fastflow", *data, "--out", str(run_dir), "--image-size", str(SIZE), "--backbone", "resnet18",
                "--no-pretrained", "--epochs", "1000", "--max-minutes", "0.15", "--param", "flow_steps=2"]
    else:
        (tmp_path / "tiny.toml").write_text(_RECIPE)
        run_dir = tmp_path / "ff.bundle.run"
        args = ["export", "--recipe", str(tmp_path / "tiny.toml"), *data, "--out", str(tmp_path / "ff.bundle")]
    r = cli_stopped_when(args, lambda line: re.match(r"\s*epoch 2/", line) is not None, signum)
    assert r.returncode == 128 + signum, r.stderr
    how = "Interrupted" if signum == signal.SIGINT else "Stopped by SIGTERM"
    m = re.search(how + r" after epoch (\d+)/1000; the state of the last whole epoch is in (.+)\.\nContinue with:\n  (.+)\n",
                  r.stderr)
    assert m, r.stderr
    assert int(m[1]) >= 2 and Path(m[2]) == run_dir / "training-state.pt"
    assert sorted(p.name for p in run_dir.iterdir()) == ["training-state.pt"]  # no partial file beside it
    again = shlex.split(m[3])
    assert again == ["edgeanomaly", *args, "--resume"]
    done = subprocess.run([sys.executable, "-m", "edgeanomaly.cli", *again[1:]], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    training = json.loads((run_dir / "checkpoint.json").read_text())["info"]["training"]
    assert training["resumed_after_epoch"] == int(m[1])
    if command == "export":
        assert (tmp_path / "ff.bundle" / "manifest.json").is_file()


def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    # the 8 symmetries of the square, written with rot90 (not as the model writes them)
    return [torch.rot90(y, k, dims=(-2, -1)) for y in (x, x.flip(-1)) for k in range(4)]


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    # x moved dy rows down and dx columns right, the rows and columns that come in mirrored
    # from the edge (index -k reads k), by indexing (not as the model writes it)
    rows, cols = (torch.arange(x.shape[-2]) - dy).abs(), (torch.arange(x.shape[-1]) - dx).abs()
    return x[..., rows[:, None], cols[None, :]]


def _views(x: torch.Tensor, augment: str, shift_grid: int) -> list[torch.Tensor]:
    if augment == "dihedral":
        return _dihedral(x)
    if augment == "shifts":  # within the finest level's stride: resnet18's layer1, stride 4
        steps = {2: (0, 2), 3: (0, 1, 2)}[shift_grid]  # 4 / 2; 4 / 3 rounded to 1
        return [_shifted(x, dy, dx) for dy in steps for dx in steps]
    return [x, x.flip(-1), x.flip(-2), torch.rot90(x, 2, dims=(-2, -1))]


@pytest.mark.parametrize("augment, shift_grid, views", [("flips", 2, 4), ("dihedral", 2, 8), ("shifts", 2, 4), ("shifts", 3, 9)])
def test_augment_trains_on_every_view_of_each_image(augment: str, shift_grid: int, views: int) -> None:
    x = _images(5, 3)
    model = _model(augment=augment, shift_grid=shift_grid)
    features = model._extract([x[:3], x[3:]])
    symmetries = _views(x, augment, shift_grid)
    with torch.no_grad():
        expected = [model.embed(v) for v in symmetries]
    for level, f in enumerate(features):
        assert f.shape[0] == views * 5
        for i in range(5):
            rows = f[torch.arange(views) * 5 + i]  # the views of image i
            for k in range(views):  # each symmetry of the image is one of its rows
                target = expected[k][level][i]
                assert min(float((row - target).abs().max()) for row in rows) < 1e-5, (augment, level, i, k)


@pytest.mark.parametrize("backbone, layers, shift_grid, steps", [
    ("efficientnet_lite0", ["blocks.4", "blocks.10"], 2, (0, 4)),  # stride 8 and 16: half of 8
    ("efficientnet_lite0", ["blocks.4", "blocks.10"], 3, (0, 3, 6)),  # thirds of 8, rounded
    ("efficientnet_lite0", ["blocks.4", "blocks.10"], 4, (0, 2, 4, 6)),
    ("efficientnet_lite0", ["blocks.4", "blocks.10"], 5, (0, 1, 2, 3, 4)),  # 8 / 5 rounds to 2, and 4 x 2 is a whole stride
    ("efficientnet_lite0", ["blocks.4", "blocks.10"], 8, tuple(range(8))),
    ("efficientnet_lite0", ["blocks.2", "blocks.4", "blocks.10"], 2, (0, 2)),  # stride 4
    ("resnet18", ["layer2", "layer3"], 2, (0, 4)),
    ("resnet18", ["layer2", "layer3"], 3, (0, 3, 6))])
def test_shifts_move_images_on_a_grid_within_the_finest_stride(backbone: str, layers: list[str], shift_grid: int,
                                                              steps: tuple[int, ...]) -> None:
    model = create_model("fastflow", backbone=backbone, layers=layers, pretrained=False, augment="shifts", shift_grid=shift_grid)
    assert model._view_offsets() == [(dy, dx) for dy in steps for dx in steps]
    assert model._views_per_image() == len(steps) ** 2


def test_shift_grid_is_a_grid_within_the_finest_stride_and_applies_to_shifts_only() -> None:
    for grid in (1, 5):  # resnet18's layer1: stride 4
        with pytest.raises(ConfigError, match=rf"shift_grid as an integer from 2 to 4 \(the finest level's stride.*got {grid}"):
            _model(augment="shifts", shift_grid=grid)
    with pytest.raises(ConfigError, match="shift_grid=3 applies to augment='shifts' only; got augment='flips'"):
        _model(augment="flips", shift_grid=3)


def test_augment_holds_out_whole_images_and_reports_the_views() -> None:
    from edgeanomaly.models._fastflow import _view_rows

    rows = _view_rows(torch.tensor([2, 0]), 3, 4)
    assert rows.tolist() == [2, 0, 5, 3, 8, 6, 11, 9]  # image 2 and 0, each in all 4 views
    model = _model(augment="flips", epochs=2, validation_fraction=0.25).fit([_images(8, 4)])
    summary = model.training_summary_
    assert (summary["n_train"], summary["n_validation"], summary["views_per_image"]) == (6, 2, 4)
    assert model.get_config()["params"]["augment"] == "flips"
    plain = _model(epochs=2, validation_fraction=0.25).fit([_images(8, 4)])
    assert plain.training_summary_["views_per_image"] == 1
    grid = _model(augment="shifts", shift_grid=3, epochs=1, validation_fraction=0.25).fit([_images(8, 4)])
    assert (grid.training_summary_["n_train"], grid.training_summary_["views_per_image"]) == (6, 9)
    assert grid.get_config()["params"]["shift_grid"] == 3
    # trained on more views, scored the same way: one map and score per image
    out = model.predict(_images(2, 5))
    assert out["anomaly_map"].shape == (2, 1, SIZE, SIZE) and out["pred_score"].shape == (2,)


def test_dihedral_needs_square_images() -> None:
    x = torch.rand(2, 3, SIZE, SIZE + 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="must be square; got 64 x 96"):
        _model(augment="dihedral").fit([x])


def _fit_cli(tmp_path: Path, run_dir: Path, *extra: str) -> list[str]:
    """``edgeanomaly fit`` of a tiny FastFlow on ``tmp_path/data`` (made once) into ``run_dir``."""
    from edgeanomaly.data import generate_synthetic_dataset

    if not (tmp_path / "data").is_dir():
        generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=SIZE)
    return ["fit", "--model", "fastflow", "--data", str(tmp_path / "data"), "--category", "metal", "--out", str(run_dir),
            "--image-size", str(SIZE), "--backbone", "resnet18", "--no-pretrained", "--param", "flow_steps=2",
            "--param", "patience=10", *extra]


def test_a_finished_fit_trains_on_with_more_epochs_and_ends_as_a_fit_asked_for_them_at_first(tmp_path) -> None:
    # A fit that ended by its epoch count could not be continued: its state was deleted with the
    # checkpoint written, and --resume said "Nothing to resume".
    from edgeanomaly.cli import main

    r = CliRunner().invoke(main, _fit_cli(tmp_path, tmp_path / "whole.run", "--epochs", "4"))
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / "ff.run"
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "2"))
    assert r.exit_code == 0, r.output
    assert (run_dir / "training-state.pt").is_file() and "--resume" in r.output  # says how to train it on
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "2"))  # no flag: nothing replaced
    assert r.exit_code == 1 and "already exists" in r.output and "--overwrite" in r.output and "--resume" in r.output
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "2", "--resume"))  # nothing more to train
    assert r.exit_code == 1 and "finished" in r.output and "more epochs than 2" in r.output, r.output
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "4", "--resume"))
    assert r.exit_code == 0, r.output
    assert "epoch 2/4" not in r.output and "epoch 3/4" in r.output and "epoch 4/4" in r.output
    whole = json.loads((tmp_path / "whole.run" / "checkpoint.json").read_text())["info"]["training"]
    went_on = json.loads((run_dir / "checkpoint.json").read_text())["info"]["training"]
    assert went_on["resumed_after_epoch"] == 2 and went_on["epochs_run"] == 4
    assert [h["train_loss"] for h in went_on["history"]] == [h["train_loss"] for h in whole["history"]]
    assert went_on["best_epoch"] == whole["best_epoch"]


def test_a_fit_stopped_by_its_time_limit_trains_on_with_more_time(tmp_path) -> None:
    from edgeanomaly.cli import main

    run_dir = tmp_path / "ff.run"
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "3", "--max-minutes", "0.0001"))
    assert r.exit_code == 0, r.output
    first = json.loads((run_dir / "checkpoint.json").read_text())["info"]["training"]
    assert (first["stopped_by"], first["epochs_run"]) == ("max_minutes", 1)
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "3", "--max-minutes", "0.0001", "--resume"))
    assert r.exit_code == 1 and "finished (stopped by max_minutes after epoch 1)" in r.output, r.output
    assert "set max_minutes above" in r.output
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "3", "--max-minutes", "30", "--resume"))
    assert r.exit_code == 0, r.output
    went_on = json.loads((run_dir / "checkpoint.json").read_text())["info"]["training"]
    assert (went_on["stopped_by"], went_on["epochs_run"], went_on["resumed_after_epoch"]) == ("epochs", 3, 1)


def test_a_fit_stopped_early_trains_on_only_with_more_patience(tmp_path) -> None:
    from edgeanomaly.models._trained import mark_finished

    train = [_images(4, 1), _images(4, 2)]
    whole = _model(epochs=5, patience=10).fit(train)
    state = tmp_path / "training-state.pt"
    first = _model(epochs=3, patience=10)
    first.training_state_path = state
    first.fit(train)
    # as if early stopping had ended it after epoch 3, its best epoch 1 (the losses of these tiny
    # fits fall for many epochs on every CPU: the rule is what is tested here)
    saved = torch.load(state, weights_only=True)
    saved["best_epoch"] = 1
    torch.save(saved, state)
    mark_finished(state, "early stopping")
    same = _model(epochs=5, patience=2)
    same.training_state_path, same.resume_training = state, True
    with pytest.raises(ConfigError, match=r"finished \(stopped by early stopping after epoch 3\).*set a patience above 2"):
        same.fit(train)
    more = _model(epochs=5, patience=10)
    more.training_state_path, more.resume_training = state, True
    more.fit(train)
    assert [r["train_loss"] for r in more.training_history_] == [r["train_loss"] for r in whole.training_history_]


def test_a_one_pass_model_fitted_over_a_trained_run_leaves_no_training_state(tmp_path) -> None:
    from edgeanomaly.cli import main

    run_dir = tmp_path / "ff.run"
    assert CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "1")).exit_code == 0
    r = CliRunner().invoke(main, ["fit", "--model", "padim", "--data", str(tmp_path / "data"), "--category", "metal",
                                  "--out", str(run_dir), "--image-size", str(SIZE), "--backbone", "resnet18",
                                  "--no-pretrained", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert not (run_dir / "training-state.pt").exists()
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "2", "--resume"))
    assert r.exit_code == 1 and "Nothing to resume" in r.output


def test_a_fit_over_a_kept_state_interrupted_before_its_first_epoch_offers_no_resume_of_the_old_fit(tmp_path,
                                                                                                    monkeypatch) -> None:
    # fit --overwrite over a run holding a training state (a finished fit's, kept, or an
    # interrupted one's), stopped before its first epoch ended: the old fit's state stayed, and
    # Ctrl-C printed a --resume command that went on with the old fit (or was refused for the
    # settings the user had just changed)
    import edgeanomaly.models._fastflow as fastflow
    from edgeanomaly.cli import main

    run_dir = tmp_path / "ff.run"
    assert CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "2")).exit_code == 0

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastflow, "train_epoch", ctrl_c)
    r = CliRunner().invoke(main, _fit_cli(tmp_path, run_dir, "--epochs", "3", "--param", "hidden_ratio=0.5", "--overwrite"))
    assert r.exit_code != 0 and "Continue with" not in r.output, r.output
    assert not (run_dir / "training-state.pt").exists()


def test_features_kept_in_blocks_are_the_batches_view_by_view(monkeypatch: pytest.MonkeyPatch) -> None:
    # kept per batch, the features of 9 views of 1,000 images held 7.4 GB of memory for 2.4 GB of
    # features (the heap between them could not be reused); now they are copied into large blocks
    from edgeanomaly.models import _fastflow

    g = torch.Generator().manual_seed(0)
    batches = [[torch.randn(n, 3, 4, 4, generator=g) for n in sizes] for sizes in ((5, 7, 1), (2,), (13, 3))]
    monkeypatch.setattr(_fastflow, "_BLOCK_BYTES", 6 * 3 * 4 * 4 * 4)  # 6 rows a block: batches split across blocks
    views = [_fastflow._Rows() for _ in batches]
    for rows, view in zip(views, batches):
        for f in view:
            rows.append(f)
    assert [len(r.blocks) for r in views] == [3, 1, 3] and all(len(b) == 6 for r in views for b in r.blocks)
    out = _fastflow._concatenated(views)
    assert torch.equal(out, torch.cat([f for view in batches for f in view]))
    assert all(not r.blocks for r in views)  # let go once copied
