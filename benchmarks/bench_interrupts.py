"""Ctrl-C (or SIGTERM), many times: how often an interrupted command ends cleanly (exit 130, or
143 for SIGTERM; no "terminate called without an active exception" abort, no traceback, nothing
left in its temp folder). Run by hand (not collected by pytest):

    PYTHONPATH=. python benchmarks/bench_interrupts.py fit 14 [TERM]
    PYTHONPATH=. python benchmarks/bench_interrupts.py export 36 [TERM]
    PYTHONPATH=. python benchmarks/bench_interrupts.py export-checkpoint 8 [TERM]
    PYTHONPATH=. python benchmarks/bench_interrupts.py predict 16 [TERM]

``fit``: a FastFlow fit (ResNet-18 without weights, 64 px, 1000 epochs), Ctrl-C at a random
moment 0-1.5 s after its first epoch line. ``export``: ``export --recipe`` of a small FastFlow
recipe, Ctrl-C as soon as it reports epoch 2 (the epochs are short: the signal lands in
``Thread.start()``, the waits, the validation or the state's save). ``export-checkpoint``:
the export of a fitted FastFlow run (ONNX and OpenVINO, FP32 and FP16), the signal 0-6 s after
its first line (the torch reference, a graph's writing or its parity run). ``predict``: an exported
FastFlow bundle over 840 images with ``--out``, Ctrl-C 0-0.5 s after its 1st to 400th result line. Everything is
written under a temporary folder that is removed afterwards; each command's own temp folder
(``TMPDIR``) is a fresh one inside it, and what the command left there is counted. The last
argument ``TERM`` sends SIGTERM (a supervisor's stop) instead of Ctrl-C. Prints one JSON line:
the count of each (exit code, aborted, traceback, left in its temp folder) outcome.
"""

from __future__ import annotations

import collections
import json
import os
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


def _interrupt(args: list[str], after_line: str, delay: tuple[float, float], signum: int, temp: Path,
               lines: int = 1) -> tuple[int, bool, bool, int]:
    """Run ``args`` with ``temp`` as its temp folder, send ``signum`` ``delay`` seconds after the
    ``lines``-th line containing ``after_line`` (stderr; stdout for predict's JSON lines,
    ``after_line`` '"path"')."""
    on_stdout = after_line == '"path"'
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    p = subprocess.Popen(args, stdout=subprocess.PIPE if on_stdout else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "TMPDIR": str(temp)})
    seen, count = [], 0
    for line in p.stdout if on_stdout else p.stderr:
        seen.append(line)
        count += after_line in line
        if count >= lines:
            break
    time.sleep(random.uniform(*delay))
    p.send_signal(signum)
    out, err = p.communicate(timeout=300)
    err = ("" if on_stdout else "".join(seen)) + err
    return p.returncode, "terminate called" in err, "Traceback" in err, len(list(temp.iterdir()))


def main() -> None:
    from edgeanomaly.data import generate_synthetic_dataset

    kind, n = sys.argv[1], int(sys.argv[2])
    signum = signal.SIGTERM if sys.argv[3:] == ["TERM"] else signal.SIGINT
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
        if kind == "export-checkpoint":  # one fitted run, exported again each time
            subprocess.run(_cli("fit", "--model", "fastflow", *data, "--out", str(root / "fitted.run"), "--image-size", "64",
                                "--backbone", "resnet18", "--no-pretrained", "--epochs", "3", "--param", "flow_steps=2"),
                           check=True, capture_output=True)
        temp = root / "command-temp"
        for _ in range(n):
            for leftover in ("ff.run", "ff2.bundle.run", "ff2.bundle", "out", *(p.name for p in root.glob(".ff2.bundle*"))):
                shutil.rmtree(root / leftover, ignore_errors=True)
            if kind == "fit":
                args = _cli("fit", "--model", "fastflow", *data, "--out", str(root / "ff.run"), "--image-size", "64",
                            "--backbone", "resnet18", "--no-pretrained", "--epochs", "1000", "--param", "flow_steps=2")
                outcome = _interrupt(args, "epoch 1/", (0.0, 1.5), signum, temp)
            elif kind == "export":
                args = _cli("export", "--recipe", str(root / "tiny.toml"), *data, "--out", str(root / "ff2.bundle"))
                outcome = _interrupt(args, "epoch 2/", (0.0, 0.0), signum, temp)
            elif kind == "export-checkpoint":
                args = _cli("export", str(root / "fitted.run"), "--out", str(root / "ff2.bundle"), "--format", "onnx,openvino",
                            "--precision", "fp32,fp16")
                outcome = _interrupt(args, "", (0.0, 6.0), signum, temp)
                outcome = (*outcome[:3], outcome[3] + len([p for p in root.iterdir() if p.name.startswith(".ff2.bundle")]))
            else:
                args = _cli("predict", str(root / "ff.bundle"), str(root / "many"), "--out", str(root / "out"), "--json")
                outcome = _interrupt(args, '"path"', (0.0, 0.5), signum, temp, lines=random.randint(1, 400))
            outcomes[outcome] += 1
    print(json.dumps({"command": kind, "signal": signal.Signals(signum).name, "interrupts": n,
                      "outcomes": {f"exit {rc}, aborted {a}, traceback {t}, left {left}": c
                                   for (rc, a, t, left), c in sorted(outcomes.items())}}))


if __name__ == "__main__":
    main()
