"""Fixtures shared by the whole suite. Data from ../shared is optional: tests that need it skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEANOMALY_SHARED", REPO.parent / "shared"))
MVTEC_REDUCED = SHARED / "data" / "mvtec_ad_reduced"
LITE0_WEIGHTS = SHARED / "weights" / "efficientnet_lite0" / "efficientnet-lite0-57934424.pth"


@pytest.fixture(scope="session")
def mvtec_root() -> Path:
    """The real MVTec AD subset (hazelnut) beside the project, or skip."""
    if not (MVTEC_REDUCED / "hazelnut" / "train" / "good").is_dir():
        pytest.skip(f"real MVTec AD subset not found at {MVTEC_REDUCED} (set EDGEANOMALY_SHARED)")
    return MVTEC_REDUCED


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset (both categories, 128 px), generated once per session."""
    from edgeanomaly.data import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_dataset(root, n_train=12, n_test=3, seed=0, size=128)
    return root
