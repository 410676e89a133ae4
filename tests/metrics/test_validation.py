"""Clear errors for invalid inputs; warnings and NaN for undefined metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeanomaly import metrics
from edgeanomaly.errors import ConfigError, EdgeAnomalyError

MAPS = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
MASKS = np.zeros((4, 8, 8), dtype=bool)
MASKS[2:, 2:4, 2:4] = True

PIXEL_FUNCTIONS = {
    "pixel_auroc": metrics.pixel_auroc,
    "pixel_aupr": metrics.pixel_aupr,
    "aupro": metrics.aupro,
    "pro": lambda a, m: metrics.pro(a, m, 0.5),
    "pimo": lambda a, m: metrics.pimo(a, m, (0.01, 0.1)),
    "aupimo": lambda a, m: metrics.aupimo(a, m, (0.01, 0.1)),
    "retrieval": metrics.compute_pixelwise_retrieval_metrics,
}
IMAGE_FUNCTIONS = {
    "auroc": metrics.auroc,
    "aupr": metrics.aupr,
    "roc_curve": metrics.roc_curve,
    "f1_score": lambda s, y: metrics.f1_score(s, y, 0.5),
    "f1_adaptive_threshold": metrics.f1_adaptive_threshold,
    "retrieval": metrics.compute_imagewise_retrieval_metrics,
}


def test_error_types_fit_the_hierarchy() -> None:
    assert issubclass(metrics.MetricInputError, ValueError) and issubclass(metrics.MetricInputError, EdgeAnomalyError)
    assert issubclass(metrics.MetricTypeError, TypeError) and issubclass(metrics.MetricTypeError, EdgeAnomalyError)


def test_shape_message_names_the_input_and_shapes() -> None:
    expected = r"Expected anomaly_maps of shape \(N, H, W\) or \(N, 1, H, W\), got \(3, 256\)"
    with pytest.raises(ValueError, match=expected):
        metrics.pixel_auroc(np.zeros((3, 256)), np.zeros((3, 256)))
    with pytest.raises(ValueError, match=r"Expected scores of shape \(N,\), got \(2, 2\)"):
        metrics.auroc(np.zeros((2, 2)), np.zeros(4))


@pytest.mark.parametrize("name", PIXEL_FUNCTIONS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_pixel_functions_reject_non_finite_maps(name: str, bad: float) -> None:
    maps = MAPS.copy()
    maps[1, 3, 3] = bad
    with pytest.raises(ValueError, match="finite anomaly_maps, got 1 NaN or inf"):
        PIXEL_FUNCTIONS[name](maps, MASKS)


@pytest.mark.parametrize("name", PIXEL_FUNCTIONS)
def test_pixel_functions_reject_bad_masks_and_shapes(name: str) -> None:
    fn = PIXEL_FUNCTIONS[name]
    with pytest.raises(ValueError, match="same shape"):
        fn(MAPS, MASKS[:, :7])
    with pytest.raises(ValueError, match="binary masks"):
        fn(MAPS, MASKS * 2 + MASKS)
    with pytest.raises(ValueError, match="non-empty anomaly_maps"):
        fn(MAPS[:0], MASKS[:0])
    with pytest.raises(TypeError, match="anomaly_maps"):
        fn("maps.png", MASKS)
    with pytest.raises(TypeError, match="masks"):
        fn(MAPS, MASKS.astype(str))


@pytest.mark.parametrize("name", IMAGE_FUNCTIONS)
def test_image_functions_reject_invalid_inputs(name: str) -> None:
    fn = IMAGE_FUNCTIONS[name]
    with pytest.raises(ValueError, match="finite scores"):
        fn([0.1, np.nan, 0.3], [0, 1, 1])
    with pytest.raises(ValueError, match="same shape"):
        fn([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="binary labels"):
        fn([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match="non-empty scores"):
        fn([], [])
    with pytest.raises(TypeError, match="real numeric dtype"):
        fn(np.array([True, False]), [0, 1])
    with pytest.raises(TypeError, match="scores"):
        fn(None, [0, 1])


def test_settings_out_of_range_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="fpr_limit"):
        metrics.aupro(MAPS, MASKS, fpr_limit=0.0)
    with pytest.raises(ConfigError, match="fpr_limit"):
        metrics.AUPRO(fpr_limit=1.5)
    with pytest.raises(ConfigError, match="fpr_bounds"):
        metrics.aupimo(MAPS, MASKS, fpr_bounds=(1e-3, 1e-4))
    with pytest.raises(TypeError, match="fpr_bounds"):
        metrics.aupimo(MAPS, MASKS, fpr_bounds=0.1)
    with pytest.raises(ValueError, match="finite threshold"):
        metrics.f1_score([0.1, 0.2], [0, 1], threshold=math.nan)
    with pytest.raises(TypeError, match="threshold"):
        metrics.pro(MAPS, MASKS, threshold="0.5")


ONE_CLASS_IMAGE = {
    "auroc": metrics.auroc,
    "aupr": metrics.aupr,
    "f1_score": lambda s, y: metrics.f1_score(s, y, 0.5),
    "f1_adaptive_threshold": lambda s, y: metrics.f1_adaptive_threshold(s, y).threshold,
    "roc_auc": lambda s, y: metrics.roc_curve(s, y).auc,
}


@pytest.mark.parametrize("name", ONE_CLASS_IMAGE)
def test_one_class_warns_and_returns_nan(name: str) -> None:
    with pytest.warns(metrics.UndefinedMetricWarning, match="undefined"):
        assert math.isnan(ONE_CLASS_IMAGE[name]([0.1, 0.5, 0.9], [0, 0, 0]))


@pytest.mark.parametrize("fn", [metrics.auroc, metrics.aupr])
def test_only_positives_warns_and_returns_nan(fn) -> None:  # noqa: ANN001
    with pytest.warns(metrics.UndefinedMetricWarning, match="only positives"):
        assert math.isnan(fn([0.1, 0.5], [1, 1]))


def test_pixel_one_class_cases_warn_and_return_nan() -> None:
    no_defect = np.zeros_like(MASKS)
    for fn in (metrics.pixel_auroc, metrics.pixel_aupr, metrics.aupro, lambda a, m: metrics.pro(a, m, 0.5)):
        with pytest.warns(metrics.UndefinedMetricWarning):
            assert math.isnan(fn(MAPS, no_defect))
    with pytest.warns(metrics.UndefinedMetricWarning, match="no anomalous image"):
        result = metrics.aupimo(MAPS, no_defect)
    assert math.isnan(result.mean) and np.isnan(result.aupimos).all()
    with pytest.warns(metrics.UndefinedMetricWarning, match="no normal image"):
        result = metrics.aupimo(MAPS[2:], MASKS[2:])
    assert math.isnan(result.mean) and result.aupimos.shape == (2,)
    with pytest.warns(metrics.UndefinedMetricWarning, match="no background"):
        assert math.isnan(metrics.aupro(MAPS, np.ones_like(MASKS)))
    with pytest.warns(metrics.UndefinedMetricWarning):
        curve = metrics.pixel_roc_curve(MAPS, no_defect)
    assert np.isnan(curve.tpr).all() and not np.isnan(curve.fpr).any()


def test_distribution_and_min_max_validate() -> None:
    with pytest.raises(ValueError, match="neither"):
        metrics.anomaly_score_distribution()
    with pytest.raises(ValueError, match="non-empty"):
        metrics.min_max([])
    with pytest.raises(ValueError, match="finite"):
        metrics.min_max([0.0, np.inf])
