"""Shared CLI plumbing: turning our errors into clean messages, progress bars."""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import click

from edgeanomaly import frontdoor, registry
from edgeanomaly._threads import Terminated, exit_status, sigterm_as_interrupt
from edgeanomaly.bundle import check_destination, resolve_trust
from edgeanomaly.errors import EdgeAnomalyError

F = TypeVar("F", bound=Callable[..., Any])


class _LiveChoice(click.Choice):
    """A choice read from the registry when it is used, so a row registered later is offered too."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        super().__init__(list(names()), case_sensitive=False)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:  # click.Choice.__init__ assigns; the registry rules
        pass


def backend_choice() -> click.Choice:
    """``--backend`` values: ``auto`` and every backend row of :mod:`edgeanomaly.registry`."""
    return _LiveChoice(lambda: ["auto", *registry.backend_names()])


def local_backend_choice() -> click.Choice:
    """``--backend`` values of a command that runs the graph here (``serve``): ``auto`` and
    every backend row that runs a local file (not an inference server)."""
    return _LiveChoice(lambda: ["auto", *(b.name for b in registry.backends() if not b.connects)])


def precision_choice() -> click.Choice:
    """``--precision`` values: the registry's artifact precisions."""
    return _LiveChoice(lambda: list(registry.PRECISIONS))


#: ``--exact`` of predict, validate, benchmark and serve (``load(..., exact=True)``).
exact_option = click.option(
    "--exact", is_flag=True,
    help="Run at f32 execution (exact to the torch model within 1e-4 for FP32), not the default: the fastest "
         "execution precision that passed at export and this device supports.",
)


#: ``--trust`` of predict, validate, benchmark, info and serve (``load(..., trust=...)``).
trust_option = click.option(
    "--trust", "trust", multiple=True, type=click.Path(exists=True, path_type=Path), metavar="KEYS",
    help="Run only bundles signed by these keys: a folder of .pub files or one .pub file (repeatable; several keys "
         "rotate). Default: $EDGEANOMALY_TRUST (paths separated by ':'), else no signature required.",
)


def trusted_keys(trust: Sequence[Path]) -> Any:
    """The :class:`~edgeanomaly.bundle.TrustedKeys` of ``--trust`` (else ``$EDGEANOMALY_TRUST``), or None."""
    return resolve_trust(list(trust) or None)


def friendly_errors(func: F) -> F:
    """Show an :class:`EdgeAnomalyError` as ``Error: <message>`` with exit code 1, not a traceback;
    SIGTERM stops the command as Ctrl-C does (its cleanup runs: temp files, partial outputs),
    and either ends it with a line saying which and the shell's code (143, 130), not click's
    "Aborted!" (exit 1). A command that keeps what it did says so itself first."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_as_interrupt():
                return func(*args, **kwargs)
        except EdgeAnomalyError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt as stop:
            click.echo("\n" + ("Stopped by SIGTERM" if isinstance(stop, Terminated) else "Interrupted (Ctrl-C)"), err=True)
            raise SystemExit(exit_status(stop)) from None

    return wrapper  # type: ignore[return-value]


def progress(iterable: Any = None, length: int | None = None, label: str = "", enabled: bool = True):
    """A click progress bar on stderr (hidden when not a terminal or when disabled)."""
    stream = sys.stderr
    # Off a terminal (CI logs, pipes) a bar only adds noise between result lines.
    return click.progressbar(
        iterable,
        length=length,
        label=label,
        file=stream,
        show_pos=True,
        hidden=not (enabled and stream.isatty()),
    )


def split_csv(value: str | None, lower: bool = False) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']; None or '' -> []. ``lower`` for case-insensitive names (FP16 = fp16)."""
    if not value:
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    return [v.lower() for v in items] if lower else items


def check_bundle_out(out: Path, overwrite: bool) -> None:
    """Fail now, not after minutes of work, when a bundle cannot be written at ``out``."""
    check_destination(out, overwrite, flag="--overwrite")


def check_run_dir(out: Path, overwrite: bool, resume: bool = False) -> None:
    """Fail now when writing a checkpoint into ``out`` would replace something not asked for.

    An empty or missing folder is fine; a run directory (``checkpoint.json``) is replaced only
    with ``--overwrite``; an interrupted training is continued only with ``--resume``; any other
    non-empty folder is never written into.
    """
    frontdoor.check_run_dir(out, overwrite, flag="--overwrite", option="--out", resume=resume, resume_flag="--resume")


class StageBar:
    """One progress bar per stage on stderr on a terminal (with an ETA); off a terminal one
    line per stage, then one every ``every_s`` seconds with the count done and an ETA."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.stage: str | None = None
        self.bar: Any = None
        self.done = 0
        self.every_s = every_s
        self.started = self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if stage != self.stage:
            self.close()
            self.stage, self.done = stage, 0
            self.started = self.last = now
            if not sys.stderr.isatty():  # a log still shows what the seconds are spent on
                click.echo(f"  ... {stage} ({total})", err=True)
            self.bar = progress(length=total, label=f"{stage:<6}").__enter__()
        self.bar.update(done - self.done)
        self.done = done
        if not sys.stderr.isatty() and now - self.last >= self.every_s and 0 < done < total:
            self.last = now
            eta = (now - self.started) / done * (total - done)
            click.echo(f"  ... {stage} {done}/{total}, about {eta:.0f} s left", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class Activity:
    """Shows that a long step without a known length is running: ``activity("int8 ...")``.

    On a terminal one line on stderr is redrawn with the elapsed seconds (every 0.5 s, from a
    daemon thread) until the next step starts or :meth:`close`; off a terminal each step
    prints one line when it starts, so a log shows what the minutes were spent on.
    """

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label: str | None = None
        self._stop: Any = None
        self._thread: Any = None

    def __call__(self, label: str) -> None:
        self.close()
        self.label = label
        if not self.tty:
            click.echo(f"  ... {label}", file=self.stream)
            return
        import threading
        import time

        stop = threading.Event()
        start = time.perf_counter()

        def redraw() -> None:
            while not stop.wait(0.5):
                click.echo(f"\r  ... {label} {time.perf_counter() - start:5.0f} s", file=self.stream, nl=False)

        self._stop, self._thread = stop, threading.Thread(target=redraw, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """End the current step (clears the terminal line)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            click.echo("\r\033[K", file=self.stream, nl=False)
            self._thread = self._stop = None
        self.label = None

    def __enter__(self) -> "Activity":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def this_command_with(flag: str, command: str) -> str:
    """The command line this process was started with (``edgeanomaly COMMAND ...``) plus ``flag``,
    to print after an interruption; a description where it was not started as ``edgeanomaly``
    (a test runner, a script calling ``main``)."""
    argv = sys.argv[1:]
    if command not in argv:
        return f"the same edgeanomaly {command} command with {flag}"
    return shlex.join(["edgeanomaly", *argv] + ([] if flag in argv else [flag]))


def print_next_steps(title: str, commands: list[str]) -> None:
    """The commands to run next, after ``title`` (fit, export and quickstart end with them)."""
    click.echo(title)
    for command in commands:
        click.echo(f"  {command}")
