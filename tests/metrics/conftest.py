"""Small random cases shared by the metric tests (values on a coarse grid, so ties occur)."""

from __future__ import annotations

import numpy as np
import pytest


def random_scores(rng: np.random.Generator, n: int, grid: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(n,) scores with ties (multiples of 1/grid) and (n,) bool labels with both classes."""
    labels = rng.random(n) < 0.4
    labels[:2] = [True, False]
    scores = np.round((rng.normal(size=n) + labels) * grid) / grid
    return scores, labels


def random_maps(
    rng: np.random.Generator, n: int = 6, size: int = 10, grid: int = 16, dtype: type = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) maps with ties and masks with several regions in the second half."""
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n // 2, n):
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, size - 2, 2)
            h, w = rng.integers(1, 4, 2)
            masks[i, y : y + h, x : x + w] = True
        masks[i, rng.integers(0, size), rng.integers(0, size)] = True
    maps = np.round((rng.normal(size=masks.shape) + 1.5 * masks) * grid) / grid
    return maps.astype(dtype), masks


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
