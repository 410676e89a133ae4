"""``edgeanomaly validate``: prove a bundle against ground truth on the device (torch-free)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeanomaly import frontdoor
from edgeanomaly.cli._common import StageBar, backend_choice, exact_option, friendly_errors, split_csv, trust_option, trusted_keys
from edgeanomaly.cli._remote import check_remote, remote_options
from edgeanomaly.reports import validation_markdown, write_validation_report


def print_validation(report) -> None:  # noqa: ANN001 - ValidationReport, imported lazily

    # The Markdown table reads well in a terminal too, and is what the report file holds.
    for line in validation_markdown(report).splitlines()[2:]:
        click.echo(line)


@click.command(epilog="""\b
Examples:
  edgeanomaly validate pc.bundle --data data --category metal --out report/
  edgeanomaly validate pc.bundle --data data/metal --artifact openvino-int8""")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="Labelled dataset (MVTec layout with test/ and ground_truth/).")
@click.option("--category", default=None, help="Category inside --data.")
@click.option("--backend", default="auto", show_default=True, type=backend_choice())
@click.option("--device", default="CPU", show_default=True, help="CPU, GPU, NPU, AUTO (OpenVINO); CPU, CUDA (ONNX Runtime).")
@click.option("--artifact", "artifacts", default=None, help="Comma-separated artifact names (default: all the backend can run).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write validation.json, validation.md and figures here.")
@click.option("--tolerance", type=float, default=None, help="Largest allowed |metric - reference| for every precision (default: fp32 0.005, fp16 0.01, int8 0.02).")
@exact_option
@remote_options
@trust_option
@click.option("--figures/--no-figures", default=True, show_default=True, help="Also matplotlib PNGs of ROC, PRO, PIMO and score histograms ([plot] extra); validation.html has its figures either way.")
@click.option("--pixel-resolution", type=click.Choice(["original", "model"]), default="original", show_default=True,
              help="original: also report pixel metrics with maps resized to each image's size (as MVTec results are reported); model: at the model input size only.")
@friendly_errors
def validate(bundle: Path, data: Path, category: str | None, backend: str, device: str, artifacts: str | None,
             out: Path | None, tolerance: float | None, exact: bool, url: str | None, model_name: str | None, figures: bool,
             pixel_resolution: str, trust: tuple[Path, ...]) -> None:
    """Check BUNDLE against ground truth and against its torch reference; exit 1 when an artifact FAILs.

    Each artifact gets a verdict: PASS, FAIL, or INCONCLUSIVE (nothing failed, but the data is
    too small to judge a metric difference; the report says how many images would). --out
    writes validation.json, validation.md and a self-contained validation.html.
    """
    bar = StageBar()
    try:
        report = frontdoor.validate(bundle, data, category=category, backend=backend, device=device,
                                    artifacts=split_csv(artifacts) or None, tolerance=tolerance, progress=bar,
                                    pixel_resolution=pixel_resolution, exact=exact, trust=trusted_keys(trust),
                                    **check_remote(backend, url, model_name))
    finally:
        bar.close()
    print_validation(report)
    if out is not None:
        import importlib.util

        if figures and importlib.util.find_spec("matplotlib") is None:
            click.echo('matplotlib PNGs skipped (pip install "edgeanomaly[plot]"); validation.html has the figures', err=True)
        for p in write_validation_report(report, out, figures=figures):
            click.echo(f"wrote {p}")
    if not report.ok:
        raise SystemExit(1)
