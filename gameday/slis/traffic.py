"""Steady traffic against the entry point, and the SLIs computed from it.

An open-loop generator: requests start on a fixed schedule whatever the previous
ones are doing, as users' requests do. Every request is a sample (start, end,
status, latency) kept in memory for the sliding windows and appended to
``samples.jsonl`` in the run directory for charts and audits.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gameday.store import utc_now

KEEP_S = 300.0

# The samples of the game day running in this process (its traffic, or a Deployment's
# status on kwok), for SLI probes (see activities).
LIVE: SampleLog | None = None


@dataclass(frozen=True)
class Sample:
    start_ns: int
    end_ns: int
    at_utc: str
    status: int
    latency_ms: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


@dataclass(frozen=True)
class Sli:
    """The SLIs over one window ending at ``at_ns``."""

    at_ns: int
    at_utc: str
    total: int
    success_ratio: float | None
    p50_ms: float | None
    p99_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SLI_FILE = "sli.jsonl"  # a game day's SLI windows, one JSON object a line (detection)


def sli_windows(run_dir: str | os.PathLike[str] | None, offset: int = 0,
                limit: int | None = 1 << 20, finished: bool = False,
                ) -> tuple[list[dict[str, Any]], int]:
    """The SLI windows a game day wrote to ``sli.jsonl`` after byte ``offset`` (at most
    ``limit`` bytes read), and where the next read starts: whole lines only while it
    runs, so a line being written is never half-read; once it has ``finished``, a last
    line without its newline counts if it parses (one cut by a crash does not)."""
    path = Path(run_dir) / SLI_FILE if run_dir else None
    if path is None or not path.is_file():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read() if limit is None else f.read(limit)
    whole = chunk if finished else chunk[:chunk.rfind(b"\n") + 1]
    out = []
    for line in whole.splitlines():
        try:
            window = json.loads(line)
        except ValueError:
            continue
        if isinstance(window, dict) and isinstance(window.get("at_ns"), int):
            out.append(window)
    return out, offset + len(whole)


def last_sli_window(run_dir: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The latest window with requests in it: what the SLIs are now."""
    path = Path(run_dir) / SLI_FILE if run_dir else None
    if path is None or not path.is_file():
        return None
    size = path.stat().st_size
    windows, _ = sli_windows(run_dir, max(0, size - 4096))
    return next((w for w in reversed(windows) if w.get("total")), None)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, int(-(-q * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class SampleLog:
    """Samples kept in completion order for sliding windows, and appended to a file."""

    def __init__(self, samples_path: Path | None):
        self._samples: deque[Sample] = deque()
        self._lock = threading.Lock()
        self._file = open(samples_path, "a", buffering=1) if samples_path else None  # noqa: SIM115

    def close(self) -> None:
        if self._file:
            self._file.close()

    def record(self, sample: Sample) -> None:
        end = sample.end_ns
        with self._lock:
            # Completions arrive nearly in order; keep the deque sorted by end time.
            self._samples.append(sample)
            if len(self._samples) > 1 and self._samples[-2].end_ns > end:
                ordered = sorted(self._samples, key=lambda s: s.end_ns)
                self._samples = deque(ordered)
            while self._samples and end - self._samples[0].end_ns > KEEP_S * 1e9:
                self._samples.popleft()
            if self._file and not self._file.closed:
                self._file.write(json.dumps(asdict(sample)) + "\n")

    def between(self, start_ns: int, end_ns: int) -> list[Sample]:
        """Samples that completed in ``(start_ns, end_ns]``."""
        with self._lock:
            samples = list(self._samples)
        ends = [s.end_ns for s in samples]
        return samples[bisect_left(ends, start_ns + 1):bisect_left(ends, end_ns + 1)]

    def sli(self, window_s: float, at_ns: int | None = None) -> Sli:
        at_ns = at_ns or time.monotonic_ns()
        window = self.between(at_ns - int(window_s * 1e9), at_ns)
        if not window:
            return Sli(at_ns, utc_now(), 0, None, None, None)
        latencies = sorted(s.latency_ms for s in window)
        ok = sum(1 for s in window if s.ok)
        return Sli(at_ns, utc_now(), len(window), ok / len(window),
                   percentile(latencies, 0.50), percentile(latencies, 0.99))


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
