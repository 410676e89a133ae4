"""``edgeanomaly quickstart``: the whole path on an embedded default, in a few minutes.

synthetic data (or --data) -> fit PatchCore on pretrained EfficientNet-Lite0 -> export ONNX +
OpenVINO at FP32/FP16/INT8 (parity-checked) -> validate every artifact against ground truth
-> benchmark table.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from edgeanomaly._optional import check_choice, require
from edgeanomaly.cli._common import Activity, StageBar, friendly_errors, print_next_steps
from edgeanomaly.cli._export import export_with_progress, next_commands, print_parity
from edgeanomaly.cli._fit import MODEL_NAMES, print_metrics
from edgeanomaly.cli._validate import print_validation
from edgeanomaly.data import generate_synthetic_dataset, load_dataset
from edgeanomaly.registry import PRECISIONS, format_names
from edgeanomaly.reports import benchmark_markdown, write_benchmark, write_validation_report
from edgeanomaly.tooling import benchmark_bundle, validate_bundle


def _stage(title: str) -> None:
    click.echo(f"\n== {title}")


@click.command(epilog="""\b
Examples:
  edgeanomaly quickstart --out runs/quickstart
  edgeanomaly quickstart --data my_mvtec --category bottle --model padim --out runs/bottle""")
@click.option("--out", default="edgeanomaly-quickstart", show_default=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for data, checkpoint, bundle and reports.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Your own MVTec-style dataset instead of the synthetic one.")
@click.option("--category", default=None, help="Category inside --data (MVTec layout).")
@click.option("--model", "model_name", default="patchcore", show_default=True, help="Model to fit: patchcore, padim, dfkde, dfm.")
@click.option("--seed", default=0, show_default=True, type=int)
@friendly_errors
def quickstart(out: Path, data: Path | None, category: str | None, model_name: str, seed: int) -> None:
    """Fit, export, validate and benchmark on an embedded default (synthetic data unless --data)."""
    require("torch", "the quickstart (it fits and exports a model)")

    model_name = check_choice("model", model_name.lower(), MODEL_NAMES)
    if data is not None:  # a wrong folder or category fails now, not after the synthetic data

        load_dataset(data, category=category).check()
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        _stage("1/5 synthetic dataset (brushed metal: scratch, dent, stain, crack)")
        t0 = time.perf_counter()
        generate_synthetic_dataset(out / "data", ["metal"], n_train=40, n_test=8, seed=seed)
        data, category = out / "data", "metal"
        click.echo(f"  {data / 'metal'}: 40 train, 8 good + 32 defective test images ({time.perf_counter() - t0:.1f} s)")
    else:
        _stage(f"1/5 dataset {data}")

    from edgeanomaly.models import fit_run  # torch: the training side

    _stage(f"2/5 fit {model_name} (efficientnet_lite0, ImageNet weights)")
    bar = StageBar()
    try:
        result = fit_run(model_name, data, out / "run", category=category, progress=bar, random_state=seed)
    finally:
        bar.close()
    ckpt = result.checkpoint
    click.echo(f"  fitted on {ckpt.info['n_train']} images in {result.seconds['fit']:.1f} s; weights {ckpt.model.weights_source}")
    print_metrics(ckpt.metrics, ckpt.calibration)

    _stage("3/5 export ONNX + OpenVINO at FP32, FP16, INT8")
    bundle = out / "bundle"
    report = export_with_progress(ckpt, bundle, list(format_names()), list(PRECISIONS), overwrite=True)
    print_parity(report)

    _stage("4/5 validate every artifact against ground truth (torch-free runtime)")
    vbar = StageBar()
    try:
        vreport = validate_bundle(bundle, data, category=category, progress=vbar)
    finally:
        vbar.close()
    print_validation(vreport)
    write_validation_report(vreport, out / "validation")

    _stage("5/5 benchmark (batch-1 latency per decoded image, async throughput, cold start)")
    with Activity() as activity:
        rows = benchmark_bundle(bundle, data, category=category, repeats=20, throughput_images=32,
                                progress=lambda what: activity(f"benchmarking {what}"))
    click.echo(benchmark_markdown(rows))
    write_benchmark(rows, out / "benchmark")

    click.echo(f"Done in {time.perf_counter() - start:.0f} s. Everything is in {out}/:")
    click.echo(f"  data/        the dataset{' (synthetic)' if (out / 'data').exists() else ''}")
    click.echo("  run/         checkpoint.json + model.pt (torch)")
    click.echo("  bundle/      the bundle a device needs (edgeanomaly info " + str(bundle) + ")")
    click.echo("  validation/  validation.html (open it in a browser), validation.json, validation.md")
    click.echo("  benchmark/   benchmark.json, benchmark.md")
    print_next_steps("Try:", next_commands(bundle, data, category))
    if not vreport.ok:
        click.echo("Some artifacts failed validation: see why in validation/validation.html", err=True)
        raise SystemExit(1)
