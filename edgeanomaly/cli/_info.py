"""``edgeanomaly info``: describe a bundle and verify its checksums (torch-free)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeanomaly import frontdoor
from edgeanomaly.cli._common import friendly_errors, trust_option, trusted_keys


@click.command(epilog="""\b
Examples:
  edgeanomaly info pc.bundle
  edgeanomaly info pc.bundle.zip
  edgeanomaly info pc.bundle --trust keys/     # also check its signature""")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON instead.")
@trust_option
@friendly_errors
def info(bundle: Path, as_json: bool, trust: tuple[Path, ...]) -> None:
    """Describe BUNDLE (model, input contract, calibration, artifacts, signature) and verify every
    checksum and each graph against the manifest.

    Says whether the bundle is signed and by which key; with --trust (or $EDGEANOMALY_TRUST)
    the signature is checked against those keys. A damaged bundle is still described, file
    by file; the exit code is then 1.
    """
    # Describe without hashing first so a damaged bundle can still be inspected; then verify fully.
    keys = trusted_keys(trust)
    handle = frontdoor.Bundle(bundle)
    click.echo(handle.manifest.to_json() if as_json else handle.describe(trust=keys))
    problems = handle.verify(trust=keys)
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for p in problems:
            click.echo(f"  - {p}", err=True)
        raise SystemExit(1)
