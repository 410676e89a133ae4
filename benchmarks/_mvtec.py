"""One MVTec AD category as tensors, read and resized by our one preprocessing path (what our
``fit`` sees), for the benchmark scripts that fit and score in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def load_category(data: Path, image_size: int):
    """``(x_train, x_test, labels, masks, test)``: float RGB tensors (N, 3, H, W) in [0, 1], the
    test labels, their masks at ``image_size`` and the test samples."""
    from edgeanomaly.data import PreprocessConfig, mvtec_dataset, preprocess_batch, read_image, sample_masks

    ds = mvtec_dataset(data)
    train, test = list(ds.train), list(ds.test)
    cfg = PreprocessConfig(image_size)
    x_train = torch.from_numpy(preprocess_batch([read_image(s.path) for s in train], cfg))
    x_test = torch.from_numpy(preprocess_batch([read_image(s.path) for s in test], cfg))
    return x_train, x_test, np.array([s.label for s in test]), sample_masks(test, cfg), test
