"""Invariances over a registry of every scalar metric.

Each entry maps (predictions, targets) to one float. Registered metrics are checked for
sample-order invariance and invariance under strictly increasing transforms of the scores;
AUROC-like ones also for AUROC(-s) = 1 - AUROC(s).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from conftest import random_maps, random_scores

from edgeanomaly import metrics

BOUNDS = (3e-3, 5e-2)

IMAGE_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": metrics.auroc,
    "aupr": metrics.aupr,
    "max_f1": lambda s, y: metrics.f1_adaptive_threshold(s, y).f1,
}
PIXEL_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "pixel_auroc": metrics.pixel_auroc,
    "pixel_aupr": metrics.pixel_aupr,
    "pixel_max_f1": lambda a, m: metrics.pixel_f1_adaptive_threshold(a, m).f1,
    "aupro": metrics.aupro,
    "aupro_full": lambda a, m: metrics.aupro(a, m, fpr_limit=1.0),
    "aupimo_mean": lambda a, m: metrics.aupimo(a, m, fpr_bounds=BOUNDS).mean,
}
REVERSIBLE = {"auroc": metrics.auroc, "pixel_auroc": metrics.pixel_auroc}

# strictly increasing and exact on the grid of the test data (no two values merge)
TRANSFORMS = {
    "affine": lambda x: 3.0 * x + 7.0,
    "exp": lambda x: np.exp(x / 4.0),
    "cube": lambda x: x**3 + x,
}


def _maps(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return random_maps(np.random.default_rng(seed), n=6, size=12, grid=64)


@pytest.mark.parametrize("name", IMAGE_METRICS)
@pytest.mark.parametrize("seed", range(3))
def test_image_metrics_ignore_sample_order(name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores, labels = random_scores(rng, 40)
    order = rng.permutation(scores.size)
    fn = IMAGE_METRICS[name]
    assert fn(scores[order], labels[order]) == pytest.approx(fn(scores, labels), abs=1e-12)


@pytest.mark.parametrize("name", PIXEL_METRICS)
@pytest.mark.parametrize("seed", range(3))
def test_pixel_metrics_ignore_image_order(name: str, seed: int) -> None:
    maps, masks = _maps(seed)
    order = np.random.default_rng(seed).permutation(maps.shape[0])
    fn = PIXEL_METRICS[name]
    assert fn(maps[order], masks[order]) == pytest.approx(fn(maps, masks), abs=1e-12)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("name", IMAGE_METRICS)
def test_image_metrics_invariant_to_monotone_transforms(name: str, transform: str) -> None:
    scores, labels = random_scores(np.random.default_rng(3), 50)
    fn = IMAGE_METRICS[name]
    assert fn(TRANSFORMS[transform](scores), labels) == pytest.approx(fn(scores, labels), abs=1e-12)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_pixel_metrics_invariant_to_monotone_transforms(name: str, transform: str) -> None:
    maps, masks = _maps(4)
    fn = PIXEL_METRICS[name]
    assert fn(TRANSFORMS[transform](maps), masks) == pytest.approx(fn(maps, masks), abs=1e-12)


def test_per_image_aupimo_follows_image_order() -> None:
    maps, masks = _maps(5)
    order = np.random.default_rng(5).permutation(maps.shape[0])
    base = metrics.aupimo(maps, masks, fpr_bounds=BOUNDS).aupimos
    np.testing.assert_array_equal(metrics.aupimo(maps[order], masks[order], fpr_bounds=BOUNDS).aupimos, base[order])


def test_thresholded_metrics_follow_the_transform() -> None:
    maps, masks = _maps(6)
    scores, labels = random_scores(np.random.default_rng(6), 40)
    f = TRANSFORMS["exp"]
    for t in (-0.5, 0.25, 1.0):
        assert metrics.pro(f(maps), masks, float(f(t))) == pytest.approx(metrics.pro(maps, masks, t), abs=1e-12)
        assert metrics.f1_score(f(scores), labels, float(f(t))) == pytest.approx(metrics.f1_score(scores, labels, t))


@pytest.mark.parametrize("name", REVERSIBLE)
@pytest.mark.parametrize("seed", range(3))
def test_auroc_of_negated_scores(name: str, seed: int) -> None:
    fn = REVERSIBLE[name]
    if name == "auroc":
        s, y = random_scores(np.random.default_rng(seed), 40)
    else:
        s, y = _maps(seed)
    assert fn(-s, y) == pytest.approx(1.0 - fn(s, y), abs=1e-12)
