"""Dataset layouts: MVTec AD and plain folders.

A dataset is scanned once into :class:`Sample` records (paths only, nothing decoded), and
every problem found is collected so that ``edgeanomaly data check`` can report all of them
at once, while fitting refuses a dataset that has any.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from edgeanomaly.data._io import header_size, is_image_file, read_image, read_mask
from edgeanomaly.data._preprocess import preprocess_mask
from edgeanomaly.errors import DatasetError

if TYPE_CHECKING:
    from edgeanomaly.data._preprocess import PreprocessConfig

__all__ = ["Sample", "Dataset", "load_dataset", "mvtec_dataset", "folder_dataset", "sample_labels", "sample_masks"]

NORMAL = "good"


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    Attributes:
        path: the image file.
        label: 0 normal, 1 anomalous.
        defect_type: ``"good"`` for normal images, else the defect folder name.
        split: ``"train"`` or ``"test"``.
        mask_path: ground-truth mask for anomalous images that have one, else None.
    """

    path: Path
    label: int
    defect_type: str
    split: str
    mask_path: Path | None = None

    def image(self) -> np.ndarray:
        """RGB uint8 (H, W, 3)."""
        return read_image(self.path)

    def mask(self, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """bool (H, W) ground truth; all False for normal images (needs ``shape``), None if unknown."""
        if self.mask_path is not None:
            return read_mask(self.mask_path)
        if self.label == 0 and shape is not None:
            return np.zeros(shape, dtype=bool)
        return None


@dataclass
class Dataset:
    """A scanned dataset: samples of both splits plus every problem found while scanning."""

    name: str
    root: Path
    layout: str
    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def has_masks(self) -> bool:
        return any(s.mask_path is not None for s in self.test)

    @property
    def is_labelled(self) -> bool:
        """True when the test split holds both normal and anomalous images."""
        labels = {s.label for s in self.test}
        return labels == {0, 1}

    def counts(self) -> dict[str, Counter]:
        """{split: Counter(defect_type -> number of images)}."""
        return {
            "train": Counter(s.defect_type for s in self.train),
            "test": Counter(s.defect_type for s in self.test),
        }

    def check(self) -> "Dataset":
        """Raise :class:`DatasetError` listing every problem, else return self."""
        if self.problems:
            listed = "\n  - ".join(self.problems)
            raise DatasetError(f"Dataset {self.root} has {len(self.problems)} problem(s):\n  - {listed}")
        return self

    def __iter__(self) -> Iterator[Sample]:
        yield from self.train
        yield from self.test


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def _where_the_images_are(folder: Path) -> str:
    """For a folder without images of its own: which of its subfolders hold images, and what to
    pass instead (``train/`` given where ``train/good/`` or the category folder was meant)."""
    held = [(sub, len(_images_in(sub))) for sub in sorted(p for p in folder.iterdir() if p.is_dir())]
    held = [(sub, n) for sub, n in held if n]
    if not held:
        return ""
    if len(held) == 1:
        said = f"its subfolder {held[0][0].name}/ holds {held[0][1]} images"
    else:
        said = "its subfolders " + ", ".join(f"{sub.name}/ ({n})" for sub, n in held) + " hold images"
    hint = f" itself; {said}: pass " + " or ".join(str(sub) for sub, _ in held) + " as a folder of normal images"
    if _is_mvtec_category(folder.parent):
        hint += f", or {folder.parent} for the MVTec layout"
    return hint


def _unusable_in(folder: Path) -> list[str]:
    """The problems of the entries of an image folder that are not images it can use: files
    without an image's extension (hidden ones aside), links whose target is missing (an
    unmounted share), and what is neither a file nor a folder. Each would otherwise be left out
    of the fit or the measurement without a word."""
    problems = []
    for p in sorted(folder.iterdir()):
        if p.is_file():
            if not is_image_file(p) and not p.name.startswith("."):
                problems.append(f"not an image file (by extension): {p}")
        elif p.is_symlink() and not p.exists():
            problems.append(f"a link whose target is missing: {p} (-> {os.readlink(p)})")
        elif not p.is_dir():
            problems.append(f"not a regular file: {p}")
    return problems


def _is_mvtec_category(path: Path) -> bool:
    return (path / "train").is_dir() or (path / "test").is_dir()


def _categories_hint(root: Path, category: str) -> str:
    """' Categories here: a, b. Did you mean 'a'?' for a mistyped --category (or '')."""
    import difflib

    subs = sorted(p.name for p in root.iterdir() if p.is_dir() and _is_mvtec_category(p))
    if not subs:
        return " It holds no MVTec-style category folders (with train/ and test/)."
    close = difflib.get_close_matches(category, subs, n=3, cutoff=0.5)
    return f" Categories here: {', '.join(subs)}." + (f" Did you mean {', '.join(repr(c) for c in close)}?" if close else "")


def mvtec_dataset(root: str | os.PathLike[str], category: str | None = None) -> Dataset:
    """Scan an MVTec AD layout.

    ``root`` is either the category folder (holding ``train/``, ``test/``, ``ground_truth/``)
    or its parent together with ``category``. Masks are ``ground_truth/<defect>/<stem>_mask.png``.
    """
    root = Path(root)
    cat_dir = root / category if category else root
    if not cat_dir.is_dir():
        if category and root.is_dir():
            raise DatasetError(f"No category {category!r} in {root}.{_categories_hint(root, category)}")
        raise DatasetError(f"Dataset folder not found: {cat_dir}")
    if not _is_mvtec_category(cat_dir):
        subs = sorted(p.name for p in cat_dir.iterdir() if p.is_dir() and _is_mvtec_category(p))
        hint = f" It contains categories: {', '.join(subs)}; pass one with --category." if subs else ""
        raise DatasetError(
            f"Expected an MVTec-style category folder with train/ and test/ at {cat_dir}.{hint}"
        )
    ds = Dataset(name=cat_dir.name, root=cat_dir, layout="mvtec")
    problems = ds.problems

    train_dir = cat_dir / "train" / NORMAL
    if not train_dir.is_dir():
        problems.append(f"missing training folder {train_dir}")
    else:
        ds.train = [Sample(p, 0, NORMAL, "train") for p in _images_in(train_dir)]
        if not ds.train:
            problems.append(f"empty split: no images in {train_dir}")
        problems += _unusable_in(train_dir)
        other = sorted(p.name for p in (cat_dir / "train").iterdir() if p.is_dir() and p.name != NORMAL)
        if other:
            problems.append(f"train/ must hold only normal images in train/good, found folders: {', '.join(other)}")

    test_dir = cat_dir / "test"
    gt_dir = cat_dir / "ground_truth"
    if test_dir.is_dir():
        defect_dirs = sorted(p for p in test_dir.iterdir() if p.is_dir())
        for ddir in defect_dirs:
            images = _images_in(ddir)
            if not images:
                problems.append(f"empty split: no images in {ddir}")
            problems += _unusable_in(ddir)
            if ddir.name == NORMAL:
                ds.test += [Sample(p, 0, NORMAL, "test") for p in images]
                continue
            mask_folder = gt_dir / ddir.name
            for p in images:
                mask = _find_mask(mask_folder, p.stem)
                if mask is None:
                    problems.append(
                        f"defect image without a mask: {p} (expected {mask_folder / (p.stem + '_mask.png')})"
                    )
                ds.test.append(Sample(p, 1, ddir.name, "test", mask))
            if mask_folder.is_dir():
                stems = {p.stem for p in images}
                for m in _images_in(mask_folder):
                    stem = m.stem[: -len("_mask")] if m.stem.endswith("_mask") else m.stem
                    if stem not in stems:
                        problems.append(f"mask without an image: {m} (expected {ddir / (stem + '.png')} or similar)")
        if not defect_dirs:
            problems.append(f"empty split: no folders in {test_dir}")
        if gt_dir.is_dir():
            for gdir in sorted(p for p in gt_dir.iterdir() if p.is_dir()):
                if not (test_dir / gdir.name).is_dir():
                    problems.append(f"mask folder without a test folder: {gdir}")
    return ds


def _find_mask(folder: Path, stem: str) -> Path | None:
    if not folder.is_dir():
        return None
    for name in (f"{stem}_mask", stem):
        for ext in (".png", ".bmp", ".tif", ".tiff", ".PNG"):
            cand = folder / f"{name}{ext}"
            if cand.is_file():
                return cand
    return None


def folder_dataset(
    normal_dir: str | os.PathLike[str],
    abnormal_dir: str | os.PathLike[str] | None = None,
    mask_dir: str | os.PathLike[str] | None = None,
    normal_test_dir: str | os.PathLike[str] | None = None,
    normal_test_ratio: float = 0.2,
    name: str | None = None,
) -> Dataset:
    """Scan a plain-folder layout: a normal folder, an optional abnormal folder and mask folder.

    Normal images are split into train and test deterministically: every ``1/normal_test_ratio``-th
    image in sorted order goes to test (none when there is no abnormal folder and no
    ``normal_test_dir``, so a normal-only folder is all training data). Masks are matched
    by file stem (``<stem>.png`` or ``<stem>_mask.png``).
    """
    normal_dir = Path(normal_dir)
    if not normal_dir.is_dir():
        raise DatasetError(f"Normal image folder not found: {normal_dir}")
    ds = Dataset(name=name or normal_dir.parent.name or normal_dir.name, root=normal_dir.parent, layout="folder")
    normals = _images_in(normal_dir)
    if not normals:
        ds.problems.append(f"empty split: no images in {normal_dir}{_where_the_images_are(normal_dir)}")
    ds.problems += _unusable_in(normal_dir)
    if normal_test_dir is not None:
        ds.train = [Sample(p, 0, NORMAL, "train") for p in normals]
        ds.test = [Sample(p, 0, NORMAL, "test") for p in _images_in(Path(normal_test_dir))]
        ds.problems += _unusable_in(Path(normal_test_dir))
    elif abnormal_dir is not None and normal_test_ratio > 0:
        if not 0 < normal_test_ratio < 1:
            raise DatasetError(f"Expected normal_test_ratio in (0, 1), got {normal_test_ratio}")
        step = max(2, round(1 / normal_test_ratio))
        for i, p in enumerate(normals):
            if i % step == step - 1:
                ds.test.append(Sample(p, 0, NORMAL, "test"))
            else:
                ds.train.append(Sample(p, 0, NORMAL, "train"))
    else:
        ds.train = [Sample(p, 0, NORMAL, "train") for p in normals]

    if abnormal_dir is not None:
        abnormal_dir = Path(abnormal_dir)
        if not abnormal_dir.is_dir():
            raise DatasetError(f"Abnormal image folder not found: {abnormal_dir}")
        defect = abnormal_dir.name
        abnormals = _images_in(abnormal_dir)
        if not abnormals:
            ds.problems.append(f"empty split: no images in {abnormal_dir}")
        ds.problems += _unusable_in(abnormal_dir)
        mdir = Path(mask_dir) if mask_dir is not None else None
        if mdir is not None and not mdir.is_dir():
            raise DatasetError(f"Mask folder not found: {mdir}")
        for p in abnormals:
            mask = _find_mask(mdir, p.stem) if mdir is not None else None
            if mdir is not None and mask is None:
                ds.problems.append(f"defect image without a mask: {p} (expected {mdir / (p.stem + '.png')})")
            ds.test.append(Sample(p, 1, defect, "test", mask))
        if mdir is not None:
            stems = {p.stem for p in abnormals}
            for m in _images_in(mdir):
                stem = m.stem[: -len("_mask")] if m.stem.endswith("_mask") else m.stem
                if stem not in stems:
                    ds.problems.append(f"mask without an image: {m}")
    return ds


def load_dataset(
    path: str | os.PathLike[str],
    category: str | None = None,
    abnormal_dir: str | os.PathLike[str] | None = None,
    mask_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Scan a dataset, detecting the layout.

    - ``path`` (or ``path/category``) with ``train/`` or ``test/`` inside: MVTec AD layout.
    - otherwise ``path`` is a folder of normal images (plain-folder layout), with optional
      ``abnormal_dir`` and ``mask_dir``.

    The returned :class:`Dataset` lists problems in ``.problems``; call ``.check()`` to raise.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"Dataset path not found: {path}")
    if not path.is_dir():
        raise DatasetError(f"Expected a dataset folder, got a file: {path}")
    if category or _is_mvtec_category(path):
        return mvtec_dataset(path, category)
    subs = sorted(p.name for p in path.iterdir() if p.is_dir() and _is_mvtec_category(p))
    if len(subs) == 1:
        return mvtec_dataset(path, subs[0])
    if len(subs) > 1:
        raise DatasetError(
            f"{path} holds several MVTec categories ({', '.join(subs)}); choose one with --category."
        )
    return folder_dataset(path, abnormal_dir=abnormal_dir, mask_dir=mask_dir)


def sample_labels(samples: Sequence[Sample]) -> np.ndarray:
    """Labels of ``samples`` as an int64 array (0 normal, 1 anomalous)."""
    return np.fromiter((s.label for s in samples), dtype=np.int64, count=len(samples))


def sample_masks(samples: Sequence[Sample], config: "PreprocessConfig") -> np.ndarray | None:
    """Ground truth of ``samples`` at model input size: bool (N, h, w), or None.

    Normal images get empty masks. None when an anomalous image has no mask (pixel metrics
    are then undefined for the set).
    """
    h, w = config.input_size
    out = np.zeros((len(samples), h, w), dtype=bool)
    for i, s in enumerate(samples):
        if s.mask_path is not None:
            mask = read_mask(s.mask_path)
            problem = mask_size_problem(mask.shape, image_shape(s.path), s.mask_path)
            if problem is not None:
                # Resized silently, it would move every pixel metric (pixel_pro 0.338 instead of 0.444).
                raise DatasetError(f"Ground truth does not fit its image: {problem}. `edgeanomaly data check` lists every such problem.")
            out[i] = preprocess_mask(mask, config)
        elif s.label == 1:
            return None
    return out


def image_shape(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, from its header when it can be read (no decoding), else decoded."""
    size = header_size(path.read_bytes()) if path.is_file() else None
    if size is None:
        return read_image(path).shape[:2]
    return size[1], size[0]


def mask_size_problem(mask_shape: tuple[int, ...], image_hw: tuple[int, ...], mask_path: Path) -> str | None:
    """The sentence `data check` and the metric paths report for a mask of another size, or None."""
    if tuple(mask_shape[:2]) == tuple(image_hw[:2]):
        return None
    return f"mask size {mask_shape[1]}x{mask_shape[0]} differs from image size {image_hw[1]}x{image_hw[0]}: {mask_path}"
