"""Atomic replacement of files and directories: a crash leaves the old version or the new one.

Everything is written under a hidden temporary name next to the destination (same
filesystem, so the final rename is atomic), flushed to disk, then renamed into place. A
staging folder (:func:`staging_beside`) or file (:func:`atomic_file`) is held by a lock file beside
it while its writer lives; what a writer killed outright left is removed by the next write to the
same destination.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator

from edgeanomaly._tempdirs import hold, release, sweep_beside

__all__ = ["current_umask", "fsync_dir", "temp_dir_beside", "staging_beside", "temp_file_beside", "replace_dir", "replace_file",
           "write_bytes_atomic"]


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else by a set-and-restore."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe for the instant between the two calls; only where /proc is missing
    os.umask(mask)
    return mask


def _as_if_created(path: Path, directory: bool) -> None:
    # mkdtemp/mkstemp create 0700/0600 whatever the umask; the finished output is renamed into
    # place with that mode, and a service account (or a non-root container) could not read it.
    # Give it the mode a plain mkdir/open would have: 0777/0666 less the umask.
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk, so a rename survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; its renames are journaled anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_dir_beside(dest: Path, tag: str = "tmp") -> Path:
    """A new hidden directory ``.NAME.TAG-xxxx`` in the parent of ``dest`` (mode 0777 less the umask)."""
    path = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{tag}-", dir=dest.parent))
    _as_if_created(path, directory=True)
    return path


@contextlib.contextmanager
def staging_beside(dest: Path, tag: str = "tmp") -> Iterator[Path]:
    """:func:`temp_dir_beside` for a ``with`` block that writes ``dest`` and renames the folder
    onto it: held (``.NAME.TAG-xxxx.lock``) while the block runs, removed at its end unless it
    was renamed away. What writers of ``dest`` killed outright (SIGKILL, the OOM killer) left
    beside it, folders whose lock nobody holds and a minute old, is removed first."""
    sweep_beside(dest)
    path = temp_dir_beside(dest, tag)
    hold(path)
    try:
        yield path
    finally:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        release(path)


def temp_file_beside(dest: Path, tag: str = "tmp") -> Path:
    """A new empty hidden file ``.NAME.TAG-xxxx`` in the parent of ``dest`` (mode 0666 less the umask)."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.{tag}-", dir=dest.parent)
    os.close(fd)
    _as_if_created(Path(name), directory=False)
    return Path(name)


def replace_dir(new: Path, dest: Path) -> None:
    """Move the finished directory ``new`` to ``dest``, replacing an existing ``dest``.

    An existing ``dest`` is renamed aside first, the new one renamed in, then the old one
    deleted; if the second rename fails the old one is put back. POSIX has no portable
    atomic swap of two directories, so for the instant between the two renames ``dest``
    does not exist and the old bundle sits in ``.NAME.old-xxxx`` next to it.
    """
    if not dest.exists() and not dest.is_symlink():
        os.rename(new, dest)
        fsync_dir(dest.parent)
        return
    aside = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(dest, aside)
    try:
        os.rename(new, dest)
    except BaseException:
        os.rename(aside, dest)
        raise
    fsync_dir(dest.parent)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


def replace_file(new: Path, dest: Path) -> None:
    """``os.replace`` ``new`` onto ``dest`` (atomic on POSIX and Windows) and flush the directory."""
    os.replace(new, dest)
    fsync_dir(dest.parent)


@contextlib.contextmanager
def atomic_file(dest: Path) -> Iterator[BinaryIO]:
    """A file open for writing in place of ``dest``: a temporary sibling, fsynced and moved onto
    ``dest`` when the block ends, removed (``dest`` untouched) when it raises. Like
    :func:`staging_beside`, the sibling is held by a lock file while the block runs, and what
    writers of ``dest`` killed outright left beside it (a half-written zip) is removed first."""
    sweep_beside(dest)
    tmp = temp_file_beside(dest)
    hold(tmp)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        replace_file(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        release(tmp)


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, fsync it, then atomically replace ``dest``."""
    with atomic_file(dest) as f:
        f.write(data)
