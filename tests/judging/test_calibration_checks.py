"""Calibration to trust: the split of a labelled test set, the warnings, the refreshed reference."""

from __future__ import annotations

import numpy as np
import pytest

from edgeanomaly.bundle import Calibration
from edgeanomaly.data import file_sha256
from edgeanomaly.judging._calibration_checks import calibration_warnings, refreshed_reference_metrics
from edgeanomaly.judging._split import calibration_split


def test_split_is_stratified_disjoint_seeded_and_covers_everything() -> None:
    y = np.array([0] * 2 + [1] * 8)  # hazelnut's test split
    cal, ev = calibration_split(y, seed=3)
    assert set(cal).isdisjoint(ev) and sorted([*cal, *ev]) == list(range(10))
    assert sorted(y[cal]) == [0, 1, 1, 1, 1] and sorted(y[ev]) == [0, 1, 1, 1, 1]  # ceil(0.5 n) per class
    assert np.array_equal(calibration_split(y, seed=3)[0], cal)  # deterministic
    assert not np.array_equal(calibration_split(np.array([0] * 20 + [1] * 20), seed=1)[0],
                              calibration_split(np.array([0] * 20 + [1] * 20), seed=2)[0])
    every = np.arange(10)
    for same in (calibration_split(y, "same_as_test"), calibration_split(np.array([0] + [1] * 9))):  # one normal: cannot split
        assert np.array_equal(same[0], every) and np.array_equal(same[1], every)
    with pytest.raises(ValueError, match="Expected calibration split"):
        calibration_split(y, "val")


def _cal(t: float, method: str = "quantile", q: float | None = 0.99) -> Calibration:
    return Calibration(t, 0.0, 100.0, method=method, quantile=q if method == "quantile" else None)


def test_warnings_hand_computed(tmp_path) -> None:
    normal = np.arange(30, dtype=float)  # 30 normal scores 0..29
    y = np.zeros(30, int)
    # quantile 0.99 needs 100 images; a threshold of 28.7 flags 2 of 30 good ones: only "too few"
    w = calibration_warnings(_cal(28.7), normal, y)
    assert len(w) == 1 and "30 normal images are too few for the 0.99 quantile (it needs at least 100" in w[0]
    # the case: a threshold from training images flags every known-good part
    known_good = np.array([20.0, 26.0])
    w = calibration_warnings(_cal(11.8, q=0.5), normal, y, known_good_scores=known_good)
    assert any("flags 2 of 2 good images of the bundle's reference data" in r for r in w)
    assert any("flags 18 of 30 calibration images" in r for r in w)  # 12..29 >= 11.8
    (tmp_path / "a.png").write_bytes(b"abc")
    h = file_sha256(tmp_path / "a.png")
    assert h == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    w = calibration_warnings(_cal(28.7, q=0.9), normal, y, image_hashes=[h, "x"], training_hashes=[h])
    assert w == [w[0]] and "1 of 2 calibration images are training images" in w[0]
    labelled = calibration_warnings(_cal(5.0, "f1_adaptive"), np.array([1.0, 2, 8, 9]), np.array([0, 0, 1, 1]))
    assert labelled and "2 normal and 2 anomalous images are too few for a stable F1 threshold" in labelled[0]
    assert calibration_warnings(_cal(20.5, "f1_adaptive"), np.arange(40.0), np.array([0] * 20 + [1] * 20)) == []


def test_refreshed_reference_keeps_threshold_free_and_recomputes_f1() -> None:
    from sklearn.metrics import f1_score

    old = {"image_auroc": 0.9, "image_f1": 0.5, "pixel_aupro": 0.7, "pixel_pro": 0.4, "pixel_f1": 0.3}
    scores, labels = np.array([0.1, 0.4, 0.35, 0.8, 0.9]), np.array([0, 0, 1, 1, 1])
    new, note = refreshed_reference_metrics(old, _cal(0.36, "f1_adaptive"), scores, labels)
    assert new["image_auroc"] == 0.9 and new["pixel_aupro"] == 0.7
    assert new["image_f1"] == pytest.approx(f1_score(labels, scores >= 0.36))
    assert "pixel_pro" not in new and "pixel_f1" not in new and "pixel_pro, pixel_f1 dropped" in note
    without, note = refreshed_reference_metrics(old, _cal(0.36, "f1_adaptive"), None, None)
    assert "image_f1" not in without and "image_f1, pixel_pro, pixel_f1 dropped" in note


def test_no_calibration_image_sits_on_the_threshold_when_all_are_flagged() -> None:
    """An F1-optimal threshold at the lowest score (every image flagged: a weak model, 2 normal
    of 10) used to be that score itself: FP32 noise of 1e-7 then flipped the image in validate."""
    from edgeanomaly.judging._calibration import compute_calibration

    scores = np.array([5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 7.0, 8.0, 9.0, 10.0])
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])  # normals in the middle: best F1 flags everything
    cal = compute_calibration(scores, labels)
    assert cal.image_threshold < scores.min()
    assert cal.image_threshold == pytest.approx(0.5)  # half the gap to the next value below the minimum's mirror
    assert (scores >= cal.image_threshold).all()
