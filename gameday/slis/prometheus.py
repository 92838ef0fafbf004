"""SLIs read from a team's own Prometheus, with the team's own PromQL.

Every ``interval`` the source asks Prometheus (``/api/v1/query``) for the success ratio
and the latency percentile (in milliseconds) the scenario's ``sli`` names. Each reading
is kept as one sample for the detector: good or bad against the objective, its latency
the percentile read; the SLIs of a window are the newest reading in it, as Prometheus
computed them (not an aggregate of readings). Synthetic traffic to the entry point can
run beside it as load (its requests are not the SLIs). A reading that fails (Prometheus
unreachable, a query that returns no series) is skipped and counted; one must succeed
within the scenario's steady-state timeout, or the game day ends before any fault.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.core.errors import GamedayError, ValidationError
from gameday.slis.samples import Sample, SampleLog, Sli, SliSource
from gameday.store import utc_now

log = logging.getLogger(__name__)
TIMEOUT_S = 5.0


Origin = tuple[str, str]  # the file and the field a query was written in


@dataclass(frozen=True)
class Queries:
    prometheus: str         # http://HOST:PORT of the team's Prometheus
    success_ratio: str      # PromQL: the share of good requests, 0..1
    latency_p99_ms: str     # PromQL: the latency percentile the SLO names, in ms
    interval_s: float = 1.0
    origins: tuple[Origin, Origin] | None = None  # where each was written


class NotServed(GamedayError):
    """A path of Prometheus's API this server does not serve (404): a
    Prometheus-compatible store (Thanos, Mimir, VictoriaMetrics) serves only some."""


def api(prometheus: str, path: str, *, timeout_s: float = TIMEOUT_S, **params: str) -> Any:
    """The ``data`` of one answer of Prometheus's HTTP API (``path`` under ``/api/v1/``).
    Raises NotServed for a path it does not serve, and GamedayError, saying where, when
    it cannot answer otherwise: unreachable, an error."""
    url = (f"{prometheus.rstrip('/')}/api/v1/{path}"
           + (f"?{urllib.parse.urlencode(params)}" if params else ""))
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise NotServed(f"Prometheus at {prometheus} does not serve /api/v1/{path}") \
                from None
        raise GamedayError(f"Prometheus at {prometheus} cannot answer /api/v1/{path}: "
                           f"{exc}") from None
    except (OSError, ValueError) as exc:
        raise GamedayError(f"Prometheus at {prometheus} cannot answer /api/v1/{path}: "
                           f"{exc}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        raise GamedayError(f"Prometheus at {prometheus} cannot answer /api/v1/{path}")
    return body.get("data")


def alertmanagers(prometheus: str) -> list[str]:
    """Where Prometheus sends its alerts now: its active Alertmanagers' URLs. None for a
    few seconds after it starts and after every reload (until its next discovery sync,
    every 5 s): an alert that fires then is dropped and sent again only after its
    ``resend_delay``, a minute later by default."""
    found = (api(prometheus, "alertmanagers") or {}).get("activeAlertmanagers") or []
    return [str(a.get("url", "?")) for a in found]


def query(prometheus: str, promql: str, origin: Origin | None = None) -> float | None:
    """One instant query's single value; None for a series that has no number (NaN).
    Raises GamedayError when Prometheus is unreachable or the query returns no series;
    a query Prometheus cannot parse or run (400, 422) is the file's mistake: a
    ValidationError naming ``origin``'s file and field when given."""
    url = (prometheus.rstrip("/") + "/api/v1/query?"
           + urllib.parse.urlencode({"query": promql}))
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096).decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):  # Prometheus's JSON error
            detail = json.loads(detail).get("error") or detail
        detail = detail[:300]
        message = f"Prometheus at {prometheus} refuses the query {promql!r}: {detail}"
        if origin is not None and exc.code in (400, 422):
            raise ValidationError(message, file=origin[0], field=origin[1]) from None
        raise GamedayError(message) from None
    except (OSError, ValueError) as exc:
        raise GamedayError(f"Prometheus at {prometheus} unreachable: {exc}") from None
    result = (body.get("data") or {}).get("result") or []
    if body.get("status") != "success" or not result:
        raise GamedayError(f"{promql!r} returns no series in Prometheus at {prometheus}")
    value = float(result[0]["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


class PrometheusSli(SampleLog):
    """An ``SliSource`` (``gameday.slis.samples``) reading the team's Prometheus."""

    unit = "reading"

    def __init__(self, queries: Queries, *, objective_ratio: float,
                 samples_path: Path | None, load: SliSource | None = None,
                 first_within_s: float = 15.0):
        super().__init__(samples_path)
        self.queries, self.objective_ratio, self.load = queries, objective_ratio, load
        self.first_within_s = first_within_s
        self.rate = 1.0 / queries.interval_s
        self.failed = 0
        self._latest: list[tuple[int, float | None, float | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="prometheus-sli",
                                        daemon=True)

    def read(self) -> tuple[float | None, float | None]:
        q = self.queries
        ratio_from, latency_from = q.origins or (None, None)
        return (query(q.prometheus, q.success_ratio, ratio_from),
                query(q.prometheus, q.latency_p99_ms, latency_from))

    def start(self) -> None:
        """Start the load, then read until the queries answer (a rate needs two scrapes
        of traffic): within ``first_within_s``, else nothing is injected."""
        if self.load is not None:
            self.load.start()
        deadline = time.monotonic() + self.first_within_s
        while True:
            try:
                self._record(*self.read())
                break
            except ValidationError:
                raise  # a query Prometheus refuses will not answer later
            except GamedayError:
                if time.monotonic() >= deadline:
                    raise
                self._stop.wait(self.queries.interval_s)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.load is not None:
            self.load.stop()
        self.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.queries.interval_s):
            try:
                self._record(*self.read())
            except GamedayError as exc:
                self.failed += 1
                log.warning("an SLI reading failed: %s", exc)

    def _record(self, ratio: float | None, p99: float | None) -> None:
        now = time.monotonic_ns()
        good = ratio is None or ratio >= self.objective_ratio
        with self._lock:
            self._latest.append((now, ratio, p99))
            del self._latest[:-1000]
        self.record(Sample(now, now, utc_now(), 200 if good else 500, p99 or 0.0))

    def needed(self, window_s: float) -> int:
        return 1  # a reading is Prometheus's own window already

    def sli(self, window_s: float, at_ns: int | None = None) -> Sli:
        at_ns = at_ns or time.monotonic_ns()
        since = at_ns - int(window_s * 1e9)
        with self._lock:
            inside = [r for r in self._latest if since < r[0] <= at_ns]
        if not inside:
            return Sli(at_ns, utc_now(), 0, None, None, None)
        _, ratio, p99 = inside[-1]
        return Sli(at_ns, utc_now(), len(inside), ratio, None, p99)
