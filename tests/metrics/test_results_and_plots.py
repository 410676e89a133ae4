"""Result dataclasses (consistency, save/load), figures, docstring examples, torch-free import."""

from __future__ import annotations

import doctest
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import random_maps, random_scores

from edgeanomaly import metrics
from edgeanomaly.errors import MissingDependencyError

BOUNDS = (3e-3, 5e-2)


def _all_results(rng: np.random.Generator) -> list[object]:
    maps, masks = random_maps(rng, n=6, size=12, grid=64)
    scores, labels = random_scores(rng, 30)
    return [
        metrics.roc_curve(scores, labels),
        metrics.pr_curve(scores, labels),
        metrics.pro_curve(maps, masks, 0.3),
        metrics.pimo(maps, masks, BOUNDS),
        metrics.aupimo(maps.astype(np.float32), masks, BOUNDS),
        metrics.f1_adaptive_threshold(scores, labels),
        metrics.min_max(maps),
        metrics.anomaly_score_distribution(scores=scores),
    ]


def test_results_round_trip_through_json(rng: np.random.Generator, tmp_path: Path) -> None:
    for result in _all_results(rng):
        path = tmp_path / f"{type(result).__name__}.json"
        result.save(path)
        json.loads(path.read_text())  # standard JSON: no bare NaN/Infinity
        assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
        loaded = type(result).load(path)
        for field, value in vars(result).items():
            other = getattr(loaded, field)
            if isinstance(value, np.ndarray):
                assert other.dtype == value.dtype
                np.testing.assert_array_equal(other, value)
            elif isinstance(value, float) and math.isnan(value):
                assert math.isnan(other)
            else:
                assert other == value


def test_loading_the_wrong_type_fails(rng: np.random.Generator) -> None:
    roc = metrics.roc_curve(*random_scores(rng, 10))
    with pytest.raises(ValueError, match="Expected a saved PRResult"):
        metrics.PRResult.from_dict(roc.to_dict())


def test_results_check_their_consistency(rng: np.random.Generator) -> None:
    maps, masks = random_maps(rng, n=6, size=12, grid=64)
    curves = metrics.pimo(maps, masks, BOUNDS)
    tpr = curves.per_image_tpr.copy()
    tpr[0] = 0.5  # a normal image with a TPR curve
    with pytest.raises(ValueError, match="NaN for normal images"):
        metrics.PIMOResult(curves.thresholds, curves.shared_fpr, tpr, curves.image_classes, BOUNDS)
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        metrics.PIMOResult(curves.thresholds, curves.shared_fpr, tpr[:, :-1], curves.image_classes, BOUNDS)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        metrics.AUPIMOResult(np.array([np.nan, 1.5]), np.array([0, 1]), BOUNDS)
    with pytest.raises(ValueError, match="NaN for normal"):
        metrics.AUPIMOResult(np.array([0.5, 0.5]), np.array([0, 1]), BOUNDS)
    with pytest.raises(ValueError, match="decreasing"):
        metrics.ROCResult(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="fpr_limit"):
        metrics.PROResult(np.array([0.0, 0.1]), np.array([0.0, 1.0]), np.array([np.inf, 1.0]), 0.3)
    with pytest.raises(ValueError, match="min must be"):
        metrics.MinMaxResult(2.0, 1.0)


def test_aupimo_result_exposes_mean_and_per_image(rng: np.random.Generator) -> None:
    maps, masks = random_maps(rng, n=6, size=12, grid=64)
    result = metrics.aupimo(maps, masks, BOUNDS)
    assert isinstance(result.mean, float)
    assert result.aupimos.shape == (6,) and result.anomalous.shape == (3,)
    assert result.mean == pytest.approx(np.nanmean(result.aupimos))
    assert result.image_classes.tolist() == [0, 0, 0, 1, 1, 1]


PLOTS = {
    "roc": lambda maps, masks: metrics.plot_roc(metrics.pixel_roc_curve(maps, masks), label="model"),
    "pr": lambda maps, masks: metrics.plot_pr(metrics.pixel_pr_curve(maps, masks)),
    "pro": lambda maps, masks: metrics.plot_pro(metrics.pro_curve(maps, masks, 0.3)),
    "pimo": lambda maps, masks: metrics.plot_pimo(
        metrics.pimo(maps, masks, BOUNDS), metrics.aupimo(maps, masks, BOUNDS)
    ),
}


@pytest.mark.parametrize("name", PLOTS)
def test_plots_save_png_with_area_in_title(name: str, rng: np.random.Generator, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    maps, masks = random_maps(rng, n=6, size=12, grid=64)
    fig = PLOTS[name](maps, masks)
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "=" in fig.axes[0].get_title()


def test_plots_without_matplotlib_name_the_extra(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingDependencyError, match=r"edgeanomaly\[plot\]"):
        metrics.plot_roc(metrics.roc_curve(*random_scores(rng, 10)))


MODULES = [
    "_curve",
    "_roc",
    "_pr",
    "_f1",
    "_pro",
    "_pimo",
    "_stats",
    "_retrieval",
    "_validate",
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"edgeanomaly.metrics.{module}")
    result = doctest.testmod(mod, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_import_is_numpy_and_opencv_only() -> None:
    code = (
        "import sys, edgeanomaly.metrics\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'scipy', 'sklearn', 'matplotlib', 'pandas'})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
