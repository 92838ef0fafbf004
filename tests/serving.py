"""Waiting in tests: one helper that polls until something holds (``eventually``), and
``gameday serve`` as a real process: wait until it answers."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``check`` until it returns something true, and return that; fail the test
    after ``timeout`` seconds, saying what it waited for (``what`` may be a callable
    that says it then, from what it sees)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for "
                                 f"{what() if callable(what) else what}")
        time.sleep(every)


def wait_until_serving(base: str, timeout: float = 30) -> None:
    """Until ``BASE/healthz`` answers (the server is listening), or fail the test."""
    def answers() -> bool:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).close()
        except OSError:
            return False
        return True

    eventually(answers, timeout, f"gameday serve to answer on {base}", every=0.2)
