"""Pixel metrics at each image's own resolution against a naive computation (cv2 + scikit-learn)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeanomaly.bundle import Calibration
from edgeanomaly.tooling._resolution import pixel_metrics_at_original_size


def test_original_resolution_matches_naive_resize_and_sklearn() -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    n, (h, w), (H, W) = 4, (8, 8), (24, 36)  # model size, image size (non-square on purpose)
    raw = rng.random((n, h, w)).astype(np.float32)
    masks = np.zeros((n, H, W), bool)
    masks[2, 3:12, 5:20] = True
    masks[3, 10:20, 20:33] = True
    raw[2:, 1:4, 2:6] += 0.5
    labels = np.array([0, 0, 1, 1])
    cal = Calibration(0.5, 0.0, 2.0, pixel_threshold=0.9, pixel_min=0.0, pixel_max=1.5)
    pp = {"image_size": [h, w], "center_crop": None, "interpolation": "auto"}
    got, note = pixel_metrics_at_original_size(raw.max(axis=(1, 2)), labels, raw, [(H, W)] * n, list(masks), pp, cal)
    naive = np.stack([cv2.resize(m, (W, H), interpolation=cv2.INTER_LINEAR) for m in raw])
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), naive.ravel()), abs=1e-9)
    assert got["pixel_f1"] == pytest.approx(f1_score(masks.ravel(), naive.ravel() >= 0.9), abs=1e-9)
    assert set(got) >= {"pixel_auroc", "pixel_aupro", "pixel_aupimo"} and "24 x 36" in note

    # a centre crop: the map covers the middle of the resized image, zeros elsewhere
    pp_crop = {"image_size": [12, 12], "center_crop": [8, 8], "interpolation": "auto"}
    got, _ = pixel_metrics_at_original_size(raw.max(axis=(1, 2)), labels, raw, [(H, W)] * n, list(masks), pp_crop, cal)
    canvas = np.zeros((n, 12, 12), np.float32)
    canvas[:, 2:10, 2:10] = raw
    naive = np.stack([cv2.resize(m, (W, H), interpolation=cv2.INTER_LINEAR) for m in canvas])
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), naive.ravel()), abs=1e-9)

    mixed, note = pixel_metrics_at_original_size(raw.max(axis=(1, 2)), labels, raw, [(H, W)] * 3 + [(H, W + 1)],
                                                  [*masks[:3], np.zeros((H, W + 1), bool)], pp, cal)
    assert mixed == {} and "2 different sizes" in note
    missing, note = pixel_metrics_at_original_size(raw.max(axis=(1, 2)), labels, raw, [(H, W)] * n, [*masks[:3], None], pp, cal)
    assert missing == {} and "no ground-truth mask" in note
    small, note = pixel_metrics_at_original_size(raw.max(axis=(1, 2)), labels, raw, [(H, W)] * n, [*masks[:3], masks[3][:5]], pp, cal)
    assert small == {} and "1 mask(s) differ in size" in note
