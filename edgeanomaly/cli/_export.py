"""``edgeanomaly export``: a fitted checkpoint (or a recipe + data) -> a versioned bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgeanomaly.cli._common import (
    Activity,
    StageBar,
    check_bundle_out,
    check_run_dir,
    friendly_errors,
    print_next_steps,
    split_csv,
)
from edgeanomaly._optional import check_choice, require
from edgeanomaly.bundle import SigningKey, format_bytes
from edgeanomaly.cli._fit import EpochLines, epoch_lines_warn_instead, resume_hint, say_state_kept, training_options, warn_thresholds, without_stage
from edgeanomaly.data import load_dataset
from edgeanomaly.errors import ConfigError, EdgeAnomalyError
from edgeanomaly.recipes import list_recipes as packaged_recipes
from edgeanomaly.registry import format_names


def _size(n: int | None) -> str:
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
        if "quantization" in p:
            state = "DEGRADED, kept on request" if p["status"] == "degraded" else "meets validate's INT8 criteria"
            click.echo(f"    {a.name}: {p['quantization']} quantisation, {state}")
            for reason in p.get("rejected_attempts", []):
                click.echo(f"      rejected before: {reason}")
    for name, reasons in report.rejected.items():
        click.echo(f"  {name:<15} not written: no quantisation meets validate's criteria on these images")
        for reason in reasons:
            click.echo(f"    {reason}")
    # the same judgement validate makes: say why, so nobody has to run validate to find out
    for a in report.artifacts:
        for reason in (r for r in a.parity.get("verdict", {}).get("checks", []) if r["outcome"] != "PASS"):
            click.echo(f"  {a.name}: {reason['outcome']}: {reason['message']}")
    for name, reasons in getattr(report, "refused", {}).items():
        click.echo(f"  {name}: left out of the bundle (validate would fail it; --allow-degraded keeps it, marked):", err=True)
        for reason in reasons:
            click.echo(f"    {reason}", err=True)


def dataset_args(data: str | Path, category: str | None) -> list[str]:
    """``--data D [--category C]`` as ``validate`` and ``benchmark`` need them."""
    if category and (Path(data) / category).is_dir():
        return ["--data", str(data), "--category", category]
    return ["--data", str(data)]


def next_commands(bundle: Path, data: str | Path | None, category: str | None) -> list[str]:
    """The commands to run next on ``bundle``, complete and runnable (a test runs every one).

    Without a dataset on this machine there is nothing concrete to suggest but placeholders.
    """
    import shlex

    if not data or not Path(data).is_dir():
        return [f"edgeanomaly info {shlex.quote(str(bundle))}",
                f"edgeanomaly predict {shlex.quote(str(bundle))} IMAGE_OR_FOLDER --json",
                f"edgeanomaly validate {shlex.quote(str(bundle))} --data DATASET_DIR"]
    root = Path(data) / category if category and (Path(data) / category).is_dir() else Path(data)
    images = root / "test" if (root / "test").is_dir() else root
    commands = [
        ["edgeanomaly", "info", str(bundle)],
        ["edgeanomaly", "predict", str(bundle), str(images), "--json"],
        ["edgeanomaly", "validate", str(bundle), *dataset_args(data, category)],
    ]
    return [shlex.join(c) for c in commands]


def export_with_progress(ckpt: Any, out: Path, formats: list[str], precisions: list[str], **kwargs: Any) -> Any:
    """``export_checkpoint`` printing one line per finished step and showing the running one."""
    from edgeanomaly.export import export_checkpoint  # torch: the training side

    with Activity() as activity:

        def step(what: str, seconds: float, nbytes: int | None) -> None:
            activity.close()
            print_step(what, seconds, nbytes)

        return export_checkpoint(ckpt, out, formats, precisions, step=step, begin=activity, **kwargs)


def _fit_recipe(r: Any, data: Path, category: str | None, run_dir: Path, seed: int, device: str | None,
                resume: bool, training: dict[str, Any]) -> Any:
    """Fit recipe ``r`` on ``data`` into ``run_dir`` (kept, so a failed export can be retried
    without fitting; a model trained for epochs saves its state there, and ``resume`` goes on
    from it), with ``training`` (``epochs``, ``max_minutes``) over the recipe's settings,
    showing progress; the fitted checkpoint."""
    from edgeanomaly.models import fit_run, list_models, resolve_device  # torch: the training side

    check_choice("model", r.model, list_models())
    resolve_device(device or r.device)  # a missing GPU is said now, not after the data is read
    click.echo(f"Fitting {r.model} from recipe {r.path} on {data}; the checkpoint goes to {run_dir} "
               f"(kept: 'edgeanomaly export {run_dir} --out ...' exports it again without fitting)")
    bar, epoch_lines = StageBar(), EpochLines(advice="or fit where an epoch is faster (--device cuda)")
    try:
        with resume_hint(run_dir, epoch_lines, "export"), epoch_lines_warn_instead():
            result = fit_run(r.model, data, run_dir, category=category,
                             image_size=r.image_size, center_crop=r.center_crop, batch_size=r.batch_size,
                             progress=without_stage(bar, "train"), on_epoch=epoch_lines, random_state=seed,
                             device=device or r.device, resume=resume, **{**r.model_kwargs, **training})
    finally:
        bar.close()
    print_step("fit", result.seconds["fit"], None)
    say_state_kept(run_dir, "patience in the recipe")
    return result.checkpoint


@click.command(epilog="""\b
Examples:
  edgeanomaly export runs/pc --out pc.bundle --format onnx,openvino --precision fp32,fp16,int8
  edgeanomaly export --recipe patchcore --data data --category metal --out pc.bundle
  edgeanomaly export --list-recipes""")
@click.argument("checkpoint", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Bundle directory, or a path ending in .zip.")
@click.option("--recipe", default=None, metavar="NAME|FILE", help="Fit and export in one step from a recipe: a packaged name (see --list-recipes) or a TOML file; needs --data. The checkpoint goes to OUT.run beside the bundle.")
@click.option("--list-recipes", is_flag=True, help="List the packaged recipes and exit.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Dataset to fit on (with --recipe).")
@click.option("--category", default=None, help="Category inside --data (MVTec layout).")
@click.option("--format", "formats", default=None, help="Comma-separated, any case: onnx,openvino. Default: both (or the recipe's).")
@click.option("--precision", "precisions", default=None, help="Comma-separated, any case: fp32,fp16,int8. Default: fp32 (or the recipe's).")
@click.option("--static", "static", is_flag=False, flag_value=1, default=None, type=click.IntRange(min=1), metavar="[BATCH]", help="Fix the batch size (default 1 when given) for NPU-style static shapes.")
@click.option("--calibration-data", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Recompute calibration and run parity on this dataset.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out (and, with --recipe, the run directory OUT.run).")
@click.option("--allow-degraded", is_flag=True, help="Keep artifacts that fail the verdict, or an INT8 artifact no quantisation made pass (marked 'degraded'), instead of leaving them out.")
@click.option("--seed", default=0, show_default=True, type=int, help="random_state when fitting from a recipe.")
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Sign the bundle with this Ed25519 private key (edgeanomaly keygen); devices with --trust accept only signed bundles.")
@click.option("--device", default=None, help="Where a --recipe fit runs: cpu, cuda, cuda:N or auto (CUDA when torch sees one). Default: the recipe's [fit] device, else cpu.")
@click.option("--resume", is_flag=True, help="With --recipe of a model trained for epochs (fastflow, efficientad): continue the fit "
              "in OUT.run, interrupted or finished (it saves its state there after each epoch), then export; the same options as before, "
              "but --epochs and --max-minutes may change.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="With --recipe of a model trained for epochs: at most this many (instead of the recipe's).")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --recipe of a model trained for epochs: stop training after this many minutes (instead of the recipe's; checked after each epoch).")
@friendly_errors
def export(checkpoint: Path | None, out: Path | None, recipe: str | None, list_recipes: bool, data: Path | None, category: str | None,
           formats: str | None, precisions: str | None, static: int | None, calibration_data: Path | None, overwrite: bool,
           allow_degraded: bool, seed: int, sign_key: Path | None, device: str | None, resume: bool, epochs: int | None,
           max_minutes: float | None) -> None:
    """Export a CHECKPOINT (RUN_DIR of 'edgeanomaly fit'), or --recipe + --data, to a bundle.

    Every argument (destinations, formats, precisions, dataset and category) is checked
    before the fit or export starts.
    """
    if list_recipes:
        recipes = packaged_recipes()
        width = max(map(len, recipes), default=0)
        for name, about in recipes.items():
            click.echo(f"{name:<{width}}  {about}")
        return

    if out is None:
        raise click.UsageError("Missing option '--out' (the bundle to write).")
    if (checkpoint is None) == (recipe is None):
        raise ConfigError("Expected either a CHECKPOINT argument or --recipe (with --data), not both and not neither")
    if recipe is not None and data is None:
        raise ConfigError("--recipe needs --data DIR (the dataset to fit on)")
    if device is not None and recipe is None:
        raise ConfigError("--device is where a --recipe fit runs; a CHECKPOINT is already fitted (export runs on the CPU)")
    if resume and recipe is None:
        raise ConfigError("--resume continues a --recipe fit in OUT.run; a CHECKPOINT is already fitted")
    stopping = {"--epochs": epochs, "--max-minutes": max_minutes}
    if recipe is None and any(v is not None for v in stopping.values()):
        given = ", ".join(k for k, v in stopping.items() if v is not None)
        raise ConfigError(f"{given} change when a --recipe fit stops training; a CHECKPOINT is already fitted")
    from edgeanomaly.export import artifact_name, check_targets, load_recipe  # torch: the training side

    # Everything that can be wrong is checked here, before minutes of fitting and exporting,
    # and before torch is imported (seconds): a mistyped option is answered at once.
    r = load_recipe(recipe) if recipe is not None else None
    fmt_list = split_csv(formats, lower=True) or (r.formats if r else list(format_names()))
    prec_list = split_csv(precisions, lower=True) or (r.precisions if r else ["fp32"])
    # A recipe's exact artifact list holds unless --format or --precision say otherwise.
    only = r.artifacts if (r is not None and not formats and not precisions) else None
    targets = check_targets(fmt_list, prec_list)
    if only is not None and set(only) - {artifact_name(f, p) for f, p in targets}:
        raise ConfigError(f"Recipe {r.path}: unknown artifact(s) in {only}")  # type: ignore[union-attr]
    check_bundle_out(out, overwrite)
    key = None
    if sign_key is not None:
        key = SigningKey.load(sign_key)  # a wrong key fails now, not after the export
    if calibration_data is not None:
        load_dataset(calibration_data).check()
    if r is not None:
        load_dataset(data, category=category).check()  # type: ignore[arg-type]
        run_dir = out.with_name(out.name.removesuffix(".zip") + ".run")
        check_run_dir(run_dir, overwrite, resume)
    require("torch", "exporting models")
    from edgeanomaly.models import load_checkpoint  # torch: the training side

    if r is not None:
        static = static if static is not None else r.static_batch
        training = training_options(r.model, epochs=epochs, max_minutes=max_minutes)
        ckpt = _fit_recipe(r, data, category, run_dir, seed, device, resume, training)  # type: ignore[arg-type]
    else:
        ckpt = load_checkpoint(checkpoint)  # type: ignore[arg-type]
    what = f"artifacts {','.join(only)}" if only else f"formats {','.join(fmt_list)}  precisions {','.join(prec_list)}"
    click.echo(f"Exporting {ckpt.model.name} ({ckpt.model.backbone}) -> {out}  {what}"
               + (f"  static batch {static}" if static else "  dynamic batch"))
    try:
        report = export_with_progress(ckpt, out, fmt_list, prec_list, static_batch=static, calibration_data=calibration_data,
                                      overwrite=overwrite, only=only, allow_degraded=allow_degraded, sign_key=key)
    except EdgeAnomalyError as exc:
        if r is None:
            raise
        import shlex

        kept = sum(f.stat().st_size for f in run_dir.iterdir() if f.is_file())
        raise click.ClickException(
            f"{exc}\nThe fitted checkpoint is kept in {run_dir} ({_size(kept)}): "
            f"'{shlex.join(['edgeanomaly', 'export', str(run_dir), '--out', str(out)])}' exports it without fitting again; "
            "delete that folder if you do not need it."
        ) from exc
    print_parity(report)

    warn_thresholds(report.manifest.calibration if report.manifest is not None else None)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() else out.stat().st_size
    click.echo(f"Bundle: {out} ({_size(total)})" + (f", signed with key {key.key_id}" if key is not None else ", unsigned"))
    if calibration_data is not None:
        commands = next_commands(out, calibration_data, None)
    else:
        commands = next_commands(out, ckpt.info.get("data"), ckpt.info.get("category") if ckpt.info.get("layout") == "mvtec" else None)
    print_next_steps("Next, on the device:", commands)
