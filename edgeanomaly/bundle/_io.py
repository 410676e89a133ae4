"""Read, write, pack, verify and re-calibrate bundles on disk."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import posixpath
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Union

from edgeanomaly._tempdirs import make_temp_dir, remove_temp_dir
from edgeanomaly.bundle._atomic import fsync_dir, replace_dir, staging_beside, write_bytes_atomic
from edgeanomaly.bundle._bundle import Bundle
from edgeanomaly.bundle._calibration import Calibration, utc_now
from edgeanomaly.bundle._fields import ManifestFieldError
from edgeanomaly.bundle._graphinfo import check_graph
from edgeanomaly.bundle._hashing import MANIFEST_SHA256_KEY, copy_and_hash, content_sha256
from edgeanomaly.bundle._manifest import Artifact, ArtifactFile, Manifest
from edgeanomaly.bundle._migrate import check_schema_version
from edgeanomaly.bundle._paths import unsafe_reason
from edgeanomaly.bundle._schema import MANIFEST_NAME, SCHEMA_VERSION, SIGNATURE_NAME
from edgeanomaly.bundle._signing import (
    Signature,
    SigningKey,
    TrustLike,
    read_signature,
    resolve_trust,
    verify_signature,
    write_signature,
)
from edgeanomaly.bundle._verify import check_files, incomplete
from edgeanomaly.bundle._zip import extract_zip, write_zip
from edgeanomaly.errors import BundleError, BundleIntegrityError, ConfigError, SignatureError
from edgeanomaly.registry import get_format

__all__ = ["read_bundle", "write_bundle", "pack_bundle", "update_calibration", "verify_bundle", "load_manifest",
           "sign_bundle"]

FileSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


def _is_zip_name(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


# ---------------------------------------------------------------------------- reading


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_manifest(root: Path, label: str | None = None, *, verify: bool = True) -> Manifest:
    """Parse, check and validate ``root/manifest.json``.

    Args:
        root: the bundle directory.
        label: how to name the bundle in messages (default: ``root``).
        verify: check ``manifest_sha256`` against the manifest's content.

    Raises:
        BundleError: missing file, malformed JSON, newer schema, edited manifest (with
            ``verify``), invalid field; the message names the bundle and manifest.json.
    """
    label = str(root) if label is None else label
    where = f"Bundle {label} ({MANIFEST_NAME})"
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{label} is not an edgeanomaly bundle: {MANIFEST_NAME} not found")
    try:
        document = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: the file is not UTF-8 text ({exc}); it is corrupted. Re-export the bundle.") from exc
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"{where}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}. The file is "
            "corrupted or was edited by hand; re-export the bundle."
        ) from exc
    except ValueError as exc:  # NaN / Infinity
        raise BundleError(f"{where}: malformed JSON: {exc}. Re-export the bundle.") from exc
    except RecursionError as exc:
        raise BundleError(
            f"{where}: malformed JSON: arrays or objects nested too deeply to be a manifest. "
            "The file is corrupted or hostile; re-export the bundle."
        ) from exc
    if not isinstance(document, dict):
        raise BundleError(f"{where}: expected a JSON object at the top level, got {type(document).__name__}")
    try:
        version = check_schema_version(document)
    except BundleError as exc:
        raise BundleError(f"{where}: {exc}") from exc
    if verify and version == SCHEMA_VERSION:
        recorded = document.get(MANIFEST_SHA256_KEY)
        if not isinstance(recorded, str):
            raise BundleIntegrityError(
                f"{where}: the field {MANIFEST_SHA256_KEY!r} is missing, so the manifest cannot be checked; "
                "it was not written by edgeanomaly or was edited. Re-export the bundle."
            )
        actual = content_sha256(document)
        if actual != recorded:
            raise BundleIntegrityError(
                f"Bundle {label}: {MANIFEST_NAME} was modified after it was written: its content has sha256 "
                f"{actual[:12]}… but its {MANIFEST_SHA256_KEY} records {recorded[:12]}…. Re-export the "
                "bundle; to change thresholds use update_calibration() or `edgeanomaly calibrate`, which "
                "keep the manifest valid."
            )
    try:
        manifest = Manifest.from_dict(document)
    except ManifestFieldError as exc:
        raise BundleError(f"{where}: invalid field '{exc.field}': {exc.problem}") from exc
    except BundleError as exc:
        raise BundleError(f"{where}: {exc}") from exc
    problems = incomplete(manifest)
    if problems:
        raise BundleError(f"{where}: incomplete manifest: {'; '.join(problems)}. Re-export the bundle.")
    return manifest


def _starts_like_a_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


@contextlib.contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[tuple[Path, str, Path | None]]:
    """Yield (root, label, tempdir) for a bundle directory or zip; removes the tempdir on error."""
    source = Path(path).expanduser()
    label = str(source)
    if source.is_dir():
        yield source, label, None
        return
    if not source.exists():
        raise BundleError(f"Bundle {label} not found: no such file or directory")
    if not zipfile.is_zipfile(source):
        if _starts_like_a_zip(source):
            raise BundleError(
                f"Bundle {label} is a damaged zip file (its end, with the table of contents, is missing: "
                "truncated while copying or downloading?). Copy or download the bundle again."
            )
        raise BundleError(
            f"{label} is not an edgeanomaly bundle: expected a bundle directory or a .zip file"
        )
    tempdir = make_temp_dir("bundle")

    def listed(root: Path) -> dict[str, int]:
        return {f.path: f.bytes for f in load_manifest(root, label, verify=False).files()}

    try:
        root = extract_zip(source, tempdir, label, listed)
        yield root, label, tempdir
    except BaseException:
        remove_temp_dir(tempdir)
        raise


def _signing_key(key: SigningKey | str | os.PathLike[str] | None) -> SigningKey | None:
    return key if key is None or isinstance(key, SigningKey) else SigningKey.load(key)


def _zip_members(root: Path, manifest: Manifest) -> list[str]:
    """What a zip of the bundle at ``root`` holds: the manifest, the signature if any, the files."""
    signed = [SIGNATURE_NAME] if (root / SIGNATURE_NAME).is_file() else []
    return [MANIFEST_NAME, *signed, *(f.path for f in manifest.files())]


def read_bundle(path: str | os.PathLike[str], verify: bool = True, *, trust: TrustLike = None) -> Bundle:
    """Open a bundle directory or ``.zip`` and check it.

    Args:
        path: a bundle directory or a ``.zip`` made by :func:`pack_bundle` / :func:`write_bundle`.
        verify: check the manifest's own checksum and the sha256 of every file (the default).
            ``False`` still validates the manifest and checks that every file is present with
            the recorded size, but does not hash: faster for large artifacts, and the way to
            inspect a bundle whose manifest was edited.
        trust: trusted public keys (a ``.pub`` file, a folder of them, a list, or
            :class:`TrustedKeys`). When given, the bundle must carry a signature by one of
            them that covers its manifest (checked before the files are hashed); ``verify``
            must then be True. Default None: no signature required (``$EDGEANOMALY_TRUST`` is
            read by :func:`edgeanomaly.runtime.load` and the CLI, not here).

    Returns:
        A :class:`Bundle`; for a zip, its files live in a temporary directory removed by
        ``Bundle.close()`` (use ``with read_bundle(...) as bundle:``).

    Raises:
        BundleError: not a bundle, malformed or newer manifest, invalid field.
        BundleIntegrityError: a file is missing, or its size or sha256 differs from the
            manifest, or the manifest was edited. Every message names the file.
        UnsignedBundleError, UntrustedKeyError, BadSignatureError: with ``trust``: no
            signature, a key not trusted, a signature that does not verify or covers another
            manifest.

    >>> with read_bundle("out/patchcore.zip") as bundle:     # doctest: +SKIP
    ...     print(bundle.manifest.calibration.image_threshold)
    """
    trusted = resolve_trust(trust, env=False)
    if trusted is not None and not verify:
        raise ConfigError("read_bundle(verify=False) cannot check a signature: it covers the files through their "
                          "sha256, which verify=False skips. Pass verify=True with trust.")
    with _opened(path) as (root, label, tempdir):
        manifest = load_manifest(root, label, verify=verify)
        problem = None
        if trusted is not None:
            signature: Signature | None = verify_signature(root, trusted, label)
        else:
            try:
                signature = read_signature(root, label)
            except SignatureError as exc:  # reported by describe_bundle; refused only under trust
                signature, problem = None, str(exc)
        for status in check_files(root, manifest, compute_sha256=verify, stop_at_first=True):
            if not status.ok:
                raise BundleIntegrityError(f"Bundle {label}: {status.problem}")
        bundle = Bundle(root, manifest, source=Path(path), verified=verify, tempdir=tempdir)
        bundle.signature, bundle.signature_problem = signature, problem
        return bundle


def verify_bundle(path: str | os.PathLike[str], *, trust: TrustLike = None, graphs: bool = False) -> list[str]:
    """Every problem of a bundle, one message each; an empty list means the bundle is intact.

    Unlike :func:`read_bundle`, which stops at the first problem, this reports an edited
    manifest *and* every missing or modified file. With ``graphs`` (``edgeanomaly info`` and
    ``verify`` set it), each intact graph's own ``model_info`` is compared with the manifest's;
    with ``trust``, the signature is checked against those keys (a malformed ``signature.json``
    is a problem either way).

    >>> verify_bundle("out/patchcore")          # doctest: +SKIP
    []
    """
    problems: list[str] = []
    trusted = resolve_trust(trust, env=False)
    try:
        with _opened(path) as (root, label, tempdir):
            try:
                try:
                    manifest = load_manifest(root, label, verify=True)
                except BundleIntegrityError as exc:  # edited manifest: still check the files
                    problems.append(str(exc))
                    manifest = load_manifest(root, label, verify=False)
                try:
                    if trusted is not None:
                        verify_signature(root, trusted, label)
                    else:
                        read_signature(root, label)
                except SignatureError as exc:
                    problems.append(str(exc))
                broken = set()
                for status in check_files(root, manifest):
                    if not status.ok:
                        broken.add(status.path)
                        problems.append(f"Bundle {label}: {status.problem}")
                if graphs:
                    opened = Bundle(root, manifest, source=Path(path), verified=True)
                    for artifact in manifest.artifacts:
                        if any(f.path in broken for f in artifact.files):
                            continue
                        try:
                            check_graph(opened, artifact)
                        except BundleError as exc:
                            problems.append(str(exc))
            finally:
                if tempdir is not None:
                    remove_temp_dir(tempdir)
    except BundleError as exc:
        problems.append(str(exc))
    return problems


# ---------------------------------------------------------------------------- writing


def check_destination(out: str | os.PathLike[str], overwrite: bool, flag: str = "overwrite=True") -> None:
    """Raise :class:`BundleError` unless a bundle may be written at ``out``.

    Callers check before expensive work (a fit, an export); ``write_bundle`` checks again.
    ``flag`` is how the caller's user says "replace it" (``--overwrite`` on the command line).
    """
    out = Path(out)
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise BundleError(f"{out} already exists; pass {flag} to replace it")
    if _is_zip_name(out):
        if out.is_dir():
            raise BundleError(f"{out} is a directory; refusing to replace it with a zip file")
        return
    if not out.is_dir():
        raise BundleError(f"{out} exists and is not a directory; refusing to replace it with a bundle")
    # Never delete an arbitrary folder (a mistyped path, a home directory) on overwrite=True.
    if not (out / MANIFEST_NAME).is_file() and any(out.iterdir()):
        raise BundleError(
            f"{out} exists and is not an edgeanomaly bundle (no {MANIFEST_NAME}); refusing to replace it. "
            "Choose another path or remove it yourself."
        )


def _normalize_sources(files: Mapping[str, FileSource]) -> dict[str, bytes | Path]:
    if not isinstance(files, Mapping):
        raise TypeError(f"Expected files as a dict of relative path -> bytes or Path, got {type(files).__name__}")
    out: dict[str, bytes | Path] = {}
    for rel, source in files.items():
        reason = unsafe_reason(rel) if isinstance(rel, str) else "is not a string"
        if reason is not None:
            raise BundleError(f"files[{rel!r}]: the path {reason}")
        if rel in (MANIFEST_NAME, SIGNATURE_NAME):
            raise BundleError(f"files[{rel!r}]: {rel} is written by write_bundle (from the manifest, or with sign_key)")
        if isinstance(source, (bytes, bytearray, memoryview)):
            out[rel] = bytes(source)
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise BundleError(f"files[{rel!r}]: source file {path} does not exist or is not a file")
            out[rel] = path
        else:
            raise TypeError(f"files[{rel!r}]: expected bytes or a path, got {type(source).__name__}")
    return out


def _write_file(stage: Path, rel: str, source: bytes | Path) -> tuple[str, int]:
    target = stage / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        if isinstance(source, bytes):
            digest_size = copy_and_hash(io.BytesIO(source), out)
        else:
            with open(source, "rb") as src:
                digest_size = copy_and_hash(src, out)
        out.flush()
        os.fsync(out.fileno())
    return digest_size


def _default_files(artifact: Artifact, written: Mapping[str, Any]) -> list[str]:
    """The files of an artifact that lists none: by format, from the files being written."""
    spec = get_format(artifact.format)
    if spec.companions:  # e.g. OpenVINO's model.xml + model.bin
        stem = artifact.path[: -len(spec.suffix)]
        candidates = [artifact.path, *(stem + c for c in spec.companions)]
        return [p for p in candidates if p in written] or [artifact.path]
    # Otherwise (onnx): the graph plus external data saved next to it under a name that
    # extends it (model.onnx.data, model.onnx_data).
    folder, name = posixpath.split(artifact.path)
    extra = sorted(
        p for p in written if p != artifact.path and posixpath.dirname(p) == folder and posixpath.basename(p).startswith(name)
    )
    return [artifact.path, *extra]


def _fill_manifest(manifest: Manifest, written: Mapping[str, tuple[str, int]]) -> Manifest:
    """Return ``manifest`` with every ArtifactFile carrying the sha256 and size of what was written."""
    claimed: set[str] = set()

    def filled(given: ArtifactFile, owner: str) -> ArtifactFile:
        if given.path not in written:
            raise BundleError(f"{owner} lists the file {given.path}, but files= has no entry for it")
        digest, size = written[given.path]
        if given.sha256 and given.sha256 != digest:
            raise BundleIntegrityError(
                f"{owner}: the manifest records sha256 {given.sha256[:12]}… for {given.path}, but the "
                f"file written has {digest[:12]}…"
            )
        claimed.add(given.path)
        return ArtifactFile(given.path, digest, size)

    artifacts = []
    for i, artifact in enumerate(manifest.artifacts):
        owner = f"artifacts[{i}] ({artifact.name})"
        given = artifact.files or [ArtifactFile(p) for p in _default_files(artifact, written)]
        artifacts.append(replace(artifact, files=[filled(f, owner) for f in given]))
    reference = dict(manifest.reference)
    ref_file = reference["file"]
    if ref_file is None and "reference.npz" in written:
        ref_file = ArtifactFile("reference.npz")
    reference["file"] = None if ref_file is None else filled(ref_file, "reference.file")
    unclaimed = sorted(set(written) - claimed)
    if unclaimed:
        raise BundleError(
            f"files= contains {', '.join(unclaimed)}, which no artifact or reference.file lists; every "
            "file of a bundle must be checksummed in the manifest"
        )
    return replace(manifest, artifacts=artifacts, reference=reference)


def _write_manifest(stage: Path, manifest: Manifest) -> None:
    with open(stage / MANIFEST_NAME, "wb") as f:
        f.write(manifest.to_json().encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def write_bundle(
    out: str | os.PathLike[str],
    manifest: Manifest,
    files: Mapping[str, FileSource],
    overwrite: bool = False,
    *,
    sign_key: SigningKey | str | os.PathLike[str] | None = None,
) -> Path:
    """Write a bundle directory (or a ``.zip`` when ``out`` ends in ``.zip``), atomically.

    Every file is written into a hidden temporary directory next to ``out`` and flushed;
    the sha256 and size of each are filled into the manifest; ``manifest.json`` is written
    last; then the directory is renamed to ``out`` (or packed into a temporary zip that
    replaces ``out``). On any error the temporary files are removed and ``out`` is left as
    it was: an interrupted export never leaves a half bundle that loads.

    Args:
        out: destination directory, or ``*.zip``.
        manifest: the manifest; artifacts may be drafts. An artifact without ``files`` gets
            ``path`` plus, for openvino, the ``.bin`` next to the ``.xml``, and for onnx any
            file next to it whose name extends the graph's (``model.onnx.data``). A
            ``reference.file`` of ``None`` becomes ``reference.npz`` if ``files`` has one.
        files: relative POSIX path in the bundle -> bytes or a path to copy. Every entry
            must belong to an artifact or be the reference file.
        overwrite: replace an existing bundle at ``out`` (a non-bundle directory is never
            replaced).
        sign_key: a :class:`SigningKey` or the path of one: ``signature.json`` is written
            with the manifest, before the bundle is moved into place.

    Returns:
        ``out`` as a Path.

    >>> write_bundle("out/b", manifest, {"model.onnx": Path("tmp/model.onnx")})  # doctest: +SKIP
    PosixPath('out/b')
    """
    if not isinstance(manifest, Manifest):
        raise TypeError(f"Expected manifest as a Manifest, got {type(manifest).__name__}")
    out = Path(out).expanduser()
    sources = _normalize_sources(files)
    key = _signing_key(sign_key)  # a bad key fails before anything is written
    check_destination(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with staging_beside(out) as stage:  # removed however it ends, unless renamed onto out
        written = {rel: _write_file(stage, rel, source) for rel, source in sources.items()}
        final = _fill_manifest(manifest, written)
        _write_manifest(stage, final)  # last: a directory without it is not a bundle
        if key is not None:
            write_signature(stage, key, label=str(out))
        for folder in {(stage / rel).parent for rel in written} | {stage}:
            fsync_dir(folder)
        if _is_zip_name(out):
            write_zip(stage, _zip_members(stage, final), out)
        else:
            check_destination(out, overwrite)  # it may have appeared while writing
            replace_dir(stage, out)
    return out


def pack_bundle(bundle_dir: str | os.PathLike[str], zip_path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Verify a bundle directory and pack it into one ``.zip`` (written atomically).

    The zip holds ``manifest.json``, ``signature.json`` when the bundle is signed (a signed
    directory zipped stays signed) and the files the manifest lists, at its top level.

    >>> pack_bundle("out/patchcore", "out/patchcore.zip")        # doctest: +SKIP
    PosixPath('out/patchcore.zip')
    """
    source = Path(bundle_dir).expanduser()
    dest = Path(zip_path).expanduser()
    if not source.is_dir():
        raise BundleError(f"pack_bundle expects a bundle directory, got {source}")
    if not _is_zip_name(dest):
        raise BundleError(f"pack_bundle writes a .zip file, got {dest}")
    with read_bundle(source, verify=True) as bundle:
        check_destination(dest, overwrite)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_zip(bundle.root, _zip_members(bundle.root, bundle.manifest), dest)
    return dest


