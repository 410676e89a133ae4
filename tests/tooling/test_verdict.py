"""The verdict: hand-computed cases and naive oracles (scikit-learn, brute force, scipy)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edgeanomaly.tooling import FAIL, INCONCLUSIVE, PASS, TOLERANCES, Tolerance, judge, one_image_share
from edgeanomaly.tooling._verdict import _spearman, _swapped_pairs, worst

# 2 normal + 8 anomalous, as the hazelnut subset: the reference ranks them perfectly.
REF = np.array([0.1, 0.2] + [0.5 + 0.05 * i for i in range(8)])
LABELS = np.array([0, 0] + [1] * 8)


def auroc(s: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def test_identical_outputs_pass_every_precision() -> None:
    for precision in TOLERANCES:
        v = judge(precision, 0.35, scores=REF.copy(), ref_scores=REF, labels=LABELS,
                  metrics={"image_auroc": 1.0}, ref_metrics={"image_auroc": 1.0}, n_normal=2, n_anomalous=8)
        assert v.outcome == PASS and not v.reasons
        assert v.measures["decision_flips"] == 0 and v.measures["swapped_pairs"] == 0
        assert v.measures["rank_spearman"] == pytest.approx(1.0)


def test_one_swapped_pair_on_ten_images_is_inconclusive_not_fail() -> None:
    # The DFM FP16 case: one normal image moves above one anomalous image, decisions
    # unchanged: image AUROC moves by 1/16 = 0.0625 > 0.01, but one image can move it by 1/2.
    s = REF.copy()
    s[1] = 0.52  # above the lowest anomalous image (0.5), both below the threshold: no flip
    threshold = 0.55
    ref_auc, auc = auroc(REF, LABELS), auroc(s, LABELS)
    assert auc - ref_auc == pytest.approx(-1 / 16)
    v = judge("fp16", threshold, scores=s, ref_scores=REF, labels=LABELS, metrics={"image_auroc": auc},
              ref_metrics={"image_auroc": ref_auc}, n_normal=2, n_anomalous=8,
              tolerances={"fp16": Tolerance(None, 0.01, 1, 0.01)})  # FP16's, without the output check
    check = next(c for c in v.checks if c.name == "image_auroc")
    assert check.outcome == INCONCLUSIVE and v.outcome == INCONCLUSIVE
    assert "1 of 16 normal/anomalous pairs swapped" in check.message
    # hand-computed: 1 / (0.0625 - 0.01) = 19.05 -> 20 images of each class would tell
    assert "about 20 images of each class" in check.message
    assert v.measures["swapped_pairs"] == 1 and v.measures["decision_flips"] == 0


def test_metric_decisions_hand_computed() -> None:
    tol = Tolerance(None, 0.01)  # metric tolerance only
    base = dict(scores=REF, ref_scores=REF, n_normal=10, n_anomalous=40, tolerances={"x": tol})
    # one image's share = 1/10: pass within 0.01, fail beyond 0.11, inconclusive between
    for value, expected in ((0.995, PASS), (0.99, PASS), (0.95, INCONCLUSIVE), (0.89, INCONCLUSIVE), (0.88, FAIL)):
        v = judge("x", 0.3, metrics={"image_auroc": value}, ref_metrics={"image_auroc": 1.0}, **base)
        assert v.outcome == expected, (value, v.reasons)
    # two-sided: a rise is drift too; one-sided (INT8) only losses count
    up = judge("x", 0.3, metrics={"image_auroc": 0.9}, ref_metrics={"image_auroc": 0.7}, **base)
    assert up.outcome == FAIL
    up8 = judge("int8", 0.3, scores=REF, ref_scores=REF, metrics={"image_auroc": 0.9}, ref_metrics={"image_auroc": 0.7},
                n_normal=10, n_anomalous=40)
    assert up8.outcome == PASS


def test_output_differences_and_flips_are_judged_per_precision() -> None:
    s = REF * (1 + 2e-4)  # 2e-4 relative: beyond FP32's 1e-4, within FP16's 0.05
    assert judge("fp32", 0.3, scores=s, ref_scores=REF).outcome == FAIL
    assert judge("fp16", 0.3, scores=s, ref_scores=REF).outcome == PASS
    flipped = REF.copy()
    flipped[[0, 1]] = 0.31  # two normal images cross the threshold 0.3
    assert judge("fp16", 0.3, scores=flipped, ref_scores=REF).outcome == FAIL  # 2 > max(1, 1% of 10)
    assert judge("int8", 0.3, scores=flipped, ref_scores=REF).outcome == PASS  # 2 <= max(2, 5% of 10)
    v = judge("fp32", 0.3, scores=flipped, ref_scores=REF)
    assert v.measures["decision_flips"] == 2 and any("2 of 10 images change decision" in r for r in v.reasons)
    # a torch score sitting on the threshold: FP32 noise flips it, and that is not a failure
    on_edge = REF.copy()
    on_edge[2] = 0.3
    noisy = on_edge.copy()
    noisy[2] = 0.3 - 1e-7
    v = judge("fp32", 0.3, scores=noisy, ref_scores=on_edge)
    assert v.outcome == PASS and v.measures["decision_flips"] == 1 and v.measures["borderline_flips"] == 1
    assert "1 within the output tolerance of the threshold, not counted" in v.checks[-1].message
    maps = np.ones((2, 4, 4))
    assert judge("fp32", 0.3, scores=REF, ref_scores=REF, maps=maps * 1.01, ref_maps=maps).outcome == FAIL
    with pytest.raises(ValueError, match="Expected paired scores"):
        judge("fp32", 0.3, scores=REF[:3], ref_scores=REF)
    with pytest.raises(ValueError, match="Expected precision"):
        judge("fp64", 0.3, scores=REF, ref_scores=REF)


def test_one_image_share_is_the_largest_auroc_move_of_one_image() -> None:
    """Naive oracle: move each image's score to -inf and +inf, recompute AUROC with scikit-learn."""
    rng = np.random.default_rng(0)
    for n0, n1 in ((2, 8), (5, 3), (7, 7)):
        y = np.array([0] * n0 + [1] * n1)
        for _ in range(5):
            s = rng.normal(size=n0 + n1) + y
            base = auroc(s, y)
            moves = []
            for i, value in itertools.product(range(s.size), (-1e9, 1e9)):
                t = s.copy()
                t[i] = value
                moves.append(abs(auroc(t, y) - base))
            assert max(moves) <= one_image_share(n0, n1) + 1e-12
        perfect = y.astype(float)
        worst_case = perfect.copy()
        worst_case[-1] = -1.0  # one anomalous image below every normal one
        assert abs(auroc(worst_case, y) - 1.0) == pytest.approx(n0 / (n0 * n1))
    assert math.isinf(one_image_share(0, 3))


