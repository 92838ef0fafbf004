"""``gameday serve`` as a real process in tests: wait until it answers."""

from __future__ import annotations

import time
import urllib.request


def wait_until_serving(base: str, timeout: float = 30) -> None:
    """Until ``BASE/healthz`` answers (the server is listening), or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "gameday serve did not start"
            time.sleep(0.2)
