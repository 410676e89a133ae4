"""Benchmark of KCenterGreedy coreset selection (run by hand, not a test).

    .venv/bin/python benchmarks/bench_kcenter.py [--data random|features|both] [--repeats 5]

The PatchCore case of issue 4: 32 images of 256x256, resnet18 layers 2+3 -> 32 x 32 x 32 =
32,768 patch embeddings of 384 dimensions, coreset ratio 0.1 (3,276 rows).

Data:
  random    standard normal rows: no structure, so no row can be skipped; every step is one
            dense pass (the worst case of our algorithm).
  features  PatchCore embeddings of a randomly initialised resnet18 (the project's backbone)
            on synthetic "fabric" images: layer2 and layer3, 3x3 average pooling, layer3
            upsampled to layer2's grid (what the PatchCore fit feeds the sampler).

Prints the median and min seconds of ``KCenterGreedy(0.1, random_state=0).fit`` over the
repeats (projection included), and the cost of anomalib's per-step update
(``linalg.norm(features - centre)``, then minimum and argmax) timed over a few steps and
extrapolated to the whole selection. Timings on a shared machine are noisy: compare medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from edgeanomaly.components import KCenterGreedy, SparseRandomProjection
from edgeanomaly.components._random_projection import johnson_lindenstrauss_min_dim

# anomalib 2.7, whole PatchCore fit of this case on the same machine (issue 4)
PEER_FIT_SECONDS, PEER_CORESET_SECONDS = 43.8, 36.0


def random_embedding(n: int, dim: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(0))


def feature_embedding(n_images: int = 32, size: int = 256) -> torch.Tensor:
    from edgeanomaly.components import create_backbone
    from edgeanomaly.data._synth import render_sample

    images = np.stack(
        [render_sample("fabric", "good", i, 0, size, split="train")[0] for i in range(n_images)]
    )
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    net = create_backbone("resnet18", pretrained=False, random_state=0)
    start = time.perf_counter()
    with torch.no_grad():
        feats = net.forward_features((x - mean) / std, ["layer2", "layer3"])
        l2 = F.avg_pool2d(feats["layer2"], 3, 1, 1)
        l3 = F.interpolate(F.avg_pool2d(feats["layer3"], 3, 1, 1), size=l2.shape[-2:], mode="bilinear")
        emb = torch.cat([l2, l3], 1)
    print(f"  feature extraction: {time.perf_counter() - start:.2f} s -> {tuple(emb.shape)}")
    return emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).contiguous()


def anomalib_style_seconds(embedding: torch.Tensor, n_select: int, steps: int) -> float:
    """Per-step cost of anomalib's update on the same projection, extrapolated."""
    dim = johnson_lindenstrauss_min_dim(embedding.shape[0], 0.9)
    feats = SparseRandomProjection(dim, random_state=0).fit_transform(embedding)
    min_d = torch.full((feats.shape[0], 1), float("inf"))
    idx = 0
    start = time.perf_counter()
    for _ in range(steps):
        dist = torch.linalg.norm(feats - feats[idx : idx + 1], dim=1, keepdim=True)
        min_d = torch.minimum(min_d, dist)
        idx = int(torch.argmax(min_d))
        min_d[idx] = 0
    return (time.perf_counter() - start) / steps * n_select


def run(name: str, embedding: torch.Tensor, ratio: float, repeats: int, peer_steps: int) -> None:
    n_select = int(embedding.shape[0] * ratio)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sampler = KCenterGreedy(ratio, random_state=0).fit(embedding)
        times.append(time.perf_counter() - start)
    assert sampler.indices_.shape == (n_select,)
    print(f"| {name} | {tuple(embedding.shape)} | {n_select} | {statistics.median(times):.2f} | "
          f"{min(times):.2f} | {anomalib_style_seconds(embedding, n_select, peer_steps):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["random", "features", "both"], default="both")
    parser.add_argument("--n", type=int, default=32768, help="rows of the random embedding")
    parser.add_argument("--dim", type=int, default=384, help="columns of the random embedding")
    parser.add_argument("--ratio", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer-steps", type=int, default=30, help="steps timed for the anomalib-style cost")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; peer (anomalib 2.7): "
          f"whole fit {PEER_FIT_SECONDS} s, coreset {PEER_CORESET_SECONDS} s")
    datasets = []
    if args.data in ("random", "both"):
        datasets.append(("random", random_embedding(args.n, args.dim)))
    if args.data in ("features", "both"):
        datasets.append(("features", feature_embedding()))
    print("| data | embedding | selected | ours median s | ours min s | anomalib-style s (extrapolated) |")
    print("|---|---|---|---|---|---|")
    for name, emb in datasets:
        run(name, emb, args.ratio, args.repeats, args.peer_steps)


if __name__ == "__main__":
    main()
