"""compute_calibration: the one torch-free calibration used at fit time and on the device."""

from __future__ import annotations

import numpy as np
import pytest

from edgeanomaly.errors import ConfigError
from edgeanomaly.judging import DEFAULT_QUANTILE, compute_calibration


def test_normal_only_uses_quantile_of_scores_and_map_maxima() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(1.0, 0.1, size=200)
    maps = rng.random((200, 8, 10)).astype(np.float32)
    cal = compute_calibration(scores, raw_maps=maps, source={"split": "train", "data": "x"})
    assert cal.method == "quantile" and cal.quantile == DEFAULT_QUANTILE == 0.99
    assert cal.image_threshold == pytest.approx(np.quantile(scores, 0.99))
    assert (cal.image_min, cal.image_max) == (scores.min(), scores.max())
    assert cal.pixel_threshold == pytest.approx(np.quantile(maps.max(axis=(1, 2)), 0.99))
    assert (cal.pixel_min, cal.pixel_max) == pytest.approx((maps.min(), maps.max()))
    assert cal.source == {"split": "train", "n_images": 200, "n_normal": 200, "n_anomalous": 0, "data": "x"}
    # About 1% of the calibration images end up labelled anomalous.
    assert np.mean(cal.label_score(scores)) == pytest.approx(0.01, abs=0.006)


def test_labelled_uses_f1_adaptive_thresholds() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.9, 0.8, 0.4])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    maps = np.zeros((7, 4, 4), np.float32)
    masks = np.zeros((7, 4, 4), bool)
    maps[4:, 0, 0] = [0.9, 0.8, 0.4]
    masks[4:, 0, 0] = True
    maps[:4, 1, 1] = [0.1, 0.2, 0.3, 0.35]
    cal = compute_calibration(scores, labels, raw_maps=maps[:, None], masks=masks)
    assert cal.method == "f1_adaptive" and cal.quantile is None
    # F1 is 1 for any threshold in (0.35, 0.4]; the midpoint keeps both images off the boundary.
    assert cal.image_threshold == pytest.approx(0.375)
    assert cal.pixel_threshold == pytest.approx(0.375)
    assert cal.source["n_anomalous"] == 3 and cal.source["n_normal"] == 4


def test_labelled_without_masks_separates_images_by_map_maxima() -> None:
    maps = np.zeros((4, 3, 3), np.float32)
    maps[:, 1, 1] = [1.0, 2.0, 5.0, 6.0]
    cal = compute_calibration([1.0, 2.0, 5.0, 6.0], [0, 0, 1, 1], raw_maps=maps)
    assert cal.pixel_threshold == pytest.approx(3.5)  # midpoint of the gap (2, 5]


def test_classification_has_no_pixel_values_and_bad_input_is_rejected() -> None:
    cal = compute_calibration([1.0, 2.0, 3.0], quantile=0.5)
    assert cal.pixel_threshold is None and cal.image_threshold == pytest.approx(2.0)
    with pytest.raises(ConfigError):
        compute_calibration([1.0], quantile=0.0)
    with pytest.raises(ValueError, match="only anomalous"):
        compute_calibration([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        compute_calibration([1.0, float("nan")])
    with pytest.raises(ValueError, match="Expected 3 labels"):
        compute_calibration([1.0, 2.0, 3.0], [0, 1])
