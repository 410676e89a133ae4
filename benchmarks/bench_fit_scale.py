"""PatchCore fit at scale, and the chunked coreset against the exact greedy (run by hand).

    PYTHONPATH=$PWD python benchmarks/bench_fit_scale.py quality --data DIR [--category C] \
        [--chunks 8192,16384,32768]
    PYTHONPATH=$PWD python benchmarks/bench_fit_scale.py scale [--counts 50,200,1000,2000] \
        [--method chunked] [--workdir /tmp/fitscale] [--largest 2000]
    PYTHONPATH=$PWD python benchmarks/bench_fit_scale.py coreset --data DIR [--rows 2048000] [--picks 40000]

quality: fits PatchCore (default recipe, 256 px) once per coreset selection on the same
    training embeddings (computed once): the exact greedy (``coreset_method="greedy"``, the
    oracle) and the chunked selection at each ``--chunks`` part size (the default part is
    65,536 patches, i.e. exactly the greedy up to 64 images; smaller parts show what the
    chunking costs where the data is small enough to compare against the oracle). Prints
    the selection's seconds, image and pixel AUROC on the test split, and the covering
    radius (distance of a training patch to its nearest bank entry: mean, 99th percentile,
    max over a fixed sample of 16,384 training patches).

scale: for each image count, writes that many synthetic 256 px "metal" training images
    (``edgeanomaly data synth`` of the largest count, kept in ``--workdir`` for the next run;
    the smaller counts link to a prefix of it), then runs
    ``fit_run`` (what ``edgeanomaly fit`` runs) in a fresh child process per count: the fit's
    seconds, split into the pass over the images (decode + features) and the coreset
    selection (from the progress callbacks), the child's CPU seconds (user + system, of the
    fit and the small test pass: less sensitive than wall time to other work on the machine)
    and its own peak RSS (``VmHWM``; ``ru_maxrss`` would carry the parent's peak in).
    Prints a table and the growth exponent ``log(t2 / t1) / log(n2 / n1)`` of the fit
    between consecutive counts.

coreset: the selection alone at the size of a 2,000-image fit: the training features of
    ``--data`` tiled to ``--rows`` rows (each copy with independent noise of 5 % of the
    feature standard deviation, so no two rows are equal), ``--picks`` picks; prints its
    wall and CPU seconds and the peak RSS before and after it.

predict-peak: the peak RSS of ``predict_samples`` (what fit_run runs on the test split after
    the fit) with a PatchCore bank of 40,000 x 152, batches of 16 given whole ("whole", as
    before issue 22) and split by ``predict_batch_limit`` ("split").

Timings on a shared machine are upper bounds: note what else was running.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def quality(args: argparse.Namespace) -> None:
    import torch

    from edgeanomaly.data import PreprocessConfig, load_dataset, sample_labels, sample_masks
    from edgeanomaly.metrics import auroc, pixel_auroc
    from edgeanomaly.models import create_model
    from edgeanomaly.models._fit import iter_batches

    torch.manual_seed(0)
    ds = load_dataset(args.data, category=args.category).check()
    cfg = PreprocessConfig(256)
    model = create_model("patchcore", random_state=0)
    t0 = time.perf_counter()
    train = [model.embed(b) for b in iter_batches(list(ds.train), cfg, 16)]
    test = list(iter_batches(list(ds.test), cfg, 16))
    print(f"{ds.name}: {len(ds.train)} training images, {sum(e.shape[0] * e.shape[2] * e.shape[3] for e in train)} "
          f"patches; {len(ds.test)} test images; features {time.perf_counter() - t0:.1f} s", flush=True)
    labels = sample_labels(ds.test)
    masks = sample_masks(ds.test, cfg)
    patches = torch.cat([e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]) for e in train])
    sample = patches[torch.randperm(patches.shape[0], generator=torch.Generator().manual_seed(1))[:16384]]

    variants = [("greedy", 0)] * (not args.skip_greedy) + [("chunked", int(c)) for c in args.chunks.split(",") if c]
    rows = []
    for method, chunk in variants:
        model.coreset_method, model.coreset_chunk_rows = method, chunk or 65_536
        t0 = time.perf_counter()
        model.fit_embeddings(train)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            outs = [model.predict(b) for b in test]
        scores = torch.cat([o["pred_score"] for o in outs]).numpy()
        maps = torch.cat([o["anomaly_map"][:, 0] for o in outs]).numpy()
        bank = model.memory_bank_
        d2 = (sample * sample).sum(1, keepdim=True) - 2 * sample @ bank.T + model.bank_sq_norm_[None]
        radius = d2.amin(1).clamp_min(0).sqrt()
        rows.append((f"{method}" + (f" ({chunk})" if chunk else ""), seconds, auroc(scores, labels),
                     pixel_auroc(maps, masks), float(radius.mean()), float(radius.quantile(0.99)), float(radius.max())))
        print(f"  {rows[-1][0]:<18} {seconds:7.1f} s  image AUROC {rows[-1][2]:.4f}  pixel AUROC {rows[-1][3]:.4f}  "
              f"radius mean {rows[-1][4]:.3f} p99 {rows[-1][5]:.3f} max {rows[-1][6]:.3f}", flush=True)
    print("\n| selection | seconds | image AUROC | pixel AUROC | radius mean | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} |")


def _generate(out: Path, n_train: int) -> Path:
    good = out / "metal" / "train" / "good"
    if not good.is_dir() or len(os.listdir(good)) < n_train:
        subprocess.run([sys.executable, "-m", "edgeanomaly.cli", "data", "synth", "--out", str(out), "--category",
                        "metal", "--n-train", str(n_train), "--n-test", "2", "--seed", "0"], check=True,
                       stdout=subprocess.DEVNULL)
    return out / "metal"


def _synth(workdir: Path, n: int, largest: int) -> Path:
    """A dataset of the first ``n`` of ``largest`` synthetic training images (symbolic links
    into one generated set, so every count fits on a prefix of the same images) and the test
    split of a small generated set (2 images per folder)."""
    good = workdir / f"metal_{largest}" / "metal" / "train" / "good"
    if not good.is_dir() or len(os.listdir(good)) < n:
        _generate(workdir / f"metal_{largest}", largest)
    test = _generate(workdir / "metal_test", 1)
    root = workdir / f"metal_{n}_of_{largest}"
    if root.is_dir():
        shutil.rmtree(root)
    (root / "metal" / "train" / "good").mkdir(parents=True)
    for f in sorted(good.iterdir(), key=lambda f: int(f.stem))[:n]:
        (root / "metal" / "train" / "good" / f.name).symlink_to(f)
    for sub in ("test", "ground_truth"):
        (root / "metal" / sub).symlink_to(test / sub, target_is_directory=True)
    return root


_CHILD = """
import resource, sys, time
from edgeanomaly.models import fit_run
def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
marks = {}
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
def progress(stage, done, total):
    if stage == "fit" and done == total:
        marks["images"] = time.perf_counter()
    if stage == "coreset" and done == total:
        marks["coreset"] = time.perf_counter()
