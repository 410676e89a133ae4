"""Free disk space: checked before long work, and named when a write runs out of it (torch-free).

A full disk used to surface as a raw traceback from deep inside torch (``unexpected pos 64
vs 0`` from its zip writer) or an ``OSError`` after a minute and a half of work. Outputs
check the space they will need first, and a write that still runs out of space becomes an
:class:`~edgeanomaly.errors.OutOfSpaceError` that names the destination, what was needed
and what is free.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Iterable

from edgeanomaly.errors import OutOfSpaceError

__all__ = ["existing_parent", "free_bytes", "is_out_of_space", "check_free_space", "nearly_full", "format_size"]

#: errno values that mean "no room": no space left on the device, over the disk quota.
_NO_ROOM = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: Below this much free space, a write that failed is taken to have failed for want of space.
NEARLY_FULL = 1 << 20


def format_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def existing_parent(path: str | os.PathLike[str]) -> Path:
    """``path`` or the nearest folder above it that exists (where it will be created)."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes free to this user on the filesystem that holds (or will hold) ``path``."""
    return shutil.disk_usage(existing_parent(path)).free


def nearly_full(*paths: str | os.PathLike[str]) -> bool:
    """True when a filesystem of ``paths`` has less than :data:`NEARLY_FULL` bytes free."""
    for p in paths:
        try:
            if free_bytes(p) < NEARLY_FULL:
                return True
        except OSError:
            continue
    return False


def is_out_of_space(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is an OSError for want of room."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _NO_ROOM:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def check_free_space(needs: Iterable[tuple[str | os.PathLike[str], int, str]], advice: str = "") -> None:
    """Raise :class:`OutOfSpaceError` unless each filesystem has room for what goes on it.

    ``needs``: ``(path, bytes, what)``; needs on one filesystem add up (a temporary folder
    and the destination on one disk).
    """
    by_device: dict[int, list[tuple[Path, int, str]]] = {}
    for path, nbytes, what in needs:
        where = existing_parent(path)
        by_device.setdefault(where.stat().st_dev, []).append((Path(path), int(nbytes), what))
    for items in by_device.values():
        needed = sum(n for _, n, _ in items)
        free = free_bytes(items[0][0])
        if free < needed:
            parts = " and ".join(f"{format_size(n)} for {what} ({p})" for p, n, what in items)
            raise OutOfSpaceError(
                f"Not enough free disk space: this needs about {parts}, {format_size(needed)} in all, but only "
                f"{format_size(free)} is free on the disk of {existing_parent(items[0][0])}. Nothing was written."
                + (f" {advice}" if advice else "")
            )
