"""ONNX Runtime with and without its CPU memory arena: time, page faults and kernel CPU per run.

Run by hand (not collected by pytest), once per setting, each in a fresh process:

    python benchmarks/bench_ort_arena.py BUNDLE/model.onnx on
    python benchmarks/bench_ort_arena.py BUNDLE/model.onnx off [--runs 20]

Prints the wall time per batch-1 run, the minor page faults and the kernel CPU time per run
(``getrusage`` of this process around ``--runs`` warm runs of a random 256x256 input; the
input size is read from the graph when it is fixed). Issue 15: without the arena every run
allocates its large intermediates afresh and the kernel faults the fresh pages in.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from edgeanomaly.runtime._backends._onnxruntime import ONNXRuntimeBackend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("arena", choices=["on", "off"])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    backend = ONNXRuntimeBackend(args.model, memory_arena=args.arena == "on")
    shape = [d if d > 0 else s for d, s in zip(backend.inputs[0].shape, (1, 3, 256, 256))]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(3):
        backend.run(x)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(args.runs):
        backend.run(x)
    wall = (time.perf_counter() - t0) / args.runs * 1e3
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"arena {args.arena}: {wall:.1f} ms per run, {(r1.ru_minflt - r0.ru_minflt) / args.runs:.0f} minor page faults "
          f"per run, {(r1.ru_stime - r0.ru_stime) / args.runs * 1e3:.1f} ms kernel CPU per run")
    backend.close()


if __name__ == "__main__":
    main()
