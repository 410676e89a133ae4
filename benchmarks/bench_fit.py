"""Fit speed of PatchCore in the configuration of issue 4 (run by hand, prints a table).

    .venv/bin/python benchmarks/bench_fit.py [--repeats 3]

PatchCore, resnet18 layers 2+3 (random init), coreset ratio 0.1, 32 training images of
256x256 from the synthetic metal set. Reports the median over repeats of the whole fit
(reading + preprocessing images, feature extraction, coreset selection, neighbour table)
and of its parts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from edgeanomaly.data import PreprocessConfig, generate_synthetic_dataset, load_dataset
from edgeanomaly.models import create_model
from edgeanomaly.models._fit import fit_model, iter_batches

PEER_SECONDS = 43.8  # anomalib 2.7 on this kind of machine, 36 s of it in coreset selection


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_synthetic_dataset(tmp, ["metal"], n_train=32, n_test=1, seed=0, size=256)
        ds = load_dataset(Path(tmp) / "metal")
        pp = PreprocessConfig(256)
        totals, extract, select = [], [], []
        for _ in range(args.repeats):
            model = create_model("patchcore", backbone="resnet18", layers=("layer2", "layer3"), coreset_ratio=0.1,
                                 pretrained=False, random_state=0)
            t0 = time.perf_counter()
            fit_model(model, ds.train, pp, batch_size=16)
            totals.append(time.perf_counter() - t0)
            # the parts, measured separately
            batches = list(iter_batches(ds.train, pp, 16))
            t0 = time.perf_counter()
            with torch.no_grad():
                for b in batches:
                    model.embed(b)
            extract.append(time.perf_counter() - t0)
            select.append(totals[-1] - extract[-1])
        bank = tuple(model.memory_bank_.shape)
    med = statistics.median
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; memory bank {bank}")
    print("| stage | median s | min s |")
    print("|---|---|---|")
    print(f"| whole fit (decode + preprocess + features + coreset + neighbours) | {med(totals):.2f} | {min(totals):.2f} |")
    print(f"| feature extraction alone (32 images, in memory) | {med(extract):.2f} | {min(extract):.2f} |")
    print(f"| the rest (decode, coreset, neighbour table) | {med(select):.2f} | {min(select):.2f} |")
    print(f"| anomalib 2.7 (peer, issue figure) | {PEER_SECONDS:.1f} | |")
    print(f"ratio to peer: {med(totals) / PEER_SECONDS:.3f}")


if __name__ == "__main__":
    main()
