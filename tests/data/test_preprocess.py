from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeanomaly.data import PreprocessConfig, preprocess, preprocess_batch
from edgeanomaly.errors import ConfigError


def test_shape_range_dtype() -> None:
    img = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    x = preprocess(img, PreprocessConfig(256))
    assert x.shape == (3, 256, 256) and x.dtype == np.float32 and x.flags.c_contiguous
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_identity_size_is_exact_scaling() -> None:
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = preprocess(img, PreprocessConfig(32))
    np.testing.assert_array_equal(x, img.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255))


def test_auto_uses_area_when_shrinking_and_linear_when_enlarging() -> None:
    img = np.random.default_rng(2).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    small = preprocess(img, PreprocessConfig((32, 24)))
    ref = cv2.resize(img, (24, 32), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(small, ref, atol=1e-6)
    big = preprocess(img, PreprocessConfig((128, 96)))
    ref = cv2.resize(img, (96, 128), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(big, ref, atol=1e-6)


def test_center_crop() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 40:60] = 255
    cfg = PreprocessConfig(100, center_crop=20)
    assert cfg.input_size == (20, 20)
    assert preprocess(img, cfg).min() == 1.0


def test_batch_of_mixed_sizes() -> None:
    imgs = [np.zeros((10, 20, 3), np.uint8), np.full((40, 30, 3), 255, np.uint8)]
    b = preprocess_batch(imgs, PreprocessConfig(16))
    assert b.shape == (2, 3, 16, 16)
    assert b[0].max() == 0 and b[1].min() == 1


def test_config_round_trip_and_validation() -> None:
    cfg = PreprocessConfig((240, 320), center_crop=(224, 224), interpolation="linear")
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="interpolation"):
        PreprocessConfig(256, interpolation="bilinear")
    with pytest.raises(ConfigError, match="center_crop"):
        PreprocessConfig(64, center_crop=65)
    with pytest.raises(ConfigError, match="positive"):
        PreprocessConfig(0)


def test_bad_images() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        preprocess(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(TypeError):
        preprocess([[1, 2, 3]])  # type: ignore[arg-type]
