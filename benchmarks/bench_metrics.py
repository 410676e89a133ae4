"""Benchmark of the pixel-level metrics on synthetic anomaly maps (run by hand, not a test).

    .venv/bin/python benchmarks/bench_metrics.py [--repeats 7] [--sizes 100 500]

Data: N anomaly maps of 256x256 float32, half of the images normal; anomalous images carry
blob-shaped defect regions (about 1.5 % of all pixels) whose values are higher than the
background, plus noise everywhere. Prints a Markdown table: median seconds over the repeats
for each size, the ratio of the largest to the smallest size per image (1.0 = linear), the
extra peak memory of AUPIMO (tracemalloc, NumPy allocations) and the peer's figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from typing import Callable

import cv2
import numpy as np

from edgeanomaly import metrics

# anomalib 2.7 on the same machine, 100 maps of 256x256 (from issue 3)
PEER_SECONDS = {
    "pixel_auroc": "1.40",
    "pixel_aupr": "0.90",
    "aupro": "1.38",
    "pro": "0.59",
    "aupimo": "9.35 (3.4 GB)",
}


def synthetic_maps(n: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) float32 maps and bool masks; defects about 1.5 % of all pixels."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n // 2, n):
        # a few blobs per anomalous image: 3 % of its pixels, i.e. 1.5 % over all images
        target = int(0.03 * size * size)
        while masks[i].sum() < target:
            cy, cx = rng.integers(16, size - 16, 2)
            ry, rx = rng.uniform(4, 14, 2)
            angle = rng.uniform(0, np.pi)
            dy, dx = yy - cy, xx - cx
            u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
            v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
            masks[i] |= (u * u + v * v) <= 1.0
    maps = rng.normal(0.0, 1.0, (n, size, size)).astype(np.float32)
    for i in range(n):
        # spatially smooth background like a real anomaly map, then blob-shaped responses
        maps[i] = cv2.GaussianBlur(maps[i], (0, 0), 2.0) * 2.0
    signal = np.stack([cv2.GaussianBlur(m.astype(np.float32), (0, 0), 3.0) for m in masks])
    maps += 3.0 * signal + rng.normal(0.0, 0.3, maps.shape).astype(np.float32)
    return maps, masks


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: imports, caches, page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def extra_peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    args = parser.parse_args()

    data = {n: synthetic_maps(n) for n in args.sizes}
    first = args.sizes[0]
    maps, masks = data[first]
    threshold = float(np.quantile(maps[masks], 0.5))
    print(
        f"data: {first} maps {maps.shape[1]}x{maps.shape[2]} float32, {np.count_nonzero(masks.any(axis=(1, 2)))} "
        f"anomalous, defect pixels {masks.mean():.2%}; repeats {args.repeats}; numpy {np.__version__}, "
        f"OpenCV {cv2.__version__}\n"
    )
    runs: dict[str, Callable[[np.ndarray, np.ndarray], object]] = {
        "pixel_auroc": metrics.pixel_auroc,
        "pixel_aupr": metrics.pixel_aupr,
        "aupro": metrics.aupro,
        "pro": lambda a, m: metrics.pro(a, m, threshold),
        "aupimo": metrics.aupimo,
    }
    header = " | ".join(f"{n} maps (s)" for n in args.sizes)
    print(f"| metric | {header} | per-map ratio {args.sizes[-1]}/{first} | value @{first} | anomalib 2.7 @100 (s) |")
    print("|---" * (len(args.sizes) + 4) + "|")
    for name, fn in runs.items():
        seconds = {n: median_seconds(lambda n=n: fn(*data[n]), args.repeats) for n in args.sizes}
        ratio = (seconds[args.sizes[-1]] / args.sizes[-1]) / (seconds[first] / first)
        value = fn(maps, masks)
        value = value.mean if isinstance(value, metrics.AUPIMOResult) else value
        cells = " | ".join(f"{seconds[n]:.3f}" for n in args.sizes)
        print(f"| {name} | {cells} | {ratio:.2f} | {value:.4f} | {PEER_SECONDS[name]} |")
    for n in args.sizes:
        mb = extra_peak_mb(lambda n=n: metrics.aupimo(*data[n]))
        size_mb = data[n][0].nbytes / 2**20
        print(f"\nAUPIMO extra peak memory at {n} maps: {mb:.1f} MB (the maps themselves: {size_mb:.0f} MB)")


if __name__ == "__main__":
    main()
