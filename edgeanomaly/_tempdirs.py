"""Private temporary folders that a process killed outright does not leave behind for good.

Each folder edgeanomaly makes in the temporary directory (``edgeanomaly-KIND-xxxx``: an export's
staging folder, a zipped bundle unpacked, matplotlib's and torch's caches kept out of the home
and temp folders) has a lock file beside it, ``edgeanomaly-KIND-xxxx.lock``, which the process
holds locked (``flock``) while the folder lives. Errors, Ctrl-C and SIGTERM remove both, as they
removed the folder before; SIGKILL (``kill -9``, the kernel's OOM killer) or a power cut runs
no cleanup, and left the folder for good: an export's staging folder holds the bundle's
artifacts, hundreds of MiB. The next edgeanomaly command, or the next process that makes such
a folder (a notebook's export), removes them (:func:`sweep`): a lock
that nobody holds is a dead process's, whatever its PID namespace or host (the lock lives in
the file system, not a PID that another process may have taken). Only this user's entries are
looked at; folders without a lock file (another program's, or an older version's) are left.
The hidden staging folder beside a destination (``.NAME.tmp-xxxx``, the bundle being written,
:func:`edgeanomaly.bundle.staging_beside`) and the hidden file a zip is packed in are held the
same way, and the next write to that destination removes what a killed writer left there
(:func:`sweep_beside`).
Where ``flock`` does not exist (Windows) folders are made and removed as before, unswept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PREFIX", "make_temp_dir", "remove_temp_dir", "temp_dir", "sweep", "hold", "release", "sweep_beside"]

PREFIX = "edgeanomaly-"
_LOCK = ".lock"
#: A lock file younger than this is not swept even when unlocked: its process may be between
#: making it and locking it.
MIN_AGE_S = 60.0
_held: dict[str, int] = {}  # folder -> the descriptor holding its lock
_swept: set[str] = set()  # the temporary directories this process has swept


def make_temp_dir(kind: str) -> Path:
    """A new private folder ``edgeanomaly-KIND-xxxx`` in the temporary directory, its lock held
    until :func:`remove_temp_dir` (or the process's end). A process's first folder there sweeps
    what killed processes left first (:func:`sweep`), so the library swept as the CLI does."""
    if tempfile.gettempdir() not in _swept:
        sweep()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-"))
    hold(folder)
    return folder


def remove_temp_dir(folder: str | os.PathLike[str]) -> None:
    """Remove ``folder`` (made by :func:`make_temp_dir`) and then its lock file."""
    shutil.rmtree(folder, ignore_errors=True)
    release(folder)


def hold(path: str | os.PathLike[str]) -> None:
    """Make ``PATH.lock`` and hold it locked until :func:`release` (or the process's end): while
    it is held, no sweep takes ``path``."""
    if fcntl is None:  # pragma: no cover - Windows
        return
    fd = -1
    try:
        fd = os.open(f"{path}{_LOCK}", os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _held[str(path)] = fd
    except OSError:  # no lock (a file system without flock): removed as before, only not swept
        if fd >= 0:
            os.close(fd)
            Path(f"{path}{_LOCK}").unlink(missing_ok=True)


def release(path: str | os.PathLike[str]) -> None:
    """Remove ``PATH.lock`` (made by :func:`hold`) and let it go."""
    fd = _held.pop(str(path), None)
    if fd is not None:
        Path(f"{path}{_LOCK}").unlink(missing_ok=True)
        os.close(fd)


@contextlib.contextmanager
def temp_dir(kind: str) -> Iterator[Path]:
    """:func:`make_temp_dir` for a ``with`` block, removed at its end however it ends."""
    folder = make_temp_dir(kind)
    try:
        yield folder
    finally:
        remove_temp_dir(folder)


def sweep(root: str | os.PathLike[str] | None = None, min_age_s: float = MIN_AGE_S) -> list[Path]:
    """Remove the folders of dead edgeanomaly processes from ``root`` (default: the temporary
    directory): each ``edgeanomaly-*`` folder of this user whose lock file is at least
    ``min_age_s`` old and locked by nobody, then the lock file. Returns the folders removed;
    never raises (what cannot be read or locked is left)."""
    base = str(root if root is not None else tempfile.gettempdir())
    _swept.add(base)
    if fcntl is None:  # pragma: no cover - Windows
        return []
    return _sweep_locks(Path(base), PREFIX, min_age_s)


def sweep_beside(dest: str | os.PathLike[str], min_age_s: float = MIN_AGE_S) -> list[Path]:
    """:func:`sweep` for the hidden staging entries beside ``dest`` (``.NAME.TAG-xxxx``, each held
    by :func:`hold` while its writer lives) that writers of ``dest`` killed outright left."""
    if fcntl is None:  # pragma: no cover - Windows
        return []
    dest = Path(dest)
    return _sweep_locks(dest.parent, f".{dest.name}.", min_age_s)


def _sweep_locks(base: Path, prefix: str, min_age_s: float) -> list[Path]:
    """Remove each ``PREFIX*`` entry of ``base`` with a lock file nobody holds (see :func:`sweep`)."""
    try:
        locks = [p for p in base.iterdir() if p.name.startswith(prefix) and p.name.endswith(_LOCK)]
    except OSError:
        return []
    removed = []
    for lock in locks:
        folder = lock.with_name(lock.name[: -len(_LOCK)])
        if str(folder) in _held or not _stale(lock, min_age_s):
            continue
        try:
            fd = os.open(lock, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its process is alive
            os.close(fd)
            continue
        try:
            kind = _own_entry(folder)
            if kind == "dir":
                shutil.rmtree(folder, ignore_errors=True)
            elif kind == "file":
                folder.unlink(missing_ok=True)
            if not folder.exists():
                lock.unlink(missing_ok=True)
                removed.append(folder)
        finally:
            os.close(fd)
    return removed


def _stale(lock: Path, min_age_s: float) -> bool:
    """Whether ``lock`` is a regular file of this user, at least ``min_age_s`` old."""
    try:
        st = lock.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and time.time() - st.st_mtime >= min_age_s


def _own_entry(path: Path) -> str | None:
    """``"dir"`` or ``"file"`` where ``path`` is a real directory or regular file (not a link)
    of this user, else ``None``."""
    try:
        st = path.lstat()
    except OSError:
        return None
    if st.st_uid != os.getuid():
        return None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else None
