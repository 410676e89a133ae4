"""PRO, AUPRO, PIMO and AUPIMO against naive per-threshold loops and hand-computed cases."""

from __future__ import annotations

import math

import naive
import numpy as np
import pytest
from conftest import random_maps

from edgeanomaly import metrics

TOL = 1e-10


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("fpr_limit", [0.05, 0.3, 1.0])
def test_aupro_matches_naive_loop(seed: int, fpr_limit: float) -> None:
    rng = np.random.default_rng(seed)
    maps, masks = random_maps(rng, n=int(rng.integers(2, 6)), size=8, grid=int(rng.choice([4, 16, 1000])))
    assert metrics.aupro(maps, masks, fpr_limit=fpr_limit) == pytest.approx(
        naive.aupro(maps, masks, fpr_limit), abs=TOL
    )


@pytest.mark.parametrize("seed", range(5))
def test_pro_curve_points_and_pro_match_naive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    maps, masks = random_maps(rng, n=4, size=8, grid=8)
    curve = metrics.pro_curve(maps, masks, fpr_limit=0.3)
    neg = maps[~masks]
    assert curve.fpr[-1] >= 0.3 and curve.thresholds[0] == np.inf
    for t, f, p in zip(curve.thresholds[1:], curve.fpr[1:], curve.pro[1:]):
        assert f == pytest.approx(np.mean(neg >= t), abs=TOL)
        assert p == pytest.approx(naive.pro_at(maps, masks, t), abs=TOL)
        assert metrics.pro(maps, masks, float(t)) == pytest.approx(p, abs=TOL)
    assert curve.area == pytest.approx(metrics.aupro(maps, masks, 0.3), abs=TOL)


def test_regions_are_8_connected_and_cover_normal_images() -> None:
    maps = np.zeros((2, 5, 5))
    masks = np.zeros((2, 5, 5), dtype=bool)
    masks[1, 0, 0] = masks[1, 1, 1] = True  # diagonal neighbours: one region with 8-connectivity
    masks[1, 3:5, 3:5] = True  # a second region of 4 pixels
    maps[1, 0, 0] = 1.0
    maps[1, 3, 3] = 1.0
    # regions overlap 1/2 and 1/4 at threshold 1
    assert metrics.pro(maps, masks, threshold=1.0) == pytest.approx((0.5 + 0.25) / 2)
    assert len(naive.regions_8(masks[1])) == 2


def test_aupro_hand_computed() -> None:
    # 1 region of 2 pixels (values 3 and 1), background 10 pixels: nine at 0 and one at 2
    maps = np.zeros((1, 3, 4))
    masks = np.zeros((1, 3, 4), dtype=bool)
    masks[0, 0, :2] = True
    maps[0, 0, 0], maps[0, 0, 1], maps[0, 2, 3] = 3.0, 1.0, 2.0
    # curve: (0, 0) -> t=3 (0, .5) -> t=2 (.1, .5) -> t=1 (.1, 1) -> t=0 (1, 1)
    # area up to 0.3 = 0.1 * 0.5 + 0.2 * 1 = 0.25, normalised: 0.25 / 0.3
    assert metrics.aupro(maps, masks, fpr_limit=0.3) == pytest.approx(0.25 / 0.3)
    # up to 0.05 the curve is at 0.5 -> 0.5
    assert metrics.aupro(maps, masks, fpr_limit=0.05) == pytest.approx(0.5)


