"""EfficientAD: its losses and map normalisation against naive numpy oracles, shapes, the
seeded fit, training history and resume. Export parity runs in the contract suites (the model
is registered)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from edgeanomaly.errors import ConfigError
from edgeanomaly.models import create_model
from edgeanomaly.models._efficientad import (_AutoEncoder, _pdn, hard_feature_loss, normalise_map, pdn_size,
                                            principal_axes, quantile)
from edgeanomaly.models._trained import mark_finished

SIZE = 64
TINY = {"width": 0.125, "teacher_epochs": 2, "epochs": 3, "train_batch_size": 4}


def tiny(**kw):
    return create_model("efficientad", **{"backbone": "resnet18", "pretrained": False, "random_state": 0, **TINY, **kw})


def batches(seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(4, 3, SIZE, SIZE, generator=g), torch.rand(4, 3, SIZE, SIZE, generator=g)]


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 4097])
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.995, 0.999, 1.0])
def test_quantile_is_numpys_linear_quantile(n: int, q: float) -> None:
    x = torch.randn(n, generator=torch.Generator().manual_seed(n)).reshape(-1, 1)
    assert float(quantile(x, q)) == pytest.approx(float(np.quantile(x.numpy().astype(np.float64), q)), rel=1e-6, abs=1e-7)


def test_hard_feature_loss_is_the_mean_above_the_quantile() -> None:
    g = torch.Generator().manual_seed(0)
    t, s = torch.randn(2, 5, 9, 9, generator=g), torch.randn(2, 5, 9, 9, generator=g)
    d = ((t - s) ** 2).numpy().astype(np.float64).ravel()
    for q in (0.5, 0.9, 0.999):
        cut = np.quantile(d, q)
        expected = d[d >= cut].mean()
        assert float(hard_feature_loss(t, s, q)) == pytest.approx(expected, rel=1e-5)
    # q = 0: every difference counts (the plain mean squared error)
    assert float(hard_feature_loss(t, s, 0.0)) == pytest.approx(d.mean(), rel=1e-5)


def test_hard_feature_loss_gradient_reaches_only_the_hard_positions() -> None:
    t = torch.zeros(1, 1, 2, 2)
    s = torch.tensor([[[[0.1, 0.2], [3.0, 0.3]]]], requires_grad=True)
    hard_feature_loss(t, s, 0.999).backward()
    # only the 3.0 position is at or above the 0.999 quantile: d(s^2)/ds = 2 s = 6
    torch.testing.assert_close(s.grad, torch.tensor([[[[0.0, 0.0], [6.0, 0.0]]]]))


def test_normalise_map_sends_the_quantiles_to_0_and_0_1() -> None:
    m = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(normalise_map(m, torch.tensor(1.0), torch.tensor(3.0)), torch.tensor([0.0, 0.05, 0.1]))


@pytest.mark.parametrize("n", [64, 96, 193, 256])
@pytest.mark.parametrize("strided", [False, True])
def test_pdn_size_matches_the_network(n: int, strided: bool) -> None:
    assert _pdn(3, 0.125, strided)(torch.zeros(1, 3, n, n)).shape[-1] == pdn_size(n, strided)
    assert pdn_size(256) == 56  # the paper's 56x56 map


def test_strided_pdn_keeps_the_depth_and_receptive_field_at_a_quarter_of_the_work() -> None:
    paper, strided = _pdn(8, 0.25), _pdn(8, 0.25, strided=True)
    convs = [[m for m in net if isinstance(m, torch.nn.Conv2d)] for net in (paper, strided)]
    assert [c.weight.shape for c in convs[0]] == [c.weight.shape for c in convs[1]]  # same parameters
    # receptive field by hand: 4, +3x2, +2x4, +3x4 = 30 px (the paper's: 33)
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    strided(x)[0, :, 0, 0].sum().backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    assert int(rows.max()) + 1 == 30


@pytest.mark.parametrize("n", [64, 256])
def test_light_decoder_reaches_the_map_size_without_the_stages_above_it(n: int) -> None:
    paper, light = _AutoEncoder(5), _AutoEncoder(5, light=True)
    assert len(paper.decoder) == 6 and len(light.decoder) == 4
    x = torch.rand(1, 3, n, n)
    for ae in (paper, light):
        assert ae.eval()(x, pdn_size(n, True)).shape == (1, 5, pdn_size(n, True), pdn_size(n, True))


def test_principal_axes_against_numpys_svd() -> None:
    g = torch.Generator().manual_seed(3)
    maps = torch.randn(4, 6, 5, 7, generator=g) * torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.1]).view(1, 6, 1, 1)
    basis, kept = principal_axes(maps, 3)
    rows = maps.permute(0, 2, 3, 1).reshape(-1, 6).numpy().astype(np.float64)
    _, sv, vt = np.linalg.svd(rows, full_matrices=False)
    # the same axes up to sign, largest first, and the share of the second moment
    np.testing.assert_allclose(np.abs(basis.numpy().T @ vt[:3].T), np.eye(3), atol=1e-5)
    assert kept == pytest.approx((sv[:3] ** 2).sum() / (sv ** 2).sum(), rel=1e-9)


def test_teacher_channels_set_the_teacher_the_student_and_the_autoencoder() -> None:
    m = tiny(teacher_channels=7, strided=True, light_decoder=True).fit(batches())
    x = torch.cat(batches())[:2]
    with torch.no_grad():
        assert m.teacher(x).shape[1] == 7 and m.student(x).shape[1] == 14
        score, amap = m(x)
    assert amap.shape == (2, 1, SIZE, SIZE) and torch.isfinite(score).all()
    assert 0 < m.training_summary_["teacher_target_variance"] < 1
    with pytest.raises(ConfigError, match="teacher_channels <= 384"):
        tiny(teacher_channels=385)  # resnet18's layer2 + layer3: 128 + 256


def test_fit_sets_quantiles_from_held_out_maps_and_records_history() -> None:
    m = tiny().fit(batches())
    assert m.training_history_[0]["stage"] == "teacher" and len(m.training_history_) == 2 + 3
    assert m.training_summary_["n_validation"] == 1 and m.training_summary_["n_train"] == 7
    assert sum(r["best"] for r in m.training_history_) == 1
    # the map quantiles are those of the held-out image's maps (a naive numpy oracle)
    images = torch.cat(batches())
    _, val_idx = m._split(8)
    with torch.no_grad():
        m_st, m_ae = m._maps(images[val_idx])
    expect = [np.quantile(x.numpy().astype(np.float64), q) for x in (m_st, m_ae) for q in (0.9, 0.995)]
    np.testing.assert_allclose(m.map_quantiles.numpy(), expect, rtol=1e-5)
    # the anomaly map is the mean of the two normalised maps, padded and resized
    with torch.no_grad():
        score, amap = m(images[:2])
    assert amap.shape == (2, 1, SIZE, SIZE) and score.shape == (2,)
    with torch.no_grad():
        m_st, m_ae = m._maps(images[:2])
    q = m.map_quantiles
    small = 0.05 * (m_st - q[0]) / (q[1] - q[0]) + 0.05 * (m_ae - q[2]) / (q[3] - q[2])
    # padded by the PDN's border (64 px: a 8x8 map, 4 cells of zeros) and resized to the input
    manual = torch.nn.functional.interpolate(torch.nn.functional.pad(small, (4, 4, 4, 4)), size=(SIZE, SIZE),
                                             mode="bilinear", align_corners=False)
    torch.testing.assert_close(amap, manual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(score, manual.amax(dim=(1, 2, 3)), rtol=1e-5, atol=1e-6)


def test_seeded_fit_is_deterministic_and_seeds_differ() -> None:
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))
    a, b = tiny().fit(batches()), tiny().fit(batches())
    c = tiny(random_state=None).fit(batches())  # random_state None is seed 0 too
    d = tiny(random_state=1).fit(batches())
    with torch.no_grad():
        torch.testing.assert_close(a(x)[1], b(x)[1], rtol=0, atol=0)
        torch.testing.assert_close(a(x)[1], c(x)[1], rtol=0, atol=0)
        assert not torch.equal(a(x)[1], d(x)[1])


def test_resume_after_interruption_ends_as_an_uninterrupted_fit(tmp_path) -> None:
    whole = tiny().fit(batches())
    m = tiny()
    m.training_state_path = tmp_path / "state.pt"
    calls = []

    def stop_after_first_student_epoch(record):
        calls.append(record)
        if record["stage"] == "student":
            raise KeyboardInterrupt

    m.epoch_callback = stop_after_first_student_epoch
    with pytest.raises(KeyboardInterrupt):
        m.fit(batches())
    r = tiny()
    r.training_state_path, r.resume_training = tmp_path / "state.pt", True
    r.fit(batches())
    assert r.training_summary_["resumed_after_epoch"] == 1
    assert [h["epoch"] for h in r.training_history_] == [h["epoch"] for h in whole.training_history_]
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(r(x)[1], whole(x)[1], rtol=1e-5, atol=1e-6)


def test_a_resumed_fit_may_train_the_student_for_more_epochs_but_not_change_the_teachers(tmp_path) -> None:
    m = tiny()
    m.training_state_path = tmp_path / "state.pt"

    def stop_after_first_student_epoch(record):
        if record["stage"] == "student":
            raise KeyboardInterrupt

    m.epoch_callback = stop_after_first_student_epoch
    with pytest.raises(KeyboardInterrupt):
        m.fit(batches())
    teachers = tiny(epochs=5, teacher_epochs=3)
    teachers.training_state_path, teachers.resume_training = tmp_path / "state.pt", True
    with pytest.raises(ConfigError, match=r"teacher_epochs 2 \(now 3\)"):
        teachers.fit(batches())
    more = tiny(epochs=5)
    more.training_state_path, more.resume_training = tmp_path / "state.pt", True
    more.fit(batches())
    assert more.training_summary_["resumed_after_epoch"] == 1
    assert [(h["stage"], h["epoch"]) for h in more.training_history_] == [("teacher", 1), ("teacher", 2)] + [
        ("student", e) for e in range(1, 6)]


def test_a_finished_fit_trains_its_student_on_and_ends_as_a_fit_asked_for_more_epochs_at_first(tmp_path) -> None:
    # lr_drop_at=1: no drop inside the run, so the continuation and the longer fit see the same rates
    whole = tiny(epochs=5, lr_drop_at=1.0).fit(batches())
    m = tiny(lr_drop_at=1.0)
    m.training_state_path = tmp_path / "state.pt"
    m.fit(batches())
    mark_finished(m.training_state_path, m.training_summary_["stopped_by"])
    again = tiny(lr_drop_at=1.0)
    again.training_state_path, again.resume_training = tmp_path / "state.pt", True
    with pytest.raises(ConfigError, match=r"finished \(stopped by epochs after epoch 3\).*more epochs than 3"):
        again.fit(batches())
    more = tiny(epochs=5, lr_drop_at=1.0)
    more.training_state_path, more.resume_training = tmp_path / "state.pt", True
    more.fit(batches())
    assert more.training_summary_["resumed_after_epoch"] == 3
    assert [(h["stage"], h["epoch"]) for h in more.training_history_] == [("teacher", 1), ("teacher", 2)] + [
        ("student", e) for e in range(1, 6)]  # the teacher is not distilled again
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(more(x)[1], whole(x)[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("max_minutes, teacher, student", [(4, 2, 2), (1, 1, 1), (30, 10, 5)])
def test_the_teacher_takes_at_most_its_share_of_max_minutes_and_the_student_always_trains(
        monkeypatch, max_minutes: float, teacher: int, student: int) -> None:
    # At factory scale the distillation (256 images, four flips, 80 epochs on a 2-core CPU)
    # used up --max-minutes before the student started: the fit ended "stopped by max_minutes"
    # with an untrained student and autoencoder, and scored with them.
    from edgeanomaly.models._trained import TrainingRun

    monkeypatch.setattr(TrainingRun, "seconds", lambda run: 60.0 * len(run.history))  # each epoch "takes" a minute
    m = tiny(teacher_epochs=10, epochs=5, patience=10, max_minutes=max_minutes)
    m.fit(batches())
    stages = [r["stage"] for r in m.training_history_]
    assert (stages.count("teacher"), stages.count("student")) == (teacher, student)
    summary = m.training_summary_
    assert summary["teacher_epochs_run"] == teacher and summary["epochs_run"] == student
    assert summary["teacher_stopped_by"] == ("teacher_epochs" if teacher == 10 else "max_minutes")
    assert summary["stopped_by"] == ("epochs" if student == 5 else "max_minutes")


@pytest.mark.parametrize("max_minutes, message", [
    (8, r"EfficientAD distilled its teacher for 4 of its 10 epochs: the time limit \(max_minutes=8\)"),
    (1, r"EfficientAD distilled its teacher for 1 of its 10 epochs and trained its student for 1 of its 5 epochs: "),
    (30, None)])
def test_a_fit_its_time_limit_cut_short_warns_in_python(monkeypatch, max_minutes: float, message: str | None) -> None:
    # in Python (ea.fit, EfficientAD.fit) nothing said that the time limit had ended the teacher
    # or the student after a few of their epochs; only the CLI's epoch lines did
    import warnings

    from edgeanomaly.models import UndertrainedWarning
    from edgeanomaly.models._trained import TrainingRun

    monkeypatch.setattr(TrainingRun, "seconds", lambda run: 60.0 * len(run.history))  # each epoch "takes" a minute
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny(teacher_epochs=10, epochs=5, patience=10, max_minutes=max_minutes).fit(batches())
    said = [str(w.message) for w in caught if issubclass(w.category, UndertrainedWarning)]
    if message is None:
        assert said == []
    else:  # 8 minutes: the teacher's share ends it after 4 epochs, the student trains 4 of 5
        assert len(said) == 1 and re.search(message, said[0]), said


def test_fit_says_when_the_teachers_share_of_the_time_ended_its_distillation(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from edgeanomaly.cli import main
    from edgeanomaly.data import generate_synthetic_dataset
    from edgeanomaly.models._trained import TrainingRun

    monkeypatch.setattr(TrainingRun, "seconds", lambda run: 60.0 * len(run.history))  # each epoch "takes" a minute
    generate_synthetic_dataset(tmp_path / "data", ["metal"], n_train=8, n_test=2, seed=0, size=SIZE)
    r = CliRunner().invoke(main, ["fit", "--model", "efficientad", "--data", str(tmp_path / "data"), "--category", "metal",
                                  "--out", str(tmp_path / "ead.run"), "--image-size", str(SIZE), "--backbone", "resnet18",
                                  "--no-pretrained", "--param", "width=0.125", "--param", "teacher_epochs=10",
                                  "--epochs", "5", "--max-minutes", "2"])
    assert r.exit_code == 0, r.output
    assert "teacher epoch 1/10:" in r.output and "about 0.0 min left for the teacher" in r.output, r.output
    assert "teacher epoch 2/" not in r.output and "student epoch 1/5:" in r.output and "student epoch 2/" not in r.output
    assert "Distilled the teacher for 1 of 10 epochs (ended by its share of the time limit" in r.output, r.output
    assert re.search(r"Trained 1 of 5 epochs on \d+ images, .*stopped by max_minutes", r.output), r.output
    # said while it runs, once a stage, with what to do instead (the epochs stopped that early
    # gave pixel AUROC 0.55 with the paper's networks on a CPU)
    assert r.output.count("warning: at ") == 2 and r.output.count("stops it after about 1 of them") == 2, r.output
    assert "the teacher's 10 epochs need about" in r.output and "export --list-recipes" in r.output, r.output


def test_resume_without_state_or_of_another_fit_is_a_clear_error(tmp_path) -> None:
    m = tiny()
    m.training_state_path, m.resume_training = tmp_path / "none.pt", True
    with pytest.raises(ConfigError, match="Nothing to resume"):
        m.fit(batches())


@pytest.mark.parametrize("bad", [{"width": 0}, {"epochs": 0}, {"hard_quantile": 1.0}, {"q_a": 0.99, "q_b": 0.9},
                                 {"max_minutes": -1}, {"teacher_epochs": 1.5}, {"teacher_channels": 0},
                                 {"learning_rate": float("nan")}])
def test_bad_settings_are_clear_errors(bad) -> None:
    with pytest.raises(ConfigError, match="Expected"):
        tiny(**bad)


@pytest.mark.parametrize("setting", ["strided", "light_decoder"])
@pytest.mark.parametrize("value", ["no", "False", 0, None])
def test_a_switch_takes_true_or_false_only(setting: str, value) -> None:
    # bool("no") and bool("False") are True: --param strided=False turned it on
    with pytest.raises(ConfigError, match=f"Expected {setting} as true or false, got {value!r}"):
        tiny(**{setting: value})


def test_learning_rate_drops_tenfold_after_95_percent_of_the_epochs_as_in_the_paper() -> None:
    m = tiny(epochs=20, learning_rate=2e-4, patience=20).fit(batches())
    student = [r for r in m.training_history_ if r["stage"] == "student"]
    assert [r["learning_rate"] for r in student] == [2e-4] * 19 + [pytest.approx(2e-5)]
    kept = tiny(epochs=4, lr_drop_at=1.0).fit(batches())
    assert [r["learning_rate"] for r in kept.training_history_ if r["stage"] == "student"] == [1e-4] * 4
    half = tiny(epochs=4, lr_drop_at=0.5).fit(batches())
    assert [r["learning_rate"] for r in half.training_history_ if r["stage"] == "student"] == pytest.approx(
        [1e-4, 1e-4, 1e-5, 1e-5])
    with pytest.raises(ConfigError, match=r"Expected lr_drop_at in \(0, 1\], got 0"):
        tiny(lr_drop_at=0)


def _recording_targets(model, seen: list):
    """``model`` with its own ``_targets`` recording the images it is given in ``seen``."""
    real = model._targets

    def targets(images):
        seen.append(images.clone())
        return real(images)

    model._targets = targets
    return model


def test_the_teacher_is_distilled_on_at_most_teacher_images_of_a_large_set() -> None:
    # The teacher's targets were computed for every training image and its three flips at once:
    # the recipe's fit peaked at 6 GB for 250 images, 22 GB for 1000 (docs/BENCHMARKS.md), so
    # a fit of a few thousand images could not hold in memory.
    seen: list = []
    images = torch.cat(batches())  # 8 distinct images
    _recording_targets(tiny(teacher_images=3), seen).fit(batches())
    (used,) = seen
    assert used.shape[0] == 3
    rows = {bytes(img.numpy().tobytes()) for img in images}
    assert all(bytes(img.numpy().tobytes()) in rows for img in used)  # a subset of the training images
    _recording_targets(tiny(teacher_images=3), seen).fit(batches())
    assert torch.equal(seen[1], used)  # seeded: the same subset every time
    _recording_targets(tiny(teacher_images=8), seen).fit(batches())
    assert torch.equal(seen[2], images)  # no more images than the cap: all of them, in order


def test_flip_views_are_the_rows_of_the_materialised_views() -> None:
    from edgeanomaly.models._efficientad import _flip_views

    images = torch.rand(5, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    views = torch.cat([images, images.flip(-1), images.flip(-2), images.flip(-1, -2)])  # as the fit built them
    for rows in ([0], [4, 5, 19], list(range(20)), [17, 3, 8]):
        assert torch.equal(_flip_views(images, torch.tensor(rows)), views[rows])


def test_principal_axes_in_blocks_equal_the_one_product() -> None:
    maps = torch.randn(37, 6, 5, 4, generator=torch.Generator().manual_seed(2))
    rows = maps.permute(0, 2, 3, 1).reshape(-1, 6).double()
    values, vectors = torch.linalg.eigh(rows.T @ rows)
    for block in (1, 5, 37, 100):
        basis, kept = principal_axes(maps, 3, maps_per_block=block)
        torch.testing.assert_close(basis.abs(), vectors[:, -3:].flip(-1).float().abs(), rtol=1e-5, atol=1e-6)
        assert kept == pytest.approx(float(values[-3:].sum() / values.sum()), rel=1e-12)