c0 = cpu()
t0 = time.perf_counter()
r = fit_run("patchcore", sys.argv[1], None, category="metal", coreset_method=sys.argv[2], random_state=0,
            progress=progress)
fit_cpu = cpu() - c0  # the whole child after imports: fit, test inference, calibration
images = marks["images"] - t0 - r.seconds["setup"]
coreset = marks.get("coreset", marks["images"]) - marks["images"]
print(f"{r.seconds['fit']:.2f} {images:.2f} {coreset:.2f} {peak_kib()} {fit_cpu:.2f}")
"""


def scale(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    counts = [int(c) for c in args.counts.split(",")]
    results = []
    for n in counts:
        root = _synth(workdir, n, args.largest or max(counts))
        out = subprocess.run([sys.executable, "-c", _CHILD, str(root), args.method], check=True,
                             capture_output=True, text=True).stdout.split()
        fit_s, images_s, coreset_s, rss_mb, cpu_s = (float(out[0]), float(out[1]), float(out[2]), int(out[3]) / 1024,
                                                    float(out[4]))
        results.append((n, fit_s, images_s, coreset_s, rss_mb, cpu_s))
        print(f"  {n:5d} images: fit {fit_s:7.1f} s (images {images_s:.1f} s, coreset {coreset_s:.1f} s), "
              f"CPU {cpu_s:.1f} s, peak RSS {rss_mb:7.0f} MB", flush=True)
    print(f"\n| images | patches | fit s ({args.method}) | decode + features s | coreset s | CPU s (fit + test) | "
          "peak RSS MB | exponent (fit s) | exponent (CPU s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, (n, fit_s, images_s, coreset_s, rss, cpu_s) in enumerate(results):
        prev = results[i - 1] if i else None
        exp = "" if prev is None else f"{math.log(fit_s / prev[1]) / math.log(n / prev[0]):.2f}"
        exp_cpu = "" if prev is None else f"{math.log(cpu_s / prev[5]) / math.log(n / prev[0]):.2f}"
        print(f"| {n} | {n * 1024:,} | {fit_s:.1f} | {images_s:.1f} | {coreset_s:.1f} | {cpu_s:.1f} | {rss:.0f} | "
              f"{exp} | {exp_cpu} |")


def coreset(args: argparse.Namespace) -> None:
    import torch

    from edgeanomaly.components import KCenterGreedy
    from edgeanomaly.data import PreprocessConfig, load_dataset
    from edgeanomaly.models import create_model
    from edgeanomaly.models._fit import iter_batches

    def cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    ds = load_dataset(args.data, category=args.category).check()
    model = create_model("patchcore", random_state=0)
    with torch.no_grad():
        embs = [model.embed(b) for b in iter_batches(list(ds.train), PreprocessConfig(256), 16)]
    base = torch.cat([e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]) for e in embs])
    del embs
    g = torch.Generator().manual_seed(0)
    copies = -(-args.rows // base.shape[0])
    std = base.std(0)
    x = torch.empty(copies * base.shape[0], base.shape[1])
    for i in range(copies):
        x[i * base.shape[0] : (i + 1) * base.shape[0]] = base + 0.05 * std * torch.randn(base.shape, generator=g)
    x = x[: args.rows]
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{tuple(x.shape)} rows ({copies} noisy copies of {base.shape[0]} patches); peak RSS so far {rss_data:.0f} MB",
          flush=True)
    c0, t0 = cpu(), time.perf_counter()
    KCenterGreedy(n_samples=args.picks, random_state=0, method=args.method, chunk_rows=args.chunk_rows).fit(x)
    print(f"{args.method} (parts of {args.chunk_rows}): wall {time.perf_counter() - t0:.1f} s, CPU {cpu() - c0:.1f} s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)


_PREDICT_CHILD = """
import sys, torch
def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
import edgeanomaly.models._patchcore as pc
from edgeanomaly.data import PreprocessConfig, load_dataset
from edgeanomaly.models import create_model
from edgeanomaly.models._fit import predict_samples
if sys.argv[2] == "whole":
    pc._PREDICT_BLOCK_BYTES = 2**62  # no split: whole batches of 16, as before issue 22
