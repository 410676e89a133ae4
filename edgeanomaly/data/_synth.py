"""A deterministic synthetic inspection dataset in the MVTec AD layout.

Two surfaces, each with four defect kinds typical of its material:

- ``fabric``: a plain-weave textile (threads, over/under crossings, per-thread shade);
  defects ``hole``, ``stain``, ``cut``, ``thread`` (a pulled, brighter thread).
- ``metal``: brushed steel (streaks along the brushing direction, uneven lighting);
  defects ``scratch``, ``dent``, ``stain``, ``crack``.

Every normal image varies (rotation, phase, lighting, shade, noise) so a model has to learn
the texture, not one picture. Every defect is first drawn into its mask, and the image is
changed only inside that mask: the mask matches the drawn defect exactly by construction.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from edgeanomaly.errors import ConfigError

__all__ = ["CATEGORIES", "DEFECTS", "render_sample", "generate_synthetic_dataset", "SynthSummary"]

GENERATOR_VERSION = 1
CATEGORIES = ("fabric", "metal")
DEFECTS: dict[str, tuple[str, ...]] = {
    "fabric": ("hole", "stain", "cut", "thread"),
    "metal": ("scratch", "dent", "stain", "crack"),
}
_SPLIT_CODE = {"train": 0, "test": 1}


def _rng(seed: int, category: str, split: str, kind: str, index: int) -> np.random.Generator:
    # Each image has its own stream: adding images or categories never changes existing ones.
    kind_code = sum((i + 1) * ord(c) for i, c in enumerate(kind))
    return np.random.default_rng([seed, CATEGORIES.index(category), _SPLIT_CODE[split], kind_code, index])


def _rotated_grid(size: int, rng: np.random.Generator, max_deg: float) -> tuple[np.ndarray, np.ndarray]:
    theta = np.deg2rad(rng.uniform(-max_deg, max_deg))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    ox, oy = rng.uniform(0, 64, size=2).astype(np.float32)
    return c * xx - s * yy + ox, s * xx + c * yy + oy


def _fabric(size: int, rng: np.random.Generator) -> np.ndarray:
    u, v = _rotated_grid(size, rng, 3.0)
    period = rng.uniform(7.5, 8.5)
    iu, iv = np.floor(u / period), np.floor(v / period)
    fu, fv = u / period - iu, v / period - iv
    warp = np.sin(np.pi * fu) ** 0.6
    weft = np.sin(np.pi * fv) ** 0.6
    top = ((iu + iv) % 2).astype(bool)
    # Per-thread shade: real yarn is never uniform.
    shades = rng.normal(1.0, 0.05, size=512).astype(np.float32)
    su = shades[(iu.astype(np.int64) % 256)]
    sv = shades[256 + (iv.astype(np.int64) % 256)]
    weave = np.where(top, 0.55 + 0.45 * warp * su, 0.55 + 0.45 * weft * sv)
    base = np.array([70, 100, 150], np.float32) * rng.uniform(0.92, 1.08)  # RGB denim blue
    img = weave[..., None] * base[None, None, :] * rng.uniform(0.9, 1.1)
    img += rng.normal(0, 4.0, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _metal(size: int, rng: np.random.Generator) -> np.ndarray:
    pad = size // 4
    noise = rng.normal(0, 1, size=(size + 2 * pad, size + 2 * pad)).astype(np.float32)
    streaks = cv2.blur(noise, (61, 1))  # brushing direction: horizontal
    streaks = streaks / (streaks.std() + 1e-6)
    angle = rng.uniform(-4, 4)
    m = cv2.getRotationMatrix2D(((size + 2 * pad) / 2, (size + 2 * pad) / 2), angle, 1.0)
    streaks = cv2.warpAffine(streaks, m, streaks.shape[::-1], borderMode=cv2.BORDER_REFLECT)[pad:-pad, pad:-pad]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    gx, gy = rng.uniform(-25, 25, size=2)
    light = 150 + gx * (xx - 0.5) + gy * (yy - 0.5)
    gray = light + 9.0 * streaks + rng.normal(0, 2.0, size=(size, size))
    tint = np.array([0.97, 1.0, 1.04], np.float32)  # cold steel
    img = gray[..., None] * tint[None, None, :]
    return np.clip(img, 0, 255).astype(np.uint8)


_SURFACES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {"fabric": _fabric, "metal": _metal}


def _blob(size: int, rng: np.random.Generator, radius: float) -> np.ndarray:
    """An irregular filled blob (uint8 0/1) at a random position away from the border."""
    cx, cy = rng.uniform(0.2 * size, 0.8 * size, size=2)
    n = 24
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radii = radius * (1 + 0.35 * np.convolve(rng.normal(0, 1, n + 4), np.ones(5) / 5, "valid"))
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def _curve(size: int, rng: np.random.Generator, length: float, thickness: int, wiggle: float) -> np.ndarray:
    start = rng.uniform(0.2 * size, 0.8 * size, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    pts = [start]
    steps = 12
    for _ in range(steps):
        angle += rng.normal(0, wiggle)
        pts.append(pts[-1] + (length / steps) * np.array([np.cos(angle), np.sin(angle)]))
    mask = np.zeros((size, size), np.uint8)
    cv2.polylines(mask, [np.round(np.array(pts)).astype(np.int32)], False, 1, thickness=thickness)
    return mask


def _crack(size: int, rng: np.random.Generator) -> np.ndarray:
    mask = _curve(size, rng, rng.uniform(0.25, 0.4) * size, 2, 0.6)
    ys, xs = np.nonzero(mask)
    for _ in range(int(rng.integers(2, 4))):  # branches start on the main crack
        k = int(rng.integers(0, len(xs)))
        angle = rng.uniform(0, 2 * np.pi)
        pts = [np.array([xs[k], ys[k]], float)]
        for _ in range(6):
            angle += rng.normal(0, 0.7)
            pts.append(pts[-1] + rng.uniform(3, 6) * np.array([np.cos(angle), np.sin(angle)]))
        cv2.polylines(mask, [np.round(np.array(pts)).astype(np.int32)], False, 1, thickness=1)
    return mask


def _apply(img: np.ndarray, mask: np.ndarray, target: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Blend ``target`` into ``img`` only where ``mask`` is set; pixels outside stay bit-identical."""
    out = img.astype(np.float32)
    a = alpha if np.isscalar(alpha) else alpha[..., None]
    blended = (1 - a) * out + a * target
    m = mask.astype(bool)
    out[m] = blended[m]
    res = np.clip(np.round(out), 0, 255).astype(np.uint8)
    # A blend can round back to the original value; nudge those pixels so the mask is exact.
    same = m & np.all(res == img, axis=2)
    if same.any():
        res[same] = np.where(img[same] > 127, img[same] - 40, img[same] + 40).astype(np.uint8)
    return res


