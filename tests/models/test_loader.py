"""The fit's image loader: decoding on worker threads ahead of the model (issue 22)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgeanomaly.data import PreprocessConfig, load_dataset
from edgeanomaly.errors import DatasetError
from edgeanomaly.models._fit import iter_batches, loader_workers


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(11):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8))
    return tmp_path


def _samples(folder: Path):
    return sorted(load_dataset(folder).train, key=lambda s: str(s.path))


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_threads_give_the_same_batches_in_the_same_order(folder: Path, workers: int) -> None:
    cfg = PreprocessConfig(32)
    samples = _samples(folder)
    want = list(iter_batches(samples, cfg, 4))
    seen: list[int] = []
    got = list(iter_batches(samples, cfg, 4, progress=seen.append, workers=workers))
    assert [b.shape for b in got] == [b.shape for b in want] == [(4, 3, 32, 32)] * 2 + [(3, 3, 32, 32)]
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert seen == [4, 4, 3]


def test_an_unreadable_image_names_the_file_and_leaves_no_thread(folder: Path) -> None:
    (folder / "005.png").write_bytes(b"not a png")
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(DatasetError, match="005.png"):
        list(iter_batches(_samples(folder), PreprocessConfig(32), 4, workers=2))
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeanomaly-load") and t.name not in before]


def test_stopping_early_leaves_no_thread(folder: Path) -> None:
    gen = iter_batches(_samples(folder), PreprocessConfig(32), 2, workers=3)
    next(gen)
    gen.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeanomaly-load")]


@pytest.mark.parametrize("workers", [-1, 1.5, True])
def test_bad_workers(folder: Path, workers) -> None:
    with pytest.raises(ValueError, match="workers"):
        list(iter_batches(_samples(folder), PreprocessConfig(32), 4, workers=workers))


def test_workers_by_device() -> None:
    assert loader_workers(torch.device("cpu")) == 1
    assert 1 <= loader_workers(torch.device("cuda")) <= 4  # a device object needs no GPU
