"""``edgeanomaly export``: a fitted checkpoint (or a recipe + data) -> a versioned bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgeanomaly.cli._common import StageBar, friendly_errors, split_csv


def _size(n: int | None) -> str:
    from edgeanomaly.bundle._describe import format_bytes

    return "" if n is None else format_bytes(n)


def print_step(what: str, seconds: float, nbytes: int | None) -> None:
    size = f", {_size(nbytes)}" if nbytes else ""
    click.echo(f"  {what:<48} {seconds:7.2f} s{size}")


def print_parity(report: Any) -> None:
    click.echo("Parity against the torch model (held-out images):")
    click.echo(f"  {'artifact':<15} {'size':>9} {'score diff (rel)':>17} {'map diff (rel)':>15} {'img AUROC':>9} {'px AUROC':>9} {'flips':>5}  {'verdict':<12}  execution")
    for a in report.artifacts:
        p = a.parity
        md = f"{p['max_rel_map_diff']:.2e}" if "max_rel_map_diff" in p else "-"
        ia = f"{p['image_auroc']:.4f}" if "image_auroc" in p else "-"
        pa = f"{p['pixel_auroc']:.4f}" if "pixel_auroc" in p else "-"
        outcome = p.get("verdict", {}).get("outcome", "-")
        click.echo(f"  {a.name:<15} {_size(a.bytes):>9} {p['max_rel_score_diff']:>17.2e} {md:>15} {ia:>9} {pa:>9} {p['label_flips']:>5}  {outcome:<12}  {p['execution']}")
    # the same judgement validate makes: say why, so nobody has to run validate to find out
    for a in report.artifacts:
        for reason in (r for r in a.parity.get("verdict", {}).get("checks", []) if r["outcome"] != "PASS"):
            click.echo(f"  {a.name}: {reason['outcome']}: {reason['message']}")
    for name, reasons in getattr(report, "refused", {}).items():
        click.echo(f"  {name}: left out of the bundle (validate would fail it; --allow-degraded keeps it, marked):", err=True)
        for reason in reasons:
            click.echo(f"    {reason}", err=True)


def print_next_steps(out: Path, data: str | None) -> None:
    click.echo("Next, on the device:")
    click.echo(f"  edgeanomaly predict {out} IMAGE_OR_FOLDER")
    click.echo(f"  edgeanomaly validate {out} --data {data or 'DATASET_DIR'}")


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle directory, or a path ending in .zip.")
@click.option("--recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Fit and export in one step from export/<name>.toml (needs --data); the checkpoint goes to OUT.run beside the bundle.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Dataset to fit on (with --recipe).")
@click.option("--category", default=None, help="Category inside --data (MVTec layout).")
@click.option("--format", "formats", default=None, help="Comma-separated: onnx,openvino. Default: both (or the recipe's).")
@click.option("--precision", "precisions", default=None, help="Comma-separated: fp32,fp16,int8. Default: fp32 (or the recipe's).")
@click.option("--static", "static", is_flag=False, flag_value=1, default=None, type=int, metavar="[BATCH]", help="Fix the batch size (default 1 when given) for NPU-style static shapes.")
@click.option("--calibration-data", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Recompute calibration and run parity on this dataset.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@click.option("--allow-degraded", is_flag=True, help="Keep artifacts that fail the verdict (marked 'degraded') instead of leaving them out.")
@click.option("--seed", default=0, show_default=True, type=int, help="random_state when fitting from a recipe.")
@friendly_errors
def export(checkpoint: Path | None, out: Path, recipe: Path | None, data: Path | None, category: str | None, formats: str | None,
           precisions: str | None, static: int | None, calibration_data: Path | None, overwrite: bool, allow_degraded: bool, seed: int) -> None:
    """Export a CHECKPOINT (RUN_DIR of 'edgeanomaly fit'), or --recipe + --data, to a bundle."""
    from edgeanomaly._optional import require

    require("torch", "exporting models")
    from edgeanomaly.errors import ConfigError
    from edgeanomaly.export import export_checkpoint, load_recipe
    from edgeanomaly.models._checkpoint import load_checkpoint

    if (checkpoint is None) == (recipe is None):
        raise ConfigError("Expected either a CHECKPOINT argument or --recipe (with --data), not both and not neither")
    fmt_list = split_csv(formats)
    prec_list = split_csv(precisions)
    if recipe is not None:
        from edgeanomaly.models._pipeline import fit_run

        if data is None:
            raise ConfigError("--recipe needs --data DIR (the dataset to fit on)")
        r = load_recipe(recipe)
        fmt_list = fmt_list or r.formats
        prec_list = prec_list or r.precisions
        static = static if static is not None else r.static_batch
        click.echo(f"Fitting {r.model} from recipe {recipe} on {data}")
        bar = StageBar()
        try:
            result = fit_run(r.model, data, out.with_name(out.name.removesuffix(".zip") + ".run"), category=category,
                             image_size=r.image_size, center_crop=r.center_crop, batch_size=r.batch_size,
                             progress=bar, random_state=seed, **r.model_kwargs)
        finally:
            bar.close()
        print_step("fit", result.seconds["fit"], None)
        ckpt = result.checkpoint
    else:
        ckpt = load_checkpoint(checkpoint)  # type: ignore[arg-type]
    fmt_list = fmt_list or ["onnx", "openvino"]
    prec_list = prec_list or ["fp32"]
    click.echo(f"Exporting {ckpt.model.name} ({ckpt.model.backbone}) -> {out}  formats {','.join(fmt_list)}  precisions {','.join(prec_list)}"
               + (f"  static batch {static}" if static else "  dynamic batch"))
    report = export_checkpoint(ckpt, out, fmt_list, prec_list, static_batch=static, calibration_data=calibration_data,
                               overwrite=overwrite, step=print_step, allow_degraded=allow_degraded)
    print_parity(report)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() else out.stat().st_size
    click.echo(f"Bundle: {out} ({_size(total)})")
    print_next_steps(out, str(calibration_data or ckpt.info.get("data") or ""))
