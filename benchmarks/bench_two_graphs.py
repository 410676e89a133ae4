"""Two graphs of the same model on one backend, interleaved: outputs compared, batch-1 time.

Run by hand (not collected by pytest):

    python benchmarks/bench_two_graphs.py A.onnx B.onnx [--backend onnxruntime|openvino] [--runs 30]

Both graphs are loaded in this process with the project's backend (default settings), fed
the same random 1x3x256x256 input (or the graphs' fixed size), and their outputs compared
(max absolute difference per output). Then ``--runs`` timed runs each, alternating which goes
first every run; prints the median per graph and the ratio B / A. Issue 15 used it for the
zero-Pad folding at export (A: a bundle exported before, B: after).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--backend", choices=["onnxruntime", "openvino"], default="onnxruntime")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if args.backend == "onnxruntime":
        from edgeanomaly.runtime._backends._onnxruntime import ONNXRuntimeBackend as Backend
    else:
        from edgeanomaly.runtime._backends._openvino import OpenVINOBackend as Backend  # type: ignore[assignment]
    a, b = Backend(args.a), Backend(args.b)
    shape = [d if d > 0 else s for d, s in zip(a.inputs[0].shape, (1, 3, 256, 256))]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    out_a, out_b = a.run(x), b.run(x)
    for name in out_a:
        print(f"{name}: max abs diff {float(np.abs(out_a[name] - out_b[name]).max()):.3g} (largest value {float(np.abs(out_a[name]).max()):.3g})")
    for _ in range(3):
        a.run(x)
        b.run(x)
    times: dict[str, list[float]] = {"a": [], "b": []}
    for r in range(args.runs):
        for key, engine in ((("a", a), ("b", b)) if r % 2 == 0 else (("b", b), ("a", a))):
            t0 = time.perf_counter()
            engine.run(x)
            times[key].append((time.perf_counter() - t0) * 1e3)
    ma, mb = statistics.median(times["a"]), statistics.median(times["b"])
    print(f"{args.backend}: A {ma:.1f} ms, B {mb:.1f} ms (medians of {args.runs}), B / A = {mb / ma:.3f}")
    a.close()
    b.close()


if __name__ == "__main__":
    main()
