"""An output folder held by one run: a lock naming its holder, and the lines it already wrote.

``predict --out DIR`` writes one JSON line per input into ``DIR/predictions.jsonl``. Two runs
into one folder would interleave their lines into a corrupt file, so a run holds an exclusive
lock on ``DIR/.edgeanomaly.lock`` (``flock``: the kernel drops it when the process ends, even
by ``kill -9``, so a lock is never stale) and writes who holds it into the file. ``--resume``
reads the lines of an interrupted run back with :func:`completed_lines`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click

LOCK_NAME = ".edgeanomaly.lock"


class FolderLock:
    """Exclusive hold on ``folder`` for this process (released by :meth:`release` or at exit)."""

    def __init__(self, folder: Path, what: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / LOCK_NAME
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(self._fd):
            holder = _read_holder(self._fd)
            os.close(self._fd)
            raise click.ClickException(
                f"{folder} is in use by another run ({holder}); wait for it to finish, or choose another --out"
            )
        info = f"{what}, pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, info.encode("utf-8"), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = -1


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - no Windows CI
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def completed_lines(path: Path) -> list[dict[str, Any]]:
    """The complete result lines of an earlier ``predictions.jsonl``: no summary, no error
    lines (a failed file is tried again), no torn last line of a killed run."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_bytes().split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:  # the torn tail of a killed run (or an empty line)
            continue
        if isinstance(record, dict) and "summary" not in record and "error" not in record and "path" in record:
            kept.append(record)
    return kept
