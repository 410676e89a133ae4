"""Progress off a terminal (a log): one line per stage, then lines with an ETA (issue 22: the
coreset selection was a silent wait)."""

from __future__ import annotations

import re

from edgeanomaly.cli._common import StageBar


def test_off_a_terminal_a_long_stage_prints_its_count_and_an_eta(capsys) -> None:
    bar = StageBar(every_s=0.0)
    bar("fit", 5, 10)
    bar("fit", 10, 10)
    for done in (100, 200, 400):
        bar("coreset", done, 400)
    bar.close()
    err = capsys.readouterr().err
    assert "... fit (10)" in err and "... coreset (400)" in err
    assert re.search(r"\.\.\. coreset 200/400, about \d+ s left", err), err
    assert "400/400" not in err  # nothing left to estimate once done


def test_lines_are_rate_limited(capsys) -> None:
    bar = StageBar(every_s=3600.0)
    for done in range(1, 100):
        bar("coreset", done, 100)
    bar.close()
    assert capsys.readouterr().err.count("\n") == 1  # the stage line only


def test_epoch_eta_counts_only_the_epochs_of_the_stage_it_is_in(capsys) -> None:
    # EfficientAD trains its teacher (1.7 s an epoch) and then its student (3 s): the student's
    # first line said "at most 2.9 min left" for 99 epochs of 3 s (5 min) from the teacher's mean
    from edgeanomaly.cli._fit import EpochLines

    lines = EpochLines()
    for epoch in range(1, 81):
        lines({"stage": "teacher", "epoch": epoch, "epochs": 80, "train_loss": 1.0, "val_loss": 1.0,
               "best_epoch": epoch, "seconds": 1.0})
    capsys.readouterr()
    lines({"stage": "student", "epoch": 1, "epochs": 100, "train_loss": 20.0, "val_loss": 19.0,
           "best_epoch": 1, "seconds": 3.0})
    err = capsys.readouterr().err
    assert "student epoch 1/100: " in err and "about 5.0 min left for the student" in err, err  # 99 epochs at 3 s


def test_epoch_eta_is_at_most_the_time_the_stage_has_left(capsys) -> None:
    # --max-minutes 12 on many images: "about 11.6 min left for the teacher" for 80 epochs of
    # 8.7 s, though the teacher stops at its share (6 min) and the student at 12
    from edgeanomaly.cli._fit import EpochLines

    lines = EpochLines()
    lines({"stage": "teacher", "epoch": 1, "epochs": 80, "train_loss": 1.0, "val_loss": 1.0, "held_out": False,
           "best_epoch": 1, "seconds": 8.7, "seconds_left": 351.3})
    lines({"stage": "student", "epoch": 1, "epochs": 100, "train_loss": 2.0, "val_loss": 3.0, "best_epoch": 1,
           "seconds": 56.0, "seconds_left": -4.0})
    lines({"epoch": 2, "epochs": 100, "train_loss": 2.0, "val_loss": 3.0, "best_epoch": 1, "seconds": 6.0,
           "seconds_left": None})
    err = capsys.readouterr().err.splitlines()
    assert "about 5.9 min left for the teacher" in err[0], err
    assert "about 0.0 min left for the student" in err[1], err
    assert "warning: " in err[2] and "after about 1 of them" in err[2], err  # the student's 100 epochs
    assert "about 9.8 min left" in err[3], err  # no time limit: the epochs decide


def test_a_time_limit_that_cuts_a_stage_short_is_said_after_its_first_epoch(capsys) -> None:
    # fit --model efficientad --max-minutes 3 on a CPU (the paper's network sizes): the teacher's
    # first epoch took 171 s of its 90 s share, the student's 134 s, so each trained 1 epoch (of
    # 20 and 100) and pixel AUROC came out 0.55; the lines said only "about 0.0 min left"
    from edgeanomaly.cli._fit import EpochLines

    lines = EpochLines(advice="a smaller model: see the recipes")
    lines({"stage": "teacher", "epoch": 1, "epochs": 20, "train_loss": 1.0, "val_loss": 1.0, "held_out": False,
           "best_epoch": 1, "seconds": 170.6, "seconds_left": -80.6})
    lines({"stage": "teacher", "epoch": 2, "epochs": 20, "train_loss": 1.0, "val_loss": 1.0, "held_out": False,
           "best_epoch": 2, "seconds": 170.6, "seconds_left": -251.2})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3, err  # said once a stage, after its first epoch
    assert err[1].startswith("  warning: ") and "the teacher's 20 epochs need about 56.9 min" in err[1], err
    assert "the time limit stops it after about 1 of them" in err[1] and "a smaller model: see the recipes" in err[1], err
    lines({"stage": "student", "epoch": 1, "epochs": 100, "train_loss": 2.0, "val_loss": 3.0, "best_epoch": 1,
           "seconds": 6.0, "seconds_left": 300.0})  # 51 of 100 epochs fit: more than half, no warning
    lines({"epoch": 1, "epochs": 100, "train_loss": 2.0, "val_loss": 3.0, "best_epoch": 1, "seconds": 6.0,
           "seconds_left": 200.0})  # 34 of 100
    lines({"epoch": 1, "epochs": 100, "train_loss": 2.0, "val_loss": 3.0, "best_epoch": 1, "seconds": 6.0,
           "seconds_left": None})  # no time limit: the epochs decide
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and "warning" not in err[0] and "warning" not in err[3], err
    assert "the 100 epochs need about 10.0 min" in err[2] and "after about 34 of them" in err[2], err


def test_an_epoch_with_nothing_held_out_prints_no_held_out_loss(capsys) -> None:
    # EfficientAD's teacher and a fit with validation_fraction=0 have no held-out images: their
    # lines said "held-out 1.0" (the training loss again)
    from edgeanomaly.cli._fit import EpochLines

    lines = EpochLines()
    lines({"stage": "teacher", "epoch": 1, "epochs": 80, "train_loss": 1.0, "val_loss": 1.0, "held_out": False,
           "best_epoch": 1, "seconds": 1.0})
    lines({"epoch": 1, "epochs": 80, "train_loss": 2.0, "val_loss": 3.0, "best_epoch": 1, "seconds": 1.0})
    err = capsys.readouterr().err.splitlines()
    assert "held-out" not in err[0] and "teacher epoch 1/80: loss 1 (best epoch 1)" in err[0], err
    assert "loss 2, held-out 3 (best epoch 1)" in err[1], err


def test_fit_says_why_a_metric_is_undefined(capsys) -> None:
    # fit's default split left 1 normal 192 px test image for the metrics: "pixel_aupimo nan",
    # with nothing saying why (AUPIMO needs 1e5 normal pixels)
    from edgeanomaly.cli._fit import print_metrics

    print_metrics({"image_auroc": 1.0, "pixel_aupimo": float("nan")}, None)
    out = capsys.readouterr().out
    assert "image_auroc            1.0000" in out and "nan" not in out, out
    assert "pixel_aupimo           undefined" in out, out
    assert "AUPIMO at least 100000 normal pixels" in out and "--calibration-split same_as_test" in out, out


def test_fit_prints_no_note_when_every_metric_is_defined(capsys) -> None:
    from edgeanomaly.cli._fit import print_metrics

    print_metrics({"image_auroc": 1.0, "pixel_aupimo": 0.5}, None)
    assert "undefined" not in capsys.readouterr().out
