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
    from edgeanomaly.bundle import describe_bundle, read_bundle, verify_bundle

    # Describe without hashing first so a damaged bundle can still be inspected; then verify fully.
    with read_bundle(bundle, verify=False) as b:
        click.echo(b.manifest.to_json() if as_json else describe_bundle(b))
    problems = verify_bundle(bundle)
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for p in problems:
            click.echo(f"  - {p}", err=True)
        raise SystemExit(1)
