"""ROC, PR and F1 against scikit-learn (test-only oracle) and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_maps, random_scores

from edgeanomaly import metrics

sk = pytest.importorskip("sklearn.metrics")

TOL = 1e-12


def _on_polyline(px: np.ndarray, py: np.ndarray, qx: float, qy: float) -> bool:
    """Whether (qx, qy) lies on one of the segments of the polyline (px, py)."""
    for i in range(px.size - 1):
        x0, x1, y0, y1 = px[i], px[i + 1], py[i], py[i + 1]
        inside = min(x0, x1) - TOL <= qx <= max(x0, x1) + TOL and min(y0, y1) - TOL <= qy <= max(y0, y1) + TOL
        if inside and abs((x1 - x0) * (qy - y0) - (y1 - y0) * (qx - x0)) <= 1e-9:
            return True
    return False


@pytest.mark.parametrize("seed", range(25))
def test_auroc_aupr_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores, labels = random_scores(rng, int(rng.integers(2, 80)), grid=int(rng.choice([2, 8, 1000])))
    assert metrics.auroc(scores, labels) == pytest.approx(sk.roc_auc_score(labels, scores), abs=TOL)
    assert metrics.aupr(scores, labels) == pytest.approx(sk.average_precision_score(labels, scores), abs=TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_pixel_auroc_aupr_match_sklearn(rng: np.random.Generator, dtype: type) -> None:
    maps, masks = random_maps(rng, n=8, size=16)
    if dtype == np.uint8:
        maps = np.clip(maps * 40 + 100, 0, 255)
    maps = maps.astype(dtype)
    flat, y = maps.ravel().astype(np.float64), masks.ravel()
    assert metrics.pixel_auroc(maps, masks) == pytest.approx(sk.roc_auc_score(y, flat), abs=TOL)
    assert metrics.pixel_aupr(maps, masks) == pytest.approx(sk.average_precision_score(y, flat), abs=TOL)
    # (N, 1, H, W) and {0, 1} masks are the same data
    assert metrics.pixel_auroc(maps[:, None], masks[:, None].astype(np.uint8)) == metrics.pixel_auroc(maps, masks)


@pytest.mark.parametrize("seed", range(10))
def test_roc_curve_is_exact_subset_of_sklearn_full_curve(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores, labels = random_scores(rng, 60, grid=int(rng.choice([2, 8, 1000])))
    ours = metrics.roc_curve(scores, labels)
    fpr, tpr, thr = sk.roc_curve(labels, scores, drop_intermediate=False)
    full = {float(t): (f, p) for f, p, t in zip(fpr, tpr, thr)}
    for f, p, t in zip(ours.fpr, ours.tpr, ours.thresholds):
        assert full[float(t)] == pytest.approx((f, p), abs=TOL)
    # every point of the full curve lies on our polyline: nothing between corners is lost
    for f, p in zip(fpr, tpr):
        assert _on_polyline(ours.fpr, ours.tpr, f, p)
    assert ours.auc == pytest.approx(sk.roc_auc_score(labels, scores), abs=TOL)


@pytest.mark.parametrize("seed", range(10))
def test_pr_curve_points_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores, labels = random_scores(rng, 60, grid=int(rng.choice([2, 8, 1000])))
    ours = metrics.pr_curve(scores, labels)
    precision, recall, thr = sk.precision_recall_curve(labels, scores)
    full = {float(t): (p, r) for p, r, t in zip(precision, recall, thr)}
    assert ours.thresholds[0] == np.inf and ours.recall[0] == 0 and ours.precision[0] == 1
    for p, r, t in zip(ours.precision[1:], ours.recall[1:], ours.thresholds[1:]):
        assert full[float(t)] == pytest.approx((p, r), abs=TOL)
    assert set(np.unique(scores[labels]).tolist()) <= set(ours.thresholds.tolist())
    assert ours.average_precision == pytest.approx(sk.average_precision_score(labels, scores), abs=TOL)


@pytest.mark.parametrize("seed", range(15))
def test_f1_adaptive_threshold_is_max_f1_of_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores, labels = random_scores(rng, int(rng.integers(3, 80)), grid=int(rng.choice([2, 8, 1000])))
    result = metrics.f1_adaptive_threshold(scores, labels)
    precision, recall, thr = sk.precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
    assert result.f1 == pytest.approx(f1.max(), abs=TOL)
    assert result.threshold == thr[np.argmax(f1)]  # lowest threshold among maxima, as sklearn's argmax
    assert metrics.f1_score(scores, labels, result.threshold) == pytest.approx(result.f1, abs=TOL)


@pytest.mark.parametrize("seed", range(10))
def test_f1_score_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores, labels = random_scores(rng, 50)
    for t in np.unique(scores)[::3]:
        expected = sk.f1_score(labels, scores >= t, zero_division=0.0)
        assert metrics.f1_score(scores, labels, float(t)) == pytest.approx(expected, abs=TOL)


def test_hand_computed_tiny_case() -> None:
    scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    # pairs (pos, neg): (0.35 > 0.1), (0.35 < 0.4), (0.8 > both) -> 3 of 4
    assert metrics.auroc(scores, labels) == 0.75
    # recall 1/2 at precision 1 (t=0.8), recall 1 at precision 2/3 (t=0.35)
    assert metrics.aupr(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    roc = metrics.roc_curve(scores, labels)
    assert roc.thresholds.tolist() == [np.inf, 0.8, 0.4, 0.35, 0.1]
    assert roc.fpr.tolist() == [0, 0, 0.5, 0.5, 1] and roc.tpr.tolist() == [0, 0.5, 0.5, 1, 1]
    # ties: one positive and one negative at 0.5 -> half a pair
    assert metrics.auroc([0.5, 0.5], [1, 0]) == 0.5
    assert metrics.f1_score([0.2, 0.7, 0.7], [0, 1, 0], threshold=0.7) == pytest.approx(2 / 3)
    # threshold convention: score >= t is anomalous, so t equal to a score includes it
    assert metrics.f1_score([0.2, 0.7], [0, 1], threshold=0.7) == 1.0
    assert metrics.f1_score([0.2, 0.7], [0, 1], threshold=np.nextafter(0.7, 1)) == 0.0


def test_threshold_is_never_rounded_into_a_tie() -> None:
    scores = np.array([0.1, 0.3], dtype=np.float32)
    t = float(np.float32(0.3)) + 1e-12  # above the float32 score, rounds to it in float32
    assert metrics.f1_score(scores, [0, 1], threshold=t) == 0.0


def test_retrieval_metrics_match_the_patchcore_definitions(rng: np.random.Generator) -> None:
    maps, masks = random_maps(rng, n=6, size=12, grid=1000)
    got = metrics.compute_pixelwise_retrieval_metrics(maps, masks)
    flat, y = maps.ravel(), masks.ravel()
    precision, recall, thr = sk.precision_recall_curve(y, flat)
    with np.errstate(invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    best = thr[np.argmax(f1)]
    pred = flat >= best
    assert got["auroc"] == pytest.approx(sk.roc_auc_score(y, flat), abs=TOL)
    assert got["optimal_threshold"] == best
    assert got["optimal_fpr"] == pytest.approx(np.mean(pred > y))
    assert got["optimal_fnr"] == pytest.approx(np.mean(pred < y))
    fpr, tpr, _ = sk.roc_curve(y, flat)
    assert all(_on_polyline(got["fpr"], got["tpr"], f, p) for f, p in zip(fpr, tpr))

    scores, labels = random_scores(rng, 30)
    image = metrics.compute_imagewise_retrieval_metrics(scores, labels)
    assert set(image) == {"auroc", "fpr", "tpr", "threshold"}
    assert image["auroc"] == pytest.approx(sk.roc_auc_score(labels, scores), abs=TOL)
    assert image["threshold"][0] == np.inf and image["fpr"].shape == image["tpr"].shape


def test_pixel_f1_adaptive_threshold_matches_image_version_on_flat_pixels(rng: np.random.Generator) -> None:
    maps, masks = random_maps(rng, n=4, size=12)
    pixel = metrics.pixel_f1_adaptive_threshold(maps, masks)
    flat = metrics.f1_adaptive_threshold(maps.ravel(), masks.ravel())
    assert (pixel.threshold, pixel.f1) == (flat.threshold, flat.f1)
