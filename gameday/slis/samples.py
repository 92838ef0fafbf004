"""SLI samples, and the SLIs computed from them: the one shape every SLI source feeds.

A source (synthetic traffic against an entry point, a Deployment's status, ...) records
``Sample``s into a ``SampleLog``: kept in memory for the detector's sliding windows and
appended to ``samples.jsonl`` in the run directory for charts and audits. ``SliSource``
is what a game day asks of one (docs/extending.md: adding an SLI source). The SLI
windows the detector computes go to ``sli.jsonl`` (``sli_windows`` reads them back)
and to the store (``gameday.store.slis``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from gameday.store import utc_now

KEEP_S = 300.0

# The samples of the game day running in this process (its traffic, or a Deployment's
# status on kwok), for SLI probes (see activities).
LIVE: SliSource | None = None


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


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, int(-(-q * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class SampleLog:
    """Samples kept in completion order for sliding windows, and appended to a file."""

    unit = "request"

    def __init__(self, samples_path: Path | None):
        self._samples: deque[Sample] = deque()
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._count = 0  # samples recorded so far
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
            self._count += 1
            self._recorded.notify_all()

    def wait_recorded(self, seen: int, timeout: float) -> int:
        """How many samples have been recorded, once more than ``seen`` have or
        ``timeout`` has passed: whoever judges the samples wakes when one arrives,
        rather than look again at an interval of its own."""
        with self._recorded:
            self._recorded.wait_for(lambda: self._count > seen, timeout)
            return self._count

    def between(self, start_ns: int, end_ns: int) -> list[Sample]:
        """Samples that completed in ``(start_ns, end_ns]``."""
        with self._lock:
            samples = list(self._samples)
        ends = [s.end_ns for s in samples]
        return samples[bisect_left(ends, start_ns + 1):bisect_left(ends, end_ns + 1)]

    def needed(self, window_s: float) -> int:
        """How many samples a window holds before its SLIs count (the steady state):
        half of what ``rate`` fills it with, at least five."""
        rate: float = getattr(self, "rate", 0.0)
        return max(5, int(rate * window_s * 0.5))

    def sli(self, window_s: float, at_ns: int | None = None) -> Sli:
        at_ns = at_ns or time.monotonic_ns()
        window = self.between(at_ns - int(window_s * 1e9), at_ns)
        if not window:
            return Sli(at_ns, utc_now(), 0, None, None, None)
        latencies = sorted(s.latency_ms for s in window)
        ok = sum(1 for s in window if s.ok)
        return Sli(at_ns, utc_now(), len(window), ok / len(window),
                   percentile(latencies, 0.50), percentile(latencies, 0.99))


class SliSource(Protocol):
    """Where a game day reads its SLIs from. ``start`` begins sampling, ``stop`` ends it
    (and closes the samples file); ``rate`` is how many samples a second it expects (the
    steady-state wait uses it). ``between``, ``sli`` and ``wait_recorded`` come with
    ``SampleLog``: subclass it and ``record`` each sample."""

    rate: float
    unit: str  # what one sample is: "request", "reading" or "replica" (events.SAMPLES)

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def between(self, start_ns: int, end_ns: int) -> list[Sample]: ...

    def sli(self, window_s: float, at_ns: int | None = None) -> Sli: ...

    def needed(self, window_s: float) -> int: ...

    def wait_recorded(self, seen: int, timeout: float) -> int: ...
