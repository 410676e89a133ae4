"""Relative paths inside a bundle, checked so that no manifest or zip can point outside it.

A bundle may come from anywhere (a USB stick, an e-mail): a manifest that lists
``../../etc/passwd`` or a zip member called ``/home/user/.bashrc`` must be refused before
any file is opened or written.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["unsafe_reason", "resolve_inside"]

_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_reason(path: str) -> str | None:
    """Why ``path`` is not a safe relative POSIX path inside a bundle, or ``None`` if it is.

    Safe means: non-empty, ``/``-separated, relative (no leading ``/``, no drive letter),
    no ``.``/``..``/empty segments, no backslash or NUL.

    >>> unsafe_reason("openvino/model.xml") is None
    True
    >>> unsafe_reason("../model.onnx")
    "contains a '..' segment"
    """
    if not isinstance(path, str) or not path:
        return "is empty"
    if "\x00" in path:
        return "contains a NUL character"
    if "\\" in path:
        return "contains a backslash (use '/' as the separator)"
    if path.startswith("/") or _DRIVE.match(path):
        return "is absolute (paths in a bundle are relative to its root)"
    for segment in path.split("/"):
        if segment == "..":
            return "contains a '..' segment"
        if segment in ("", "."):
            return "contains an empty or '.' segment"
    return None


def resolve_inside(root: Path, path: str) -> Path | None:
    """``root / path`` if it resolves (symlinks followed) inside ``root``, else ``None``."""
    if unsafe_reason(path) is not None:
        return None
    base = root.resolve()
    target = (base / path).resolve()
    if target != base and base not in target.parents:
        return None
    return target
