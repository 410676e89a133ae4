"""Signed bundles: Ed25519 keys, a detached signature over the manifest, trusted keys.

``manifest_sha256`` and the file checksums catch damage, not tampering: whoever rewrites a
file can recompute them. A signature made with a private key that never leaves the training
machine can only be made there; a device that trusts the matching public key refuses any
bundle that key did not sign, before a graph is compiled.

``signature.json`` at the bundle root (beside ``manifest.json``, and inside a zip) holds the
manifest digest the key signed, so it covers every file the manifest lists by sha256. The
cryptography is the ``cryptography`` package's Ed25519; nothing here implements a primitive.
The format is specified in ``export/BUNDLE.md`` ("Signatures").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

from edgeanomaly._optional import require
from edgeanomaly.bundle._atomic import write_bytes_atomic
from edgeanomaly.bundle._calibration import utc_now
from edgeanomaly.bundle._hashing import MANIFEST_SHA256_KEY, canonical_json, content_sha256
from edgeanomaly.bundle._schema import MANIFEST_NAME, SIGNATURE_NAME
from edgeanomaly.bundle._zip import MAX_SIGNATURE_BYTES
from edgeanomaly.errors import (
    BadSignatureError,
    BundleError,
    ConfigError,
    UnsignedBundleError,
    UntrustedKeyError,
)

__all__ = [
    "SIGNATURE_NAME",
    "TRUST_ENV",
    "Signature",
    "SigningKey",
    "TrustedKeys",
    "generate_keypair",
    "read_signature",
    "resolve_trust",
    "signature_payload",
    "verify_signature",
    "write_signature",
]

#: Environment variable naming trusted public keys (files or folders, ``os.pathsep``-separated).
TRUST_ENV = "EDGEANOMALY_TRUST"
#: ``format`` of signature.json, and the prefix of the signed message (domain separation).
SIGNATURE_FORMAT = "edgeanomaly-signature-v1"

_KEYS = ("format", "algorithm", "key_id", "signed_utc", MANIFEST_SHA256_KEY, "covers", "signature")


def _crypto() -> Any:
    """The Ed25519 and serialization modules of ``cryptography`` (a base dependency)."""
    require("cryptography", "signing and verifying bundles")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519, serialization


def _key_id(raw_public: bytes) -> str:
    """The first 16 hex digits of the sha256 of the raw 32-byte public key."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def _raw_public(public_key: Any) -> bytes:
    _, serialization = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# ----------------------------------------------------------------------------- keys


class SigningKey:
    """An Ed25519 private key read from a PEM file (``edgeanomaly keygen`` writes one).

    Attributes:
        key_id: 16 hex digits naming the key (sha256 of its public key).
        path: the file it was read from.
    """

    def __init__(self, private_key: Any, path: Path | None = None) -> None:
        self._key = private_key
        self.path = path
        self.key_id = _key_id(_raw_public(private_key.public_key()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SigningKey":
        """Read a PEM (PKCS#8) Ed25519 private key. An encrypted one takes its passphrase
        from ``$EDGEANOMALY_KEY_PASSPHRASE``.

        Raises:
            ConfigError: missing file, not a PEM private key, not Ed25519, wrong passphrase.
        """
        ed25519, serialization = _crypto()
        path = Path(path).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"Signing key {path} cannot be read ({exc.strerror or exc})") from exc
        passphrase = os.environ.get("EDGEANOMALY_KEY_PASSPHRASE")
        try:
            key = serialization.load_pem_private_key(data, password=passphrase.encode() if passphrase else None)
        except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
            raise ConfigError(f"Signing key {path}: {exc} (set $EDGEANOMALY_KEY_PASSPHRASE for an encrypted key)") from exc
        except ValueError as exc:
            hint = " (this is a public key: sign with the .key file)" if b"PUBLIC KEY" in data[:64] else ""
            raise ConfigError(f"Signing key {path} is not a PEM private key{hint} ({exc})") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError(f"Signing key {path} is a {type(key).__name__}, expected an Ed25519 key (edgeanomaly keygen)")
        return cls(key, path)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_pem(self) -> bytes:
        _, serialization = _crypto()
        return self._key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, path={str(self.path)!r})"


