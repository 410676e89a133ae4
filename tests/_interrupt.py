"""A real Ctrl-C (or SIGTERM) for tests: run a Python script, or the CLI, in a new interpreter and
interrupt it."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Callable, Mapping


def ctrl_c_when_ready(script: str, signum: int = signal.SIGINT) -> str:
    """Run ``script`` in a new interpreter, press Ctrl-C (or send ``signum``) when it prints
    "ready", and return what it printed after; it must exit normally (0), not abort."""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signum)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, (p.returncode, err)
    return out


def cli_stopped_when(args: list[str], ready: Callable[[str], bool], signum: int = signal.SIGINT,
                     env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``edgeanomaly ARGS`` in a new interpreter and send it ``signum`` (Ctrl-C by default)
    once a line of its stderr is ``ready``; its exit code, stdout and whole stderr."""
    p = subprocess.Popen([sys.executable, "-m", "edgeanomaly.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    lines = []
    try:
        for line in p.stderr:
            lines.append(line)
            if ready(line):
                p.send_signal(signum)
                break
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    return subprocess.CompletedProcess(args, p.returncode, out, "".join(lines) + err)
