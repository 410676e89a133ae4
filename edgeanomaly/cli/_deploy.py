"""``edgeanomaly deploy``: a model repository for Triton, OpenVINO Model Server or KServe."""

from __future__ import annotations

from pathlib import Path

import click

from edgeanomaly.cli._common import friendly_errors


@click.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--target", required=True, type=click.Choice(["triton", "ovms", "kserve"]), help="Server to deploy to.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="New (or empty) folder to write.")
@click.option("--model-name", default=None, help="Served model name (default: the bundle's folder name).")
@click.option("--artifact", default=None, help="Artifact to serve (default: fp32 ONNX for triton/kserve, fp32 OpenVINO IR for ovms).")
@click.option("--max-batch-size", default=8, show_default=True, type=click.IntRange(min=1), help="Triton: largest dynamic batch.")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(min=1), help="Triton: model instances.")
@click.option("--image", default="edgeanomaly-serve:latest", show_default=True, help="KServe: container image name.")
@click.option("--trust", "trust", multiple=True, type=click.Path(exists=True, path_type=Path), metavar="KEYS",
              help="Deploy only if BUNDLE is signed by these keys (.pub file or folder, repeatable); kserve: the image "
                   "carries them and its server runs with --trust.")
@friendly_errors
def deploy(bundle: Path, target: str, out: Path, model_name: str | None, artifact: str | None, max_batch_size: int,
           instances: int, image: str, trust: tuple[Path, ...]) -> None:
    """Write BUNDLE as a model repository for an Open Inference Protocol server.

    \b
    Example:
      edgeanomaly deploy pc.bundle --target triton --out repo
      edgeanomaly deploy pc.bundle --target ovms --out ovms_repo
      edgeanomaly deploy pc.bundle --target kserve --out kserve_pc   # YAML + Dockerfile

    Triton and OVMS serve the raw graph; run it with
    `edgeanomaly predict BUNDLE IMG --backend remote --url http://HOST:PORT`, which applies
    the bundle's preprocessing and calibration locally.
    """
    from edgeanomaly.serve import deploy as deploy_bundle  # [serve] extra: loads only when deploying

    result = deploy_bundle(bundle, target, out, model_name=model_name, artifact=artifact, max_batch_size=max_batch_size,
                 instances=instances, image=image, trust=list(trust) or None)
    click.echo(f"wrote {target} repository {result.out} (model {result.model_name!r}, artifact {result.artifact}, "
               f"{len(result.files)} files)")
    for step in result.next_steps:
        click.echo(f"  next: {step}")
