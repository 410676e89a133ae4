"""PatchCore fit at scale, and the chunked coreset against the exact greedy (run by hand).

    PYTHONPATH=$PWD python tests/benchmarks/bench_fit_scale.py quality --data DIR [--category C] \
        [--chunks 8192,16384,32768]
    PYTHONPATH=$PWD python tests/benchmarks/bench_fit_scale.py scale [--counts 50,200,1000,2000] \
        [--method chunked] [--workdir /tmp/fitscale]

quality: fits PatchCore (default recipe, 256 px) once per coreset selection on the same
    training embeddings (computed once): the exact greedy (``coreset_method="greedy"``, the
    oracle) and the chunked selection at each ``--chunks`` part size (the default part is
    65,536 patches, i.e. exactly the greedy up to 64 images; smaller parts show what the
    chunking costs where the data is small enough to compare against the oracle). Prints
    the selection's seconds, image and pixel AUROC on the test split, and the covering
    radius (distance of a training patch to its nearest bank entry: mean, 99th percentile,
    max over a fixed sample of 16,384 training patches).

scale: for each image count, writes that many synthetic 256 px "metal" training images
    (``edgeanomaly data synth``; kept in ``--workdir`` for the next run), then runs
    ``edgeanomaly fit`` on them in a child process and reads its wall time and peak RSS
    (``resource.getrusage(RUSAGE_CHILDREN)`` of a fresh child per count). Prints a table and
    the growth exponent ``log(t2 / t1) / log(n2 / n1)`` between consecutive counts.

Timings on a shared machine are upper bounds: note what else was running.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
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

    variants = [("greedy", 0)] + [("chunked", int(c)) for c in args.chunks.split(",") if c]
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


def _synth(workdir: Path, n: int) -> Path:
    root = workdir / f"metal_{n}"
    if not (root / "metal" / "train" / "good").is_dir() or len(os.listdir(root / "metal" / "train" / "good")) < n:
        subprocess.run([sys.executable, "-m", "edgeanomaly.cli", "data", "synth", "--out", str(root), "--category",
                        "metal", "--n-train", str(n), "--n-test", "2", "--seed", "0"], check=True,
                       stdout=subprocess.DEVNULL)
    return root


_CHILD = """
import resource, sys, time
from edgeanomaly.models import fit_run
t0 = time.perf_counter()
r = fit_run("patchcore", sys.argv[1], None, category="metal", coreset_method=sys.argv[2], random_state=0)
total = time.perf_counter() - t0
print(f"{total:.2f} {r.seconds['fit']:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
"""


def scale(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    counts = [int(c) for c in args.counts.split(",")]
    results = []
    for n in counts:
        root = _synth(workdir, n)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _CHILD, str(root), args.method], check=True,
                             capture_output=True, text=True).stdout.split()
        wall = time.perf_counter() - t0
        fit_s, rss_mb = float(out[1]), int(out[2]) / 1024
        results.append((n, wall, fit_s, rss_mb))
        print(f"  {n:5d} images: process {wall:7.1f} s, fit {fit_s:7.1f} s, peak RSS {rss_mb:7.0f} MB", flush=True)
    print(f"\n| images | patches | fit s ({args.method}) | process s | peak RSS MB | exponent (fit) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i, (n, wall, fit_s, rss) in enumerate(results):
        exp = "" if i == 0 else f"{math.log(fit_s / results[i - 1][2]) / math.log(n / results[i - 1][0]):.2f}"
        print(f"| {n} | {n * 1024:,} | {fit_s:.1f} | {wall:.1f} | {rss:.0f} | {exp} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--data", required=True)
    q.add_argument("--category", default=None)
    q.add_argument("--chunks", default="8192,16384,32768")
    s = sub.add_parser("scale")
    s.add_argument("--counts", default="50,200,1000,2000")
    s.add_argument("--method", default="chunked", choices=["chunked", "greedy"])
    s.add_argument("--workdir", default="/tmp/fitscale")
    args = p.parse_args()
    quality(args) if args.cmd == "quality" else scale(args)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
