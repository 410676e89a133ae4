"""Artifact x execution precision on OpenVINO's CPU plugin, run by hand (not collected by pytest).

    python benchmarks/bench_mixed_precision.py BUNDLE [--runs 60]

Issue 25 item 4: is an INT8 backbone with a bf16 or f32 head (the INT8 artifact, whose head
is not quantised, run at each execution precision) faster than the FP32 graph at bf16? Loads
every OpenVINO-readable artifact (IR and ONNX, fp16 IR left out: it runs as fp32) at each
execution precision the CPU has (``inference_precision="f32"`` and ``"bf16"``), times warm
batch-1 graph inferences in turns (``--runs`` rounds, each combination once per round, the
order rotating), and prints medians, p95 and the speed-up over the first combination, with
the precision each engine reports it runs.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--runs", type=int, default=60)
    args = ap.parse_args()

    from edgeanomaly.bundle import read_bundle
    from edgeanomaly.data import PreprocessConfig
    from edgeanomaly.runtime import device_capabilities, load
    from edgeanomaly.runtime._autoselect import probe_input

    executions = ["f32"] + (["bf16"] if "BF16" in (device_capabilities("CPU") or []) else [])
    with read_bundle(args.bundle) as b:
        arts = [a.name for a in b.artifacts if a.precision != "fp16"]
        x = probe_input(b, PreprocessConfig.from_dict(b.manifest.preprocessing).input_size)
    dets = {}
    try:
        for art in arts:
            for ex in executions:
                dets[(art, ex)] = load(args.bundle, backend="openvino", artifact=art, inference_precision=ex)
        for d in dets.values():
            for _ in range(5):
                d.predict_tensor(x)
        keys = list(dets)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
        for r in range(args.runs):
            for k in keys[r % len(keys):] + keys[: r % len(keys)]:
                times[k].append(dets[k].predict_tensor(x)[0].timings["infer"])
        base = float(np.median(times[keys[0]]))
        print(f"{args.runs} rounds, warm batch-1 graph time, CPU executions {executions}:")
        for k in keys:
            med = float(np.median(times[k]))
            print(f"  {k[0]:16s} at {k[1]:5s} runs {dets[k].precision:28s} median {med:6.2f} ms  "
                  f"p95 {np.percentile(times[k], 95):6.2f} ms  {base / med:.2f}x {keys[0][0]} at {keys[0][1]}")
    finally:
        for d in dets.values():
            d.close()


if __name__ == "__main__":
    main()
