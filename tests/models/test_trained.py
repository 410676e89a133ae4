"""What the models trained for epochs share (models/_trained.py): the training loop's settings,
declared once and taken as keywords by every trained model, each with its own defaults."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import torch
from _interrupt import ctrl_c_when_ready

from edgeanomaly.errors import ConfigError
from edgeanomaly.models import TrainedModel, TrainingSettings, create_model, list_models, model_class

TRAINED = [m for m in list_models() if issubclass(model_class(m), TrainedModel)]


def test_the_trained_models_are_fastflow_and_efficientad() -> None:
    assert TRAINED == ["efficientad", "fastflow"]


@pytest.mark.parametrize("name", TRAINED)
def test_every_training_setting_is_a_keyword_recorded_in_the_config(name: str) -> None:
    given = {"epochs": 7, "learning_rate": 3e-4, "weight_decay": 0.0, "train_batch_size": 2,
             "validation_fraction": 0.25, "patience": 3, "max_minutes": 1.5}
    assert set(given) == set(TrainingSettings.names())
    params = create_model(name, pretrained=False, random_state=5, **given).get_config()["params"]
    assert {k: params[k] for k in given} == given and params["random_state"] == 5
    assert isinstance(params["epochs"], int) and isinstance(params["learning_rate"], float)


def test_each_model_keeps_its_own_defaults() -> None:
    ff = create_model("fastflow", pretrained=False).get_config()["params"]
    ead = create_model("efficientad", pretrained=False).get_config()["params"]
    # FastFlow's paper: Adam 1e-3; EfficientAD's paper: Adam 1e-4 (batch 4 here, the paper's 1)
    assert (ff["learning_rate"], ff["train_batch_size"]) == (1e-3, 8)
    assert (ead["learning_rate"], ead["train_batch_size"]) == (1e-4, 4)
    assert ff["max_minutes"] is None and ead["max_minutes"] is None


@pytest.mark.parametrize("name", TRAINED)
def test_an_unknown_keyword_is_a_type_error_with_the_close_name(name: str) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword arguments: 'epoch' \(did you mean 'epochs'\?\)"):
        create_model(name, pretrained=False, epoch=3)


@pytest.mark.parametrize("setting, value, message", [
    ("epochs", True, "epochs as an integer >= 1"),
    ("train_batch_size", 0, "train_batch_size as an integer >= 1"),
    ("weight_decay", -1e-5, "weight_decay >= 0"),
    ("validation_fraction", -0.1, r"validation_fraction in \[0, 1\)"),
    ("max_minutes", float("inf"), "max_minutes > 0 or None"),
])
def test_settings_are_checked_when_made(setting: str, value, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainingSettings(**{setting: value})
    with pytest.raises(ConfigError, match=message):
        TrainingSettings().replace(**{setting: value})


def _flushing() -> bool:
    # a subnormal float32 times one: zero only while denormals are flushed
    return bool((torch.full((4,), 1e-39) * 1.0).eq(0).all())


@pytest.mark.parametrize("before", [False, True])
def test_train_epoch_flushes_denormals_while_it_trains_and_restores_the_setting(before) -> None:
    # subnormal weights and Adam moments made EfficientAD's epochs 4-5x slower after 30 epochs
    from edgeanomaly.models._trained import train_epoch

    if not torch.set_flush_denormal(before):
        pytest.skip("this CPU cannot flush denormals (torch.set_flush_denormal returned False)")
    try:
        w = torch.nn.Parameter(torch.ones(3))
        seen = []

        def loss_of(chunk):
            seen.append(_flushing())
            return (w * chunk.float()[:, None]).pow(2).mean()

        train_epoch(torch.arange(4), 2, loss_of, torch.optim.Adam([w], lr=1e-3))
        assert seen == [True, True]
        assert _flushing() is before
    finally:
        torch.set_flush_denormal(False)


_POOL_FLUSH = """
import torch
from edgeanomaly.models._trained import train_epoch
torch.set_num_threads(2)
x = torch.full((1 << 22,), 1e-39)
def zeros():  # share of subnormal products flushed to zero: each intra-op thread did part of them
    return float((x * 1.0).eq(0).float().mean())
zeros()  # the intra-op threads now exist, made while nothing was flushed
w = torch.nn.Parameter(torch.ones(3))
seen = []
def loss_of(chunk):
    seen.append(zeros())
    return (w * chunk.float()[:, None]).pow(2).mean()
