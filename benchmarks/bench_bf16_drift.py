"""Drift and latency of each execution precision of a bundle's OpenVINO-run artifacts, against
the torch reference stored in the bundle (its reference images), judged as export judges.

    python benchmarks/bench_bf16_drift.py BUNDLE [--repeats 30] [--artifact NAME] [--whole-graph]

For every artifact OpenVINO runs (IR, and the ONNX file read by OpenVINO) and every execution
precision this CPU supports (f32, and bf16 where OPTIMIZATION_CAPABILITIES lists BF16): the
largest and 99th-percentile relative map difference, the score difference, decision flips at
the bundle threshold, and the verdict row's outcome; then the latency at batch 1 of each
(artifact, precision), measured interleaved (round-robin, one image per turn) so that other work
on the machine weighs on every row alike: medians and ratios to the same artifact's f32.
``--whole-graph`` adds a ``bf16-all`` row: every node at bf16, as before the runtime kept the
full-resolution nodes at f32 (the drift export used to measure).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _load(load, bundle, artifact: str, precision: str):
    """``load`` on OpenVINO at ``precision``; ``"bf16-all"``: bf16 with nothing kept at f32."""
    from edgeanomaly.runtime._backends import _openvino as ovb

    if precision != "bf16-all":
        return load(bundle, artifact=artifact, backend="openvino", inference_precision=precision)
    kept = ovb.REDUCED_MIN_STRIDE
    ovb.REDUCED_MIN_STRIDE = 1  # no node is finer than stride 1: none kept at f32
    try:
        return load(bundle, artifact=artifact, backend="openvino", inference_precision="bf16")
    finally:
        ovb.REDUCED_MIN_STRIDE = kept


def main() -> None:
    from edgeanomaly.bundle import read_bundle
    from edgeanomaly.runtime import device_capabilities, load
    from edgeanomaly.tooling import raw_outputs
    from edgeanomaly.judging import judge, tolerance_for

    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--artifact", action="append", help="only these artifacts (default: every one OpenVINO runs)")
    ap.add_argument("--whole-graph", action="store_true", help="also bf16 on every node (the earlier policy)")
    ap.add_argument("--defaults", action="store_true",
                    help="also time load(BUNDLE) as it chooses, and the ONNX file on ONNX Runtime (the earlier PaDiM default)")
    args = ap.parse_args()
    caps = device_capabilities("CPU") or []
    precisions = ["f32"] + (["bf16"] + (["bf16-all"] if args.whole_graph else []) if "BF16" in caps else [])
    with read_bundle(args.bundle) as b:
        ref = b.reference()
        cal = b.manifest.calibration
        arts = [a for a in b.manifest.artifacts if a.format in ("openvino", "onnx") and (not args.artifact or a.name in args.artifact)]
        dets = {}
        for a in arts:
            for p in precisions:
                det = _load(load, b, a.name, p)
                out = raw_outputs(det, ref["images"])
                row = tolerance_for(a.precision, p.split("-")[0])
                v = judge(row, cal.image_threshold, scores=out["pred_score"], ref_scores=ref["pred_score"],
                          maps=out["anomaly_map"][:, 0], ref_maps=ref["anomaly_map"][:, 0])
                m = v.measures
                kept = getattr(getattr(det, "_engine", None), "head_kept_f32", "?")
                print(f"{a.name:15s} {p:5s} row {row:5s} {v.outcome:12s} score {m['max_rel_score_diff']:.4f} "
                      f"map max {m['max_rel_map_diff']:.4f} p99 {m['p99_rel_map_diff']:.4f} flips {m['decision_flips']} "
                      f"(nodes kept f32: {kept})", flush=True)
                dets[(a.name, p)] = det
        if args.defaults:
            default = load(b)
            print(f"default: {default.artifact.name} on {default.backend}, {default.precision}: {default.execution.reason}")
            dets[("default", default.execution.precision or "-")] = default
            if any(a.format == "onnx" for a in b.manifest.artifacts):
                dets[("onnxruntime", "f32")] = load(b, backend="onnxruntime")
        image = ref["images"][0]
        for det in dets.values():
            for _ in range(3):
                det.predict(image)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in dets}
        keys = list(dets)
        for i in range(args.repeats):
            for k in keys[i % len(keys):] + keys[: i % len(keys)]:  # rotate who goes first
                det = dets[k]
                t0 = time.perf_counter()
                det.predict(image)
                times[k].append((time.perf_counter() - t0) * 1e3)
        for (name, p), t in times.items():
            base = np.median(times.get((name, "f32"), t))
            print(f"{name:15s} {p:5s} p50 {np.median(t):7.2f} ms  vs same artifact at f32 {np.median(t) / base:.2f}x")
        for det in dets.values():
            det.close()


if __name__ == "__main__":
    main()
