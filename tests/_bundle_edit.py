"""Edits of a real bundle that tests make: re-signing a hand-edited manifest, and a copy with
fewer artifacts. Importable from every test folder (``tests/`` is on ``sys.path`` through its
conftest)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from edgeanomaly.bundle import read_bundle, write_bundle
from edgeanomaly.bundle._hashing import content_sha256


def resign(root: Path, mutate: Callable[[dict[str, Any]], None]) -> None:
    """Edit manifest.json and recompute manifest_sha256, as someone who edits a bundle by hand would."""
    path = root / "manifest.json"
    document = json.loads(path.read_text("utf-8"))
    mutate(document)
    document["manifest_sha256"] = content_sha256(document)
    path.write_text(json.dumps(document, indent=2), "utf-8")


def subset(src: Path, dest: Path, keep: set[str]) -> Path:
    """A copy of bundle ``src`` with only the artifacts named in ``keep``."""
    with read_bundle(src) as b:
        m = b.manifest
        arts = [a for a in m.artifacts if a.name in keep]
        files: dict[str, Path] = {f.path: Path(b.root) / f.path for a in arts for f in a.files}
        files[m.reference["file"].path] = Path(b.root) / m.reference["file"].path
        return write_bundle(dest, dataclasses.replace(m, artifacts=arts), files)
