"""``edgeanomaly fit``: one-pass fit on normal images, calibration, test metrics, checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edgeanomaly.cli._common import StageBar, friendly_errors, split_csv

MODEL_NAMES = ("patchcore", "padim", "dfkde", "dfm")


def parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``("coreset_ratio=0.05", "max_bank_size=none")`` -> ``{"coreset_ratio": 0.05, "max_bank_size": None}``."""
    from edgeanomaly.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"Expected --param KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        raw = raw.strip()
        if raw.lower() in {"none", "null"}:
            value: Any = None
        elif raw.lower() in {"true", "false"}:
            value = raw.lower() == "true"
        else:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        out[key] = value
    return out


def model_options(func: Any) -> Any:
    """Options shared by ``fit`` and ``export --recipe``/``quickstart`` overrides."""
    options = [
        click.option("--backbone", default=None, help="Backbone (resnet18, wide_resnet50_2, efficientnet_lite0). Default: efficientnet_lite0."),
        click.option("--layers", default=None, help="Comma-separated feature layers, e.g. layer2,layer3. Default: the model's."),
        click.option("--image-size", default=256, show_default=True, type=int, help="Input side in pixels (divisible by the deepest layer's stride)."),
        click.option("--center-crop", default=None, type=int, help="Centre crop after resizing (model input = crop)."),
        click.option("--seed", default=0, show_default=True, type=int, help="random_state of every random step."),
        click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Backbone weights file (state dict)."),
        click.option("--weights-cache", type=click.Path(file_okay=False, path_type=Path), help="Folder to look for / download published backbone weights."),
        click.option("--pretrained/--no-pretrained", default=True, show_default=True, help="ImageNet weights, or random init (recorded in the bundle)."),
        click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Model setting, e.g. --param coreset_ratio=0.05 (repeatable)."),
        click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1)),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def build_model_kwargs(
    backbone: str | None, layers: str | None, seed: int, weights: Path | None, weights_cache: Path | None, pretrained: bool, params: tuple[str, ...]
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"random_state": seed, "pretrained": pretrained}
    if backbone:
        kwargs["backbone"] = backbone
    if layers:
        kwargs["layers"] = tuple(split_csv(layers))
    if weights is not None:
        kwargs["weights"] = str(weights)
    if weights_cache is not None:
        kwargs["cache_dir"] = str(weights_cache)
    kwargs.update(parse_params(params))
    return kwargs


def print_metrics(metrics: dict[str, float], calibration: dict[str, Any] | None) -> None:
    if calibration:
        src = calibration.get("source", {})
        click.echo(
            f"Calibration: {calibration['method']} on {src.get('split')} "
            f"({src.get('n_images')} images): image threshold {calibration['image_threshold']:.6g}"
            + (f", pixel threshold {calibration['pixel_threshold']:.6g}" if calibration.get("pixel_threshold") is not None else "")
        )
    if metrics:
        split = str((calibration or {}).get("source", {}).get("split", ""))
        click.echo("Test metrics (torch model" + (", on the test images that did not set the thresholds):" if "calibration part" in split else "):"))
        for k, v in metrics.items():
            click.echo(f"  {k:<22} {v:.4f}" if isinstance(v, float) else f"  {k:<22} {v}")


@click.command()
@click.option("--model", "model_name", default="patchcore", show_default=True, help=f"One of {', '.join(MODEL_NAMES)}.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="Dataset folder (MVTec layout or a folder of normal images).")
@click.option("--category", default=None, help="Category inside DATA (MVTec layout).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory for checkpoint.json + model.pt.")
@model_options
@click.option("--calibration-split", type=click.Choice(["from_test", "same_as_test"]), default="from_test", show_default=True,
              help="from_test: thresholds from a stratified half of the labelled test images, metrics from the other half; "
                   "same_as_test: both from every test image (optimistic).")
@friendly_errors
def fit(model_name: str, data: Path, category: str | None, out: Path, backbone: str | None, layers: str | None, image_size: int,
        center_crop: int | None, seed: int, weights: Path | None, weights_cache: Path | None, pretrained: bool,
        params: tuple[str, ...], batch_size: int, calibration_split: str) -> None:
    """Fit a model on normal images in one pass and save a checkpoint."""
    from edgeanomaly._optional import require

    require("torch", "fitting models")
    from edgeanomaly.models._pipeline import fit_run

    kwargs = build_model_kwargs(backbone, layers, seed, weights, weights_cache, pretrained, params)
    bar = StageBar()
    try:
        result = fit_run(model_name, data, out, category=category, image_size=image_size, center_crop=center_crop,
                         batch_size=batch_size, progress=bar, calibration_split=calibration_split, **kwargs)
    finally:
        bar.close()
    ckpt = result.checkpoint
    m = ckpt.model
    click.echo(f"Fitted {m.name} ({m.backbone}: {', '.join(m.layers)}; weights {m.weights_source}) on {ckpt.info['n_train']} images in {result.seconds['fit']:.2f} s")
    print_metrics(ckpt.metrics, ckpt.calibration)
    click.echo(f"Checkpoint: {result.out}")
    click.echo(f"Next: edgeanomaly export {result.out} --out {result.out}/bundle")
