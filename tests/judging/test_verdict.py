"""The verdict: hand-computed cases and naive oracles (scikit-learn, brute force, scipy)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from edgeanomaly.judging import FAIL, INCONCLUSIVE, PASS, TOLERANCES, Tolerance, judge, one_image_share
from edgeanomaly.judging._verdict import _spearman, _swapped_pairs, worst

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
    # 2 <= max(2, 5% of 10) (INT8's output check aside: these scores moved by 0.25 relative)
    flips_only = {"int8": dataclasses.replace(TOLERANCES["int8"], output_rel=None)}
    assert judge("int8", 0.3, scores=flipped, ref_scores=REF, tolerances=flips_only).outcome == PASS
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
    from edgeanomaly.judging import Verdict

    v = judge("fp16", 0.3, scores=REF * 1.2, ref_scores=REF)
    assert Verdict.from_dict(v.to_dict()) == v
    assert worst([PASS, INCONCLUSIVE]) == INCONCLUSIVE and worst([INCONCLUSIVE, FAIL, PASS]) == FAIL and worst([]) == PASS


# ---------------------------------------------------------------- issue 25: reduced precision judged by what it changes
def _cancelling_maps(rng: np.random.Generator, spread: float, spikes: float) -> tuple[np.ndarray, np.ndarray]:
    """PatchCore-like maps (values 0..10) and a drifted copy: relative noise ``spread`` of the
    largest value everywhere, and ``spikes`` on 5 pixels (near-zero distances that cancel)."""
    ref = rng.uniform(0.0, 10.0, size=(4, 32, 32))
    out = ref + rng.uniform(-spread, spread, size=ref.shape) * 10.0
    out.reshape(-1)[[3, 100, 900, 2000, 4000]] += spikes * 10.0
    return out, ref


def test_bf16_has_its_own_row_from_its_unit_roundoff() -> None:
    """The issue's case: bf16 judged with FP16's row (0.05 on one pixel's maximum) although it keeps
    8 bits of mantissa against FP16's 11; the map differed by 0.071 at a few near-zero pixels and
    0.048 at the 99th percentile, with no decision flip and no metric moved."""
    from edgeanomaly.judging import UNIT_ROUNDOFF, tolerance_for

    assert tolerance_for("fp32", "bf16") == "bf16" and tolerance_for("fp16", "bf16") == "bf16"
    assert tolerance_for("fp32", "f16") == "fp16" and tolerance_for("fp32", "f32") == "fp32"
    assert UNIT_ROUNDOFF == {"bf16": 2.0**-8, "fp16": 2.0**-11}
    assert TOLERANCES["bf16"].output_rel == 16 * 2.0**-8 > TOLERANCES["fp16"].output_rel
    out, ref = _cancelling_maps(np.random.default_rng(0), spread=0.045, spikes=0.07)
    v = judge("bf16", 0.35, scores=REF * (1 + 0.004), ref_scores=REF, labels=LABELS, maps=out, ref_maps=ref)
    # the record keeps the maximum, the verdict judges the 99th percentile (numpy's, an independent oracle)
    diff = np.abs(out - ref)
    assert v.measures["max_rel_map_diff"] == pytest.approx(diff.max() / np.abs(ref).max())
    assert v.measures["p99_rel_map_diff"] == pytest.approx(np.percentile(diff, 99) / np.abs(ref).max())
    assert v.measures["max_rel_map_diff"] > 0.07 > 0.05 > v.measures["p99_rel_map_diff"]
    assert v.outcome == PASS, v.reasons
    # 1.3x that drift exceeds FP16's 0.05 at the 99th percentile but not bf16's 0.0625
    louder = out + (out - ref) * 0.3
    assert judge("fp16", 0.35, scores=REF, ref_scores=REF, maps=louder, ref_maps=ref).outcome == FAIL
    assert judge("bf16", 0.35, scores=REF, ref_scores=REF, maps=louder, ref_maps=ref).outcome == PASS
    # and a real bf16 fault (a map off by 10 % nearly everywhere) still fails
    bad, ref2 = _cancelling_maps(np.random.default_rng(1), spread=0.2, spikes=0.0)
    assert judge("bf16", 0.35, scores=REF, ref_scores=REF, maps=bad, ref_maps=ref2).outcome == FAIL


def test_int8_outputs_are_measured_and_its_decisions_judged() -> None:
    """INT8 heads are refitted on INT8 features (their raw scale moves on purpose), so INT8 is
    judged on decisions and threshold-free metrics; its output differences are measured and
    recorded (with the same numbers as the floating point rows), not judged."""
    assert TOLERANCES["int8"].output_rel is None
    assert all(TOLERANCES[p].output_rel is not None for p in ("fp32", "fp16", "bf16"))
    wrong, ref = _cancelling_maps(np.random.default_rng(3), spread=0.3, spikes=0.0)
    v = judge("int8", 0.35, scores=REF, ref_scores=REF, maps=wrong, ref_maps=ref)
    assert v.outcome == PASS and v.measures["p99_rel_map_diff"] > 0.125 and "max_rel_map_diff" in v.measures
    flipped = judge("int8", float(np.median(REF)), scores=REF[::-1].copy(), ref_scores=REF)
    assert flipped.outcome == FAIL and any("change decision" in r for r in flipped.reasons)


def test_record_and_reasons_give_the_same_numbers() -> None:
    """The stored max_rel_map_diff (0.0709) and the FAIL reason (0.0756) once disagreed: the record
    took its map difference from every held-out image, the verdict from the first 8 (a smaller
    maximum of the reference, so a larger relative difference). The record is now the verdict's."""
    from edgeanomaly.export._execution import execution_entry

    rng = np.random.default_rng(4)
    ref = rng.uniform(0.0, 1.0, size=(10, 16, 16))
    ref[9] *= 4.0  # the largest reference value lies outside the first 8 images
    out = ref + rng.uniform(-0.4, 0.4, size=ref.shape)
    v = judge("bf16", 0.35, scores=REF, ref_scores=REF, maps=out, ref_maps=ref)
    entry = execution_entry(v, "bf16", {"device": "CPU"})
    assert entry["max_rel_map_diff"] == v.measures["max_rel_map_diff"]
    assert entry["p99_rel_map_diff"] == v.measures["p99_rel_map_diff"]
    assert v.outcome == FAIL
    reason = next(r for r in entry["reasons"] if "anomaly map" in r)
    assert f"{entry['p99_rel_map_diff']:.3g} relative" in reason and f"at most {entry['max_rel_map_diff']:.3g}" in reason
    # the maximum over every image equals relative_diff's (the parity table's) on the same maps
    from edgeanomaly.metrics import relative_diff

    assert entry["max_rel_map_diff"] == pytest.approx(relative_diff(out, ref)[1])
    assert entry["max_rel_diff"] == max(entry["max_rel_map_diff"], entry["max_rel_score_diff"])
