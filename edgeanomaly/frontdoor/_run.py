"""The training half of the front door: ``fit`` a registered model, ``export`` the run to a bundle.

These need the ``[train]`` extra. torch is imported inside ``fit``, ``export`` and
``Run.open`` only (the torch boundary): importing ``edgeanomaly``, and everything a device
does with a bundle, never imports it. Each wraps one public API: :func:`edgeanomaly.models.fit_run`,
:func:`edgeanomaly.models.load_checkpoint`, :func:`edgeanomaly.export.export_checkpoint`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from edgeanomaly._optional import require
from edgeanomaly.bundle import check_destination
from edgeanomaly.errors import ConfigError
from edgeanomaly.frontdoor._bundle import Bundle
from edgeanomaly.frontdoor._forward import Forward

#: What a model trained for epochs saves in its run directory after each epoch: the name
#: ``edgeanomaly.models._pipeline.TRAINING_STATE`` writes (repeated here: that module imports
#: torch, and checking a run directory must not; a test keeps the two equal).
TRAINING_STATE = "training-state.pt"

if TYPE_CHECKING:
    from edgeanomaly.models import AnomalyModel, Checkpoint


@dataclass
class Run:
    """A fitted model and what fitting measured; :meth:`export` turns it into a bundle.

    Attributes:
        checkpoint: the :class:`edgeanomaly.models.Checkpoint` (model, preprocessing,
            calibration, provenance, test metrics) that export reads.
        out: the run directory it was saved in, or None.
        seconds: time per stage of the fit (``setup``, ``fit``, ...); empty for an opened run.
    """

    checkpoint: Checkpoint
    out: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        """The run that ``fit`` (or ``edgeanomaly fit``) saved in ``path`` (imports torch)."""
        require("torch", "opening a fitted run")
        from edgeanomaly.models import load_checkpoint  # torch: the training side

        return cls(load_checkpoint(path), Path(path))

    model = Forward["AnomalyModel"]("checkpoint", "The fitted torch model.")
    metrics = Forward["dict[str, float]"]("checkpoint", "Test metrics of the torch model (empty without a labelled test split).")
    calibration = Forward["dict[str, Any] | None"](
        "checkpoint", "The calibration computed at fit time (thresholds, normalisation, on which images).")

    def export(self, out: str | os.PathLike[str], **options: Any) -> Bundle:
        """Write this run as a bundle: :func:`edgeanomaly.frontdoor.export` of this run."""
        return export(self, out, **options)


def check_run_dir(out: str | os.PathLike[str], overwrite: bool, *, flag: str = "overwrite=True", option: str = "out",
                  resume: bool = False, resume_flag: str = "resume=True") -> None:
    """Raise :class:`ConfigError` when saving a run into ``out`` would replace what nobody asked to replace.

    An empty or missing folder is fine; a run directory (``checkpoint.json``) is replaced only
    with ``overwrite`` (``flag`` is how the caller's user says so); a folder holding the state
    of a training (``training-state.pt``: an interrupted one, or one that finished and may train
    on) is continued with ``resume`` or started again with ``overwrite``; any other non-empty
    folder is never written into. ``option`` names the argument in messages.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"Expected a run directory at {out}, found a file; choose another {option}")
    interrupted = (out / TRAINING_STATE).is_file()
    if resume:
        if not interrupted:
            raise ConfigError(f"Nothing to resume in {out}: no {TRAINING_STATE} there (a model trained for epochs saves "
                              "it after each epoch of a fit into that run directory)")
        return
    if interrupted and not overwrite:
        if (out / "checkpoint.json").is_file():  # a fit that finished, or was interrupted training on
            raise ConfigError(f"Run directory {out} already exists; pass {flag} to replace its checkpoint, or {resume_flag} "
                              "to train it on from its saved state (with more epochs, a longer time limit or more patience)")
        raise ConfigError(f"{out} holds an interrupted training ({TRAINING_STATE}); pass {resume_flag} to continue it "
                          f"or {flag} to start again")
    if not out.is_dir() or not any(out.iterdir()) or interrupted:
        return
    if not (out / "checkpoint.json").is_file() and not (out / "model.pt").is_file():
        raise ConfigError(f"{out} exists and is not a run directory (no checkpoint.json); refusing to write into it. Choose another path.")
    if not overwrite:
        raise ConfigError(f"Run directory {out} already exists; pass {flag} to replace its checkpoint")


