"""``edgeanomaly calibrate``: recompute thresholds and normalisation on the device (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeanomaly import frontdoor
from edgeanomaly.bundle import SigningKey, read_bundle
from edgeanomaly.cli._common import backend_choice, friendly_errors, precision_choice, progress


@click.command("calibrate")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--data", "data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="MVTec-layout category folder, or a folder of normal images.")
@click.option("--category", default=None, help="Category when --data holds several MVTec categories.")
@click.option("--split", type=click.Choice(["auto", "train", "test", "all"]), default="auto", show_default=True, help="auto: labelled test split if it has both classes, else all normal images.")
@click.option("--quantile", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.99, show_default=True, help="Threshold quantile of normal scores (normal-only data).")
@click.option("--backend", type=backend_choice(), default="auto", show_default=True)
@click.option("--device", default="CPU", show_default=True)
@click.option("--precision", type=precision_choice(), default=None, help="Calibrate the artifact of this precision (scores differ slightly between precisions); default: the one predict picks.")
@click.option("--artifact", default=None, help="Artifact name; overrides --precision.")
@click.option("--dry-run", is_flag=True, help="Compute and print, do not rewrite the manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the old and new calibration as JSON.")
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Sign the new manifest with this Ed25519 private key; without it a signed bundle becomes unsigned.")
@friendly_errors
def calibrate(
    bundle: Path,
    data: Path,
    category: str | None,
    split: str,
    quantile: float,
    backend: str,
    device: str,
    precision: str | None,
    artifact: str | None,
    dry_run: bool,
    as_json: bool,
    sign_key: Path | None,
) -> None:
    """Recalibrate BUNDLE on this device from the images in --data.

    With normal and anomalous images (MVTec layout, test/good + test/<defect>) the image
    threshold maximises F1 (pixel threshold too, with ground-truth masks); with normal images
    only it is the --quantile of their scores. The manifest is rewritten atomically and the
    previous calibration is kept in calibration.history.

    A signature covers the old manifest, so it no longer holds: with --sign-key the new
    manifest is signed, otherwise signature.json is removed and this command says so (a
    device with --trust then refuses the bundle until it is signed again).

    \b
    Example:
      edgeanomaly calibrate bundles/fabric --data /data/line3/fabric
    """
    key = SigningKey.load(sign_key) if sign_key is not None else None  # a wrong key fails before the work
    with read_bundle(bundle) as opened:
        before = opened.manifest.calibration
        was_signed = opened.signature
    warnings: list[str] = []
    with progress(length=1, label="calibrate", enabled=not as_json) as bar:

        def tick(done: int, total: int) -> None:
            bar.length = total
            bar.update(1)

        after = frontdoor.calibrate(
            bundle,
            data,
            backend=backend,
            device=device,
            precision=precision,
            artifact=artifact,
            split=split,
            quantile=quantile,
            category=category,
            write=not dry_run,
            sign_key=key,
            on_image=tick,
            on_warning=warnings.append,
        )
    if not dry_run and was_signed is not None and key is None:
        warnings.append(f"{bundle} was signed by key {was_signed.key_id}; that signature covered the old calibration and "
                        "no longer holds, so it was removed: the bundle is unsigned now. Sign it again with "
                        f"`edgeanomaly sign {bundle} --key KEY` (or pass --sign-key) before a device with --trust can run it.")
    for reason in warnings:
        click.echo(f"warning: {reason}", err=True)
    if as_json:
        click.echo(json.dumps({"previous": before.history_entry(), "new": after.history_entry(), "written": not dry_run,
                               "warnings": warnings}))
        return
    rows = [("image_threshold", before.image_threshold, after.image_threshold)]
    rows += [(k, getattr(before, k), getattr(after, k)) for k in ("image_min", "image_max", "pixel_threshold", "pixel_min", "pixel_max")]
    src = after.source
    click.echo(
        f"method {after.method}" + (f" (quantile {after.quantile})" if after.quantile else "")
        + f" on {src['n_images']} images ({src['n_normal']} normal, {src['n_anomalous']} anomalous, split {src['split']})"
    )
    for name, old, new in rows:
        if old is None and new is None:
            continue
        click.echo(f"  {name:16s} {old!s:>14} -> {new!s}")
    signed = f"; signed with key {key.key_id}" if key is not None else ""
    click.echo("dry run: manifest not changed" if dry_run else
               f"wrote {bundle} (previous calibration and reference metrics kept in history{signed})")
