"""One ONNX file on ONNX Runtime and on OpenVINO (and the OpenVINO IR where the bundle has
one), batch-1 infer time per image, interleaved; run by hand (not collected by pytest):

    python benchmarks/bench_same_onnx.py BUNDLE [BUNDLE ...] [--rounds 8] [--images DIR] [--no-arena-too]

Prints per bundle the median ``Prediction.timings["infer"]`` of each contender and the
precision each read back. Images: ``--images DIR`` or the MVTec AD hazelnut test images beside
the project (5 of them, each predicted once per contender per round; order reversed every
other round).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from edgeanomaly.runtime import load

REPO = Path(__file__).resolve().parents[1]
HAZELNUT = Path(os.environ.get("EDGEANOMALY_SHARED", REPO.parent / "shared")) / "data" / "mvtec_ad_reduced" / "hazelnut" / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--images", default=str(HAZELNUT))
    parser.add_argument("--no-arena-too", action="store_true",
                        help="Also ONNX Runtime with memory_arena=False (the default before issue 15's fix).")
    args = parser.parse_args()
    images = sorted(Path(args.images).rglob("*.png"))[:5]
    if not images:
        raise SystemExit(f"no PNG images under {args.images}")
    for bundle in args.bundles:
        dets = {"onnxruntime onnx": load(bundle, backend="onnxruntime"), "openvino onnx": load(bundle, backend="openvino", artifact="onnx-fp32")}
        if args.no_arena_too:
            dets["onnxruntime no arena"] = load(bundle, backend="onnxruntime", backend_options={"memory_arena": False})
        try:
            dets["openvino ir"] = load(bundle, backend="openvino", artifact="openvino-fp32")
        except Exception as exc:  # noqa: BLE001 - a bundle without an FP32 IR
            print(f"{bundle}: no openvino-fp32 ({type(exc).__name__})")
        for det in dets.values():
            det.predict(images[0])
        times: dict[str, list[float]] = {k: [] for k in dets}
        for r in range(args.rounds):
            order = list(dets.items()) if r % 2 == 0 else list(reversed(dets.items()))
            for name, det in order:
                times[name] += [det.predict(p).timings["infer"] for p in images]
        base = float(np.median(times["onnxruntime onnx"]))
        for name, det in dets.items():
            med = float(np.median(times[name]))
            print(f"{bundle}  {name:18s} {med:7.1f} ms  {base / med:4.2f}x of onnxruntime  {det.precision}")
            det.close()


if __name__ == "__main__":
    main()
