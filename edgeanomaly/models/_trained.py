"""What the models trained for epochs (FastFlow, EfficientAD) share: the settings of the
training loop (:class:`TrainingSettings`, taken as keywords by every trained model, each
model's defaults in its ``training_defaults``), the fit pipeline's hooks (``epoch_callback``,
``training_state_path``, ``resume_training``), the seeded held-out split, the time limit, and
one training run's bookkeeping (:class:`TrainingRun`: history, best epoch and its weights,
state saved after each whole epoch and restored from it).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn

from edgeanomaly._telemetry import keep_torch_cache_out_of_temp
from edgeanomaly._threads import FinishingThread, deferring_interrupts, raise_deferred
from edgeanomaly.errors import ConfigError, UndertrainedWarning, UnknownSettingError
from edgeanomaly.models._base import AnomalyModel
from edgeanomaly.models._registry import close_names, named_settings

__all__ = ["TrainedModel", "TrainingSettings", "TrainingRun", "adam", "train_epoch", "check_number", "check_positive_int"]

#: The settings that only say when training stops: a resumed fit may change them (more epochs,
#: more patience, a longer time limit) and goes on as a fit asked for them at first would have.
#: Every other setting shapes the training, so a state is resumed only with the same ones.
STOPPING_RULES = ("epochs", "patience", "max_minutes")

#: ``epoch_callback(record)``: called after each epoch with that epoch's history record.
EpochCallback = Callable[[dict[str, Any]], None]


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"Expected {name} as an integer >= 1, got {value!r}")


def check_number(name: str, value: Any, ok: Callable[[float], bool], what: str) -> None:
    """``value`` is a finite real number for which ``ok`` holds (``what`` says the condition)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ConfigError(f"Expected {name} {what}, got {value!r}")


def _warn_from_the_callers_line(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first frame outside this package: the user's own
    call of ``fit`` (directly, through ``ea.fit`` or ``fit_run``), wherever inside the
    package the warning is made."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@dataclass(frozen=True)
class TrainingSettings:
    """The settings of the training loop that every model trained for epochs has, checked
    when made (a :class:`~edgeanomaly.errors.ConfigError` names the wrong one).

    Args:
        epochs: at most this many passes over the training images.
        learning_rate, weight_decay: Adam's.
        train_batch_size: images per optimiser step.
        validation_fraction: share of the normal images held out for early stopping (at least
            one image; none when fewer than 4 images are given). 0 holds none out: training
            then runs on every image, its own loss picks the best epoch and stops it early.
        patience: epochs without a better validation loss before training stops.
        max_minutes: stop after this much training time (None: no limit).

    The defaults are Adam's usual learning rate with a light weight decay (FastFlow's paper
    settings); a model with other defaults says so in its ``training_defaults``.

    >>> TrainingSettings(epochs=5).replace(max_minutes=2).max_minutes
    2.0
    """

    epochs: int = 100
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    train_batch_size: int = 8
    validation_fraction: float = 0.1
    patience: int = 10
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("train_batch_size", self.train_batch_size)
        check_positive_int("patience", self.patience)
        check_number("learning_rate", self.learning_rate, lambda v: v > 0, "> 0")
        check_number("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0")
        check_number("validation_fraction", self.validation_fraction, lambda v: 0 <= v < 1, "in [0, 1)")
        if self.max_minutes is not None:
            check_number("max_minutes", self.max_minutes, lambda v: v > 0, "> 0 or None")
        for f in dataclasses.fields(self):  # ints and floats as their declared kind (1 -> 1.0)
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, int(value) if f.type == "int" else float(value))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> "TrainingSettings":
        """These settings with ``changes`` (checked as when made)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class TrainedModel(AnomalyModel):
    """Base of the models trained for epochs in ``fit()`` (not from one pass of statistics).

    A subclass passes its own settings and the keywords it was given (``pretrained``,
    ``weights``, ``cache_dir``, ``random_state`` and the :class:`TrainingSettings`, declared
    here once); ``training_defaults`` holds its defaults for the latter."""

    min_distinct_images = 2
    int8_head_refit = False  # the networks are trained, not statistics of the features
    #: this model's defaults of the training loop's settings
    training_defaults: ClassVar[TrainingSettings] = TrainingSettings()

    def __init__(self, backbone: str, layers: Sequence[str] | None, settings: Mapping[str, Any], *,
                 pretrained: bool = True, weights: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, random_state: int | None = 0,
                 **training: Any) -> None:
        names = TrainingSettings.names()
        unknown = [k for k in training if k not in names]
        if unknown:
            known = [*named_settings(type(self)), *names, "pretrained", "weights", "cache_dir", "random_state"]
            raise UnknownSettingError(f"{type(self).__name__}() got unexpected keyword arguments: {close_names(unknown, known)}")
        loop = self.training_defaults.replace(**training)
        super().__init__(backbone, layers, pretrained, weights, cache_dir, random_state, {**settings, **loop.as_dict()})
        self.training_history_: list[dict[str, Any]] = []
        # Set by the fit pipeline; not settings, never saved with the model:
        #: called after each epoch with its record
        self.epoch_callback: EpochCallback | None = None
        #: where the state after each whole epoch is saved (atomically), so training can resume
        self.training_state_path: Path | None = None
        #: continue from ``training_state_path`` instead of starting again
        self.resume_training = False
        #: a digest of the training files (their contents, in order): a resume on other images
        #: of the same count is refused (None: only their count is compared)
        self.training_data_digest: str | None = None

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A seeded ``validation_fraction`` of ``n`` images held out (at least one; none when
        the fraction is 0 or fewer than 4 images are given): (train indices, held-out indices)."""
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self._seed()))
        fraction = self._settings["validation_fraction"]
        n_val = 0 if n < 4 or fraction == 0 else max(1, int(round(n * fraction)))
        return order[n_val:], order[:n_val]

    def _report(self, record: dict[str, Any], epochs: int) -> None:
        if self.epoch_callback is not None:
            self.epoch_callback({**record, "epochs": epochs})

    def _seconds_left(self, run: "TrainingRun", share: float = 1.0) -> float | None:
        """Seconds of ``max_minutes`` (or of that ``share`` of them) the run has left (None: no
        limit; <= 0: out of time)."""
        limit = self._settings["max_minutes"]
        return None if limit is None else 60 * limit * share - run.seconds()

    def _out_of_time(self, run: "TrainingRun") -> bool:
        left = self._seconds_left(run)
        return left is not None and left <= 0

    def _warn_if_cut_short(self, stages: Sequence[tuple[str, int, int, bool]]) -> None:
        """An :class:`UndertrainedWarning` naming each stage ``(what it did, epochs run, epochs
        asked for, ended by the time limit)`` that the time limit ended before half its epochs."""
        cut = [f"{did} {run} of its {asked} epochs" for did, run, asked, by_time in stages if by_time and 2 * run < asked]
        if cut:
            _warn_from_the_callers_line(
                f"{type(self).__name__} {' and '.join(cut)}: the time limit (max_minutes={self._settings['max_minutes']:g}) "
                "stopped it, and a model stopped that early may be undertrained. Give it a longer max_minutes (resume=True "
                "trains a saved run on), or fit on a GPU (device='cuda')", UndertrainedWarning)

    # The one-pass hooks of the base class: a trained model trains in fit() instead.
    def _finish(self) -> None:  # pragma: no cover - fit() is overridden
        raise TypeError(f"{type(self).__name__} trains its networks in fit()")


