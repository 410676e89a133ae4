"""Size and latency of PaDiM's Mahalanobis head exported whole vs as the upper block triangle.

    .venv/bin/python benchmarks/bench_padim_head.py [--locations 4096] [--channels 100] [--repeats 30]

Exports ``MultivariateGaussian`` fitted on random data (the shape PaDiM has at 256 px with
EfficientNet-Lite0: 64 x 64 locations, 100 channels) once with ``UPPER_BLOCKS = 1`` (the
whole inverse) and once with the shipped value, then times batch-1 inference of each ONNX
file on ONNX Runtime and OpenVINO CPU (medians; the two alternate so load drifts hit both).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import edgeanomaly.components._gaussian as gaussian_module
from edgeanomaly.components import MultivariateGaussian


def export(gauss: MultivariateGaussian, x: torch.Tensor, path: Path, blocks: int) -> Path:
    shipped = gaussian_module.UPPER_BLOCKS
    gaussian_module.UPPER_BLOCKS = blocks
    try:
        with torch.no_grad():
            torch.onnx.export(gauss, (x,), str(path), input_names=["x"], do_constant_folding=True, dynamo=False)
    finally:
        gaussian_module.UPPER_BLOCKS = shipped
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--locations", type=int, default=4096)
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    side = int(round(args.locations ** 0.5))
    g = torch.Generator().manual_seed(0)
    train = torch.randn(args.channels + 20, args.channels, side, side, generator=g)
    gauss = MultivariateGaussian().fit(train)
    x = train[:1]
    import onnxruntime as ort
    import openvino as ov

    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for label, blocks in (("whole inverse", 1), (f"upper blocks (k={gaussian_module.UPPER_BLOCKS})", gaussian_module.UPPER_BLOCKS)):
            path = export(gauss, x, Path(tmp) / f"k{blocks}.onnx", blocks)
            size = path.stat().st_size / 2**20
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            runners[label] = (size, lambda s=sess: s.run(None, {"x": x.numpy()}), lambda c=compiled: c([x.numpy()]))
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for label, (_, run_ort, run_ov) in runners.items():
                for backend, fn in (("onnxruntime", run_ort), ("openvino", run_ov)):
                    t0 = time.perf_counter()
                    fn()
                    times.setdefault((label, backend), []).append((time.perf_counter() - t0) * 1e3)
    ref = gauss(x).numpy()
    print(f"| head | ONNX MiB | ONNX Runtime p50 ms | OpenVINO p50 ms |  (reference max {np.abs(ref).max():.3g})")
    print("|---|---|---|---|")
    for label, (size, _, _) in runners.items():
        print(f"| {label} | {size:.1f} | {statistics.median(times[(label, 'onnxruntime')]):.1f} | {statistics.median(times[(label, 'openvino')]):.1f} |")


if __name__ == "__main__":
    main()
