from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeanomaly.data import folder_dataset, load_dataset
from edgeanomaly.errors import DatasetError


def test_real_mvtec_subset_counts(mvtec_root: Path) -> None:
    ds = load_dataset(mvtec_root).check()  # detects the single category
    assert ds.name == "hazelnut" and ds.layout == "mvtec"
    counts = ds.counts()
    assert sum(counts["train"].values()) == 50
    assert counts["test"]["good"] == 2
    assert sum(v for k, v in counts["test"].items() if k != "good") == 8
    assert sorted(k for k in counts["test"] if k != "good") == ["crack", "cut", "hole", "print"]
    assert all(s.mask_path is not None for s in ds.test if s.label == 1)
    assert ds.is_labelled and ds.has_masks
    s = next(s for s in ds.test if s.label == 1)
    assert s.mask().any()
    normal = next(s for s in ds.test if s.label == 0)
    assert not normal.mask(shape=(256, 256)).any()


def test_synthetic_category_is_clean(synthetic_root: Path) -> None:
    ds = load_dataset(synthetic_root, category="metal").check()
    assert ds.counts()["test"]["scratch"] == 6
    with pytest.raises(DatasetError, match="several MVTec categories.*fabric.*metal"):
        load_dataset(synthetic_root)


def copy_category(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_defect_without_mask_and_mask_without_image(synthetic_root: Path, tmp_path: Path) -> None:
    root = copy_category(synthetic_root / "metal", tmp_path / "metal")
    (root / "ground_truth" / "dent" / "000_mask.png").unlink()
    (root / "test" / "stain" / "001.png").unlink()
    ds = load_dataset(root)
    text = "\n".join(ds.problems)
    assert "defect image without a mask" in text and "dent/000.png" in text
    assert "mask without an image" in text and "stain/001_mask.png" in text
    with pytest.raises(DatasetError, match="2 problem"):
        ds.check()


def test_empty_split(synthetic_root: Path, tmp_path: Path) -> None:
    root = copy_category(synthetic_root / "metal", tmp_path / "metal")
    for p in (root / "train" / "good").iterdir():
        p.unlink()
    ds = load_dataset(root)
    assert any("empty split" in p and "train/good" in p for p in ds.problems)


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DatasetError, match="got a file"):
        load_dataset(tmp_path / "f.txt")


def _img(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))


def test_plain_folder_layout(tmp_path: Path) -> None:
    for i in range(10):
        _img(tmp_path / "ok" / f"n{i}.png", 100)
    (tmp_path / "masks").mkdir()
    for i in range(3):
        _img(tmp_path / "bad" / f"d{i}.jpg", 200)
        cv2.imwrite(str(tmp_path / "masks" / f"d{i}.png"), np.full((8, 8), 255, np.uint8))
    ds = folder_dataset(tmp_path / "ok", tmp_path / "bad", tmp_path / "masks", normal_test_ratio=0.2).check()
    assert len(ds.train) == 8 and len(ds.test) == 2 + 3
    assert {s.defect_type for s in ds.test if s.label == 1} == {"bad"}
    assert all(s.mask_path is not None for s in ds.test if s.label == 1)
    # Normal-only folder: everything is training data.
    only = load_dataset(tmp_path / "ok").check()
    assert len(only.train) == 10 and not only.test


def test_plain_folder_missing_mask(tmp_path: Path) -> None:
    _img(tmp_path / "ok" / "n.png", 1)
    _img(tmp_path / "bad" / "d.png", 2)
    (tmp_path / "masks").mkdir()
    ds = folder_dataset(tmp_path / "ok", tmp_path / "bad", tmp_path / "masks")
    assert any("without a mask" in p for p in ds.problems)


def test_a_split_folder_given_as_the_dataset_points_at_where_its_images_are(synthetic_root: Path) -> None:
    # --data metal/train said "empty split: no images in metal/train", though train/good held them all
    ds = load_dataset(synthetic_root / "metal" / "train")
    problem = next(p for p in ds.problems if "empty split" in p)
    n = len(list((synthetic_root / "metal" / "train" / "good").iterdir()))
    assert f"its subfolder good/ holds {n} images" in problem, problem
    assert f"{synthetic_root / 'metal'} for the MVTec layout" in problem, problem
    with pytest.raises(DatasetError, match="its subfolder good/ holds"):
        ds.check()


def test_a_broken_link_or_stray_file_is_a_problem_in_every_image_folder(synthetic_root: Path, tmp_path: Path) -> None:
    # A link whose target is gone (an unmounted share, a moved folder) was neither an image nor
    # a non-image: fit and validate went on without it, silently, in both layouts; and the plain
    # layout's abnormal and normal-test folders were not checked for non-image files at all.
    root = copy_category(synthetic_root / "metal", tmp_path / "metal")
    (root / "train" / "good" / "zz.png").symlink_to(tmp_path / "gone" / "zz.png")
    (root / "test" / "dent" / "zz.png").symlink_to(tmp_path / "gone" / "zz2.png")
    text = "\n".join(load_dataset(root).problems)
    assert f"a link whose target is missing: {root / 'train' / 'good' / 'zz.png'}" in text, text
    assert f"a link whose target is missing: {root / 'test' / 'dent' / 'zz.png'}" in text, text
    for folder in ("ok", "bad", "ok_test"):
        _img(tmp_path / "plain" / folder / "a.png", 100)
        _img(tmp_path / "plain" / folder / "b.png", 120)
        (tmp_path / "plain" / folder / "notes.txt").write_text("x")
        (tmp_path / "plain" / folder / "zz.png").symlink_to(tmp_path / "gone" / f"{folder}.png")
    plain = tmp_path / "plain"
    for ds in (folder_dataset(plain / "ok", plain / "bad"), folder_dataset(plain / "ok", normal_test_dir=plain / "ok_test")):
        text = "\n".join(ds.problems)
        checked = ("ok", "bad") if ds.test and ds.test[-1].label == 1 else ("ok", "ok_test")
        for folder in checked:
            assert f"not an image file (by extension): {plain / folder / 'notes.txt'}" in text, text
            assert f"a link whose target is missing: {plain / folder / 'zz.png'}" in text, text
        with pytest.raises(DatasetError, match="4 problem"):
            ds.check()
