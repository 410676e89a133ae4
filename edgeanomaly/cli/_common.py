"""Shared CLI plumbing: turning our errors into clean messages, progress bars."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Sequence, TypeVar

import click

from edgeanomaly import registry
from edgeanomaly.errors import EdgeAnomalyError

F = TypeVar("F", bound=Callable[..., Any])


class _LiveChoice(click.Choice):
    """A choice read from the registry when it is used, so a row registered later is offered too."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        super().__init__(list(names()))

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:  # click.Choice.__init__ assigns; the registry rules
        pass


def backend_choice() -> click.Choice:
    """``--backend`` values: ``auto`` and every backend row of :mod:`edgeanomaly.registry`."""
    return _LiveChoice(lambda: ["auto", *registry.backend_names()])


def precision_choice() -> click.Choice:
    """``--precision`` values: the registry's artifact precisions."""
    return _LiveChoice(lambda: list(registry.PRECISIONS))


def friendly_errors(func: F) -> F:
    """Show an :class:`EdgeAnomalyError` as ``Error: <message>`` with exit code 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EdgeAnomalyError as exc:
            raise click.ClickException(str(exc)) from exc

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


def split_csv(value: str | None) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']; None or '' -> []."""
    if not value:
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


class StageBar:
    """One progress bar per stage, on stderr, only on a terminal."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar: Any = None
        self.done = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage, self.done = stage, 0
            self.bar = progress(length=total, label=f"{stage:<6}").__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