def _defect(category: str, kind: str, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    s = size / 256.0
    if kind == "hole":
        mask = _blob(size, rng, rng.uniform(6, 13) * s)
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        shade = np.clip(dist / (dist.max() + 1e-6), 0, 1)
        target = np.zeros_like(img, np.float32) + np.array([20, 20, 22], np.float32)
        return _apply(img, mask, target, 0.75 + 0.25 * shade), mask
    if kind == "stain":
        mask = _blob(size, rng, rng.uniform(10, 22) * s)
        color = np.array([110, 80, 40], np.float32) if category == "fabric" else np.array([60, 55, 45], np.float32)
        target = np.zeros_like(img, np.float32) + color * rng.uniform(0.85, 1.15)
        return _apply(img, mask, target, rng.uniform(0.45, 0.65)), mask
    if kind == "cut":
        mask = _curve(size, rng, rng.uniform(0.2, 0.35) * size, max(2, round(3 * s)), 0.15)
        target = np.zeros_like(img, np.float32) + np.array([15, 15, 18], np.float32)
        return _apply(img, mask, target, 0.85), mask
    if kind == "thread":
        mask = _curve(size, rng, rng.uniform(0.3, 0.5) * size, max(2, round(3 * s)), 0.05)
        target = np.zeros_like(img, np.float32) + np.array([200, 210, 230], np.float32)
        return _apply(img, mask, target, 0.7), mask
    if kind == "scratch":
        mask = _curve(size, rng, rng.uniform(0.3, 0.5) * size, max(1, round(2 * s)), 0.08)
        target = np.zeros_like(img, np.float32) + rng.choice([235.0, 60.0])
        return _apply(img, mask, target, 0.8), mask
    if kind == "dent":
        mask = _blob(size, rng, rng.uniform(9, 16) * s)
        ys, xs = np.nonzero(mask)
        cy, cx = ys.mean(), xs.mean()
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        # Lit from the top-left: the upper rim of a dent is dark, the lower rim bright.
        angle = rng.uniform(0, 2 * np.pi)
        grad = (np.cos(angle) * (xx - cx) + np.sin(angle) * (yy - cy)) / (np.sqrt(mask.sum() / np.pi) + 1e-6)
        target = img.astype(np.float32) + 70.0 * np.clip(grad, -1, 1)[..., None]
        return _apply(img, mask, target, 0.9), mask
    if kind == "crack":
        mask = _crack(size, rng)
        target = np.zeros_like(img, np.float32) + np.array([25, 22, 20], np.float32)
        return _apply(img, mask, target, 0.85), mask
    raise ConfigError(f"Unknown defect kind {kind!r} for {category}; expected one of {DEFECTS[category]}")


def render_sample(
    category: str, kind: str, index: int, seed: int = 0, size: int = 256, split: str = "test"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one sample: (image RGB uint8 (S,S,3), mask bool (S,S), clean image before the defect).

    ``kind`` is ``"good"`` or a defect of ``DEFECTS[category]``. Same arguments, same pixels.
    """
    if category not in _SURFACES:
        raise ConfigError(f"Unknown synthetic category {category!r}; expected one of {', '.join(CATEGORIES)}")
    rng = _rng(seed, category, split, kind, index)
    clean = _SURFACES[category](size, rng)
    if kind == "good":
        return clean, np.zeros((size, size), bool), clean
    image, mask = _defect(category, kind, clean, rng)
    return image, mask.astype(bool), clean


@dataclass(frozen=True)
class SynthSummary:
    root: Path
    categories: tuple[str, ...]
    n_train: int
    n_test: int
    seed: int
    size: int


def _write_png(path: Path, rgb_or_gray: np.ndarray) -> None:
    arr = cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR) if rgb_or_gray.ndim == 3 else rgb_or_gray
    if not cv2.imwrite(str(path), arr):
        raise OSError(f"Could not write {path}")


def generate_synthetic_dataset(
    out: str | os.PathLike[str],
    categories: Sequence[str] = CATEGORIES,
    n_train: int = 40,
    n_test: int = 8,
    seed: int = 0,
    size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write ``out/<category>/{train/good, test/<kind>, ground_truth/<defect>}`` PNGs.

    Args:
        n_train: normal training images per category.
        n_test: test images per test folder (``good`` and each defect kind).
        progress: optional callback ``(done, total)``.

    >>> import tempfile
    >>> s = generate_synthetic_dataset(tempfile.mkdtemp(), ["metal"], n_train=2, n_test=1, size=64)
    >>> sorted(p.name for p in (s.root / "metal" / "test").iterdir())
    ['crack', 'dent', 'good', 'scratch', 'stain']
    """
    categories = tuple(categories)
    for c in categories:
        if c not in _SURFACES:
            raise ConfigError(f"Unknown synthetic category {c!r}; expected one of {', '.join(CATEGORIES)}")
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"Expected n_train >= 1 and n_test >= 1, got {n_train} and {n_test}")
    if size < 32:
        raise ConfigError(f"Expected size >= 32 pixels, got {size}")
    root = Path(out)
    total = sum(n_train + n_test * (1 + len(DEFECTS[c])) for c in categories)
    done = 0
    for cat in categories:
        cdir = root / cat
        (cdir / "train" / "good").mkdir(parents=True, exist_ok=True)
        for i in range(n_train):
            img, _, _ = render_sample(cat, "good", i, seed, size, split="train")
            _write_png(cdir / "train" / "good" / f"{i:03d}.png", img)
            done += 1
            if progress:
                progress(done, total)
        for kind in ("good", *DEFECTS[cat]):
            (cdir / "test" / kind).mkdir(parents=True, exist_ok=True)
            if kind != "good":
                (cdir / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
            for i in range(n_test):
                img, mask, _ = render_sample(cat, kind, i, seed, size, split="test")
                _write_png(cdir / "test" / kind / f"{i:03d}.png", img)
                if kind != "good":
                    _write_png(cdir / "ground_truth" / kind / f"{i:03d}_mask.png", mask.astype(np.uint8) * 255)
                done += 1
                if progress:
                    progress(done, total)
        info = {
            "generator": "edgeanomaly.data.generate_synthetic_dataset",
            "generator_version": GENERATOR_VERSION,
            "category": cat,
            "seed": seed,
            "n_train": n_train,
            "n_test_per_folder": n_test,
            "size": size,
            "defects": list(DEFECTS[cat]),
        }
        (cdir / "synth.json").write_text(json.dumps(info, indent=2) + "\n")
    return SynthSummary(root, categories, n_train, n_test, seed, size)
