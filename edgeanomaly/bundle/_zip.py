"""A bundle as one ``.zip`` file: written atomically, extracted without trusting its names."""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterable

from edgeanomaly.bundle._atomic import atomic_file
from edgeanomaly.bundle._hashing import CHUNK
from edgeanomaly.bundle._paths import unsafe_reason
from edgeanomaly.bundle._schema import MANIFEST_NAME, SIGNATURE_NAME
from edgeanomaly._validation import env_limit
from edgeanomaly.errors import BundleError

__all__ = ["MAX_COMPRESSION_RATIO", "MAX_MANIFEST_BYTES", "extract_zip", "max_compression_ratio", "write_zip"]

# A fixed timestamp makes two packs of the same bundle byte-identical.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(root: Path, paths: Iterable[str], dest: Path) -> None:
    """Pack ``root/<path>`` for each path into ``dest``, atomically (temporary file + ``os.replace``).

    ``dest`` is replaced if it exists; the caller decides whether that is allowed.
    Members are stored at the top level of the zip, deflated, with a fixed timestamp.
    """
    with atomic_file(dest) as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in paths:
            source = root / rel
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.file_size = source.stat().st_size  # lets zipfile choose ZIP64 for > 2 GB
            with open(source, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, CHUNK)


#: Largest ``manifest.json`` read from a zip (real ones are a few KB).
MAX_MANIFEST_BYTES = 16 << 20
#: Largest ``signature.json`` read from a zip (real ones are a few KB).
MAX_SIGNATURE_BYTES = 1 << 20
#: Largest ratio of uncompressed to compressed size of a zip member. Deflated graph weights
#: come out at 1-3x; bombs at 1000x and more. Override with $EDGEANOMALY_MAX_ZIP_RATIO.
MAX_COMPRESSION_RATIO = 200.0
#: Members this small are exempt from the ratio limit (a few KB of zeros may compress 500x).
_RATIO_FLOOR = 1 << 20


def max_compression_ratio() -> float:
    """The ratio limit in force: ``$EDGEANOMALY_MAX_ZIP_RATIO`` if set, else :data:`MAX_COMPRESSION_RATIO`."""
    return env_limit("EDGEANOMALY_MAX_ZIP_RATIO", MAX_COMPRESSION_RATIO, float, 1.0, BundleError)


def _check_names(members: list[zipfile.ZipInfo], label: str) -> None:
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


def _manifest_prefix(members: list[zipfile.ZipInfo], label: str) -> str:
    """``""`` when manifest.json is at the top, ``"b/"`` for a zip of the bundle folder."""
    names = {info.filename for info in members if not info.is_dir()}
    if MANIFEST_NAME in names:
        return ""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1:
        prefix = f"{tops.pop()}/"
        if prefix + MANIFEST_NAME in names:
            return prefix
    raise BundleError(f"{label} is not an edgeanomaly bundle: {MANIFEST_NAME} not found in the zip")


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int, label: str, what: str) -> None:
    """Stream one member to ``target``, stopping at the first byte over ``limit`` or the ratio limit."""
    ratio = max_compression_ratio()
    allowed = max(_RATIO_FLOOR, ratio * max(info.compress_size, 1))
    written = 0
    too_large = (
        f"Bundle {label}: zip member {info.filename} holds more than the {limit} bytes {what}; "
        "refusing to extract it (a zip bomb or a corrupted zip)."
    )
    if info.file_size > limit:
        raise BundleError(too_large)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zf.open(info) as src, open(target, "wb") as out:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > limit:  # the declared size lied
                    raise BundleError(too_large)
                if written > allowed:
                    raise BundleError(
                        f"Bundle {label}: zip member {info.filename} expands beyond a compression ratio of "
                        f"{ratio:g} ({info.compress_size} compressed bytes), the limit for bundle zips; "
                        "refusing to extract it (a zip bomb?). Set $EDGEANOMALY_MAX_ZIP_RATIO to allow more."
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise BundleError(
            f"Bundle {label}: zip member {info.filename} could not be extracted ({exc}); the "
            "zip is corrupted. Re-export or copy the bundle again."
        ) from exc


def extract_zip(zip_path: Path, dest: Path, label: str, listed: Callable[[Path], dict[str, int]]) -> Path:
    """Extract a bundle zip into the existing directory ``dest`` and return the bundle root.

    Every member name is checked before anything is written: absolute names, ``..``
    segments, backslashes, symbolic links and duplicates are refused (zip-slip). The root
    is ``dest`` itself, or its single top-level folder when the zip was made by zipping a
    bundle directory (``zip -r b.zip b/``).

    ``signature.json`` is extracted too when the zip has one (at most 1 MiB).

    Against bombs, ``manifest.json`` is extracted first (at most :data:`MAX_MANIFEST_BYTES`),
    then only the files it lists (``listed(root) -> {path: bytes}``): a member whose declared
    size differs from the manifest's byte count is refused before extraction, and while
    streaming, extraction stops at the first byte beyond that count or beyond the compression
    ratio limit (:func:`max_compression_ratio`). Members the manifest does not list are skipped.

    Raises:
        BundleError: an unsafe, oversized or corrupted member (named), or not a zip file.
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"Bundle {label} is not a readable zip file ({exc})") from exc
    with zf:
        members = zf.infolist()
        _check_names(members, label)
        prefix = _manifest_prefix(members, label)
        root = dest / prefix if prefix else dest
        by_name = {info.filename: info for info in members if not info.is_dir()}
        _extract_member(
            zf, by_name[prefix + MANIFEST_NAME], root / MANIFEST_NAME, MAX_MANIFEST_BYTES, label,
            f"allowed for {MANIFEST_NAME} (it is larger than any real manifest)",
        )
        signature = by_name.get(prefix + SIGNATURE_NAME)
        if signature is not None:  # a signed bundle stays signed in a zip
            _extract_member(zf, signature, root / SIGNATURE_NAME, MAX_SIGNATURE_BYTES, label,
                            f"allowed for {SIGNATURE_NAME} (it is larger than any real signature)")
        for rel, size in listed(root).items():
            info = by_name.get(prefix + rel)
            if info is None:
                continue  # reported as missing by the file check, with the artifact named
            if info.file_size != size:
                raise BundleError(
                    f"Bundle {label}: zip member {info.filename} declares {info.file_size} bytes but "
                    f"{MANIFEST_NAME} records {size}; refusing to extract it (a zip bomb or a corrupted zip). "
                    "Re-export or copy the bundle again."
                )
            _extract_member(zf, info, root / rel, size, label, f"{MANIFEST_NAME} records")
    return root
