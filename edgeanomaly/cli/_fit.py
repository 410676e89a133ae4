"""``edgeanomaly fit``: one-pass fit on normal images, calibration, test metrics, checkpoint."""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

import click

from edgeanomaly import frontdoor
from edgeanomaly._threads import Terminated, exit_status
from edgeanomaly._optional import require
from edgeanomaly.bundle import Calibration, format_bytes
from edgeanomaly.cli._common import StageBar, check_run_dir, friendly_errors, print_next_steps, split_csv, this_command_with
from edgeanomaly.errors import ConfigError, UndertrainedWarning
from edgeanomaly.judging import threshold_sample_warnings
from edgeanomaly.metrics import DEFAULT_FPR_BOUNDS

# Static copies of the built-in rows of the registries (tests/cli/test_cli_help.py keeps them
# equal), so that `fit --help` needs no torch import; model_names() and backbone_names() add
# what plugins registered.
MODEL_NAMES = ("patchcore", "padim", "dfkde", "dfm", "fastflow", "efficientad")
#: the models trained for epochs (subclasses of models._trained.TrainedModel)
TRAINED_NAMES = ("fastflow", "efficientad")
_TRAINED = ", ".join(TRAINED_NAMES)
BACKBONE_NAMES = ("efficientnet_lite0", "resnet18", "wide_resnet50_2")


def _registered(package: str, lister: str, builtin: tuple[str, ...]) -> tuple[str, ...]:
    """The names in ``package``'s registry when it is loaded, else the built-in ones.

    The registries live in torch modules. A plugin that adds a row imports its registry (at
    ``import edgeanomaly``, from ``$EDGEANOMALY_PLUGINS``); when none did, the registry holds
    the built-in rows only, which ``builtin`` copies, and help stays free of torch."""
    loaded = sys.modules.get(package)
    if loaded is None:
        return builtin
    names = list(getattr(loaded, lister)())
    return tuple([n for n in builtin if n in names] + [n for n in names if n not in builtin])


def model_names() -> tuple[str, ...]:
    """Registered model names: the built-in ones first, then those plugins added."""
    return _registered("edgeanomaly.models", "list_models", MODEL_NAMES)


def backbone_names() -> tuple[str, ...]:
    """Registered backbone names: the built-in ones first, then those plugins added."""
    return _registered("edgeanomaly.components", "list_backbones", BACKBONE_NAMES)


#: backbone -> feature layer names (shallow to deep) as the help shows them.
LAYER_NAMES = {
    "efficientnet_lite0": ("stem",) + tuple(f"blocks.{i}" for i in range(16)) + ("head",),
    "resnet18": ("stem", "layer1", "layer2", "layer3", "layer4"),
    "wide_resnet50_2": ("stem", "layer1", "layer2", "layer3", "layer4"),
}
LAYER_HELP = "efficientnet_lite0: stem, blocks.0 ... blocks.15, head (e.g. blocks.4,blocks.10); resnet18 and wide_resnet50_2: stem, layer1 ... layer4 (e.g. layer2,layer3)"


def parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``("coreset_ratio=0.05", "max_bank_size=none")`` -> ``{"coreset_ratio": 0.05, "max_bank_size": None}``."""
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
        click.option("--backbone", default=None, help=f"Backbone ({', '.join(backbone_names())}). Default: efficientnet_lite0."),
        click.option("--layers", default=None, help=f"Comma-separated feature layers of the backbone. Default: the model's. Names: {LAYER_HELP}."),
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


def warn_thresholds(calibration: Any) -> None:
    """The rule ``calibrate`` warns with: thresholds set on too few images (a dict or a Calibration)."""
    if not calibration:
        return

    cal = Calibration.from_dict(calibration) if isinstance(calibration, dict) else calibration
    for reason in threshold_sample_warnings(cal):
        click.echo(f"warning: {reason}; 'edgeanomaly calibrate BUNDLE --data DIR' sets new thresholds from more images", err=True)


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
            shown = ("undefined" if math.isnan(v) else f"{v:.4f}") if isinstance(v, float) else v
            click.echo(f"  {k:<22} {shown}")
        if any(isinstance(v, float) and math.isnan(v) for v in metrics.values()):
            click.echo(f"  (undefined: these test images cannot define the metric: an image metric needs normal and "
                       f"anomalous images, AUPIMO at least {math.ceil(1 / DEFAULT_FPR_BOUNDS[0])} normal pixels; more test "
                       f"images define it, and --calibration-split same_as_test measures on all of them)")


#: What to do when the time limit cuts a training stage short (EpochLines)
FIT_ADVICE = ("or fit where an epoch is faster (--device cuda) or a smaller model (the packaged recipes are sized "
              "for a 2-core CPU: edgeanomaly export --list-recipes)")


@click.command(epilog="""\b
Examples:
  edgeanomaly fit --model patchcore --data data --category metal --out pc.run
  edgeanomaly fit --model padim --data parts/good --backbone resnet18 --layers layer1,layer2,layer3 --out padim.run
  edgeanomaly fit --model dfm --data data --category metal --param pca_level=0.99 --out dfm.run
  edgeanomaly fit --model fastflow --data data --category metal --epochs 50 --max-minutes 10 --out ff.run
  edgeanomaly fit --model efficientad --data data --category metal --max-minutes 10 --out ead.run""")
@click.option("--model", "model_name", default="patchcore", show_default=True, help=f"Registered model: {', '.join(model_names())}.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="Dataset folder (MVTec layout or a folder of normal images).")
@click.option("--category", default=None, help="Category inside DATA (MVTec layout).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory for checkpoint.json + model.pt.")
@click.option("--overwrite", is_flag=True, help="Replace the checkpoint of an existing run directory at --out.")
@model_options
@click.option("--device", default="cpu", show_default=True,
              help="Where features and estimators are computed: cpu, cuda, cuda:N or auto (CUDA when torch sees one). "
                   "The checkpoint is the same whatever the device.")
@click.option("--calibration-split", type=click.Choice(["from_test", "same_as_test"]), default="from_test", show_default=True,
              help="from_test: thresholds from a stratified half of the labelled test images, metrics from the other half; "
                   "same_as_test: both from every test image (optimistic).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help=f"Models trained for epochs ({_TRAINED}): at most this many.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Models trained for epochs ({_TRAINED}): stop training after this many minutes (the best epoch so far is kept); checked after each epoch, so a stage may pass it by up to one epoch.")
@click.option("--resume", is_flag=True, help=f"Models trained for epochs ({_TRAINED}): continue the fit in --out, interrupted or finished "
              "(it saves its state there after each epoch); the same options as before, but --epochs, "
              "--max-minutes and --param patience may change (e.g. more epochs).")
@friendly_errors
def fit(model_name: str, data: Path, category: str | None, out: Path, overwrite: bool, backbone: str | None, layers: str | None,
        image_size: int, center_crop: int | None, seed: int, weights: Path | None, weights_cache: Path | None, pretrained: bool,
        params: tuple[str, ...], batch_size: int, device: str, calibration_split: str, epochs: int | None,
        max_minutes: float | None, resume: bool) -> None:
    """Fit a model on normal images and save a checkpoint (needs the [train] extra).

    One-pass models (patchcore, padim, dfkde, dfm) fit in one pass over the images; fastflow
    and efficientad train for epochs (one line per epoch: losses, best epoch, ETA) with early
    stopping on held-out normal images. Their defaults are the papers' networks, sized for a
    GPU (efficientad's take hours on a CPU); their packaged recipes fit in under 15 minutes on
    a 2-core CPU: edgeanomaly export --recipe efficientad --data DIR --out ead.bundle."""
    check_run_dir(out, overwrite, resume)
    require("torch", "fitting models")
    model_name = model_name.lower()
    kwargs = build_model_kwargs(backbone, layers, seed, weights, weights_cache, pretrained, params)
    kwargs.update(training_options(model_name, epochs=epochs, max_minutes=max_minutes))
    bar, epoch_lines = StageBar(), EpochLines(advice=FIT_ADVICE)
    try:
        with resume_hint(out, epoch_lines, "fit"), epoch_lines_warn_instead():
            run = frontdoor.fit(model_name, data, category=category, out=out, overwrite=overwrite, image_size=image_size,
                                center_crop=center_crop, batch_size=batch_size, progress=without_stage(bar, "train"),
                                calibration_split=calibration_split, on_epoch=epoch_lines, device=device, resume=resume,
                                **kwargs)
    finally:
        bar.close()
    ckpt = run.checkpoint
    m = ckpt.model
    click.echo(f"Fitted {m.name} ({m.backbone}: {', '.join(m.layers)}; weights {m.weights_source}) on {ckpt.info['n_train']} images in {run.seconds['fit']:.2f} s")
    training = ckpt.info.get("training")
    if training:
        held, loss = (f"{training['n_validation']} held out", "validation") if training["n_validation"] else ("none held out", "training")
        settings = m.get_config()["params"]
        if "teacher_epochs_run" in training:  # EfficientAD distils its teacher first
            cut = " (ended by its share of the time limit, teacher_time_share)" if training.get("teacher_stopped_by") == "max_minutes" else ""
            click.echo(f"Distilled the teacher for {training['teacher_epochs_run']}{of_epochs(settings, 'teacher_epochs')}{cut}")
        click.echo(f"Trained {training['epochs_run']}{of_epochs(settings, 'epochs')} on {training['n_train']} images, {held}: "
                   f"best epoch {training['best_epoch']} ({loss} loss {training['best_val_loss']:.4g}), "
                   f"stopped by {training['stopped_by']}")
        if run.out is not None:
            say_state_kept(run.out, "--param patience")
    print_metrics(ckpt.metrics, ckpt.calibration)
    warn_thresholds(ckpt.calibration)
    click.echo(f"Checkpoint: {run.out}")
    print_next_steps("Next:", [shlex.join(["edgeanomaly", "export", str(run.out), "--out", str(bundle_beside(run.out))])])


def of_epochs(params: dict[str, Any], key: str) -> str:
    """" of 20 epochs" (the setting ``key``), or " epochs" where the checkpoint does not say."""
    return f" of {params[key]} epochs" if isinstance(params.get(key), int) else " epochs"


def bundle_beside(run_dir: Path) -> Path:
    """Where the suggested export writes: ``pc.run`` -> ``pc.bundle``, ``runs/pc`` -> ``runs/pc.bundle``."""
    return run_dir.with_name(run_dir.name.removesuffix(".run") + ".bundle")


def training_options(model_name: str, **options: Any) -> dict[str, Any]:
    """``--epochs``/``--max-minutes`` as model settings; an error for a model that fits in one pass."""
    from edgeanomaly.models import TrainedModel, model_class  # torch: the training side

    given = {k: v for k, v in options.items() if v is not None}
    if given and not issubclass(model_class(model_name), TrainedModel):
        wrong = ["--" + k.replace("_", "-") for k in given]
        raise click.UsageError(f"{', '.join(wrong)} applies to models trained for epochs ({_TRAINED}); "
                               f"{model_name} fits in one pass")
    return given


def without_stage(bar: StageBar, stage: str) -> Any:
    """The progress hook without one stage (the epochs print their own lines)."""
    return lambda name, done, total: None if name == stage else bar(name, done, total)


class EpochLines:
    """One line per epoch on stderr: losses, the best epoch so far, time and ETA (the remaining
    epochs of the stage at the mean epoch time of that stage so far: EfficientAD's teacher and
    student epochs take different times; at most the time the stage has left of --max-minutes,
    ``seconds_left``; early stopping may end it sooner). After a stage's first epoch, a warning
    when the time limit leaves it fewer than half its epochs, ending with ``advice`` (what to do
    instead)."""

    def __init__(self, advice: str = "") -> None:
        self.seconds: dict[Any, list[float]] = {}
        self.last: dict[str, Any] | None = None  # the last whole epoch (its state is saved before it is reported)
        self.advice = advice

    def __call__(self, record: dict[str, Any]) -> None:
        self.last = record
        stage = record.get("stage")
        seconds = self.seconds.setdefault(stage, [])
        seconds.append(record["seconds"])
        eta = (record["epochs"] - record["epoch"]) * sum(seconds) / len(seconds)
        if record.get("seconds_left") is not None:
            eta = min(eta, max(record["seconds_left"], 0.0))
        left = f"about {eta / 60:.1f} min left" + (f" for the {stage}" if stage else "")
        held_out = f", held-out {record['val_loss']:.4g}" if record.get("held_out", True) else ""
        click.echo(f"  {stage + ' ' if stage else ''}epoch {record['epoch']}/{record['epochs']}: loss {record['train_loss']:.4g}"
                   f"{held_out} (best epoch {record['best_epoch']}), {record['seconds']:.1f} s, {left}", err=True)
        if len(seconds) == 1 and record.get("seconds_left") is not None:
            self._warn_if_cut_short(record, stage)

    def _warn_if_cut_short(self, record: dict[str, Any], stage: str | None) -> None:
        """Say when the time limit stops this stage after fewer than half its epochs (a model
        stopped that early may be undertrained, and the epoch lines alone do not say so)."""
        per_epoch, epochs = record["seconds"], record["epochs"]
        reachable = min(epochs, record["epoch"] + int(max(record["seconds_left"], 0.0) // max(per_epoch, 1e-9)))
        if 2 * reachable >= epochs:
            return
        whose = f"the {stage}'s {epochs} epochs" if stage else f"the {epochs} epochs"
        advice = f", {self.advice}" if self.advice else ""
        click.echo(f"  warning: at {per_epoch:.1f} s an epoch {whose} need about {epochs * per_epoch / 60:.1f} min, and "
                   f"the time limit stops it after about {reachable} of them: a model stopped that early may be undertrained. "
                   f"Give it more --max-minutes{advice}", err=True)


def say_state_kept(run_dir: Path, patience: str) -> None:
    """Say where a finished fit's training state is kept, its size, and that the same command
    with ``--resume`` trains it on (``patience``: how this command sets the patience)."""
    state = Path(run_dir) / frontdoor.TRAINING_STATE
    if state.is_file():
        click.echo(f"Its training state is kept in {state} ({format_bytes(state.stat().st_size)}): the same command with "
                   f"--resume trains it on (more --epochs, a longer --max-minutes or a larger {patience}); "
                   "delete it when you will not")


@contextlib.contextmanager
def epoch_lines_warn_instead() -> Iterator[None]:
    """No :class:`~edgeanomaly.errors.UndertrainedWarning` (Python's) from a fit on the command
    line: :class:`EpochLines` warns after a stage's first epoch, and the fit's summary says how
    many of its epochs each stage trained and what stopped it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndertrainedWarning)
        yield


@contextlib.contextmanager
def resume_hint(run_dir: Path, epochs: EpochLines, command: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM during a training that saved its state in ``run_dir``: say after which
    epoch, where the state is and the command that goes on from there (``edgeanomaly COMMAND ...
    --resume``), and exit with 130 or 143, instead of click's bare "Aborted!"."""
    try:
        yield
    except KeyboardInterrupt as stop:
        state = run_dir / frontdoor.TRAINING_STATE
        if not state.is_file():  # nothing trained yet (or a one-pass model): nothing to go on from
            raise
        last = epochs.last
        after = ("after " + (f"{last['stage']} " if last.get("stage") else "") + f"epoch {last['epoch']}/{last['epochs']}"
                 if last is not None else "before this run finished an epoch")
        again = this_command_with("--resume", command)
        how = "Stopped by SIGTERM" if isinstance(stop, Terminated) else "Interrupted"
        click.echo(f"\n{how} {after}; the state of the last whole epoch is in {state}.\n"
                   f"Continue with:\n  {again}", err=True)
        raise SystemExit(exit_status(stop)) from None
