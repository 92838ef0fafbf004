"""Synthetic traffic: steady requests against an entry point, each one a sample.

An open-loop generator: requests start on a fixed schedule whatever the previous
ones are doing, as users' requests do. It is the SLI source of the sandbox and kind
targets (``gameday.slis.samples.SliSource``).
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from gameday.slis.samples import Sample, SampleLog
from gameday.store import utc_now


class Traffic(SampleLog):
    """Open-loop HTTP requests against the entry point, each one a sample."""

    def __init__(self, url: str, rate: float, timeout_s: float, samples_path: Path | None):
        super().__init__(samples_path)
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"traffic needs an http://host[:port]/path URL, not {url!r}")
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path or "/"
        self.rate, self.timeout_s = rate, timeout_s
        self._stop = threading.Event()
        workers = max(8, int(rate * timeout_s) + 4)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="traffic")
        self._thread = threading.Thread(target=self._schedule, name="traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.close()

    def _schedule(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._request)
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()  # fell behind: don't burst to catch up

    def _request(self) -> None:
        start = time.monotonic_ns()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):  # refused, reset, timed out
            status = 0
        finally:
            conn.close()
        end = time.monotonic_ns()
        self.record(Sample(start, end, utc_now(), status, (end - start) / 1e6))
