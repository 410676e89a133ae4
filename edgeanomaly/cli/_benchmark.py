"""``edgeanomaly benchmark``: every artifact x backend x device of a bundle (torch-free)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeanomaly.cli._common import _LiveChoice, exact_option, friendly_errors, trust_option, trusted_keys
from edgeanomaly.cli._remote import check_remote, remote_options
from edgeanomaly.registry import server_backend
from edgeanomaly.reports import benchmark_markdown, write_benchmark
from edgeanomaly.tooling import benchmark_bundle


@click.command(epilog="""\b
Examples:
  edgeanomaly benchmark pc.bundle --data data --category metal
  edgeanomaly benchmark pc.bundle --repeats 100 --no-cold-start --out bench/""")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Labelled dataset for image AUROC / pixel AUPRO (optional).")
@click.option("--category", default=None, help="Category inside --data.")
@click.option("--repeats", default=30, show_default=True, type=click.IntRange(min=3), help="Batch-1 predictions timed per combination.")
@click.option("--throughput-images", default=64, show_default=True, type=click.IntRange(min=1), help="Images streamed through the async path.")
@click.option("--cold-start/--no-cold-start", default=True, show_default=True, help="Measure import + load + first prediction in a fresh process.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder to save benchmark.json and benchmark.md in (default: print only, write nothing); never overwrites an earlier benchmark.")
@click.option("--backend", type=_LiveChoice(lambda: ["all", server_backend()]), default="all", show_default=True,
              help="all: every local backend and device; remote: only the server at --url.")
@exact_option
@remote_options
@trust_option
@friendly_errors
def benchmark(bundle: Path, data: Path | None, category: str | None, repeats: int, throughput_images: int, cold_start: bool,
              out: Path | None, backend: str, exact: bool, url: str | None, model_name: str | None,
              trust: tuple[Path, ...]) -> None:
    """Latency, throughput, accuracy and drift of every artifact x backend x device."""
    if out is not None:
        taken = [n for n in ("benchmark.json", "benchmark.md") if (out / n).exists()]
        if taken:  # before minutes of measuring, not after
            raise click.UsageError(f"{out} already holds {' and '.join(taken)} from an earlier benchmark; give another --out folder")
    rows = benchmark_bundle(bundle, data, category=category, repeats=repeats, throughput_images=throughput_images,
                            cold_start=cold_start, exact=exact, trust=trusted_keys(trust), progress=lambda what: click.echo(f"benchmarking {what} ...", err=True),
                            **check_remote(backend, url, model_name))
    click.echo(benchmark_markdown(rows))
    if out is not None:
        for p in write_benchmark(rows, out):
            click.echo(f"wrote {p}")
    if any(r.status != "ok" for r in rows):
        raise SystemExit(1)
