"""Runs of the two-backend stress workers: hangs, crashes and time (issue 20 item 14).

Run by hand (not collected by pytest), niced, on a bundle with an ONNX and an OpenVINO artifact:

    nice -n 5 python benchmarks/bench_mixed_threads.py BUNDLE [--worker mixed|first-use]
        [--runs 100] [--rounds 15] [--timeout 60] [--stacks DIR] [--without-first-use]
    nice -n 5 python benchmarks/bench_mixed_threads.py BUNDLE --cold-start 10

Each run is a fresh process of a worker (see ``WORKERS``): ONNX Runtime and OpenVINO detectors
of BUNDLE, predicting from four threads at once. A run that has not ended after ``--timeout``
seconds is a hang: its threads' native stacks (``gdb -batch -ex 'thread apply all bt'``, when
gdb is installed) and Python stacks (``faulthandler`` on SIGABRT) go to ``--stacks DIR``. A
run ending on a signal is a crash; any other non-zero exit is a failure (results differing
from the sequential ones, an exception in a thread). Prints one line per run that was not ok
and a summary: runs, ok, hangs, crashes, failures, median and total seconds.

``--without-first-use`` runs the workers as before the fix (``WITHOUT_FIRST_USE``), to
reproduce the hang: the first-use worker then finishes listing the bindings first called
outside ``core()`` (counted apart, not as failures), or hangs. ``--cold-start PAIRS`` times
what the fix costs instead: load + first prediction of an OpenVINO detector in fresh
processes, with and without that first use, alternated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKERS = {
    # ONNX Runtime + OpenVINO (throughput, bf16 where the CPU has it) loaded and warmed in the main
    # thread, then four threads of predict_many.
    "mixed": Path(__file__).parents[1] / "tests" / "runtime" / "_mixed_stress_worker.py",
    # Four threads each load their detector (two per backend) and use it at once: OpenVINO's
    # first use is made from several threads together.
    "first-use": Path(__file__).parents[1] / "tests" / "runtime" / "_first_use_worker.py",
}


# The state before issue 20 item 14's fix, to reproduce the hang: core() without its one-time
# first use of the bindings. ``python -c CODE WORKER ARGS...`` runs WORKER with ARGS.
WITHOUT_FIRST_USE = (
    "import runpy, sys; from edgeanomaly.runtime._backends import _openvino; "
    "_openvino._first_use = lambda *args: None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def dump_stacks(pid: int) -> str:
    """Native stacks of every thread of ``pid`` (gdb), or why there are none."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return "(gdb not installed: no stacks)"
    done = subprocess.run(
        [gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
        capture_output=True, text=True, timeout=120,
    )
    return done.stdout + done.stderr


def one_run(
    worker: str, bundle: str, rounds: int, timeout: float, stacks: Path | None, index: int, without_first_use: bool = False
) -> tuple[str, float, str]:
    """(outcome, seconds, detail) of one worker process; outcome is ok/hang/crash/failure, or
    for the first-use worker "outside": it finished, and bindings were first called outside core()."""
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]), "PYTHONFAULTHANDLER": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *(["-c", WITHOUT_FIRST_USE] if without_first_use else []), str(WORKERS[worker]), bundle, *([str(rounds)] if worker == "mixed" else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        detail = dump_stacks(proc.pid)
        proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's Python stack on stderr
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        detail += "\n--- Python stacks (faulthandler) ---\n" + err[-20000:]
        if stacks is not None:
            stacks.mkdir(parents=True, exist_ok=True)
            (stacks / f"hang-{index:03d}.txt").write_text(detail)
        return "hang", time.perf_counter() - t0, detail[-400:]
    seconds = time.perf_counter() - t0
    if proc.returncode < 0:
        return "crash", seconds, f"signal {-proc.returncode}: {err[-400:]}"
    if worker == "first-use" and proc.returncode == 1:
        report = json.loads(out.strip().splitlines()[-1])
        if not report["failures"]:
            return "outside", seconds, ", ".join(report["outside"])
    if proc.returncode != 0:
        return "failure", seconds, f"exit {proc.returncode}: {out[-300:]} {err[-300:]}"
    return "ok", seconds, ""


COLD_START = (
    "import sys, time; t0 = time.perf_counter(); import numpy as np; "
    "from edgeanomaly.runtime import load; from edgeanomaly.runtime._backends import _openvino; "
    "_openvino._first_use = (lambda *args: None) if sys.argv[2] == 'without' else _openvino._first_use; "
    "t1 = time.perf_counter(); det = load(sys.argv[1], backend='openvino'); "
    "det.predict(np.zeros((64, 80, 3), np.uint8)); print((time.perf_counter() - t1) * 1e3)"
)


def cold_start(bundle: str, pairs: int) -> None:
    """Milliseconds from ``load`` to the first prediction of an OpenVINO detector in a fresh
    process, with and without core()'s first use, alternated ``pairs`` times: its cost."""
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    ms: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(pairs):
        for mode in ms:
            run = subprocess.run([sys.executable, "-c", COLD_START, bundle, mode], capture_output=True, text=True, env=env, check=True)
            ms[mode].append(float(run.stdout.strip().splitlines()[-1]))
    for mode, values in ms.items():
        print(f"load + first predict, {mode} first use: median {statistics.median(values):.0f} ms "
              f"({', '.join(f'{v:.0f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--worker", choices=sorted(WORKERS), default="mixed")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15, help="predict_many rounds per thread")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a run counts as hung")
    parser.add_argument("--stacks", type=Path, default=None, help="folder for the stacks of hung runs")
    parser.add_argument("--without-first-use", action="store_true",
                        help="run as before the fix of issue 20 item 14 (core() without its first use of the bindings)")
    parser.add_argument("--cold-start", type=int, metavar="PAIRS", default=0,
                        help="instead: time load + first predict with and without the first use, PAIRS times each")
    args = parser.parse_args()
    if args.cold_start:
        cold_start(args.bundle, args.cold_start)
        return
    counts = {"ok": 0, "outside": 0, "hang": 0, "crash": 0, "failure": 0}
    seconds: list[float] = []
    t0 = time.perf_counter()
    for i in range(args.runs):
        outcome, s, detail = one_run(args.worker, args.bundle, args.rounds, args.timeout, args.stacks, i, args.without_first_use)
        counts[outcome] += 1
        seconds.append(s)
        if outcome not in ("ok", "outside"):
            print(f"run {i}: {outcome} after {s:.1f} s: {detail}", flush=True)
    total = time.perf_counter() - t0
    print(
        f"runs {args.runs}: ok {counts['ok']}, finished with bindings first used outside core() {counts['outside']}, "
        f"hangs {counts['hang']}, crashes {counts['crash']}, "
        f"failures {counts['failure']}; median {statistics.median(seconds):.2f} s per run, total {total:.0f} s",
        flush=True,
    )
    sys.exit(0 if counts["hang"] + counts["crash"] + counts["failure"] == 0 else 1)


if __name__ == "__main__":
    main()
