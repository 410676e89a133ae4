"""``edgeanomaly info``: describe a bundle and verify its checksums (torch-free)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeanomaly.cli._common import friendly_errors


@click.command(epilog="""\b
Examples:
  edgeanomaly info pc.bundle
  edgeanomaly info pc.bundle.zip""")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON instead.")
@friendly_errors
def info(bundle: Path, as_json: bool) -> None:
    """Describe BUNDLE (model, input contract, calibration, artifacts) and verify every checksum.

    A damaged bundle is still described, file by file; the exit code is then 1.
    """
    from edgeanomaly import frontdoor

    # Describe without hashing first so a damaged bundle can still be inspected; then verify fully.
    handle = frontdoor.Bundle(bundle)
    click.echo(handle.manifest.to_json() if as_json else handle.describe())
    problems = handle.verify()
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for p in problems:
            click.echo(f"  - {p}", err=True)
        raise SystemExit(1)
