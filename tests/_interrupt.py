"""A real Ctrl-C for tests: run a Python script in a new interpreter and interrupt it."""

from __future__ import annotations

import signal
import subprocess
import sys


def ctrl_c_when_ready(script: str) -> str:
    """Run ``script`` in a new interpreter, press Ctrl-C (SIGINT) when it prints "ready", and
    return what it printed after; it must exit normally (0), not abort."""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, (p.returncode, err)
    return out
