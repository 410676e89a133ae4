"""Runtime benchmark, run by hand (not collected by pytest): latency, cold start, throughput.

    .venv/bin/python benchmarks/bench_runtime.py BUNDLE [--images DIR] [--backend openvino]
        [--device CPU] [--precision fp32] [--inference-precision f32] [-n 200]
    .venv/bin/python benchmarks/bench_runtime.py BUNDLE --compare-loop [--repeats 7] [--images DIR]

Prints, for the chosen artifact and backend:
- the verified execution precision (read back from the compiled model);
- latency per decoded image (decode + preprocess + infer + postprocess) and infer alone, p50/p95,
  batch 1, one image at a time (``Detector.predict(path)``);
- cold start in a fresh interpreter: import, load, first prediction (and the process wall time);
- asynchronous throughput (``Detector.predict_many``) in images per second, for the latency
  and the throughput performance hints.

``--compare-loop`` (issue 15) measures only the throughput path against a plain loop, with
default load settings (no hints), on OpenVINO and ONNX Runtime: ``for p in paths:
det.predict(p)`` and ``list(det.predict_many(paths))`` over the same files, alternated
``--repeats`` times in one process (both backends loaded once, one warm-up pass each); prints
images per second (medians), the per-repeat ratio many/loop (median and range) and the load
average before and after, since the machine's other work moves every absolute figure.

Images: ``--images DIR`` (PNG/JPEG files), else the MVTec AD hazelnut subset beside the
project when present, else synthetic 256x256 PNGs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HAZELNUT = Path(os.environ.get("EDGEANOMALY_SHARED", REPO.parent / "shared")) / "data" / "mvtec_ad_reduced" / "hazelnut" / "test"


def _images(folder: str | None, tmp: Path) -> list[Path]:
    from edgeanomaly.data._io import is_image_file

    if folder:
        paths = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))
    elif HAZELNUT.is_dir():
        paths = sorted(p for p in HAZELNUT.rglob("*.png"))
    else:
        import cv2

        rng = np.random.default_rng(0)
        paths = []
        for i in range(16):
            p = tmp / f"{i:03d}.png"
            cv2.imwrite(str(p), rng.integers(0, 255, size=(256, 256, 3), dtype=np.uint8))
            paths.append(p)
    if not paths:
        raise SystemExit(f"no images found in {folder}")
    return paths


def _pct(values: list[float]) -> str:
    a = np.asarray(values)
    return f"p50 {np.percentile(a, 50):7.2f} ms   p95 {np.percentile(a, 95):7.2f} ms   mean {a.mean():7.2f} ms"


_COLD = """
import time, json, sys
t0 = time.perf_counter()
import edgeanomaly.runtime as rt
t1 = time.perf_counter()
det = rt.load(sys.argv[1], backend=sys.argv[2], device=sys.argv[3], precision=sys.argv[4])
t2 = time.perf_counter()
det.predict(sys.argv[5])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_predict_s": t3 - t2, "total_s": t3 - t0, "precision": det.precision}))
"""


def cold_start(args: argparse.Namespace, image: Path, repeats: int = 3) -> list[dict]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _COLD, args.bundle, args.backend, args.device, args.precision, str(image)],
            capture_output=True, text=True, check=True,
        )
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        rec["process_wall_s"] = time.perf_counter() - t0
        out.append(rec)
    return out


def compare_loop(args: argparse.Namespace, paths: list[Path]) -> None:
    import statistics

    from edgeanomaly.runtime import load

    files = [str(p) for p in paths]
    print(f"{len(files)} images ({paths[0].parent.parent}); {os.cpu_count()} CPUs; load average {os.getloadavg()}")
    detectors = {b: load(args.bundle, backend=b) for b in ("openvino", "onnxruntime")}
    runs = {}
    for name, det in detectors.items():
        print(f"{name}: {det.artifact.name}, {det.precision}")
        runs[f"{name} predict loop"] = (lambda d: lambda: [d.predict(p) for p in files])(det)
        runs[f"{name} predict_many"] = (lambda d: lambda: list(d.predict_many(files)))(det)
    for run in runs.values():  # warm-up (also compiles predict_many's throughput model)
        run()
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for key, run in runs.items():
            t0 = time.perf_counter()
            run()
            rates[key].append(len(files) / (time.perf_counter() - t0))
    for key, values in rates.items():
        line = f"  {key:28s} {statistics.median(values):7.2f} images/s (median of {args.repeats})"
        if key.endswith("predict_many"):
            loop = rates[key.replace("predict_many", "predict loop")]
            ratios = [m / l for m, l in zip(values, loop)]
            line += f"   many/loop {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"
        print(line)
    print(f"load average after: {os.getloadavg()}")
    for det in detectors.values():
        det.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--images", default=None)
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--inference-precision", default=None)
    parser.add_argument("-n", type=int, default=200, help="timed predictions")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--compare-loop", action="store_true", help="only predict loop vs predict_many, both backends")
    parser.add_argument("--repeats", type=int, default=7, help="alternations for --compare-loop")
    args = parser.parse_args()

    from edgeanomaly.runtime import load

    with tempfile.TemporaryDirectory() as tmp:
        paths = _images(args.images, Path(tmp))
        if args.compare_loop:
            compare_loop(args, paths)
            return
        print(f"bundle {args.bundle}; {len(paths)} images ({paths[0].parent}); {os.cpu_count()} CPUs")
        with load(args.bundle, backend=args.backend, device=args.device, precision=args.precision,
                  inference_precision=args.inference_precision) as det:
            print(f"{det!r}")
            print(f"verified precision: {det.precision}")
            for i in range(args.warmup):
                det.predict(paths[i % len(paths)])
            stages: dict[str, list[float]] = {}
            for i in range(args.n):
                p = det.predict(paths[i % len(paths)])
                for k, v in p.timings.items():
                    stages.setdefault(k, []).append(v)
            print("batch-1 latency per decoded image (predict(path)):")
            for k in ("decode", "preprocess", "infer", "postprocess", "total"):
                print(f"  {k:12s} {_pct(stages[k])}")
            arrays = [det.predict(p).anomaly_map for p in paths[:1]]  # keep one warm path
            del arrays

        from edgeanomaly.data._io import read_image

        decoded = [read_image(p) for p in paths]
        for hint in ("latency", "throughput"):
            with load(args.bundle, backend=args.backend, device=args.device, precision=args.precision,
                      inference_precision=args.inference_precision, performance_hint=hint) as det:
                list(det.predict_many(decoded[:8]))
                for label, items in (("from files", [paths[i % len(paths)] for i in range(args.n)]),
                                     ("decoded arrays", [decoded[i % len(decoded)] for i in range(args.n)])):
                    t0 = time.perf_counter()
                    count = sum(1 for _ in det.predict_many(items))
                    wall = time.perf_counter() - t0
                    print(f"async throughput ({hint} hint, {label}): {count / wall:7.1f} images/s")

        runs = cold_start(args, paths[0])
        best = min(runs, key=lambda r: r["total_s"])
        print(
            "cold start (fresh interpreter, best of {n}): import {import_s:.3f} s, load {load_s:.3f} s, "
            "first prediction {first_predict_s:.3f} s, total {total_s:.3f} s (process wall {process_wall_s:.3f} s)".format(n=len(runs), **best)
        )


if __name__ == "__main__":
    main()
