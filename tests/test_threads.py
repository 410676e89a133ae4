"""edgeanomaly._threads: a thread waited for through Ctrl-C (real SIGINTs, in a new interpreter)."""

from __future__ import annotations

from _interrupt import ctrl_c_when_ready

_WAITED = """
import threading, time
from edgeanomaly._threads import FinishingThread
done = []
def work():
    time.sleep(0.3)  # the caller is waiting by now
    print("ready", flush=True)
    for _ in range(40):  # about a second
        time.sleep(0.025)
    done.append(1)
thread = FinishingThread(work, "work")
thread.start()
try:
    {wait}
except KeyboardInterrupt:
    print("interrupted", len(done), thread.is_alive(), flush=True)
"""


def test_finish_raises_the_ctrl_c_once_the_target_has_returned() -> None:
    assert ctrl_c_when_ready(_WAITED.format(wait="thread.finish()")).strip() == "interrupted 1 False"


def test_finish_before_start_returns_and_after_the_end_joins() -> None:
    from edgeanomaly._threads import FinishingThread

    ran = []
    thread = FinishingThread(lambda: ran.append(1), "t")
    thread.finish()  # not started: nothing to wait for
    thread.start()
    thread.finish()
    assert ran == [1] and not thread.is_alive() and thread.ended.is_set()


def test_deferred_interrupts_wait_for_the_block_and_a_second_one_raises_at_once() -> None:
    # a result line held by a full pipe nobody reads must not make Ctrl-C powerless
    import os
    import signal

    import pytest

    from edgeanomaly._threads import deferring_interrupts, raise_deferred

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferring_interrupts(repeated_raises=True) as signums:
            os.kill(os.getpid(), signal.SIGINT)  # recorded, the block goes on
            reached.append("after the first")
            os.kill(os.getpid(), signal.SIGINT)  # raises here
            reached.append("after the second")
    assert reached == ["after the first"] and signums == [signal.SIGINT, signal.SIGINT]
    with pytest.raises(KeyboardInterrupt):
        with deferring_interrupts() as signums:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # without repeated_raises: recorded too
            reached.append("block done")
        raise_deferred(signums)
    assert reached[-1] == "block done" and len(signums) == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
