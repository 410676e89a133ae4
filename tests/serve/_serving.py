"""Helpers of the serving tests: free ports and `edgeanomaly serve` subprocesses (see conftest.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

READY_TIMEOUT_S = 180.0


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A running `edgeanomaly serve` subprocess."""

    def __init__(self, proc: subprocess.Popen, http_port: int, grpc_port: int, log: Path) -> None:
        self.proc, self.http_port, self.grpc_port, self.log = proc, http_port, grpc_port, log
        self.url = f"http://127.0.0.1:{http_port}"

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def post_json(self, path: str, payload: dict, timeout: float = 60.0) -> tuple[int, dict]:
        status, _, data = self.post(path, json.dumps(payload).encode(), timeout=timeout)
        return status, json.loads(data) if data else {}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak_rss(self) -> int:
        """The server's peak resident memory so far, in bytes (Linux: VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/PID/status")

    def rss(self) -> int:
        """The server's resident memory now, in bytes (Linux: VmRSS)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc/PID/status")


def _cap_data(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def start_server(bundle: Path, log_dir: Path, *extra: str, launch: Callable[[int, int], list[str]] | None = None,
                 memory_cap: int | None = None) -> Server:
    """`edgeanomaly serve BUNDLE EXTRA...`, or the command ``launch(http_port, grpc_port)`` returns.

    ``memory_cap``: RLIMIT_DATA of the server in bytes (heap and private mappings), so a
    request that would grow it past the cap fails there instead of taking the machine's memory."""
    http_port, grpc_port = free_port(), free_port()
    log = log_dir / f"serve-{http_port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = launch(http_port, grpc_port) if launch is not None else [
        sys.executable, "-m", "edgeanomaly.cli", "serve", str(bundle), *extra, "--host", "127.0.0.1",
        "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=None if memory_cap is None else (lambda: _cap_data(memory_cap)))
    server = Server(proc, http_port, grpc_port, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"edgeanomaly serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if server.get("/v2/health/ready", timeout=2.0)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"edgeanomaly serve was not ready within {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    if server.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=30)


