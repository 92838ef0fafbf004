"""Signals during a game day: what arrived, and when it may interrupt.

``install()`` makes SIGINT raise ``KeyboardInterrupt`` and SIGTERM raise ``Terminated``
(a ``SystemExit`` with code 143), so every ``finally`` runs, and remembers which came
first: the command exits ``128 + signal`` (130, 143), never 0. chaoslib installs its own
SIGTERM handler while an experiment runs, which raises an ``Exception`` that an
activity in progress would take as its own failure; ``install()`` points that handler
at ours, so a signal during a chaos action is never mistaken for the action failing.

Inside ``shielded()`` (the rollbacks, the clean-up, the review) a signal is only
remembered: the work that undoes the fault is never cut short by the signal asking for
it. Once one signal has interrupted the game day, everything after it is that
clean-up: a second Ctrl-C (or SIGTERM) is remembered too, never raised, so it cannot cut
short the rollbacks the first one started (to abandon them: SIGKILL, then ``gameday
recover``).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(SystemExit):
    """SIGTERM: unwind through every ``finally``; the process exits 143."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


received: int | None = None  # the first signal that arrived
_shield_depth = 0
_unwinding = False  # a signal (or ``stop_main``) has interrupted: the rest is clean-up
_asked = False  # this process asked its main thread to stop (``stop_main``): not a signal


def _handler(signum: int, frame: FrameType | None = None) -> None:
    global received, _asked, _unwinding
    if signum == signal.SIGINT and _asked:
        _asked = False
        if not _shield_depth and not _unwinding:
            _unwinding = True
            raise KeyboardInterrupt
        return
    if received is None:
        received = signum
    if _shield_depth or _unwinding:  # Python runs signal handlers on the main thread only
        return
    _unwinding = True
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated()


def install() -> None:
    global received, _unwinding
    received = None
    _unwinding = False
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    try:
        import chaoslib.exit

        chaoslib.exit._terminate_now = _handler  # used by chaoslib's exit_signals()
    except ImportError:  # pragma: no cover - chaoslib is a dependency
        pass


def installed() -> bool:
    return signal.getsignal(signal.SIGINT) is _handler


@contextmanager
def shielded() -> Iterator[None]:
    """Remember signals instead of raising them while the block runs."""
    global _shield_depth
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1


def settle() -> None:
    """The game day is over and its verdict given: what is left is the way out (the
    store closed, the exit). A signal from now on is remembered, never raised: it could
    only interrupt that, midway (a database connection closing), and the exit code is
    the verdict's."""
    global _unwinding
    _unwinding = True


def raise_if_received() -> None:
    """Act now on a signal that arrived while shielded."""
    if received is not None and not _shield_depth:
        _handler(received)


def exit_code() -> int | None:
    """``128 + signal`` if a signal arrived, else None."""
    return None if received is None else 128 + received


def reader_gone() -> None:
    """Whoever read the output went away (``gameday run ... | head -1``: a broken pipe).
    From any thread: the game day stops as on SIGTERM (its fault rolled back, its review
    written), on the record as SIGPIPE, and exits 141, as a shell reports a tool its
    broken pipe ended."""
    global received
    if received is None:
        received = signal.SIGPIPE
    os.kill(os.getpid(), signal.SIGTERM)  # the handler runs on the main thread


def name() -> str | None:
    return None if received is None else signal.Signals(received).name


def stop_main() -> None:
    """From another thread: stop the main thread as Ctrl-C would, without it counting
    as a signal from outside (a stop condition: the command's exit code says so)."""
    global _asked
    _asked = True
    interrupt_main()


def interrupt_main() -> None:
    """From another thread: stop the main thread as Ctrl-C would (SIGINT to it, so a
    sleep or a wait there ends at once)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