def _pimo_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    maps, masks = random_maps(rng, n=6, size=12, grid=int(rng.choice([64, 1000])))
    return maps, masks


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("fpr_bounds", [(3e-3, 5e-2), (5e-3, 0.5)])
def test_aupimo_matches_naive_loop(seed: int, fpr_bounds: tuple[float, float]) -> None:
    maps, masks = _pimo_case(seed)
    expected = naive.aupimo(maps, masks, fpr_bounds)
    if expected is None:
        with pytest.warns(metrics.UndefinedMetricWarning, match="shared FPR"):
            assert np.isnan(metrics.aupimo(maps, masks, fpr_bounds=fpr_bounds).aupimos).all()
        return
    got = metrics.aupimo(maps, masks, fpr_bounds=fpr_bounds)
    np.testing.assert_allclose(got.aupimos, expected, atol=TOL, rtol=0)
    assert got.mean == pytest.approx(np.nanmean(expected), abs=TOL)
    assert np.isnan(got.aupimos[: masks.shape[0] // 2]).all()


@pytest.mark.parametrize("seed", range(4))
def test_pimo_curve_points_match_naive(seed: int) -> None:
    maps, masks = _pimo_case(seed)
    bounds = (5e-3, 5e-2)
    curves = metrics.pimo(maps, masks, fpr_bounds=bounds)
    assert curves.shared_fpr[-1] >= bounds[1] and curves.shared_fpr[0] == 0
    for k, t in enumerate(curves.thresholds):
        assert curves.shared_fpr[k] == pytest.approx(naive.shared_fpr(maps, masks, t), abs=TOL)
        for i in np.flatnonzero(curves.image_classes):
            assert curves.per_image_tpr[i, k] == pytest.approx(naive.tpr(maps[i], masks[i], t), abs=TOL)


@pytest.mark.parametrize("defect", [97.5, 97.0])
def test_aupimo_hand_computed(defect: float) -> None:
    # 1 normal image of 100 pixels with values 0..99, 1 anomalous image with 2 defect pixels
    normal = np.arange(100, dtype=np.float64).reshape(1, 10, 10)
    anomalous = np.zeros((1, 10, 10))
    mask = np.zeros((1, 10, 10), dtype=bool)
    mask[0, 0, :2] = True
    anomalous[0, 0, 0], anomalous[0, 0, 1] = 150.0, defect
    maps, masks = np.concatenate([normal, anomalous]), np.concatenate([np.zeros_like(mask), mask])
    # shared FPR is 0.01 at t=99 ... 0.1 at t=90; TPR is 1/2 while t > defect, then 1
    x0, x1 = math.log10(0.02), math.log10(0.03)  # t=98 and t=97
    if defect == 97.5:
        # TPR jumps to 1 at FPR 0.02 (thresholds in (97, 97.5]): a vertical step
        expected = 0.5 * (x0 + 2) + 1.0 * (-1 - x0)
    else:
        # tied with the normal value 97: one diagonal segment from (x0, 1/2) to (x1, 1)
        expected = 0.5 * (x0 + 2) + 0.75 * (x1 - x0) + 1.0 * (-1 - x1)
    result = metrics.aupimo(maps, masks, fpr_bounds=(0.01, 0.1))
    assert result.aupimos[1] == pytest.approx(expected, abs=1e-12)
    assert math.isnan(result.aupimos[0]) and result.mean == pytest.approx(expected)
    assert result.aupimos[1] == pytest.approx(naive.aupimo(maps, masks, (0.01, 0.1))[1], abs=1e-12)


def test_aupimo_perfect_and_worthless_detectors(rng: np.random.Generator) -> None:
    maps = rng.random((6, 40, 40))
    masks = np.zeros(maps.shape, dtype=bool)
    masks[3:, 5:15, 5:15] = True
    high = maps.copy()
    high[masks] += 10
    assert metrics.aupimo(high, masks, fpr_bounds=(1e-3, 1e-2)).mean == 1.0
    low = maps.copy()
    low[masks] -= 10
    assert metrics.aupimo(low, masks, fpr_bounds=(1e-3, 1e-2)).mean == 0.0


def test_aupimo_lower_bound_unreachable_warns_and_returns_nan(rng: np.random.Generator) -> None:
    maps = rng.random((2, 10, 10))
    masks = np.zeros(maps.shape, dtype=bool)
    masks[1, :2, :2] = True
    with pytest.warns(metrics.UndefinedMetricWarning, match="smallest non-zero shared FPR is 0.01 \\(100 normal"):
        result = metrics.aupimo(maps, masks)  # 100 normal pixels cannot reach FPR 1e-5
    assert np.isnan(result.aupimos).all() and np.isnan(result.mean)
    curves = metrics.pimo(maps, masks)  # the curves themselves are still defined
    assert curves.shared_fpr[-1] >= 1e-4 and not np.isnan(curves.per_image_tpr[1]).any()
    # ties among the highest normal values hide the low FPRs the same way
    tied = maps.copy()
    tied[0].flat[:5] = 2.0
    with pytest.warns(metrics.UndefinedMetricWarning, match="0.05"):
        metrics.aupimo(tied, masks, fpr_bounds=(0.02, 0.2))
