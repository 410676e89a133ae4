"""Peak RSS of a PaDiM fit: ours against anomalib 2.7's, each in a fresh process, in turns.

Usage:
    python benchmarks/bench_padim_fit_memory.py --data ../shared/data/mvtec_ad_reduced \
        --category hazelnut --peer-python /tmp/peer/anomalib-venv/bin/python --rounds 3

Both fit PaDiM on EfficientNet-Lite0 (strides 4, 8, 16; 100 random channels) at 256 px on
the same train images and then score the test images as their fit commands do (ours:
``edgeanomaly fit``, which calibrates on the test split; anomalib: ``Engine.fit``, which
validates on it). The peer venv comes from ``../shared/peers/setup_anomalib_venv.sh``.
Peak RSS is each child's ``ru_maxrss``; it prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ANOMALIB = textwrap.dedent("""
    import logging, sys, torch
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from anomalib.models import Padim
    logging.getLogger("lightning").setLevel(logging.ERROR)
    torch.manual_seed(0)
    root, category, out = sys.argv[1:4]
    # timm's blocks.1/2/4 are our blocks.2/4/10 (strides 4, 8, 16; benchmarks/bench_vs_anomalib.py)
    model = Padim(backbone="efficientnet_lite0", layers=["blocks.1", "blocks.2", "blocks.4"], pre_trained=False,
                  n_features=100)
    data = MVTecAD(root=root, category=category, train_batch_size=16, eval_batch_size=16, num_workers=0)
    Engine(default_root_dir=out, logger=False, enable_progress_bar=False).fit(model, datamodule=data)
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="MVTec AD root (holds CATEGORY/)")
    ap.add_argument("--category", default="hazelnut")
    ap.add_argument("--peer-python", required=True, help="python of the anomalib venv")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[float]] = {"edgeanomaly": [], "anomalib": []}
    for i in range(args.rounds):
        for name in ("edgeanomaly", "anomalib") if i % 2 == 0 else ("anomalib", "edgeanomaly"):
            with tempfile.TemporaryDirectory() as tmp:
                if name == "edgeanomaly":
                    argv = [sys.executable, "-m", "edgeanomaly.cli", "fit", "--model", "padim",
                            "--data", str(args.data / args.category), "--layers", "blocks.2,blocks.4,blocks.10",
                            "--param", "n_features=100", "--out", str(Path(tmp) / "run")]
                else:
                    argv = [args.peer_python, "-c", ANOMALIB, str(args.data), args.category, tmp]
                # ru_maxrss of RUSAGE_CHILDREN is the largest of all children so far: a fresh
                # parent per run reads this run's own peak
                wrapper = [sys.executable, "-c", "import resource,subprocess,sys; subprocess.run(sys.argv[1:], check=True, "
                           "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
                           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)", *argv]
                out = subprocess.run(wrapper, capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
                mb = int(out.stdout.strip().splitlines()[-1]) / 1024
            results[name].append(mb)
            print(json.dumps({"round": i, "side": name, "peak_rss_mb": round(mb, 1)}), flush=True)
    print(json.dumps({k: {"median_peak_rss_mb": round(statistics.median(v), 1), "runs": len(v)} for k, v in results.items()}))


if __name__ == "__main__":
    main()
