"""Peak memory of a trained model's fit against the number of training images (run by hand):

    PYTHONPATH=. python benchmarks/bench_trained_scale.py efficientad 250,500,1000,2000 [KEY=VALUE ...]
    PYTHONPATH=. python benchmarks/bench_trained_scale.py fastflow 250,500,1000,2000 [KEY=VALUE ...]

Each count fits in a fresh child process on that many random images (memory does not depend
on what the images show) at the packaged recipe's settings and size, cut to one epoch of each
stage so that the time stays short (``KEY=VALUE`` pairs change settings, JSON values). Prints
one JSON line per count: the fit's seconds, the child's peak RSS (``VmHWM``), the epochs each
stage ran and what stopped it, or how it ended when it did not finish (a child killed by the
kernel's OOM killer exits -9). With the recipe's epochs and ``max_minutes``, e.g.

    PYTHONPATH=. python benchmarks/bench_trained_scale.py efficientad 1000 teacher_epochs=80 epochs=100 max_minutes=4

it shows how a time limit is shared between the stages at that scale.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

RECIPES = {
    "efficientad": (192, dict(width=0.125, teacher_channels=64, strided=True, light_decoder=True, teacher_epochs=1,
                              learning_rate=5e-4, epochs=1, train_batch_size=1, patience=10)),
    "fastflow": (256, dict(layers=["blocks.4", "blocks.10"], flow_steps=8, hidden_ratio=1.0, epochs=1, score_top_fraction=0.1)),
}


def child(model_name: str, n: int, settings: dict) -> None:
    import torch

    from edgeanomaly.models import create_model

    size, recipe = RECIPES[model_name]
    model = create_model(model_name, pretrained=False, **{**recipe, **settings})
    g = torch.Generator().manual_seed(0)
    batches = [torch.rand(min(16, n - i), 3, size, size, generator=g) for i in range(0, n, 16)]
    t0 = time.perf_counter()
    model.fit(batches)
    seconds = time.perf_counter() - t0
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    summary = model.training_summary_
    stages = {k: summary.get(k) for k in ("teacher_epochs_run", "teacher_stopped_by", "epochs_run", "stopped_by")}
    print(json.dumps({"model": model_name, "images": n, "settings": settings, "fit_s": round(seconds, 1),
                      "input_mib": round(n * 3 * size * size * 4 / 2**20), "peak_rss_mib": round(peak / 1024),
                      **{k: v for k, v in stages.items() if v is not None}}), flush=True)


def main() -> None:
    if sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
        return
    model_name, counts, *pairs = sys.argv[1:]
    settings = {k: json.loads(v) for k, v in (p.split("=", 1) for p in pairs)}
    for n in (int(c) for c in counts.split(",")):
        done = subprocess.run([sys.executable, __file__, "--child", model_name, str(n), json.dumps(settings)],
                              capture_output=True, text=True)
        if done.returncode:
            print(json.dumps({"model": model_name, "images": n, "settings": settings, "exit": done.returncode,
                              "stderr": done.stderr[-300:]}), flush=True)
        else:
            print(done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