def fit(
    model: str,
    data: str | os.PathLike[str],
    *,
    category: str | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    image_size: int | Sequence[int] = 256,
    center_crop: int | Sequence[int] | None = None,
    batch_size: int = 16,
    calibration_split: str = "from_test",
    progress: Callable[[str, int, int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
    device: str | None = "cpu",
    **model_kwargs: Any,
) -> Run:
    """Fit a registered model on the normal images of ``data`` (in one pass, or trained for
    epochs: ``"fastflow"``, ``"efficientad"``), calibrate its thresholds and measure it on the
    labelled test split (``[train]`` extra: torch, on the CPU or a CUDA GPU).

    Args:
        model: a registered model: ``"patchcore"``, ``"padim"``, ``"dfm"``, ``"dfkde"``,
            ``"fastflow"``, ``"efficientad"`` (:func:`edgeanomaly.models.list_models`).
        data: dataset folder: MVTec layout (with ``category``) or a folder of normal images.
        out: run directory to save the checkpoint in (None: keep it in memory only). An
            existing run directory is replaced only with ``overwrite=True``.
        image_size, center_crop: model input (resize, then an optional centre crop).
        calibration_split: ``"from_test"`` (thresholds from a stratified half of the test
            images, metrics from the other half) or ``"same_as_test"``.
        progress: called as ``progress(stage, done, total)``.
        on_epoch: a model trained for epochs (``"fastflow"``, ``"efficientad"``) calls it after each epoch with
            that epoch's record (losses, best epoch, seconds).
        resume: continue a training interrupted in ``out`` (it saves its state there after each
            epoch) and end as the uninterrupted fit would have; the same settings but for
            ``epochs``, ``patience`` and ``max_minutes``, which may change. A fit that finished
            keeps its state there too, so ``resume`` with more ``epochs`` (or a longer
            ``max_minutes``, a larger ``patience``) trains it on, and ends as a fit asked for
            those at first would have.
        device: where features and training run: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
            ``"auto"`` (CUDA when torch sees one); the checkpoint is the same either way.
        batch_size: images per batch of the backbone's pass.
        model_kwargs: the model's settings (``backbone``, ``layers``, ``random_state``,
            ``pretrained``, ``coreset_ratio``; for a model trained for epochs ``epochs``,
            ``max_minutes``, ``patience``, ...).

    Returns:
        a :class:`Run`; ``run.export(out)`` writes the bundle.

    >>> import edgeanomaly as ea
    >>> run = ea.fit("patchcore", "data", category="metal", out="pc.run")   # doctest: +SKIP
    >>> run.metrics["image_auroc"]                                         # doctest: +SKIP
    1.0
    """
    if out is not None:
        check_run_dir(out, overwrite, resume=resume)
    require("torch", "fitting models")
    from edgeanomaly.models import fit_run  # torch: the training side

    result = fit_run(model, data, out, category=category, image_size=image_size, center_crop=center_crop,
                     batch_size=batch_size, progress=progress, calibration_split=calibration_split, on_epoch=on_epoch,
                     resume=resume, device=device, **model_kwargs)
    return Run(result.checkpoint, result.out, result.seconds)


def export(
    run: Run | Checkpoint | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    formats: Sequence[str] | None = None,
    precisions: Sequence[str] = ("fp32",),
    static_batch: int | None = None,
    calibration_data: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    allow_degraded: bool = False,
    only: Sequence[str] | None = None,
    step: Callable[[str, float, int | None], None] | None = None,
    begin: Callable[[str], None] | None = None,
) -> Bundle:
    """Export a fitted run to a versioned bundle, each artifact checked against the torch model
    (``[train]`` extra): :func:`edgeanomaly.export.export_checkpoint`.

    Args:
        run: a :class:`Run`, a :class:`edgeanomaly.models.Checkpoint`, or a run directory.
        out: bundle directory, or a path ending in ``.zip``; replaced only with ``overwrite``.
        formats, precisions: registered formats (default: every one) x ``fp32``, ``fp16``, ``int8``.
        static_batch: fix the batch dimension (NPUs); None: dynamic.
        calibration_data: dataset to recompute the calibration and run parity on.
        allow_degraded: keep artifacts that fail the verdict, marked ``degraded``.
        only: write only these artifacts (``"onnx-fp32"``, ``"openvino-int8"``).
        step, begin: progress callbacks (see ``export_checkpoint``).

    Returns:
        the :class:`Bundle` written; ``bundle.export_report`` has sizes, parity and seconds.

    Raises:
        ParityError: an FP32 artifact differs from the torch model by more than 1e-4.
    """
    check_destination(out, overwrite)
    require("torch", "exporting models")
    from edgeanomaly.export import export_checkpoint  # torch: the training side
    from edgeanomaly.models import Checkpoint  # torch: the training side

    if isinstance(run, Run):
        checkpoint = run.checkpoint
    elif isinstance(run, Checkpoint):
        checkpoint = run
    elif isinstance(run, (str, os.PathLike)):
        checkpoint = Run.open(run).checkpoint
    else:
        raise TypeError(f"Expected a Run, a Checkpoint or a run directory, got {type(run).__name__}")
    report = export_checkpoint(checkpoint, out, formats, precisions, static_batch=static_batch,
                               calibration_data=calibration_data, overwrite=overwrite, step=step, begin=begin,
                               only=only, allow_degraded=allow_degraded)
    return Bundle(report.out, export_report=report)