m = create_model("patchcore", random_state=0)
g = torch.Generator().manual_seed(0)
bank = torch.randn(40000, 152, generator=g)
m.memory_bank_, m.bank_sq_norm_ = bank, (bank * bank).sum(1)
m.support_idx_ = torch.randint(40000, (40000, 9), generator=g)
samples = load_dataset(sys.argv[1]).test
before = peak_kib() // 1024
predict_samples(m, samples, PreprocessConfig(256), batch_size=16)
after = peak_kib() // 1024
print(f"{sys.argv[2]}: {len(samples)} test images, peak RSS {before} MB before, {after} MB after")
"""


def predict_peak(args: argparse.Namespace) -> None:
    for mode in ("whole", "split"):
        out = subprocess.run([sys.executable, "-c", _PREDICT_CHILD, args.data, mode], check=True, capture_output=True,
                             text=True).stdout
        print(out.strip(), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--data", required=True)
    q.add_argument("--category", default=None)
    q.add_argument("--chunks", default="8192,16384,32768")
    q.add_argument("--skip-greedy", action="store_true", help="only the chunked selections (the greedy takes long)")
    s = sub.add_parser("scale")
    s.add_argument("--counts", default="50,200,1000,2000")
    s.add_argument("--method", default="chunked", choices=["chunked", "greedy"])
    s.add_argument("--workdir", default="/tmp/fitscale")
    s.add_argument("--largest", type=int, default=None, help="size of the generated set the counts take a prefix of")
    c = sub.add_parser("coreset")
    c.add_argument("--data", required=True)
    c.add_argument("--category", default=None)
    c.add_argument("--rows", type=int, default=2_048_000)
    c.add_argument("--picks", type=int, default=40_000)
    c.add_argument("--method", default="chunked", choices=["chunked", "greedy"])
    c.add_argument("--chunk-rows", type=int, default=65_536)
    pp = sub.add_parser("predict-peak")
    pp.add_argument("--data", required=True, help="a category folder with a test split")
    args = p.parse_args()
    {"quality": quality, "scale": scale, "coreset": coreset, "predict-peak": predict_peak}[args.cmd](args)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
