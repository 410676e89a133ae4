"""OpenVINO used from several threads at once (issue 20 item 14).

The report: 1 run in 39 of an ONNX Runtime and an OpenVINO detector used from threads hung for
good, one thread in ``_pyopenvino`` blocked in ``__cxa_guard_acquire``, another waiting for the
GIL. Reproduced here (2 hangs in 100 runs of ``_first_use_worker.py`` without the fix; stacks in
docs/BENCHMARKS.md): two threads' first ``infer`` reach ``Type.to_dtype``, whose C++ static
table of NumPy dtypes is initialised by the first thread; its first ``py::dtype`` sets up
pybind11's NumPy API and releases the GIL meanwhile; the second thread, holding the GIL, waits
for the static, and the first never gets the GIL back. Only a binding's first use initialises
its statics, so ``core()`` now makes the first use of every binding the backend calls, once, in
one thread, under its lock, before any detector exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}


def _run(worker: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """One fresh process (``core()`` is once per process); a hang fails the test, after ``timeout``."""
    try:
        return subprocess.run(
            [sys.executable, str(HERE / worker), *args], capture_output=True, text=True, timeout=timeout, env=ENV
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{worker} {' '.join(args)} hung (no exit after {timeout:.0f} s): {exc.stderr!r}")


def test_every_openvino_binding_is_first_called_inside_core_set_up(seg_bundle: Path) -> None:
    """Four threads load and use detectors at once: each OpenVINO binding they call was already
    called once inside ``core()``, so none of its function-local statics is initialised by two
    threads together (before the fix: infer, start_async, wait, get_property, ... first ran there)."""
    run = _run("_first_use_worker.py", str(seg_bundle))
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report
    assert report["watched"] >= 10, report  # the watch saw the bindings (not a test that cannot fail)
    assert report["outside"] == [], (
        "OpenVINO bindings first called outside core()'s one-time set-up (two threads may initialise "
        f"their statics together): {report['outside']}"
    )
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.slow
def test_mixed_backends_first_used_from_threads_never_hang(seg_bundle: Path) -> None:
    """Bounded repeat of both stress workers (the reported rate was 1 run in 39; 100 runs are in
    benchmarks/bench_mixed_threads.py): any run that does not end is a failure."""
    for attempt in range(4):
        run = _run("_first_use_worker.py", str(seg_bundle), timeout=120)
        assert run.returncode == 0, (attempt, run.stdout[-2000:], run.stderr[-2000:])
        run = _run("_mixed_stress_worker.py", str(seg_bundle), "5", timeout=120)
        assert run.returncode == 0, (attempt, run.stdout[-2000:], run.stderr[-2000:])
        assert run.stdout.strip() == "ok"
