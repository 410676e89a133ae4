"""The ``edgeanomaly`` command line.

Commands are listed in one table and imported only when invoked, so ``edgeanomaly --help``
stays fast and never imports torch, OpenVINO or ONNX Runtime.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util

import click

from edgeanomaly import __version__
from edgeanomaly._tempdirs import sweep

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "quickstart": ("edgeanomaly.cli._quickstart", "quickstart", "Fit, export, validate and benchmark on an embedded default."),
    "fit": ("edgeanomaly.cli._fit", "fit", "Fit a model on normal images (in one pass, or trained for epochs); save a checkpoint."),
    "export": ("edgeanomaly.cli._export", "export", "Export a checkpoint (or a recipe) to a versioned bundle."),
    "predict": ("edgeanomaly.cli._predict", "predict", "Run a bundle on images, folders, videos or a camera (no torch)."),
    "validate": ("edgeanomaly.cli._validate", "validate", "Check a bundle against ground truth and its torch reference."),
    "benchmark": ("edgeanomaly.cli._benchmark", "benchmark", "Latency, throughput and accuracy of every artifact x backend."),
    "calibrate": ("edgeanomaly.cli._calibrate", "calibrate", "Recompute thresholds and normalisation on the device."),
    "info": ("edgeanomaly.cli._info", "info", "Describe a bundle and verify its checksums."),
    "data": ("edgeanomaly.cli._data", "data", "Synthesise or check datasets."),
    "serve": ("edgeanomaly.cli._serve", "serve", "Serve bundles over the Open Inference Protocol (KServe V2), with a web page."),
    "deploy": ("edgeanomaly.cli._deploy", "deploy", "Write a bundle as a Triton, OpenVINO Model Server or KServe repository."),
    "keygen": ("edgeanomaly.cli._sign", "keygen", "Create an Ed25519 key pair for signing bundles."),
    "sign": ("edgeanomaly.cli._sign", "sign", "Sign a bundle so that devices with --trust accept it."),
    "verify": ("edgeanomaly.cli._sign", "verify", "Verify a bundle's signature against trusted keys, its checksums and graphs."),
}


# command -> extra it needs beyond the base install, and the module that extra brings.
NEEDS_EXTRA: dict[str, str] = {"quickstart": "train", "fit": "train", "export": "train"}
_EXTRA_MODULE: dict[str, str] = {"train": "torch"}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (``--help`` stays fast)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing_extra(name: str) -> str | None:
    """The extra that ``name`` needs and this installation lacks, or None."""
    extra = NEEDS_EXTRA.get(name)
    return extra if extra and not _installed(_EXTRA_MODULE.get(extra, extra)) else None


def _available() -> dict[str, tuple[str, str, str]]:
    """Commands whose module is present in this installation."""
    out = {}
    for name, entry in COMMANDS.items():
        if importlib.util.find_spec(entry[0]) is not None:
            out[name] = entry
    return out


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_available())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = _available().get(name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        return getattr(module, entry[1])

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in _available():
            close = difflib.get_close_matches(name, list(_available()), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} See 'edgeanomaly --help'.")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows, missing = [], set()
        for name, entry in _available().items():
            extra = _missing_extra(name)
            if extra:
                missing.add(extra)
            rows.append((name, (f"[needs {extra}] " if extra else "") + entry[2]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
                for extra in sorted(missing):
                    formatter.write_paragraph()
                    formatter.write_text(f'[needs {extra}]: install with pip install "edgeanomaly[{extra}]"')


def _notes_for_metric_warnings() -> None:
    """Show edgeanomaly's UndefinedMetricWarning (a metric that these images cannot define,
    e.g. AUPIMO with too few normal pixels) as one ``note:`` line on stderr, once per metric
    (the first of its messages: artifacts and curves of one run differ only in the figures),
    instead of Python's warning with the file and line of ``_pimo.py``. Other warnings keep
    Python's format."""
    import warnings

    original = warnings.showwarning
    if getattr(original, "edgeanomaly_notes", False):  # main() invoked again in one process
        return
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if category.__name__ == "UndefinedMetricWarning" and category.__module__.startswith("edgeanomaly."):
            text = str(message)
            what = text.split(":", 1)[0]  # "AUPIMO is undefined"
            if what not in shown:
                shown.add(what)
                click.echo(f"note: {text} (the metric is reported as undefined; the others are not affected)", err=True)
            return
        original(message, category, filename, lineno, file, line)

    show.edgeanomaly_notes = True  # type: ignore[attr-defined]
    warnings.showwarning = show


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="edgeanomaly")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """edgeanomaly: visual anomaly detection from the training machine to the edge device.

    Typical flow: fit on normal images, export a bundle, then on the device
    predict, validate and benchmark (no torch needed there).

    \b
    Examples:
      edgeanomaly quickstart --out runs/quickstart
      edgeanomaly export --recipe patchcore --data data --category metal --out pc.bundle
      edgeanomaly predict pc.bundle images/ --json
      edgeanomaly COMMAND --help
    """
    _notes_for_metric_warnings()
    sweep()  # what killed edgeanomaly processes (SIGKILL, the OOM killer) left in the temp folder
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":  # pragma: no cover
    main()
