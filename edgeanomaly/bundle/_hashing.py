"""SHA-256 of files and of the manifest's canonical JSON form."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO, Mapping

__all__ = ["CHUNK", "MANIFEST_SHA256_KEY", "sha256_file", "copy_and_hash", "canonical_json", "content_sha256"]

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for a 512 MB device

#: The field of manifest.json that protects the manifest itself.
MANIFEST_SHA256_KEY = "manifest_sha256"


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in chunks.

    >>> import tempfile, os
    >>> p = Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[1]
    3
    """
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def copy_and_hash(source: BinaryIO, target: BinaryIO) -> tuple[str, int]:
    """Copy a stream and hash it in the same pass: (hex sha256, bytes copied)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def canonical_json(content: Mapping[str, Any]) -> bytes:
    """The canonical form hashed into ``manifest_sha256``.

    UTF-8 of ``json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    allow_nan=False)``: keys sorted, no whitespace, non-ASCII as ``\\uXXXX`` escapes, floats in
    Python's shortest round-trip form. Formatting of the file (indentation, key order) does
    not change it; any change of a value does.
    """
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.encode("ascii")


def content_sha256(document: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``document`` without its ``manifest_sha256`` key.

    >>> a = content_sha256({"b": 1, "a": [1.5]})
    >>> a == content_sha256({"a": [1.5], "b": 1, "manifest_sha256": "whatever"})
    True
    """
    content = {k: v for k, v in document.items() if k != MANIFEST_SHA256_KEY}
    return hashlib.sha256(canonical_json(content)).hexdigest()
