"""Runs of the two-backend, two-thread stress worker: hangs, crashes and time (issue 20 item 14).

Run by hand (not collected by pytest), niced, on a bundle with an ONNX and an OpenVINO artifact:

    nice -n 5 python tests/benchmarks/bench_mixed_threads.py BUNDLE [--worker mixed|first-use] [--runs 100] [--rounds 15] [--timeout 60]

Each run is a fresh process of a worker (see ``WORKERS``): ONNX Runtime and OpenVINO detectors
of BUNDLE, predicting from four threads at once. A run that has not
ended after ``--timeout`` seconds is a hang: its threads' native stacks are dumped with
``gdb -batch -ex 'thread apply all bt'`` (when gdb is installed) and its Python stacks
(``faulthandler`` on SIGABRT) into ``--stacks DIR``. A run ending on a signal is a crash; any other non-zero exit is a failure
(results differing from the sequential ones, an exception). Prints one line per run that was
not ``ok`` and a summary: runs, ok, hangs, crashes, failures, median and total seconds.
"""

from __future__ import annotations

import argparse
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
    "mixed": Path(__file__).parents[1] / "runtime" / "_mixed_stress_worker.py",
    # Four threads each load their detector (two per backend) and use it at once: OpenVINO's
    # first use is made from several threads together.
    "first-use": Path(__file__).parents[1] / "runtime" / "_first_use_worker.py",
}


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


def one_run(worker: str, bundle: str, rounds: int, timeout: float, stacks: Path | None, index: int) -> tuple[str, float, str]:
    """(outcome, seconds, detail) of one worker process; outcome is ok/hang/crash/failure."""
    root = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]), "PYTHONFAULTHANDLER": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(WORKERS[worker]), bundle, *([str(rounds)] if worker == "mixed" else [])],
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
    if proc.returncode != 0:
        return "failure", seconds, f"exit {proc.returncode}: {out[-300:]} {err[-300:]}"
    return "ok", seconds, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--worker", choices=sorted(WORKERS), default="mixed")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15, help="predict_many rounds per thread")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a run counts as hung")
    parser.add_argument("--stacks", type=Path, default=None, help="folder for the stacks of hung runs")
    args = parser.parse_args()
    counts = {"ok": 0, "hang": 0, "crash": 0, "failure": 0}
    seconds: list[float] = []
    t0 = time.perf_counter()
    for i in range(args.runs):
        outcome, s, detail = one_run(args.worker, args.bundle, args.rounds, args.timeout, args.stacks, i)
        counts[outcome] += 1
        seconds.append(s)
        if outcome != "ok":
            print(f"run {i}: {outcome} after {s:.1f} s: {detail}", flush=True)
    total = time.perf_counter() - t0
    print(
        f"runs {args.runs}: ok {counts['ok']}, hangs {counts['hang']}, crashes {counts['crash']}, "
        f"failures {counts['failure']}; median {statistics.median(seconds):.2f} s per run, total {total:.0f} s",
        flush=True,
    )
    sys.exit(0 if counts["ok"] == args.runs else 1)


if __name__ == "__main__":
    main()
