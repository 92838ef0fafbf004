"""Who tells a game day that its alert fired: one protocol, one registry.

The SLO burn detector (``detection.Detector``) always measures impact and recovery from
the SLIs. An alert source decides where the *alert* comes from, which is what TTD is
measured to: ``builtin`` (the detector's own burn alert fires) or ``prometheus`` (real
Prometheus scrapes the sandbox, real Alertmanager notifies a receiver in this process).
A scenario names one with ``alerting:``; docs/extending.md says how to add another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gameday.core import events
from gameday.core.errors import GamedayError
from gameday.game.detection import Detector
from gameday.game.responders import Response
from gameday.incidents.incident import Incident

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
                alert.name, alert.labels, alert.annotations,
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
        while self.stack.targets_up() < expected:
            if time.monotonic() > deadline:
                raise GamedayError("Prometheus did not scrape every sandbox replica "
                                   f"within {self.SCRAPED_WITHIN_S:g}s")
            time.sleep(0.2)
        incident.record(events.alerting_ready(self.stack.prometheus_url), "gameday")

    def stop(self) -> None:
        if self.stack:
            self.stack.stop()
        if self.receiver:
            self.receiver.stop()


# ``alerting:`` in a scenario (``scenarios.scenario.ALERTING`` lists the names for
# validation): each a class made once per game day.
ALERT_SOURCES: dict[str, Callable[[], AlertSource]] = {
    "builtin": Builtin, "prometheus": Prometheus}


def alert_source(name: str) -> AlertSource:
    return ALERT_SOURCES[name]()

