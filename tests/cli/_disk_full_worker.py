"""Runs inside a private mount namespace (``unshare -m``) with a small tmpfs mounted at
``ROOT``: real disk-full conditions for ``export`` (issue 20.5). Prints one JSON object with,
per scenario, the exit code, the output and what was left on the tmpfs.

usage: python _disk_full_worker.py ROOT CHECKPOINT RECIPE DATA
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT, CKPT, RECIPE, DATA = (Path(a) for a in sys.argv[1:5])


def left(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def cli(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeanomaly.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})


def clear() -> None:
    for p in ROOT.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def fill(leave: int) -> None:
    """Write a file that leaves ``leave`` bytes free on the tmpfs (what another program would do)."""
    remaining = shutil.disk_usage(ROOT).free - leave
    block = b"\0" * (1 << 20)
    with open(ROOT / "filler", "ab") as f:
        while remaining > 0:
            remaining -= f.write(block[: min(len(block), remaining)])


MB = 1 << 20
results: dict[str, dict] = {}

# 1. too little space for the estimate: refused before the work, nothing written
fill(20 * MB)
t0 = time.monotonic()
proc = cli("export", CKPT, "--out", ROOT / "b.bundle", "--format", "onnx,openvino", "--precision", "fp32")
out, _ = proc.communicate(timeout=600)
results["precheck"] = {"rc": proc.returncode, "output": out, "left": left(ROOT), "seconds": time.monotonic() - t0}
clear()

# 2. the disk fills up in the middle of the export (another program writes a large file
#    once the export has started writing graphs to its temporary folder on this disk)
tmp = ROOT / "tmp"
tmp.mkdir()
proc = cli("export", CKPT, "--out", ROOT / "b.bundle", "--format", "onnx,openvino", "--precision", "fp32", env={"TMPDIR": str(tmp)})
deadline = time.monotonic() + 600
filled = False
while proc.poll() is None and time.monotonic() < deadline:
    if not filled and any(p.name.startswith("edgeanomaly-export-") for p in tmp.iterdir()):
        fill(16 << 10)
        filled = True
    time.sleep(0.02)
out, _ = proc.communicate(timeout=60)
results["midway"] = {"rc": proc.returncode, "output": out, "left": left(ROOT), "filled": filled}
clear()

# 3. --recipe: the run folder's disk cannot hold the checkpoint after the fit
fill(5 * MB)
proc = cli("export", "--recipe", RECIPE, "--data", DATA, "--category", "metal", "--out", ROOT / "r.bundle")
out, _ = proc.communicate(timeout=600)
results["recipe_checkpoint"] = {"rc": proc.returncode, "output": out, "left": left(ROOT)}
clear()

# 4. --recipe: the checkpoint fits, the bundle does not: the complete checkpoint is kept, and said so
fill(20 * MB)
proc = cli("export", "--recipe", RECIPE, "--data", DATA, "--category", "metal", "--out", ROOT / "r.bundle")
out, _ = proc.communicate(timeout=600)
results["recipe_bundle"] = {"rc": proc.returncode, "output": out, "left": left(ROOT)}

print(json.dumps(results))
