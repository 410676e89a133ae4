"""A ground-truth mask of the wrong size is refused wherever masks feed a metric (fit, export,
validate, benchmark), as `data check` reports it: resized silently, it gave pixel_pro 0.338
instead of 0.444 on the real data."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from edgeanomaly.data import PreprocessConfig, load_dataset, sample_masks
from edgeanomaly.errors import DatasetError


def test_wrong_size_mask_is_refused(synthetic_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(synthetic_root / "metal", tmp_path / "metal"))
    mask_path = sorted((root / "ground_truth").rglob("*.png"))[0]
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    h, w = mask.shape[:2]
    config = PreprocessConfig(image_size=(64, 64))
    good = load_dataset(root)
    assert sample_masks(good.test, config).shape[0] == len(good.test)
    assert cv2.imwrite(str(mask_path), cv2.resize(mask, (w // 2, h), interpolation=cv2.INTER_NEAREST))
    dataset = load_dataset(root)
    with pytest.raises(DatasetError, match=rf"mask size {w // 2}x{h} differs from image size {w}x{h}.*{mask_path.name}"):
        sample_masks(dataset.test, config)
