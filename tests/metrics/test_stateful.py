"""Functional and stateful twins agree when the data comes in several batches."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from conftest import random_maps, random_scores

from edgeanomaly import metrics

BOUNDS = (3e-3, 5e-2)


def _batches(n: int) -> list[slice]:
    cuts = [0, 1, n // 2, n]  # unequal sizes, one of a single sample
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def _same(a: Any, b: Any) -> None:
    if isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-12, nan_ok=True)
        return
    for key, value in a.to_dict().items():
        other = b.to_dict()[key]
        if isinstance(value, dict):
            np.testing.assert_allclose(
                np.asarray(value["data"], dtype=object).astype(float),
                np.asarray(other["data"], dtype=object).astype(float),
                atol=1e-12,
            )
        else:
            assert value == other


IMAGE_TWINS: dict[str, tuple[Callable[..., Any], Callable[[], Any]]] = {
    "auroc": (metrics.auroc, metrics.AUROC),
    "aupr": (metrics.aupr, metrics.AUPR),
    "roc": (metrics.roc_curve, metrics.ROC),
    "pr": (metrics.pr_curve, metrics.PR),
    "f1_adaptive": (metrics.f1_adaptive_threshold, metrics.F1AdaptiveThreshold),
    "f1_score": (lambda s, y: metrics.f1_score(s, y, 0.5), lambda: metrics.F1Score(0.5)),
}
PIXEL_TWINS: dict[str, tuple[Callable[..., Any], Callable[[], Any]]] = {
    "pixel_auroc": (metrics.pixel_auroc, metrics.PixelAUROC),
    "pixel_aupr": (metrics.pixel_aupr, metrics.PixelAUPR),
    "pixel_roc": (metrics.pixel_roc_curve, metrics.PixelROC),
    "pixel_pr": (metrics.pixel_pr_curve, metrics.PixelPR),
    "pixel_f1_adaptive": (metrics.pixel_f1_adaptive_threshold, metrics.PixelF1AdaptiveThreshold),
    "aupro": (lambda a, m: metrics.aupro(a, m, 0.2), lambda: metrics.AUPRO(0.2)),
    "pro": (lambda a, m: metrics.pro(a, m, 0.5), lambda: metrics.PRO(0.5)),
    "pro_curve": (metrics.pro_curve, metrics.PROCurve),
    "pimo": (lambda a, m: metrics.pimo(a, m, BOUNDS), lambda: metrics.PIMO(BOUNDS)),
    "aupimo": (lambda a, m: metrics.aupimo(a, m, BOUNDS), lambda: metrics.AUPIMO(BOUNDS)),
}


@pytest.mark.parametrize("name", IMAGE_TWINS)
def test_image_twins_agree(name: str, rng: np.random.Generator) -> None:
    scores, labels = random_scores(rng, 30)
    functional, stateful = IMAGE_TWINS[name]
    metric = stateful()
    for part in _batches(scores.size):
        assert metric.update(scores[part], labels[part]) is metric
    _same(functional(scores, labels), metric.compute())
    _same(metric.compute(), functional(scores, labels))  # compute twice: same answer


@pytest.mark.parametrize("name", PIXEL_TWINS)
def test_pixel_twins_agree(name: str, rng: np.random.Generator) -> None:
    maps, masks = random_maps(rng, n=8, size=12, grid=64)
    functional, stateful = PIXEL_TWINS[name]
    metric = stateful()
    for part in _batches(maps.shape[0]):
        metric.update(maps[part], masks[part])
    _same(functional(maps, masks), metric.compute())


def test_batches_of_different_dtypes_merge_exactly(rng: np.random.Generator) -> None:
    maps, masks = random_maps(rng, n=6, size=12, grid=64)
    metric = metrics.PixelAUROC().update(maps[:3].astype(np.float32), masks[:3]).update(maps[3:], masks[3:])
    mixed = np.concatenate([maps[:3].astype(np.float32).astype(np.float64), maps[3:]])
    assert metric.compute() == metrics.pixel_auroc(mixed, masks)


def test_reset_forgets_and_compute_before_update_raises(rng: np.random.Generator) -> None:
    scores, labels = random_scores(rng, 20)
    metric = metrics.AUROC().update(scores, labels)
    metric.reset()
    with pytest.raises(metrics.MetricInputError, match="update"):
        metric.compute()


def test_normalisation_twins(rng: np.random.Generator) -> None:
    maps, _ = random_maps(rng, n=6, size=10)
    scores = maps.max(axis=(1, 2))
    mm = metrics.MinMax()
    dist = metrics.AnomalyScoreDistribution()
    for part in _batches(6):
        mm.update(maps[part])
        dist.update(scores=scores[part], anomaly_maps=maps[part])
    assert (mm.compute().min, mm.compute().max) == (maps.min(), maps.max())
    got = dist.compute()
    want = metrics.anomaly_score_distribution(scores=scores, anomaly_maps=maps)
    for key in ("image_mean", "image_std", "pixel_mean", "pixel_std"):
        assert getattr(got, key) == pytest.approx(getattr(want, key), abs=1e-12)
    assert want.pixel_mean == pytest.approx(maps.mean()) and want.pixel_std == pytest.approx(maps.std())
    assert want.image_std == pytest.approx(scores.std())
    assert metrics.ManualThreshold(0.3).update(scores, None).compute() == 0.3


def test_pimo_updates_must_share_the_image_size(rng: np.random.Generator) -> None:
    a, am = random_maps(rng, n=4, size=10)
    b, bm = random_maps(rng, n=4, size=12)
    with pytest.raises(metrics.MetricInputError, match="H \\* W"):
        metrics.AUPIMO(BOUNDS).update(a, am).update(b, bm).compute()
