"""Where INT8 time goes on this CPU, run by hand (not collected by pytest): OpenVINO per-layer counters.

    python benchmarks/bench_int8_layers.py BUNDLE [--runs 30] [--artifacts openvino-fp32,openvino-int8] [--top 12]
        [--also LABEL=OTHER/model.xml ...] [--speed-only]

``--also`` adds IR files from elsewhere (e.g. the INT8 artifact of another export) to the same
interleaved run; ``--speed-only`` compiles without ``PERF_COUNT`` and prints each graph's
median wall time and its speed-up over the first artifact only.

Compiles each IR artifact of BUNDLE on CPU with ``PERF_COUNT`` (latency hint, f32 execution,
as ``load`` does), runs batch-1 inferences in turns on the bundle's first reference image,
and sums OpenVINO's per-node profiling over the timed runs. Prints per artifact:
- total graph time (median of the sum of node times per run) and wall time per inference;
- time by executed precision (the suffix of the kernel OpenVINO chose: ``_I8``, ``_FP32``...);
- time by node type (Convolution, FakeQuantize, Reorder, MatMul, ...), which shows reorders
  and quantise/dequantise steps left in the graph;
- the backbone (nodes named ``*/feature_extractor/*``) vs the rest (the head);
- the slowest nodes with their kernel (``exec_type``).
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict

import numpy as np


_PRECISION = {"i8": "int8", "u8": "int8", "f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16", "i32": "i32", "i64": "i64"}


def _prec(exec_type: str) -> str:
    """The execution precision in OpenVINO's kernel name: ``jit_avx2_1x1_I8`` -> int8, ``gemm_mlas_f32`` -> f32."""
    m = re.search(r"_([A-Za-z]+\d+)$", exec_type)
    return _PRECISION.get(m.group(1).lower(), m.group(1)) if m else (exec_type or "none")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--artifacts", default="openvino-fp32,openvino-int8")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--backbone", default="/feature_extractor/", help="node-name substring of the backbone's nodes (the rest is the head, normalisation and map post-processing)")
    ap.add_argument("--also", action="append", default=[], help="LABEL=PATH.xml: another IR in the same run")
    ap.add_argument("--speed-only", action="store_true", help="no per-node counters: wall time and speed-up only")
    args = ap.parse_args()

    import openvino as ov

    from edgeanomaly.bundle import read_bundle
    from edgeanomaly.data import PreprocessConfig, preprocess

    with read_bundle(args.bundle) as b:
        ref = b.reference()
        x = preprocess(ref["images"][0], PreprocessConfig.from_dict(b.manifest.preprocessing))[None]
        wanted = args.artifacts.split(",")
        paths = {a.name: str(b.path(a)) for a in sorted(b.artifacts, key=lambda a: wanted.index(a.name) if a.name in wanted else 0) if a.name in wanted}
        paths.update(dict(item.split("=", 1) for item in args.also))
        core = ov.Core()
        reqs = {}
        config = {"PERF_COUNT": not args.speed_only, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        for name, path in paths.items():
            reqs[name] = core.compile_model(path, "CPU", config).create_infer_request()
        for r in reqs.values():
            for _ in range(3):
                r.infer({0: x})
        acc: dict[str, dict] = {n: {"wall": [], "graph": [], "nodes": defaultdict(float), "meta": {}} for n in reqs}
        for i in range(args.runs):
            names = list(reqs)
            for n in names[i % len(names):] + names[: i % len(names)]:
                t0 = time.perf_counter()
                reqs[n].infer({0: x})
                acc[n]["wall"].append((time.perf_counter() - t0) * 1e3)
                if args.speed_only:
                    continue
                total = 0.0
                for p in reqs[n].profiling_info:
                    ms = p.real_time.total_seconds() * 1e3
                    total += ms
                    acc[n]["nodes"][p.node_name] += ms
                    acc[n]["meta"][p.node_name] = (p.node_type, p.exec_type)
                acc[n]["graph"].append(total)

    if args.speed_only:
        first = float(np.median(next(iter(acc.values()))["wall"]))
        for n, a in acc.items():
            med = float(np.median(a["wall"]))
            print(f"{n:24s} median {med:8.2f} ms  p95 {np.percentile(a['wall'], 95):8.2f} ms  speed-up over {next(iter(acc))} {first / med:.2f}x")
        return
    for n, a in acc.items():
        runs = len(a["wall"])
        print(f"\n== {n}: wall {np.median(a['wall']):.2f} ms/inference (median of {runs}), "
              f"sum of node times {np.median(a['graph']):.2f} ms")
        by_prec: dict[str, float] = defaultdict(float)
        by_type: dict[str, float] = defaultdict(float)
        kernels: dict[str, set[str]] = defaultdict(set)
        count_type: dict[str, int] = defaultdict(int)
        head = 0.0
        for node, ms in a["nodes"].items():
            ntype, etype = a["meta"][node]
            by_prec[_prec(etype)] += ms / runs
            by_type[ntype] += ms / runs
            count_type[ntype] += 1
            kernels[ntype].add(_prec(etype))
            if args.backbone not in node:
                head += ms / runs
        total = sum(by_prec.values())
        print("  by executed precision: " + ", ".join(f"{k} {v:.2f} ms ({v / total:.0%})" for k, v in sorted(by_prec.items(), key=lambda kv: -kv[1])))
        print("  by node type: " + ", ".join(f"{k} x{count_type[k]} ({'/'.join(sorted(kernels[k]))}) {v:.2f} ms"
                                            for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])[:10]))
        print(f"  backbone (nodes named '*{args.backbone}*') {total - head:.2f} ms; the rest (head: distances to the memory bank, "
              f"min, map resize and blur; input normalisation) {head:.2f} ms ({head / total:.0%})")
        print("  slowest nodes:")
        for node, ms in sorted(a["nodes"].items(), key=lambda kv: -kv[1])[: args.top]:
            ntype, etype = a["meta"][node]
            print(f"    {ms / runs:6.3f} ms  {ntype:16s} {etype:28s} {node[:90]}")


if __name__ == "__main__":
    main()