class TrainingRun:
    """One training run: the trained ``modules``, their ``optimisers``, a shuffling generator,
    the history and the best epoch with the weights of the ``kept`` modules at that epoch;
    saved after each whole epoch to the model's ``training_state_path`` and restored from it."""

    def __init__(self, model: TrainedModel, n_images: int, modules: Mapping[str, nn.Module],
                 optimisers: Mapping[str, torch.optim.Optimizer], kept: tuple[str, ...]) -> None:
        self.model, self.n_images = model, n_images
        self.modules, self.optimisers, self.kept = dict(modules), dict(optimisers), kept
        self.format = f"edgeanomaly-{model.name}-training"  # the saved state's ``format`` field
        self.gen = torch.Generator().manual_seed(model._seed() + 1)
        self.history: list[dict[str, Any]] = []
        self.best_loss, self.best_epoch = math.inf, 0
        self.best = self._weights()
        self.epoch = 0
        self.resumed_after: int | None = None
        self._before = 0.0  # training seconds of the interrupted run(s)
        self._start = time.perf_counter()

    def _weights(self) -> dict[str, Any]:
        return {name: copy.deepcopy(self.modules[name].state_dict()) for name in self.kept}

    def seconds(self) -> float:
        """Training time so far, the interrupted runs' included (--max-minutes counts it all)."""
        return self._before + time.perf_counter() - self._start

    def _identity(self) -> dict[str, Any]:
        return _comparable({"params": self.model.get_config()["params"], "n_images": self.n_images,
                            "images": self.model.training_data_digest})

    def epoch_limit(self) -> int:
        """The last epoch of the stage the run is in (``epochs``; a subclass with stages says its own)."""
        return int(self.model._settings["epochs"])

    def stops_at_once(self) -> str | None:
        """The stopping rule that would end this run before another epoch (None: it goes on)."""
        settings = self.model._settings
        if self.epoch >= self.epoch_limit():
            return "epochs"
        if self.epoch and self.epoch - self.best_epoch >= settings["patience"]:
            return "early stopping"
        return "max_minutes" if self.model._out_of_time(self) else None

    def improves(self, record: dict[str, Any]) -> bool:
        """Whether epoch ``record`` counts as the best so far."""
        return record["val_loss"] < self.best_loss

    def extra_state(self) -> dict[str, Any]:
        """What a subclass saves beside the common state (restored by :meth:`restore_extra`)."""
        return {}

    def restore_extra(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    def finished(self, record: dict[str, Any]) -> None:
        """Epoch ``record`` is done: keep the best weights, save the state."""
        self.history.append(record)
        self.epoch = record["epoch"]
        if self.improves(record):
            self.best_loss, self.best_epoch = record["val_loss"], record["epoch"]
            self.best = self._weights()
        path = self.model.training_state_path
        if path is None:
            return
        state = {"format": self.format, "identity": self._identity(), "epoch": self.epoch, "history": self.history,
                 "best_loss": self.best_loss, "best_epoch": self.best_epoch, "best": self.best,
                 "modules": {name: m.state_dict() for name, m in self.modules.items()},
                 "optimisers": {name: o.state_dict() for name, o in self.optimisers.items()},
                 "generator": self.gen.get_state(), "seconds": self.seconds(), **self.extra_state()}
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(state, path)

    def restore(self) -> None:
        """Continue from the saved state (a clear error when there is none, or it is another fit's)."""
        path = self.model.training_state_path
        name = type(self.model).__name__
        if path is None or not path.is_file():
            raise ConfigError(f"Nothing to resume: no training state at {path} (a {name} fit saves one after each epoch)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != self.format:
            raise ConfigError(f"The training state at {path} is not a {name} fit's ({state.get('format')!r}); "
                              "start again with --overwrite")
        saved = _comparable(state.get("identity", {}))
        now = self._identity()
        # a setting added after the state was saved: the value that version trained with
        implied = settings_before_recorded(type(self.model))
        saved["params"] = {**{k: implied[k] for k in now["params"] if k in implied}, **saved["params"]}
        differences = _differences(saved, now)
        if differences:
            raise ConfigError(f"The training state at {path} is of another fit: {', '.join(differences)}. Resume with "
                              f"its settings (only {', '.join(STOPPING_RULES[:-1])} and {STOPPING_RULES[-1]} may change) "
                              "or start again with --overwrite")
        for key, module in self.modules.items():
            module.load_state_dict(state["modules"][key])
        for key, optimiser in self.optimisers.items():
            optimiser.load_state_dict(state["optimisers"][key])
        self.gen.set_state(state["generator"])
        self.history, self.epoch = list(state["history"]), int(state["epoch"])
        self.best_loss, self.best_epoch, self.best = float(state["best_loss"]), int(state["best_epoch"]), state["best"]
        self.resumed_after, self._before = self.epoch, float(state["seconds"])
        self.restore_extra(state)
        if self.epoch > self.epoch_limit():
            raise ConfigError(f"The interrupted fit at {path} has run {self.epoch} epochs: epochs={self.epoch_limit()} is "
                              f"fewer; pass at least {self.epoch} (exactly {self.epoch} ends it where it was)")
        finished = state.get("finished")
        rule = self.stops_at_once() if finished else None
        if rule is not None:
            raise ConfigError(f"The fit at {path.parent} finished (stopped by {finished} after epoch {self.epoch}) and these settings "
                              f"stop it again at once ({rule}): to train it on, {self._go_on(rule)}")

    def _go_on(self, rule: str) -> str:
        """What lets the run past the stopping ``rule`` that ends it now."""
        if rule == "epochs":
            return f"ask for more epochs than {self.epoch}"
        if rule == "early stopping":
            return (f"set a patience above {self.epoch - self.best_epoch} (the best epoch, {self.best_epoch}, is that many "
                    "epochs back)")
        return f"set max_minutes above {self.seconds() / 60:.2f} (the minutes trained so far)"


def mark_finished(path: Path, stopped_by: str) -> None:
    """Mark the training state at ``path`` as that of a fit which ended (``stopped_by`` a
    stopping rule) and whose checkpoint is written: a resume then goes on only where its
    stopping rules let it train more (an interrupted fit's state has no mark)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["finished"] = stopped_by
    _save(state, path)


def _save(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a file beside ``path``, then renamed over it: a kill mid-save leaves the
    previous state whole, and Ctrl-C or a full disk mid-save no partial file beside it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def settings_before_recorded(cls: type) -> dict[str, Any]:
    """What each of ``cls``'s settings was before it existed: its ``unrecorded_settings`` value
    where it has one (as ``load_checkpoint`` applies them), else its constructor default (a
    setting is added with the old behaviour as its default)."""
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **cls.unrecorded_settings}


def _comparable(identity: Mapping[str, Any]) -> dict[str, Any]:
    """A saved run's identity without its stopping rules (states saved before they were left
    out of it still compare)."""
    params = {k: v for k, v in identity.get("params", {}).items() if k not in STOPPING_RULES}
    return {"params": params, "n_images": identity.get("n_images"), "images": identity.get("images")}


def _differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between a saved run's identity and this fit's, as ``"name saved (now this)"``."""
    found = []
    if saved["n_images"] != now["n_images"]:
        found.append(f"{saved['n_images']} training images (now {now['n_images']})")
    elif None not in (saved["images"], now["images"]) and saved["images"] != now["images"]:
        found.append(f"other training images (as many, {now['n_images']}, but not the same files, or in another order)")
    missing = object()
    for key in sorted({*saved["params"], *now["params"]}):
        was, is_ = saved["params"].get(key, missing), now["params"].get(key, missing)
        if was != is_:
            found.append(f"{key} {'unset' if was is missing else repr(was)} (now {'unset' if is_ is missing else repr(is_)})")
    return found


def _on_a_flushing_thread(work: Callable[[Callable[[], bool]], float]) -> float:
    """``work(stopped)`` on a new thread that flushes subnormal floats to zero (where the CPU
    can) before its first computation; its result or exception comes back here.

    Training drives some weights, gradients and Adam moments into the subnormal range, where
    x86 arithmetic is many times slower: EfficientAD's recipe went from 1.7 s to 8-9 s an epoch
    after about 30 epochs (docs/BENCHMARKS.md). The setting belongs to a thread, and torch's
    intra-op threads copy it from the thread that creates them: set on the caller, after its
    intra-op threads exist, it reached half of each parallel op. A new thread gets intra-op
    threads of its own, made after the setting, so all of them flush; they end with it, and the
    caller's threads, and so everything else in the process, compute as before.
    ``stopped()`` turns true when the caller is interrupted (Ctrl-C): ``work`` returns at its
    next step, and the interruption goes on from here once the step in progress has ended
    (further Ctrl-Cs wait for it too: an interpreter that exits while a thread is inside torch
    aborts, "terminate called without an active exception").

    On the main thread, while the epoch runs, Ctrl-C (and SIGTERM under the CLI, which raises it
    as :class:`~edgeanomaly._threads.Terminated`) sets ``stopped()`` instead of raising
    (:func:`edgeanomaly._threads.deferring_interrupts`): the caller's waits are never cut short,
    the step in progress ends, the thread is joined, and the interruption is raised then. Raised inside the waits it
    would have left the step running (``edgeanomaly._threads`` says why), and the interpreter,
    exiting under a thread inside torch, aborted. Elsewhere (a fit on another thread, a handler
    of the caller's own) an exception in the waits stops the thread and waits for its step."""
    result: dict[str, Any] = {}
    stop = threading.Event()

    def run() -> None:
        try:
            torch.set_flush_denormal(True)
            result["value"] = work(stop.is_set)
        except BaseException as error:  # noqa: BLE001  # raised again on the caller's thread
            result["error"] = error

    thread = FinishingThread(run, "edgeanomaly-train-epoch")
    with deferring_interrupts(stop.set) as interrupted:
        try:
            thread.start()
            thread.ended.wait()
        except BaseException:
            stop.set()
            thread.finish()  # its step in progress ends first (a thread not yet running finds stop set)
            raise
        thread.join()
    raise_deferred(interrupted)  # Ctrl-C, or SIGTERM under the CLI: once the step has ended
    if "error" in result:
        raise result["error"]
    return result["value"]


def adam(parameters: Any, **settings: Any) -> torch.optim.Adam:
    """``torch.optim.Adam(parameters, **settings)``, after :func:`keep_torch_cache_out_of_temp`:
    an optimiser imports ``torch._dynamo``, which made ``$TMPDIR/torchinductor_<user>`` and left
    it after every fit of a trained model."""
    keep_torch_cache_out_of_temp()
    return torch.optim.Adam(parameters, **settings)


def train_epoch(order: torch.Tensor, batch_size: int, loss_of: Callable[[torch.Tensor], torch.Tensor],
                optimiser: torch.optim.Optimizer) -> float:
    """One pass over the indices ``order`` in chunks of ``batch_size``, one optimiser step per
    chunk on ``loss_of(chunk)`` (the chunk's mean loss), with subnormal floats flushed to zero
    on every thread that computes it (:func:`_on_a_flushing_thread`); returns the mean loss per
    index."""

    def steps(stopped: Callable[[], bool]) -> float:
        total = 0.0
        for start in range(0, len(order), batch_size):
            if stopped():
                break
            chunk = order[start : start + batch_size]
            with torch.enable_grad():
                loss = loss_of(chunk)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(chunk)
        return total / max(1, len(order))

    return _on_a_flushing_thread(steps)