def generate_keypair(out: str | os.PathLike[str], name: str = "signing", *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``OUT/NAME.key`` (private, PEM PKCS#8, mode 0600) and
    ``OUT/NAME.pub`` (public, PEM SubjectPublicKeyInfo). ``OUT`` is created (mode 0700).

    Keep the ``.key`` on the machine that exports; copy the ``.pub`` into the trust folder of
    each device. Returns ``(key_path, pub_path)``.

    Raises:
        ConfigError: a file exists and ``overwrite`` is False, or ``name`` is not a plain name.
    """
    ed25519, serialization = _crypto()
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"Expected a key name without '/' or a leading '.', got {name!r}")
    out = Path(out).expanduser()
    key_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    existing = [p for p in (key_path, pub_path) if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise ConfigError(f"{', '.join(map(str, existing))} already exist(s); refusing to replace a key (pass overwrite=True / --overwrite)")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = key_path.with_name(f".{key_path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, key_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    write_bytes_atomic(pub_path, SigningKey(private).public_pem())
    os.chmod(pub_path, 0o644)
    return key_path, pub_path


@dataclass(frozen=True)
class _Trusted:
    key_id: str
    public_key: Any
    source: Path


@dataclass
class TrustedKeys:
    """The public keys a device accepts signatures from (several at once, to rotate keys).

    Build with :meth:`load` (files or folders of ``*.pub``) or :func:`resolve_trust`.
    """

    keys: dict[str, _Trusted] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, paths: Union[str, os.PathLike[str], Iterable[Union[str, os.PathLike[str]]]]) -> "TrustedKeys":
        """Read trusted public keys: each path a ``.pub`` file or a folder whose ``*.pub`` files
        are read (not recursively; ``.key`` files there are ignored).

        Raises:
            ConfigError: a path that does not exist, a file that is not an Ed25519 public key,
                or no key at all.
        """
        ed25519, serialization = _crypto()
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        trust = cls()
        for given in paths:
            path = Path(given).expanduser()
            trust.sources.append(path)
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix == ".pub" and p.is_file())
            elif path.is_file():
                files = [path]
            else:
                raise ConfigError(f"Trusted keys {path}: no such file or folder")
            for file in files:
                data = b""
                try:
                    data = file.read_bytes()
                    key = serialization.load_pem_public_key(data)
                except (OSError, ValueError) as exc:
                    hint = " (this is a private key: trust its .pub file and keep the .key secret)" if b"PRIVATE KEY" in data[:64] else ""
                    raise ConfigError(f"Trusted key {file} is not a PEM public key{hint} ({exc}); expected a .pub file written by edgeanomaly keygen") from exc
                if not isinstance(key, ed25519.Ed25519PublicKey):
                    raise ConfigError(f"Trusted key {file} is a {type(key).__name__}, expected an Ed25519 public key")
                kid = _key_id(_raw_public(key))
                trust.keys.setdefault(kid, _Trusted(kid, key, file))
        if not trust.keys:
            where = ", ".join(map(str, trust.sources)) or "(nothing given)"
            raise ConfigError(f"No trusted public key found in {where}: expected .pub files written by `edgeanomaly keygen`")
        return trust

    def describe(self) -> str:
        """``ab12… (factory.pub), cd34… (factory-2027.pub)``."""
        return ", ".join(f"{k.key_id} ({k.source.name})" for k in self.keys.values())

    def __len__(self) -> int:
        return len(self.keys)


TrustLike = Union[None, str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]], TrustedKeys]


def resolve_trust(trust: TrustLike, *, env: bool = True) -> TrustedKeys | None:
    """The trusted keys in force: ``trust`` if given (a path, a list of paths, or
    :class:`TrustedKeys`), else ``$EDGEANOMALY_TRUST`` when ``env`` (paths separated by
    ``os.pathsep``), else None (no signature required)."""
    if isinstance(trust, TrustedKeys):
        return trust
    if trust is None or (isinstance(trust, (list, tuple)) and not trust):
        value = os.environ.get(TRUST_ENV, "").strip() if env else ""
        if not value:
            return None
        return TrustedKeys.load([p for p in value.split(os.pathsep) if p])
    if isinstance(trust, str) and not trust:
        raise ConfigError("Expected trusted keys as a .pub file or a folder, got an empty string")
    return TrustedKeys.load(trust)


# ----------------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class Signature:
    """A bundle's ``signature.json``.

    Attributes:
        key_id: 16 hex digits naming the signing key.
        signed_utc: when it was signed (ISO 8601 UTC).
        manifest_sha256: the manifest digest that was signed.
        covers: what the signer's manifest held, for messages: ``{"files": {path: sha256},
            "sections": {manifest key: sha256 of its canonical JSON}}``.
        trusted_by: the ``.pub`` file whose key verified it (set by :func:`verify_signature`),
            else None (read, not checked).
    """

    key_id: str
    signed_utc: str
    manifest_sha256: str
    covers: dict[str, Any]
    signature: bytes
    algorithm: str = "ed25519"
    trusted_by: Path | None = None

    def payload(self) -> dict[str, Any]:
        return {"format": SIGNATURE_FORMAT, "algorithm": self.algorithm, "key_id": self.key_id,
                "signed_utc": self.signed_utc, MANIFEST_SHA256_KEY: self.manifest_sha256, "covers": self.covers}

    def to_json(self) -> str:
        document = {**self.payload(), "signature": base64.b64encode(self.signature).decode("ascii")}
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    def describe(self) -> str:
        by = f" (trusted: {self.trusted_by.name})" if self.trusted_by is not None else ""
        return f"key {self.key_id}{by}, signed {self.signed_utc}"


def signature_payload(payload: Mapping[str, Any]) -> bytes:
    """The bytes an Ed25519 key signs: the format name, a newline, and the canonical JSON of
    signature.json without its ``signature`` key."""
    return SIGNATURE_FORMAT.encode("ascii") + b"\n" + canonical_json(payload)


def _covers(document: Mapping[str, Any]) -> dict[str, Any]:
    """File and section digests of a manifest: what a signature-mismatch message names."""
    files: dict[str, str] = {}
    for artifact in document.get("artifacts") or []:
        for f in artifact.get("files") or []:
            files.setdefault(f["path"], f["sha256"])
    ref = (document.get("reference") or {}).get("file")
    if ref:
        files.setdefault(ref["path"], ref["sha256"])
    sections = {k: hashlib.sha256(canonical_json({"v": v})).hexdigest() for k, v in document.items() if k != MANIFEST_SHA256_KEY}
    return {"files": files, "sections": sections}


def _manifest_document(root: Path, label: str) -> dict[str, Any]:
    try:
        document = json.loads((root / MANIFEST_NAME).read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise BundleError(f"Bundle {label}: {MANIFEST_NAME} cannot be read ({exc})") from exc
    if not isinstance(document, dict):
        raise BundleError(f"Bundle {label}: {MANIFEST_NAME} is not a JSON object")
    return document


def write_signature(root: Path, key: SigningKey, *, label: str | None = None, signed_utc: str | None = None) -> Signature:
    """Sign the manifest in the bundle directory ``root`` with ``key`` and write
    ``signature.json`` there atomically. The caller has verified the bundle."""
    label = str(root) if label is None else label
    document = _manifest_document(root, label)
    unsigned = Signature(key.key_id, signed_utc or utc_now(), content_sha256(document), _covers(document), b"")
    sig = Signature(**{**unsigned.__dict__, "signature": key.sign(signature_payload(unsigned.payload()))})
    write_bytes_atomic(root / SIGNATURE_NAME, sig.to_json().encode("ascii"))
    os.chmod(root / SIGNATURE_NAME, 0o644)  # public, and readable by the account a server runs as
    return sig


def _parse(data: bytes, label: str) -> Signature:
    where = f"Bundle {label}: {SIGNATURE_NAME}"
    try:
        document = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BadSignatureError(f"{where} is not valid JSON ({exc}); the signature was damaged or forged. Sign the bundle again.") from exc
    if not isinstance(document, dict) or sorted(document) != sorted(_KEYS):
        got = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise BadSignatureError(f"{where} has keys {got}, expected {sorted(_KEYS)}; it was not written by edgeanomaly sign.")
    if document["format"] != SIGNATURE_FORMAT or document["algorithm"] != "ed25519":
        raise BadSignatureError(
            f"{where} is format {document['format']!r} / algorithm {document['algorithm']!r}; this edgeanomaly reads "
            f"{SIGNATURE_FORMAT!r} / 'ed25519'. Upgrade edgeanomaly or sign the bundle again."
        )
    text = {k: document[k] for k in ("key_id", "signed_utc", MANIFEST_SHA256_KEY, "signature")}
    if not all(isinstance(v, str) for v in text.values()) or not isinstance(document["covers"], dict):
        raise BadSignatureError(f"{where}: key_id, signed_utc, manifest_sha256 and signature must be strings, covers an object.")
    try:
        raw = base64.b64decode(text["signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignatureError(f"{where}: the signature is not base64 ({exc}).") from exc
    return Signature(text["key_id"], text["signed_utc"], text[MANIFEST_SHA256_KEY], document["covers"], raw)


def read_signature(root: Path, label: str | None = None) -> Signature | None:
    """``signature.json`` of a bundle directory, parsed but not checked; None when unsigned.

    Raises:
        BadSignatureError: the file is there but malformed.
    """
    label = str(root) if label is None else label
    path = root / SIGNATURE_NAME
    if not (path.exists() or path.is_symlink()):
        return None
    if path.is_symlink() or not path.is_file():
        raise BadSignatureError(f"Bundle {label}: {SIGNATURE_NAME} is not a regular file; refusing to read it.")
    try:
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise BadSignatureError(f"Bundle {label}: {SIGNATURE_NAME} is larger than {MAX_SIGNATURE_BYTES} bytes; it is not a signature.")
        data = path.read_bytes()
    except OSError as exc:
        raise BadSignatureError(f"Bundle {label}: {SIGNATURE_NAME} cannot be read ({exc.strerror or exc}).") from exc
    return _parse(data, label)


def _changed(signed: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    """What differs between the manifest that was signed and this one, in words."""
    now = _covers(document)
    was_files = signed.get("files") if isinstance(signed.get("files"), dict) else {}
    was_sections = signed.get("sections") if isinstance(signed.get("sections"), dict) else {}
    parts = []
    files = [p for p in sorted(set(was_files) | set(now["files"])) if was_files.get(p) != now["files"].get(p)]
    if files:
        parts.append("file(s) " + ", ".join(
            f"{p} ({'added' if p not in was_files else 'removed' if p not in now['files'] else 'a different file than the one signed'})"
            for p in files[:4]))
    sections = [k for k in sorted(set(was_sections) | set(now["sections"]))
                if was_sections.get(k) != now["sections"].get(k) and k != "artifacts"]
    if sections:
        parts.append("manifest field(s) " + ", ".join(sections))
    if not parts and was_sections.get("artifacts") != now["sections"].get("artifacts"):
        parts.append("manifest field(s) artifacts")
    return "; ".join(parts) or "the manifest"


def verify_signature(root: Path, trust: TrustedKeys, label: str | None = None) -> Signature:
    """Check the signature of the bundle directory ``root`` against ``trust``.

    Checks, in order: a signature is there (:class:`UnsignedBundleError`), its key is trusted
    (:class:`UntrustedKeyError`), it verifies with that key, and it covers this manifest's
    content (:class:`BadSignatureError`, naming what changed since signing). The files are
    covered through the manifest's sha256 of each: the caller checks those (``read_bundle``).

    Returns:
        The :class:`Signature`, with ``trusted_by`` set.
    """
    label = str(root) if label is None else label
    sig = read_signature(root, label)
    if sig is None:
        raise UnsignedBundleError(
            f"Bundle {label} is not signed ({SIGNATURE_NAME} missing), and this device accepts only bundles signed by a "
            f"trusted key ({trust.describe()}): refusing it. Sign it with `edgeanomaly sign {label} --key KEY`."
        )
    trusted = trust.keys.get(sig.key_id)
    if trusted is None:
        raise UntrustedKeyError(
            f"Bundle {label} is signed by key {sig.key_id} (signed {sig.signed_utc}), which is not a trusted key here "
            f"(trusted: {trust.describe()}): refusing it. Add that key's .pub to the trusted keys, or sign the bundle "
            "with a trusted key."
        )
    ed25519, _ = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        trusted.public_key.verify(sig.signature, signature_payload(sig.payload()))
    except InvalidSignature:
        raise BadSignatureError(
            f"Bundle {label}: the signature in {SIGNATURE_NAME} does not verify with trusted key {sig.key_id} "
            f"({trusted.source.name}): it was made by another key or altered after signing. Refusing the bundle; "
            "sign it again with the trusted key."
        ) from None
    document = _manifest_document(root, label)
    actual = content_sha256(document)
    if actual != sig.manifest_sha256:
        raise BadSignatureError(
            f"Bundle {label}: {MANIFEST_NAME} changed after key {sig.key_id} signed it on {sig.signed_utc} "
            f"(changed: {_changed(sig.covers, document)}; the signature covers manifest sha256 "
            f"{sig.manifest_sha256[:12]}…, the manifest now has {actual[:12]}…). Refusing the bundle; "
            "sign it again if the change is yours."
        )
    return Signature(**{**sig.__dict__, "trusted_by": trusted.source})
