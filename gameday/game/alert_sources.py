"""Who tells a game day that its alert fired: one protocol, one registry.

The SLO burn detector (``detection.Detector``) always measures impact and recovery from
the SLIs. An alert source decides where the *alert* comes from, which is what TTD is
measured to: ``builtin`` (the detector's own burn alert fires) or ``prometheus`` (real
Prometheus scrapes the sandbox, real Alertmanager notifies a receiver in this process).
A scenario names one with ``alerting:``; docs/extending.md says how to add another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gameday.core import events
from gameday.core.errors import GamedayError
from gameday.game.detection import Detector
from gameday.game.responders import Response
from gameday.incidents.incident import Incident
from gameday.targets.alertmanager import active

if TYPE_CHECKING:
    from gameday.game.receiver import AlertReceiver
    from gameday.runs.alerts import AlertInstance
    from gameday.targets.base import Target
    from gameday.targets.sandbox.alerting import AlertingStack


class AlertSource(Protocol):
    # whether the detector records ``alert.fired`` itself (else this source does, and
    # hands the alert to the response: ``Response.external_alert``)
    detector_alerts: bool

    def start(self, run_dir: Path, target: Target, incident: Incident, response: Response,
              detector: Detector) -> None:
        """Start listening, before the steady state is waited for."""

    def stop(self) -> None:
        """Stop, however the game day ends (first, so a stopping world pages nobody)."""


class Builtin:
    """The detector's own SLO burn alert."""

    detector_alerts = True

    def start(self, run_dir: Path, target: Target, incident: Incident, response: Response,
              detector: Detector) -> None:
        return None

    def stop(self) -> None:
        return None


class Prometheus:
    """Prometheus scrapes the shop, Alertmanager posts to a receiver in this process:
    the game day's alert is the one Alertmanager delivers (the sandbox target only)."""

    detector_alerts = False
    SCRAPED_WITHIN_S = 30.0

    def __init__(self) -> None:
        self.receiver: AlertReceiver | None = None
        self.stack: AlertingStack | None = None

    def start(self, run_dir: Path, target: Target, incident: Incident, response: Response,
              detector: Detector) -> None:
        from gameday.game.receiver import AlertReceiver
        from gameday.targets.sandbox.alerting import start_alerting

        def firing(alert: AlertInstance) -> None:
            if response.fired.is_set() or detector.state.armed_ns is None:
                incident.record(events.alert_received(alert.name, alert.labels),
                                "alertmanager")
                return
            incident.record(events.alert_fired(
                alert.name, {**alert.labels, **response.target_labels}, alert.annotations,
                sli=(detector.current() or detector.traffic.sli(1.0)).as_dict(),
                starts_at=alert.starts_at, fingerprint=alert.fingerprint), "alertmanager")
            response.external_alert(alert.name, alert.labels, alert.annotations)

        def resolved(alert: AlertInstance) -> None:
            incident.record(events.alert_resolved(alert.name, alert.labels,
                                                  fingerprint=alert.fingerprint,
                                                  ends_at=alert.ends_at), "alertmanager")

        state = target.state()
        self.receiver = AlertReceiver(incident.store, incident.id, firing, resolved)
        self.receiver.start()
        self.stack = start_alerting(run_dir / "alerting", state,
                                    webhook_url=self.receiver.webhook_url,
                                    token=self.receiver.token,
                                    gameday_url=self.receiver.base_url)
        deadline = time.monotonic() + self.SCRAPED_WITHIN_S
        expected = sum(len(s["replicas"]) for s in state["services"].values())
        while self.stack.targets_up() < expected or not self.stack.sends_alerts():
            if time.monotonic() > deadline:
                raise GamedayError("Prometheus did not scrape every sandbox replica and "
                                   f"find its Alertmanager within {self.SCRAPED_WITHIN_S:g}s")
            time.sleep(0.2)
        incident.record(events.alerting_ready(self.stack.prometheus_url), "gameday")

    def stop(self) -> None:
        if self.stack:
            self.stack.stop()
        if self.receiver:
            self.receiver.stop()


class Alertmanager:
    """The team's own Alertmanager says when *their* alert fired: gameday asks its API
    (v2) for the scenario's alert (its name and labels as matchers) every
    ``POLL_S``, and the first time it is active after the fault went in, that is when
    the alert fired (TTD is measured to it). Its labels and annotations, the team's
    ``runbook_url`` among them, route the runbook. If it never fires, detection is
    missed: the game day's main finding."""

    detector_alerts = False
    POLL_S = 0.25

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seen: set[str] = set()

    def start(self, run_dir: Path, target: Target, incident: Incident, response: Response,
              detector: Detector) -> None:
        sc = response.sc
        url = sc.alertmanager or ""
        matchers = {"alertname": sc.alert.name, **sc.alert.labels}
        active(url, matchers)  # reachable, before the steady state is waited for

        def watch() -> None:
            while not self._stop.wait(self.POLL_S):
                try:
                    found = active(url, matchers)
                except GamedayError:
                    continue  # one failed poll; the next may answer
                for alert in found:
                    self._heard(alert, incident, response, detector)

        self._thread = threading.Thread(target=watch, name="alertmanager", daemon=True)
        self._thread.start()

    def _heard(self, alert: dict[str, Any], incident: Incident, response: Response,
               detector: Detector) -> None:
        fingerprint = str(alert.get("fingerprint") or "")
        if fingerprint in self.seen:
            return
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        annotations = {str(k): str(v) for k, v in (alert.get("annotations") or {}).items()}
        name = labels.get("alertname", "")
        if detector.state.armed_ns is None:
            return  # before the fault went in: not this game day's detection
        self.seen.add(fingerprint)
        if response.fired.is_set():  # another instance, after the first
            incident.record(events.alert_received(name, labels), "alertmanager")
            return
        incident.record(events.alert_fired(
            name, {**labels, **response.target_labels}, annotations,
            sli=(detector.current() or detector.traffic.sli(1.0)).as_dict(),
            starts_at=str(alert.get("startsAt") or ""), fingerprint=fingerprint),
            "alertmanager")
        response.external_alert(name, labels, annotations)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# ``alerting:`` in a scenario (``scenarios.scenario.ALERTING`` lists the names for
# validation): each a class made once per game day.
ALERT_SOURCES: dict[str, Callable[[], AlertSource]] = {
    "builtin": Builtin, "prometheus": Prometheus, "alertmanager": Alertmanager}


def alert_source(name: str) -> AlertSource:
    return ALERT_SOURCES[name]()

