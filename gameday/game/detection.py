"""The SLO burn detector: watches the SLIs and says when impact began, when the
alert fires, and when the service is back inside its objective.

It evaluates a sliding window every ``interval`` (250 ms by default) on its own
thread and reports through a callback; it never sleeps its way to a result. Three
moments come out of it, each measured from request samples or evaluations:

- ``impact.started``: the first request that missed the objective (failed, or slower
  than the p99 objective) and completed after the detector was armed at fault time;
- ``alert.fired``: the evaluation at which the window SLI had been outside the
  objective for the alert's ``for`` duration;
- ``mitigated``: confirmed once the window SLI has stayed inside the objective for the
  recovery window; dated at the first good request after the last bad one. It is a
  measurement, reported once whatever the incident's state: people may have resolved
  it first, and ``report`` (``game.run.record_measured``) then records the recovery
  without moving the incident back.

Every evaluated window goes to the run directory's ``sli.jsonl`` and, a second at a
time, to the store (``SliLog``), where any ``gameday serve`` replica charts it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gameday.core import events
from gameday.core.events import Entry, Kind
from gameday.scenarios.scenario import Alert, Slo
from gameday.slis.samples import Sample, Sli, SliSource

Report = Callable[[Entry, int, str], object]  # what, at_ns, at_utc; returns are ignored
Publish = Callable[[list[dict[str, object]]], object]  # windows to the store
PUBLISH_EVERY_S = 1.0
PENDING_LIMIT = 600  # windows kept for the store while it does not answer
RECENT_S = 10.0  # how far back recovering() looks for the newest sample
log = logging.getLogger(__name__)


class SliLog:
    """Where the detector's windows go: a line each in ``sli.jsonl`` at once, and to
    the store (``publish``) at most once a second. A store that does not answer keeps
    the game day going: its windows wait for the next try (the newest ones, at most
    ``PENDING_LIMIT``), and the file has them all."""

    def __init__(self, path: Path | None, publish: Publish | None = None) -> None:
        self._file = open(path, "a", buffering=1) if path else None  # noqa: SIM115
        self._publish = publish
        self._pending: list[dict[str, object]] = []
        self._flushed = time.monotonic()

    def write(self, window: dict[str, object]) -> None:
        if self._file and not self._file.closed:
            self._file.write(json.dumps(window) + "\n")
        if self._publish is None:
            return
        self._pending = [*self._pending, window][-PENDING_LIMIT:]
        if time.monotonic() - self._flushed >= PUBLISH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self._flushed = time.monotonic()
        if not self._pending or self._publish is None:
            return
        try:
            self._publish(self._pending)
        except Exception as exc:  # the store is down: the game day goes on
            log.warning("SLI windows not stored yet (%d waiting): %s", len(self._pending),
                        exc)
            return
        self._pending = []

    def close(self) -> None:
        self.flush()
        if self._file:
            self._file.close()


def outside(sli: Sli, slo: Slo) -> bool:
    """Whether the window misses the objective. Nothing completed in the whole window
    misses it (the entry point hangs); a Prometheus reading with no number (NaN: a
    ratio of no requests) is judged by what it has, as SLO tools count no traffic as
    no burn."""
    if sli.total == 0:
        return True
    return (sli.success_ratio is not None and sli.success_ratio < slo.success_ratio) or \
        (sli.p99_ms is not None and sli.p99_ms > slo.latency_p99_ms)


def bad(sample: Sample, slo: Slo) -> bool:
    return not sample.ok or sample.latency_ms > slo.latency_p99_ms


@dataclass
class DetectorState:
    armed_ns: int | None = None
    impact_ns: int | None = None
    breach_since_ns: int | None = None
    fired_ns: int | None = None
    healthy_since_ns: int | None = None
    mitigated_ns: int | None = None
    last: Sli | None = None
    outside_ns: int = 0             # time the window SLI was outside, since armed
    evaluated_ns: int | None = None  # the last evaluation since armed


class Detector:
    def __init__(self, traffic: SliSource, slo: Slo, alert: Alert, *, interval_s: float,
                 recovery_window_s: float, report: Report, sli_path: Path | None = None,
                 publish: Publish | None = None, emit_alerts: bool = True):
        self.traffic, self.slo, self.alert = traffic, slo, alert
        self.interval_s, self.recovery_window_s = interval_s, recovery_window_s
        self.report = report
        self.emit_alerts = emit_alerts
        self.state = DetectorState()
        self.fired = threading.Event()
        self.mitigated = threading.Event()
        self._unsent: list[tuple[Entry, int, str]] = []  # measured, not yet on the record
        self._said: str | None = None  # the last reason the record refused, logged once
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._log = SliLog(sli_path, publish)
        self._thread = threading.Thread(target=self._loop, name="detector", daemon=True)

    @property
    def unit(self) -> str:
        return self.traffic.unit

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._log.close()

    def arm(self, at_ns: int) -> None:
        """Start looking for impact: called when the fault is live."""
        with self._lock:
            self.state.armed_ns = at_ns

    def current(self) -> Sli | None:
        with self._lock:
            return self.state.last

    def recovering(self) -> bool:
        """Whether the newest sample (of the last ``RECENT_S``) meets the objective: the
        fix has landed, and mitigation will be dated at the first good sample after the
        last bad one; the window SLI still shows the damage for a while after that, and
        must not drive a severity bump then. A look-back of any length would still hold
        the bad samples from just before the fix."""
        now = time.monotonic_ns()
        newest = self.traffic.between(now - int(RECENT_S * 1e9), now)[-1:]
        return bool(newest) and not bad(newest[0], self.slo)

    def outside_s(self) -> float:
        """How long the window SLI has been outside the objective since the fault went
        in, summed over evaluations."""
        with self._lock:
            return self.state.outside_ns / 1e9

    def burning(self) -> bool:
        """Whether the burn condition (outside the objective for the alert's ``for``)
        has held since the fault went in, whoever reports the alert."""
        with self._lock:
            return self.state.fired_ns is not None

    def healthy(self) -> bool:
        sli = self.current()
        return sli is not None and not outside(sli, self.slo)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.evaluate(time.monotonic_ns())
            except Exception:  # one bad evaluation never ends the game day's measuring
                log.exception("detector: an evaluation failed; measuring goes on")
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def evaluate(self, now_ns: int) -> None:
        sli = self.traffic.sli(self.slo.window_s, now_ns)
        breaching = outside(sli, self.slo)
        self._log.write({**sli.as_dict(), "outside": breaching, "unit": self.unit})
        with self._lock:
            reports = self._measured(sli, breaching, now_ns)
        self._send(reports)

    def _measured(self, sli: Sli, breaching: bool,
                  now_ns: int) -> list[tuple[Entry, int, str]]:
        """What this evaluation found to report (called under the lock)."""
        reports: list[tuple[Entry, int, str]] = []
        st = self.state
        st.last = sli
        if st.armed_ns is None or st.mitigated_ns is not None:
            return reports
        if breaching and st.evaluated_ns is not None:
            st.outside_ns += now_ns - st.evaluated_ns
        st.evaluated_ns = now_ns
        if st.impact_ns is None:
            first = next((s for s in self.traffic.between(st.armed_ns, now_ns)
                          if bad(s, self.slo)), None)
            if first is not None:
                st.impact_ns = first.end_ns
                reports.append((events.impact_started(first.status, first.latency_ms,
                                                      self.unit),
                                first.end_ns, first.at_utc))
        if breaching:
            st.healthy_since_ns = None
            st.breach_since_ns = st.breach_since_ns or now_ns
            held = (now_ns - st.breach_since_ns) / 1e9
            if st.fired_ns is None and st.impact_ns is not None and held >= self.alert.for_s:
                # Recovery is tracked from here; with an external alert source (real
                # Alertmanager) the built-in alert is not reported.
                st.fired_ns = now_ns
                if self.emit_alerts:
                    reports.append((self._alert(sli), now_ns, sli.at_utc))
        else:
            st.breach_since_ns = None
            if st.fired_ns is not None:
                st.healthy_since_ns = st.healthy_since_ns or now_ns
                if (now_ns - st.healthy_since_ns) / 1e9 >= self.recovery_window_s:
                    reports.append(self._mitigation(now_ns))
        return reports

    def _send(self, reports: list[tuple[Entry, int, str]]) -> None:
        """Put what was measured on the record, in order, each dated when it happened.
        While the record cannot take it (the store is down), it waits for the next
        evaluation, but the game day does not: its signals are set at once, so a store
        outage never holds the fault in place until a timeout."""
        self._unsent += reports
        while self._unsent:
            entry, at_ns, at_utc = self._unsent[0]
            try:
                self.report(entry, at_ns, at_utc)
            except Exception as exc:
                if str(exc) != self._said:
                    self._said = str(exc)
                    log.warning("detector: %s not on the record yet (%d waiting): %s",
                                entry.kind, len(self._unsent), exc)
                for waiting, _, _ in self._unsent:
                    self._signal(waiting)
                return
            self._unsent.pop(0)
            self._signal(entry)

    def _signal(self, entry: Entry) -> None:
        if entry.kind == Kind.ALERT_FIRED:
            self.fired.set()
        elif entry.kind == Kind.MITIGATED:
            self.mitigated.set()

    def _alert(self, sli: Sli) -> Entry:
        return events.alert_fired(
            self.alert.name, self.alert.labels, self.alert.annotations, sli=sli.as_dict(),
            objective={"success_ratio": self.slo.success_ratio,
                       "latency_p99_ms": self.slo.latency_p99_ms,
                       "window_s": self.slo.window_s})

    def _mitigation(self, now_ns: int) -> tuple[Entry, int, str]:
        st = self.state
        assert st.impact_ns is not None and st.armed_ns is not None
        samples = self.traffic.between(st.armed_ns, now_ns)
        last_bad = max((i for i, s in enumerate(samples) if bad(s, self.slo)), default=-1)
        recovered = samples[last_bad + 1] if last_bad + 1 < len(samples) else samples[-1]
        st.mitigated_ns = recovered.end_ns
        during = [s for s in samples if st.impact_ns <= s.end_ns <= recovered.end_ns]
        entry = events.mitigated(self.recovery_window_s, len(during),
                                 sum(1 for s in during if bad(s, self.slo)),
                                 sum(1 for s in during if not s.ok), self.unit)
        return (entry, recovered.end_ns, recovered.at_utc)
