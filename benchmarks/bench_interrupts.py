"""Ctrl-C, many times: how often an interrupted command ends cleanly (exit 130, no
"terminate called without an active exception" abort, no traceback). Run by hand (not
collected by pytest):

    PYTHONPATH=. python benchmarks/bench_interrupts.py fit 14
    PYTHONPATH=. python benchmarks/bench_interrupts.py export 36
    PYTHONPATH=. python benchmarks/bench_interrupts.py predict 16

``fit``: a FastFlow fit (ResNet-18 without weights, 64 px, 1000 epochs), Ctrl-C at a random
moment 0-1.5 s after its first epoch line. ``export``: ``export --recipe`` of a small FastFlow
recipe, Ctrl-C as soon as it reports epoch 2 (the epochs are short: the signal lands in
``Thread.start()``, the waits, the validation or the state's save). ``predict``: an exported
FastFlow bundle over 840 images with ``--out``, Ctrl-C 0-0.5 s after its 1st to 400th result line. Everything is
written under a temporary folder that is removed afterwards. Prints one JSON line: the count
of each (exit code, aborted, traceback) outcome.
"""

from __future__ import annotations

import collections
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """
[model]
name = "fastflow"
backbone = "resnet18"
pretrained = false
layers = ["layer1", "layer2"]
params = { flow_steps = 2, epochs = 1000, max_minutes = 0.15 }
[data]
image_size = 64
[export]
formats = ["onnx"]
precisions = ["fp32"]
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeanomaly.cli", *args]


def _interrupt(args: list[str], after_line: str, delay: tuple[float, float], lines: int = 1) -> tuple[int, bool, bool]:
    """Run ``args``, press Ctrl-C ``delay`` seconds after the ``lines``-th line containing
    ``after_line`` (stderr; stdout for predict's JSON lines, ``after_line`` '"path"')."""
    on_stdout = after_line == '"path"'
    p = subprocess.Popen(args, stdout=subprocess.PIPE if on_stdout else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, count = [], 0
    for line in p.stdout if on_stdout else p.stderr:
        seen.append(line)
        count += after_line in line
        if count >= lines:
            break
    time.sleep(random.uniform(*delay))
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    err = ("" if on_stdout else "".join(seen)) + err
    return p.returncode, "terminate called" in err, "Traceback" in err


def main() -> None:
    from edgeanomaly.data import generate_synthetic_dataset

    kind, n = sys.argv[1], int(sys.argv[2])
    random.seed(0)
    outcomes: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="edgeanomaly-interrupts-") as tmp:
        root = Path(tmp)
        generate_synthetic_dataset(root / "data", ["metal"], n_train=40, n_test=8, seed=0, size=256)
        data = ["--data", str(root / "data"), "--category", "metal"]
        (root / "tiny.toml").write_text(RECIPE)
        if kind == "predict":  # one bundle, 840 copies of the test images
            subprocess.run(_cli("export", "--recipe", str(root / "tiny.toml"), *data, "--out", str(root / "ff.bundle")),
                           check=True, capture_output=True)
            (root / "many").mkdir()
            for i in range(21):
                for image in sorted((root / "data" / "metal" / "test").glob("*/*.png")):
                    shutil.copy(image, root / "many" / f"{i}_{image.parent.name}_{image.name}")
        for _ in range(n):
            for leftover in ("ff.run", "ff2.bundle.run", "ff2.bundle", "out"):
                shutil.rmtree(root / leftover, ignore_errors=True)
            if kind == "fit":
                args = _cli("fit", "--model", "fastflow", *data, "--out", str(root / "ff.run"), "--image-size", "64",
                            "--backbone", "resnet18", "--no-pretrained", "--epochs", "1000", "--param", "flow_steps=2")
                outcome = _interrupt(args, "epoch 1/", (0.0, 1.5))
            elif kind == "export":
                args = _cli("export", "--recipe", str(root / "tiny.toml"), *data, "--out", str(root / "ff2.bundle"))
                outcome = _interrupt(args, "epoch 2/", (0.0, 0.0))
            else:
                args = _cli("predict", str(root / "ff.bundle"), str(root / "many"), "--out", str(root / "out"), "--json")
                outcome = _interrupt(args, '"path"', (0.0, 0.5), lines=random.randint(1, 400))
            outcomes[outcome] += 1
    print(json.dumps({"command": kind, "interrupts": n,
                      "outcomes": {f"exit {rc}, aborted {a}, traceback {t}": c for (rc, a, t), c in sorted(outcomes.items())}}))


if __name__ == "__main__":
    main()
