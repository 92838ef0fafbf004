"""Stop conditions (``stop_when``): the fault rolled back at once when the SLIs are far
worse than the experiment meant, or when one of the team's alerts that means a real page
fires. Watched from the moment the fault goes in until its rollback starts; when one
holds, ``game.stopped`` goes on the timeline with the reason and the main thread is
stopped as Ctrl-C stops it (rollbacks, recovery, review), without counting as a signal:
the game day ends aborted and ``gameday run`` exits ``STOPPED_EXIT``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from gameday.core import events
from gameday.core.errors import GamedayError
from gameday.game import interrupts
from gameday.game.detection import Detector
from gameday.incidents.incident import Incident
from gameday.targets.alertmanager import active

ALERT_POLL_S = 0.5


class StopWatch:
    def __init__(self, stop_when: dict[str, Any], detector: Detector, incident: Incident,
                 *, alertmanager: str | None, every_s: float) -> None:
        self.when, self.detector, self.incident = stop_when, detector, incident
        self.alertmanager, self.every_s = alertmanager, every_s
        self.reason: str | None = None
        self.active = False  # between the fault going in and its rollback starting
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stop-when", daemon=True)
        self._breach_since: float | None = None
        self._alerts_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            if self.reason is None and self.active:
                reason = self.check(time.monotonic())
                if reason is not None:
                    self.reason = reason
                    self.incident.record(events.game_stopped(reason), "gameday")
                    interrupts.stop_main()

    def check(self, now: float) -> str | None:
        """Why the game day must stop now, or None."""
        sli = self.detector.current()
        floor, ceiling = self.when.get("success_ratio_below"), self.when.get(
            "latency_p99_ms_above")
        breach = None
        if sli is not None and floor is not None and sli.success_ratio is not None \
                and sli.success_ratio < floor:
            breach = f"success ratio {sli.success_ratio:.1%} below {floor:.1%}"
        elif sli is not None and ceiling is not None and sli.p99_ms is not None \
                and sli.p99_ms > ceiling:
            breach = f"p99 latency {sli.p99_ms:.0f} ms above {ceiling:g} ms"
        if breach is None:
            self._breach_since = None
        else:
            self._breach_since = self._breach_since or now
            held = now - self._breach_since
            if held >= float(self.when.get("for_") or 0.0):
                return f"{breach} for {held:.1f} s"
        names = self.when.get("alerts") or []
        if names and self.alertmanager and now - self._alerts_at >= ALERT_POLL_S:
            self._alerts_at = now
            for name in names:
                try:
                    if active(self.alertmanager, {"alertname": name}):
                        return f"the team's alert {name} is firing (a real page)"
                except GamedayError:
                    continue
        return None