def test_swapped_pairs_match_a_naive_loop_and_explain_auroc() -> None:
    rng = np.random.default_rng(1)
    y = np.array([0] * 6 + [1] * 9)
    for _ in range(10):
        ref = rng.normal(size=15) + y
        s = ref + rng.normal(scale=0.5, size=15)
        naive = sum(
            1 for i in np.flatnonzero(y == 1) for j in np.flatnonzero(y == 0) if np.sign(s[i] - s[j]) != np.sign(ref[i] - ref[j])
        )
        assert _swapped_pairs(s, ref, y) == naive
        # without ties each swap moves AUROC by exactly 1/(n0 n1) in one direction or the other
        assert abs(auroc(s, y) - auroc(ref, y)) <= naive / (6 * 9) + 1e-12


def test_spearman_matches_scipy() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, size=30).astype(float)  # ties on purpose
    b = a + rng.normal(size=30)
    assert _spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)


def test_verdict_round_trips_and_orders_outcomes() -> None:
    from edgeanomaly.tooling import Verdict

    v = judge("fp16", 0.3, scores=REF * 1.2, ref_scores=REF)
    assert Verdict.from_dict(v.to_dict()) == v
    assert worst([PASS, INCONCLUSIVE]) == INCONCLUSIVE and worst([INCONCLUSIVE, FAIL, PASS]) == FAIL and worst([]) == PASS
