"""Run an artifact in a child process: a crash of the inference engine becomes an error here.

Export measures reduced execution precisions (bf16, f16) with kernels that are only as good as
the plugin on that hardware: OpenVINO's bf16 GEMM has produced corrupted output on
AVX512-BF16 CPUs without AMX (openvinotoolkit/openvino#38256), and a process running bf16
beside ONNX Runtime died with heap corruption (issue 13). Run in-process, such a fault would
kill the export after the whole fit; run here, it is one measurement that did not finish, with
the signal and the engine's last words as the reason.

The child imports the runtime only (no torch) and exchanges arrays through ``.npz`` files in a
folder the caller owns (the export's staging folder), removed when done.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeanomaly.errors import InferenceError
from edgeanomaly.tooling._reproduce import run_artifact

__all__ = ["IsolatedRunError", "run_isolated"]

#: Seconds a child may take to compile and run the held-out images before it is stopped.
DEFAULT_TIMEOUT = 900.0


class IsolatedRunError(InferenceError):
    """The child process failed, crashed or did not finish; the message says which."""


def run_isolated(
    path: str | Path,
    fmt: str,
    precision: str,
    batch: np.ndarray,
    *,
    static_batch: int | None = None,
    device: str = "CPU",
    options: dict[str, Any] | None = None,
    backend: str | None = None,
    workdir: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, np.ndarray]:
    """Raw outputs of artifact ``path`` on ``batch`` ((N, 3, H, W) float32), computed in a child process.

    Args:
        path: the artifact's loadable file; ``fmt`` and ``precision`` its registry format and
            storage precision (the backend that prefers the format runs it, or ``backend``).
        static_batch, device, options: as for the backend row's ``create``
            (e.g. ``{"inference_precision": "bf16"}``).
        workdir: where the exchange files go (a temporary folder inside it, removed after);
            the system's temporary folder when None.
        timeout: seconds before the child is stopped.

    Raises:
        IsolatedRunError: the child exited with an error, was killed by a signal (a crash in
            the engine) or ran past ``timeout``.
    """
    with tempfile.TemporaryDirectory(prefix="edgeanomaly-isolated-", dir=workdir) as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, batch=np.ascontiguousarray(batch, np.float32))
        spec = {
            "path": str(path), "fmt": fmt, "precision": precision, "static_batch": static_batch,
            "device": device, "options": options or {}, "backend": backend, "input": str(inp), "output": str(out),
        }
        what = f"{Path(path).name} on {device}" + (f" with {options}" if options else "")
        try:
            run = subprocess.run(
                [sys.executable, "-m", "edgeanomaly.tooling._isolated", json.dumps(spec)],
                capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise IsolatedRunError(f"{what} did not finish in {timeout:g} s; it was stopped") from exc
        if run.returncode != 0:
            lines = (run.stderr or "").strip().splitlines()
            last = " ".join(lines[-1:] if run.returncode > 0 else lines[-3:])[-600:]
            if run.returncode < 0:
                try:
                    name = signal.Signals(-run.returncode).name
                except ValueError:
                    name = f"signal {-run.returncode}"
                raise IsolatedRunError(f"{what} crashed ({name}) in the inference engine: {last or 'no message'}")
            raise IsolatedRunError(f"{what} failed (exit {run.returncode}): {last or 'no message'}")
        with np.load(out) as data:
            return {k: data[k] for k in data.files}


def _child(spec: dict[str, Any]) -> None:
    with np.load(spec["input"]) as data:
        batch = data["batch"]
    outputs, _ = run_artifact(spec["path"], spec["fmt"], spec["precision"], batch, static_batch=spec["static_batch"],
                              device=spec["device"], options=spec["options"], backend=spec.get("backend"))
    np.savez(spec["output"], **outputs)


if __name__ == "__main__":
    try:
        _child(json.loads(sys.argv[1]))
    except Exception as exc:  # noqa: BLE001 - one line for the parent's message, not a traceback
        print(f"{type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(1)
