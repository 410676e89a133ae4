"""Threads whose end the caller waits for, safe against Ctrl-C (torch-free; every layer).

In Python 3.11 a ``Thread.join()`` cut short by KeyboardInterrupt releases the running
thread's own lock and marks it stopped: a second ``join()`` returns at once, and the
interpreter no longer waits for it at exit, so a thread still inside a native library
(an OpenVINO compile, a torch step) is torn down under it and the process aborts
("terminate called without an active exception"). :class:`FinishingThread` is waited for on
an event its target sets as it returns, never in an interruptible ``join()``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["FinishingThread"]


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
