"""Threads whose end the caller waits for, safe against Ctrl-C, and signal handlers set for a
while (torch-free; every layer).

In Python 3.11 a ``Thread.join()`` cut short by KeyboardInterrupt releases the running
thread's own lock and marks it stopped: a second ``join()`` returns at once, and the
interpreter no longer waits for it at exit, so a thread still inside a native library
(an OpenVINO compile, a torch step) is torn down under it and the process aborts
("terminate called without an active exception"). :class:`FinishingThread` is waited for on
an event its target sets as it returns, never in an interruptible ``join()``. :func:`handling`
lets a caller turn a signal into what it needs (Ctrl-C into a stop flag, SIGTERM into Ctrl-C)
for the length of a ``with`` block; :func:`sigterm_as_interrupt` is the latter: SIGTERM raises
:class:`Terminated`, a KeyboardInterrupt, so a stop by a supervisor runs the same cleanup as
Ctrl-C, and :func:`exit_status` gives the shell's code for either.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator

__all__ = ["FinishingThread", "Terminated", "deferring_interrupts", "exit_status", "handling", "raise_deferred",
           "sigterm_as_interrupt"]


def _wait_through_interruptions(event: threading.Event) -> bool:
    """Wait until ``event`` is set, however many KeyboardInterrupts arrive meanwhile; whether
    one did."""
    interrupted = False
    while True:
        try:
            event.wait()
            return interrupted
        except KeyboardInterrupt:
            interrupted = True


class FinishingThread(threading.Thread):
    """A thread (not a daemon: an exiting interpreter waits for it) with ``ended``, set once
    its target has returned or raised, and :meth:`finish`, which waits for that."""

    def __init__(self, target: Callable[[], Any], name: str) -> None:
        super().__init__(target=target, name=name)
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.ended.set()

    def finish(self) -> None:
        """Wait until the target has returned (a no-op before :meth:`start`). A Ctrl-C meanwhile
        is raised once it has: work in a native library cannot be cut short."""
        if self.ident is None:
            return
        interrupted = _wait_through_interruptions(self.ended)
        self.join()  # the target has returned: only the thread's own exit is left
        if interrupted:
            raise KeyboardInterrupt


@contextlib.contextmanager
def handling(signum: int, handler: Callable[[int, Any], None], over: Any = None) -> Iterator[None]:
    """Within: ``handler`` handles ``signum``, then the previous handler is back. Set on the main
    thread only (only there can a handler be set) and only over ``over``, by default Python's
    default for the signal (``default_int_handler`` for SIGINT, ``SIG_DFL`` otherwise): a handler
    of the caller's own, or an ignored signal, is left as it is."""
    if over is None:
        over = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signum) is not over:
        yield
        return
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a supervisor's stop: systemd, a container runtime, a CI job's timeout), raised
    where Ctrl-C's KeyboardInterrupt would be, so the process ends as on Ctrl-C (its cleanup
    runs, what was done is kept and said), not at once."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """Within: SIGTERM raises :class:`Terminated` (see :func:`handling` for where it is set)."""
    return handling(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def deferring_interrupts(stop: Callable[[], None] = lambda: None, repeated_raises: bool = False) -> Iterator[list[int]]:
    """Within: Ctrl-C, and SIGTERM where :func:`sigterm_as_interrupt` set it, call ``stop()`` and
    are recorded in the list yielded instead of raising anywhere in the block (an interrupted
    ``Thread.start()`` or ``join()`` leaves a thread running that the exiting interpreter then
    aborts under); :func:`raise_deferred` raises the first once the block is done. With
    ``repeated_raises`` a second one raises at once, where it lands (the block may wait on
    what the user cannot see end: a write to a pipe nobody reads)."""
    signums: list[int] = []

    def record(signum: int, frame: Any) -> None:
        signums.append(signum)
        if repeated_raises and len(signums) > 1:
            raise_deferred(signums)
        stop()

    with handling(signal.SIGINT, record), handling(signal.SIGTERM, record, over=_raise_terminated):
        yield signums


def raise_deferred(signums: list[int]) -> None:
    """Raise the first interruption :func:`deferring_interrupts` recorded (none: return)."""
    if signums:
        raise Terminated if signums[0] == signal.SIGTERM else KeyboardInterrupt


def exit_status(stop: KeyboardInterrupt) -> int:
    """The shell's code for a process stopped by ``stop``: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