train_epoch(torch.arange(4), 2, loss_of, torch.optim.Adam([w], lr=1e-3))
print(seen, zeros())
"""


def test_train_epoch_flushes_denormals_on_every_intra_op_thread() -> None:
    # The setting is per thread, and torch's intra-op threads take it from the thread that
    # makes them: set on the calling thread after they exist (a notebook that ran anything
    # first, or fit_run's feature extraction), half of each parallel op was still subnormal.
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals (torch.set_flush_denormal returned False)")
    p = subprocess.run([sys.executable, "-c", _POOL_FLUSH], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # all flushed while training, and the process's own threads left as they were
    assert p.stdout.strip() == "[1.0, 1.0] 0.0"


def test_train_epoch_raises_what_the_loss_raised_on_the_caller_thread() -> None:
    # the steps run on a thread of their own; their errors must still reach the caller
    from edgeanomaly.models._trained import train_epoch

    w = torch.nn.Parameter(torch.ones(3))

    def loss_of(chunk):
        raise ValueError("Expected a finite loss, got nan")

    with pytest.raises(ValueError, match="finite loss"):
        train_epoch(torch.arange(4), 2, loss_of, torch.optim.Adam([w], lr=1e-3))


_INTERRUPTED = """
import sys, time, torch
from edgeanomaly.models._trained import train_epoch
w = torch.nn.Parameter(torch.ones(3))
steps = []
def loss_of(chunk):
    steps.append(len(chunk))
    if len(steps) == 2:
        print("ready", flush=True)
    time.sleep(0.1)
    return (w * chunk.float()[:, None]).pow(2).mean()
try:
    train_epoch(torch.arange(200), 1, loss_of, torch.optim.SGD([w], lr=1e-3))
except KeyboardInterrupt:
    at = len(steps)
    time.sleep(0.5)
    print("interrupted", at, len(steps), flush=True)
"""


def test_ctrl_c_stops_the_epoch_at_its_next_step() -> None:
    # Ctrl-C reaches the caller's thread; the steps on their own thread must stop too, not
    # go on changing the weights behind the interrupted fit
    out = ctrl_c_when_ready(_INTERRUPTED)
    word, at, later = out.split()
    assert word == "interrupted" and int(at) < 200 and int(later) == int(at), out


_INTERRUPTED_MID_STEP = """
import torch
from edgeanomaly.models._trained import train_epoch
w = torch.nn.Parameter(torch.ones(256, 256))
x = torch.randn(512, 256)
started, ended = [], []
def loss_of(chunk):
    started.append(1)
    if len(started) == 2:
        print("ready", flush=True)
    for _ in range(300):  # a step of about a second, in torch's kernels
        y = torch.tanh(x @ w)
    ended.append(1)
    return y.pow(2).mean()
try:
    train_epoch(torch.arange(200), 1, loss_of, torch.optim.SGD([w], lr=1e-3))
except KeyboardInterrupt:
    print("interrupted", len(started), len(ended), flush=True)
"""


def test_ctrl_c_mid_step_waits_for_the_step_and_exits_cleanly() -> None:
    # Python 3.11's Thread.join(), interrupted, marks a thread that is still running as stopped
    # (it releases the thread's own lock), so a second join() returned at once: the step went on
    # in torch while the fit's exception unwound, and the interpreter, exiting under it, aborted
    # ("terminate called without an active exception", SIGABRT) instead of exiting.
    out = ctrl_c_when_ready(_INTERRUPTED_MID_STEP)
    word, started, ended = out.split()
    assert word == "interrupted" and started == ended, out  # the step in progress ended before the interruption went on


_TERMINATED_MID_STEP = """
import signal
import torch
from edgeanomaly._threads import Terminated, sigterm_as_interrupt
from edgeanomaly.models._trained import train_epoch
w = torch.nn.Parameter(torch.ones(256, 256))
x = torch.randn(512, 256)
started, ended, handlers = [], [], []
def loss_of(chunk):
    started.append(1)
    handlers.append(getattr(signal.getsignal(signal.SIGTERM), "__name__", "?"))
    if len(started) == 2:
        print("ready", flush=True)
    for _ in range(300):
        y = torch.tanh(x @ w)
    ended.append(1)
    return y.pow(2).mean()
with sigterm_as_interrupt():  # as every CLI command runs
    try:
        train_epoch(torch.arange(200), 1, loss_of, torch.optim.SGD([w], lr=1e-3))
    except Terminated:
        print("terminated", len(started), len(ended), handlers[0], flush=True)
"""


def test_sigterm_mid_step_is_deferred_as_ctrl_c_and_raised_as_terminated() -> None:
    # Under the CLI's SIGTERM-as-interrupt handler, SIGTERM raised inside the epoch's waits (a
    # Thread.start() cut short among them): 1 of 10 'export --recipe' runs stopped by SIGTERM
    # at epoch 2 aborted ("terminate called without an active exception", exit -6). It now
    # sets the steps' stop flag as Ctrl-C does, and Terminated is raised once the step ended.
    out = ctrl_c_when_ready(_TERMINATED_MID_STEP, signal.SIGTERM)
    word, started, ended, handler = out.split()
    assert word == "terminated" and started == ended, out
    assert handler != "_raise_terminated", out  # no exception can be raised in the waits while the epoch runs


@pytest.mark.parametrize("name", TRAINED)
@pytest.mark.parametrize("fraction, held_out", [(0.0, 0), (0.01, 1), (0.1, 5), (0.5, 25)])
def test_validation_fraction_zero_holds_no_image_out(name: str, fraction: float, held_out: int) -> None:
    # 0 trains on every image (no early stopping on held-out ones); any other fraction holds at least one out
    model = create_model(name, pretrained=False, validation_fraction=fraction, random_state=3)
    train, held = model._split(50)
    assert len(held) == held_out and sorted(torch.cat([train, held]).tolist()) == list(range(50))
