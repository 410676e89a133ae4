"""A bundle as one ``.zip`` file: written atomically, extracted without trusting its names."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Iterable

from edgeanomaly.bundle._atomic import replace_file, temp_file_beside
from edgeanomaly.bundle._hashing import CHUNK
from edgeanomaly.bundle._paths import unsafe_reason
from edgeanomaly.bundle._schema import MANIFEST_NAME
from edgeanomaly.errors import BundleError

__all__ = ["write_zip", "extract_zip"]

# A fixed timestamp makes two packs of the same bundle byte-identical.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(root: Path, paths: Iterable[str], dest: Path) -> None:
    """Pack ``root/<path>`` for each path into ``dest``, atomically (temporary file + ``os.replace``).

    ``dest`` is replaced if it exists; the caller decides whether that is allowed.
    Members are stored at the top level of the zip, deflated, with a fixed timestamp.
    """
    tmp = temp_file_beside(dest)
    try:
        with open(tmp, "wb") as raw:
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for rel in paths:
                    source = root / rel
                    info = zipfile.ZipInfo(rel, date_time=_EPOCH)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    info.file_size = source.stat().st_size  # lets zipfile choose ZIP64 for > 2 GB
                    with open(source, "rb") as src, zf.open(info, "w") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
            raw.flush()
            os.fsync(raw.fileno())
        replace_file(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def extract_zip(zip_path: Path, dest: Path, label: str) -> Path:
    """Extract a bundle zip into the existing directory ``dest`` and return the bundle root.

    Every member name is checked before anything is written: absolute names, ``..``
    segments, backslashes, symbolic links and duplicates are refused (zip-slip). The root
    is ``dest`` itself, or its single top-level folder when the zip was made by zipping a
    bundle directory (``zip -r b.zip b/``).

    Raises:
        BundleError: an unsafe or corrupted member (named), or not a zip file.
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"Bundle {label} is not a readable zip file ({exc})") from exc
    with zf:
        members = zf.infolist()
        seen: set[str] = set()
        for info in members:
            name = info.filename.rstrip("/") if info.is_dir() else info.filename
            reason = unsafe_reason(name)
            if reason is not None:
                raise BundleError(
                    f"Bundle {label}: zip member {info.filename!r} {reason}; refusing to extract a "
                    "zip whose names point outside the bundle."
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BundleError(f"Bundle {label}: zip member {info.filename!r} is a symbolic link; refusing to extract it.")
            if name in seen:
                raise BundleError(f"Bundle {label}: zip member {info.filename!r} appears twice; the zip is malformed.")
            seen.add(name)
        for info in members:
            target = dest / info.filename
            try:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise BundleError(
                    f"Bundle {label}: zip member {info.filename} could not be extracted ({exc}); the "
                    "zip is corrupted. Re-export or copy the bundle again."
                ) from exc
    if not (dest / MANIFEST_NAME).exists():
        entries = list(dest.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and (entries[0] / MANIFEST_NAME).exists():
            return entries[0]
    return dest
