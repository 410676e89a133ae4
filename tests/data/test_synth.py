from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from edgeanomaly.data import CATEGORIES, DEFECTS, generate_synthetic_dataset, read_mask, render_sample
from edgeanomaly.errors import ConfigError


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_pixels(tmp_path: Path) -> None:
    a = generate_synthetic_dataset(tmp_path / "a", n_train=2, n_test=1, seed=3, size=64).root
    b = generate_synthetic_dataset(tmp_path / "b", n_train=2, n_test=1, seed=3, size=64).root
    c = generate_synthetic_dataset(tmp_path / "c", n_train=2, n_test=1, seed=4, size=64).root
    assert digest(a) == digest(b)
    da, dc = digest(a), digest(c)
    pngs = [k for k in da if k.endswith(".png")]
    assert all(da[k] != dc[k] for k in pngs)


def test_adding_images_keeps_existing_ones(tmp_path: Path) -> None:
    a = generate_synthetic_dataset(tmp_path / "a", ["metal"], n_train=2, n_test=1, size=64).root
    b = generate_synthetic_dataset(tmp_path / "b", ["metal"], n_train=4, n_test=2, size=64).root
    da, db = digest(a), digest(b)
    assert all(da[k] == db[k] for k in da if k.endswith(".png"))


@pytest.mark.parametrize("category", CATEGORIES)
def test_masks_match_drawn_defects_exactly(category: str) -> None:
    for kind in DEFECTS[category]:
        for i in range(4):
            img, mask, clean = render_sample(category, kind, i, seed=0, size=128)
            changed = np.any(img != clean, axis=2)
            assert mask.any(), (kind, i)
            assert not (changed & ~mask).any(), f"{kind} {i}: pixels changed outside the mask"
            assert (changed & mask).sum() == mask.sum(), f"{kind} {i}: mask pixels left unchanged"


def test_good_images_vary_and_have_empty_masks() -> None:
    imgs = [render_sample("fabric", "good", i, size=64)[0] for i in range(3)]
    assert not np.array_equal(imgs[0], imgs[1])
    assert not render_sample("metal", "good", 0, size=64)[1].any()


def test_written_masks_equal_rendered(tmp_path: Path) -> None:
    root = generate_synthetic_dataset(tmp_path, ["fabric"], n_train=1, n_test=2, seed=7, size=64).root
    for kind in DEFECTS["fabric"]:
        _, mask, _ = render_sample("fabric", kind, 1, seed=7, size=64)
        np.testing.assert_array_equal(read_mask(root / "fabric" / "ground_truth" / kind / "001_mask.png"), mask)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown synthetic category 'wood'"):
        generate_synthetic_dataset(tmp_path, ["wood"])
    with pytest.raises(ConfigError, match="n_train"):
        generate_synthetic_dataset(tmp_path, n_train=0)
