"""``edgeanomaly keygen``, ``sign`` and ``verify``: signed bundles (torch-free).

Thin commands over :mod:`edgeanomaly.bundle` (``generate_keypair``, ``sign_bundle``,
``verify_bundle``); the format is in export/BUNDLE.md, "Signatures".
"""

from __future__ import annotations

from pathlib import Path

import click

from edgeanomaly.bundle import SigningKey, generate_keypair, read_bundle, sign_bundle, verify_bundle
from edgeanomaly.cli._common import friendly_errors, trust_option, trusted_keys


@click.command(epilog="""\b
Examples:
  edgeanomaly keygen --out keys                     # keys/signing.key + keys/signing.pub
  edgeanomaly keygen --out keys --name line3-2027   # another key, for rotation""")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for NAME.key and NAME.pub (created).")
@click.option("--name", default="signing", show_default=True, help="File name of the pair, without suffix.")
@click.option("--overwrite", is_flag=True, help="Replace an existing pair of that name.")
@friendly_errors
def keygen(out: Path, name: str, overwrite: bool) -> None:
    """Create an Ed25519 key pair for signing bundles.

    NAME.key is the private key (mode 0600, unencrypted PEM): keep it on the machine that
    exports, never on a device. NAME.pub is the public key: copy it into the trust folder of
    each device (--trust DIR, $EDGEANOMALY_TRUST).
    """
    key_path, pub_path = generate_keypair(out, name, overwrite=overwrite)
    click.echo(f"wrote {key_path} (private: keep it secret) and {pub_path} (public: give it to devices)")
    click.echo(f"key id {SigningKey.load(key_path).key_id}")
    click.echo(f"  next: edgeanomaly sign BUNDLE --key {key_path}")
    click.echo(f"  next, on the device: copy {pub_path} (never the .key) into a trust folder, then "
               "edgeanomaly predict BUNDLE IMAGES --trust TRUST_FOLDER")


@click.command(epilog="""\b
Examples:
  edgeanomaly sign pc.bundle --key keys/signing.key
  edgeanomaly sign pc.zip --key keys/signing.key""")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Ed25519 private key (edgeanomaly keygen).")
@friendly_errors
def sign(bundle: Path, key: Path) -> None:
    """Sign BUNDLE (a directory or .zip): writes signature.json beside manifest.json.

    The bundle is verified first (every checksum, each graph against the manifest); a
    damaged or mixed-up bundle is not signed. The signature covers the manifest, which
    covers every file by sha256. An existing signature is replaced.
    """
    signature = sign_bundle(bundle, key)
    click.echo(f"signed {bundle} with key {signature.key_id} at {signature.signed_utc} "
               f"(manifest sha256 {signature.manifest_sha256[:12]}…)")


@click.command(epilog="""\b
Examples:
  edgeanomaly verify pc.bundle --trust keys/
  edgeanomaly verify pc.zip --trust factory.pub --trust factory-2027.pub""")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@trust_option
@friendly_errors
def verify(bundle: Path, trust: tuple[Path, ...]) -> None:
    """Verify BUNDLE: its signature against trusted keys, every checksum, each graph against the manifest.

    Prints VERIFIED (exit 0) or REFUSED with every reason (exit 1). Without --trust (and
    $EDGEANOMALY_TRUST) only checksums and graphs are checked, and the verdict says so.
    """
    keys = trusted_keys(trust)
    problems = verify_bundle(bundle, trust=keys, graphs=True)
    if problems:
        click.echo(f"REFUSED: {bundle}")
        for p in problems:
            click.echo(f"  - {p}")
        raise SystemExit(1)
    with read_bundle(bundle, trust=keys) as b:  # the signature as verified (verify_bundle found no problem)
        sig = b.signature
    if keys is None:
        state = f"signed by key {sig.key_id} on {sig.signed_utc}, NOT checked" if sig else "unsigned"
        click.echo(f"VERIFIED checksums and graphs of {bundle} ({state}: give --trust KEYS to check a signature)")
    else:
        click.echo(f"VERIFIED: {bundle} is signed by trusted key {sig.key_id} ({sig.trusted_by.name}) on {sig.signed_utc}; "
                   "checksums and graphs ok")
