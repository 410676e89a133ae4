"""Check the files of a bundle against the sizes and sha256 its manifest records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeanomaly.bundle._hashing import sha256_file
from edgeanomaly.bundle._manifest import ArtifactFile, Manifest
from edgeanomaly.bundle._paths import resolve_inside
from edgeanomaly.bundle._schema import MANIFEST_NAME

__all__ = ["FileStatus", "check_files", "incomplete"]


@dataclass(frozen=True)
class FileStatus:
    """The result of checking one file.

    Attributes:
        path: relative path in the bundle.
        owner: ``"artifact 'onnx-fp32'"`` or ``"reference"``.
        status: ``"ok"``, ``"unchecked"`` (size matched, sha256 not computed), ``"missing"``,
            ``"unsafe"``, ``"size mismatch"`` or ``"sha256 mismatch"``.
        problem: a sentence for the user when the status is a failure, else ``None``.
    """

    path: str
    owner: str
    status: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _short(digest: str) -> str:
    return f"{digest[:12]}…"


def _check_one(root: Path, f: ArtifactFile, owner: str, compute_sha256: bool) -> FileStatus:
    kind = "reference file" if owner == "reference" else "artifact file"
    target = resolve_inside(root, f.path)
    if target is None:
        return FileStatus(
            f.path, owner, "unsafe",
            f"{kind} {f.path} resolves outside the bundle (a symbolic link?); refusing to read it.",
        )
    if not target.is_file():
        what = "is not a regular file" if target.exists() else "is missing"
        return FileStatus(
            f.path, owner, "missing",
            f"{kind} {f.path} ({owner}) listed in {MANIFEST_NAME} {what}. "
            "Restore the file or re-export the bundle.",
        )
    size = target.stat().st_size
    if size != f.bytes:
        return FileStatus(
            f.path, owner, "size mismatch",
            f"{kind} {f.path} has {size} bytes but {MANIFEST_NAME} records {f.bytes}; the file was "
            "truncated, modified or corrupted. Re-export the bundle.",
        )
    if not compute_sha256:
        return FileStatus(f.path, owner, "unchecked")
    digest, _ = sha256_file(target)
    if digest != f.sha256:
        return FileStatus(
            f.path, owner, "sha256 mismatch",
            f"{kind} {f.path} has sha256 {_short(digest)} but {MANIFEST_NAME} records "
            f"{_short(f.sha256)}; the file was modified or corrupted. Re-export the bundle.",
        )
    return FileStatus(f.path, owner, "ok")


def check_files(
    root: Path, manifest: Manifest, *, compute_sha256: bool = True, stop_at_first: bool = False
) -> list[FileStatus]:
    """Check every file the manifest lists (each path once), in manifest order.

    Args:
        root: the bundle directory.
        compute_sha256: hash the files (the default); ``False`` checks presence and size only.
        stop_at_first: return as soon as one file fails.
    """
    owners: dict[str, tuple[ArtifactFile, str]] = {}
    for artifact in manifest.artifacts:
        for f in artifact.files:
            owners.setdefault(f.path, (f, f"artifact '{artifact.name}'"))
    ref = manifest.reference["file"]
    if ref is not None:
        owners.setdefault(ref.path, (ref, "reference"))
    results = []
    for f, owner in owners.values():
        status = _check_one(root, f, owner, compute_sha256)
        results.append(status)
        if stop_at_first and not status.ok:
            break
    return results


def incomplete(manifest: Manifest) -> list[str]:
    """Problems that make a draft manifest unfit for a written bundle (files not filled in)."""
    problems = []
    for i, artifact in enumerate(manifest.artifacts):
        if not artifact.files:
            problems.append(f"artifacts[{i}] ({artifact.name}) lists no files, so nothing of it is checksummed")
        for f in artifact.files:
            if not f.sha256:
                problems.append(f"artifacts[{i}] ({artifact.name}): file {f.path} has no sha256")
    ref = manifest.reference["file"]
    if ref is not None and not ref.sha256:
        problems.append(f"reference.file {ref.path} has no sha256")
    return problems