def update_calibration(path: str | os.PathLike[str], calibration: Calibration, *, verify: bool = True,
                       reference_metrics: Mapping[str, float] | None = None, note: str = "",
                       sign_key: SigningKey | str | os.PathLike[str] | None = None) -> Manifest:
    """Replace the calibration of a bundle (directory or zip), keeping the old one in history.

    The bundle is read and verified first (an edited or corrupted bundle is refused rather
    than re-signed), ``calibration.with_history(old)`` goes into the manifest, and
    ``manifest.json`` is rewritten atomically with a new ``manifest_sha256`` (a zip is
    repacked atomically). Artifacts are untouched.

    ``reference_metrics`` (optional) replaces ``reference.metrics`` in the same write: the
    torch reference at the new thresholds, so ``validate`` compares like with like. The old
    metrics go into ``reference.history`` with ``note`` (why some could not be recomputed).

    A signature covers the old manifest, so it no longer holds: with ``sign_key`` the new
    manifest is signed with it (``signature.json`` replaced), without one the old
    ``signature.json`` is removed and the bundle is unsigned (check ``read_bundle(path).signature``
    first to tell the user).

    Returns:
        The new manifest.

    >>> new = update_calibration("out/patchcore", Calibration(4.2, 0.1, 9.0, 3.9, 0.0, 11.0,
    ...                          method="quantile", quantile=0.99))  # doctest: +SKIP
    """
    if not isinstance(calibration, Calibration):
        raise TypeError(f"Expected calibration as a Calibration, got {type(calibration).__name__}")
    source = Path(path).expanduser()
    key = _signing_key(sign_key)
    with read_bundle(source, verify=verify) as bundle:
        old = bundle.manifest
        new = replace(old, calibration=calibration.with_history(old.calibration))
        if reference_metrics is not None:
            ref = old.reference
            entry = {"metrics": {k: (v if math.isfinite(v) else None) for k, v in ref["metrics"].items()},
                     "calibration_created_utc": old.calibration.created_utc, "replaced_utc": utc_now(), "note": note}
            new = replace(new, reference={**ref, "metrics": dict(reference_metrics), "history": [*ref.get("history", []), entry]})
        data = new.to_json().encode("utf-8")
        root = source if source.is_dir() else bundle.root
        stale = root / SIGNATURE_NAME
        if key is None:
            stale.unlink(missing_ok=True)  # first: a crash leaves an unsigned bundle, never a stale signature
            if source.is_dir():
                fsync_dir(source)
        write_bytes_atomic(root / MANIFEST_NAME, data)
        if key is not None:
            write_signature(root, key, label=str(source))
        if not source.is_dir():
            write_zip(bundle.root, _zip_members(bundle.root, new), source)
    return new


def sign_bundle(path: str | os.PathLike[str], key: SigningKey | str | os.PathLike[str]) -> Signature:
    """Sign a bundle directory or ``.zip`` with an Ed25519 key: writes ``signature.json``.

    The bundle is verified first (every checksum, and each graph's own ``model_info`` against
    the manifest): a damaged or mixed-up bundle is refused, not signed. An existing signature
    is replaced. A zip is repacked atomically with the signature inside.

    Returns:
        The :class:`Signature` written (key id, time, manifest digest).

    >>> sign_bundle("out/patchcore", "keys/signing.key").key_id        # doctest: +SKIP
    '3f9a0c2b7d1e4a55'
    """
    signing_key = _signing_key(key)
    assert signing_key is not None
    source = Path(path).expanduser()
    with read_bundle(source, verify=True) as bundle:
        for artifact in bundle.manifest.artifacts:
            check_graph(bundle, artifact)
        signature = write_signature(bundle.root, signing_key, label=str(source))
        if not source.is_dir():
            write_zip(bundle.root, _zip_members(bundle.root, bundle.manifest), source)
    return signature
