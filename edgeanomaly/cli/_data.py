"""``edgeanomaly data``: synthesise and check datasets (numpy + OpenCV only)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeanomaly.cli._common import friendly_errors, progress
from edgeanomaly.data import CATEGORIES, DEFECTS, generate_synthetic_dataset, load_dataset, mask_size_problem
from edgeanomaly.errors import ImageReadError


@click.group(epilog="""\b
Examples:
  edgeanomaly data synth --out data
  edgeanomaly data check data/metal""")
def data() -> None:
    """Synthesise or check datasets."""


@data.command(epilog="""\b
Examples:
  edgeanomaly data synth --out data
  edgeanomaly data synth --out small --category metal --n-train 10 --size 128""")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write <category>/... into.")
@click.option("--category", "categories", multiple=True, type=click.Choice(["fabric", "metal"]), help="Surface(s) to generate; default: all.")
@click.option("--n-train", default=40, show_default=True, type=click.IntRange(min=1), help="Normal training images per category.")
@click.option("--n-test", default=8, show_default=True, type=click.IntRange(min=1), help="Test images per test folder (good and each defect).")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=32), help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same pixels.")
@friendly_errors
def synth(out: Path, categories: tuple[str, ...], n_train: int, n_test: int, size: int, seed: int) -> None:
    """Write a deterministic synthetic inspection dataset in the MVTec AD layout."""
    cats = categories or CATEGORIES
    total = sum(n_train + n_test * (1 + len(DEFECTS[c])) for c in cats)
    with progress(length=total, label="Generating") as bar:
        last = [0]

        def tick(done: int, _total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        summary = generate_synthetic_dataset(out, cats, n_train=n_train, n_test=n_test, seed=seed, size=size, progress=tick)
    for cat in summary.categories:
        defects = ", ".join(DEFECTS[cat])
        click.echo(f"{out / cat}: {n_train} train/good, {n_test} test/good, {n_test} per defect ({defects})")
    click.echo(f"Check it with: edgeanomaly data check {out / summary.categories[0]}")


@data.command(epilog="""\b
Examples:
  edgeanomaly data check data/metal
  edgeanomaly data check data --category metal --no-decode
  edgeanomaly data check parts/good --abnormal-dir parts/bad --mask-dir parts/masks""")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--category", default=None, help="Category folder inside PATH (MVTec layout).")
@click.option("--abnormal-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Plain-folder layout: folder of defect images.")
@click.option("--mask-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Plain-folder layout: folder of masks.")
@click.option("--decode/--no-decode", default=True, show_default=True, help="Also decode every image and mask to find corrupt files.")
@friendly_errors
def check(path: Path, category: str | None, abnormal_dir: Path | None, mask_dir: Path | None, decode: bool) -> None:
    """Validate a dataset folder: counts per split and defect type, and every problem found."""
    ds = load_dataset(path, category=category, abnormal_dir=abnormal_dir, mask_dir=mask_dir)
    problems = list(ds.problems)
    if decode:
        samples = list(ds)
        with progress(samples, label="Decoding") as bar:
            for s in bar:
                try:
                    img = s.image()
                    if s.mask_path is not None:
                        mask = s.mask()
                        size_problem = None if mask is None else mask_size_problem(mask.shape, img.shape, s.mask_path)
                        if size_problem is not None:
                            problems.append(size_problem)
                        elif mask is not None and not mask.any():
                            problems.append(f"mask of a defect image has no defect pixels: {s.mask_path}")
                except ImageReadError as exc:
                    problems.append(str(exc))

    counts = ds.counts()
    click.echo(f"Dataset {ds.name} ({ds.layout} layout) at {ds.root}")
    for split in ("train", "test"):
        c = counts[split]
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=lambda kv: (kv[0] != "good", kv[0])))
        click.echo(f"  {split:<5} {sum(c.values()):>5} images  ({detail or 'none'})")
    defects = sorted(k for k in counts["test"] if k != "good")
    n_masks = sum(1 for s in ds.test if s.mask_path is not None)
    click.echo(f"  defect types: {len(defects)} ({', '.join(defects) or 'none'}); masks: {n_masks}")
    if problems:
        click.echo(f"{len(problems)} problem(s) found:", err=True)
        for p in problems:
            click.echo(f"  - {p}", err=True)
        raise SystemExit(1)
    click.echo("OK: no problems found.")
