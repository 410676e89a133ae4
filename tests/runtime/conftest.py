"""Runtime fixtures: real ONNX/OpenVINO bundles of small graphs that follow the graph contract.

Built once per session with torch (fixture making only); the runtime tests run without it
(see test_runtime_torch_free.py, which runs them in a subprocess with torch blocked).
When real model bundles exist, add them to ``BUNDLE_KINDS``-driven parametrisation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

#: name -> (task, static batch)
BUNDLE_KINDS: dict[str, tuple[str, int | None]] = {
    "toy-segmentation": ("segmentation", None),
    "toy-classification": ("classification", None),
    "toy-segmentation-static2": ("segmentation", 2),
}


@pytest.fixture(scope="session")
def toy_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{name: bundle directory} for every entry of BUNDLE_KINDS (read-only: copy before changing)."""
    pytest.importorskip("torch", reason="making the test graphs needs torch")
    from _runtime_graphs import make_bundle

    root = tmp_path_factory.mktemp("bundles")
    work = tmp_path_factory.mktemp("export-work")
    return {
        name: make_bundle(root / name, task, static, work=work / name)
        for name, (task, static) in BUNDLE_KINDS.items()
    }


@pytest.fixture(scope="session")
def seg_bundle(toy_bundles: dict[str, Path]) -> Path:
    return toy_bundles["toy-segmentation"]


@pytest.fixture()
def seg_bundle_copy(seg_bundle: Path, tmp_path: Path) -> Path:
    """A private copy that a test may recalibrate."""
    return Path(shutil.copytree(seg_bundle, tmp_path / "bundle"))


def part_image(
    h: int, w: int, defect: tuple[int, int, int, int] | None = None, seed: int = 0, color: tuple[int, int, int] = (230, 40, 40)
) -> np.ndarray:
    """RGB uint8 (h, w, 3) grey part; ``defect`` = (top, left, height, width) painted ``color``."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(128, 6, size=(h, w, 3)), 0, 255).astype(np.uint8)
    if defect is not None:
        t, l, dh, dw = defect
        img[t : t + dh, l : l + dw] = color
    return img


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path
