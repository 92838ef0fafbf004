"""The incident response that runs while the fault is live (the experiment's hold).

Alert → declare (severity from the measured impact) → page under the team's response
model → responders engage → first comms → containment → wait for the SLIs to recover,
bumping severity (and paging the dedicated IC) when the impact worsens → escalate if
the containment window runs out. Three modes:

- ``auto``: paged people answer at once and the runbook linked from the alert runs;
- ``drill``: people answer with ``gameday incident ack`` and run runbooks themselves;
- ``none``: nobody responds; the experiment's rollback ends the fault.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gameday.core import events
from gameday.core.errors import GamedayError
from gameday.core.events import Kind
from gameday.core.policy import (
    measured_severity,
    needs_dedicated_ic,
    severity_from_labels,
    staffing,
    worse,
)
from gameday.game.detection import Detector
from gameday.incidents import comms
from gameday.incidents.incident import Incident
from gameday.runbooks.routing import Route, route
from gameday.runs import run as runs
from gameday.scenarios.scenario import Scenario

POLL_S = 0.05
Say = Callable[[str], None]
log = logging.getLogger(__name__)


def wait(event: threading.Event, timeout_s: float,
         tick: Callable[[], bool] | None = None) -> bool:
    """Wait for ``event`` in short steps, so signals reach the main thread promptly;
    ``tick`` runs at each step and ends the wait early (False) when it says so."""
    deadline = time.monotonic() + timeout_s
    while not event.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        event.wait(min(POLL_S, remaining))
        if tick and tick() and not event.is_set():
            return False
    return True


class Response:
    def __init__(self, scenario: Scenario, incident: Incident, detector: Detector,
                 run_dir: Path, env: dict[str, str], say: Say, *,
                 target_labels: dict[str, str] | None = None):
        self.sc, self.inc, self.det = scenario, incident, detector
        self.run_dir, self.env, self.say = run_dir, env, say
        self.comms_seq = 0
        self.last_update = 0.0
        self.runbook_status: tuple[str, str] | None = None
        # The labels the target adds to whichever alert fires (a cluster's context), over
        # the alert's own: the runbook acts where the game day runs.
        self.target_labels = dict(target_labels or {})
        # Where the alert comes from: the built-in detector, or a real Alertmanager
        # (see ``external_alert``), in which case ``alert`` is what it sent.
        self.fired = detector.fired
        self.tracing: threading.Thread | None = None  # where their alert stopped
        self.trace_lock, self.closed = threading.Lock(), False
        self.alert = (scenario.alert.name,
                      {**scenario.alert.labels, **self.target_labels},
                      dict(scenario.alert.annotations))

    def external_alert(self, name: str, labels: dict[str, str],
                       annotations: dict[str, str]) -> None:
        if not self.fired.is_set():
            self.alert = (name, {**labels, **self.target_labels}, annotations)
            self.fired.set()

    # -- the hold ---------------------------------------------------------------------
    def run(self) -> None:
        sc = self.sc
        if not wait(self.fired, sc.timeouts.detect) and not self.fall_back():
            return
        sli = self.det.current()
        assert sli is not None
        measured = measured_severity(sli, sc.slo)
        # In a drill the alert's own severity stands until the incident commander judges
        # the impact; the measured one is on the record for the debrief.
        severity = severity_from_labels(self.alert[1]) if self.drilling else measured
        self.inc.declare(severity, "gameday", alert=self.alert[0], measured=sli.as_dict(),
                         measured_severity=measured,
                         model=sc.team.model, mode=sc.response.mode)
        self.staff(severity)
        if self.drilling:
            self.say(self.drill_instructions())
            self.drill_hold()
            return
        if self.inc.ended:  # a person resolved it at once: nothing to post or to run
            return
        self.post_updates()
        if sc.response.mode == "auto":
            self.contain()
        if not wait(self.det.mitigated, sc.timeouts.mitigate, tick=self.tick) \
                and not self.inc.ended:  # a person who resolved it by hand lets the hold go
            self.escalate()

    def fall_back(self) -> bool:
        """The alert did not fire within the detect timeout: the game day's main finding.
        When the SLIs burned all the same and the alert is someone else's (the team's
        Alertmanager), gameday's own SLO burn detector opens the incident in its place,
        so the response is still rehearsed; TTD is measured to that moment."""
        sc, name = self.sc, self.alert[0]
        outside = self.det.outside_s()
        # their alert (the team's Alertmanager) is the one that may need standing in for
        fallback = self.det.burning() and not self.det.emit_alerts \
            and self.sc.alertmanager is not None
        self.inc.record(events.detection_missed(sc.timeouts.detect, name, outside_s=outside,
                                                fallback=fallback), "gameday")
        self.say(f"{name} did not fire within {sc.timeouts.detect:g}s (the SLIs were outside "
                 f"the objective for {outside:.1f}s)"
                 + ("; gameday's SLO burn detector opens the incident" if fallback else ""))
        if not fallback:
            return False
        sli = self.det.current() or self.det.traffic.sli(1.0)
        self.inc.record(events.alert_fired(
            name, self.alert[1], self.alert[2], sli=sli.as_dict(), fallback=True,
            objective={"success_ratio": sc.slo.success_ratio,
                       "latency_p99_ms": sc.slo.latency_p99_ms, "window_s": sc.slo.window_s}),
            "gameday")
        self.fired.set()
        self.tracing = threading.Thread(target=self.trace, name="trace-alert", daemon=True)
        self.tracing.start()
        return True

    def trace(self) -> None:
        """Ask the team's Prometheus and Alertmanager where their alert stopped (beside
        the response, which it must not delay; a few seconds at most) and put what they
        say on the timeline, unless the game day has ended meanwhile."""
        from datetime import datetime

        from gameday.targets.alert_path import where_it_stopped

        try:
            injected = next((e for e in self.inc.events() if e.kind == Kind.FAULT_INJECTED),
                            None)
            found = (where_it_stopped(self.sc, datetime.fromisoformat(injected.at_utc))
                     if injected is not None else {})
            with self.trace_lock:
                if found and not self.closed:
                    self.inc.record(events.detection_traced(self.sc.alert.name, found),
                                    "gameday")
        except Exception as exc:  # a finding less; never the game day's end
            log.warning("could not trace where %s stopped: %s", self.sc.alert.name, exc)

    def close(self, *, wait: bool = True) -> None:
        """The game day ends: wait for the trace of a missed alert (done long before,
        unless their Prometheus is slow to answer) so that the review reads it, unless
        told not to (a signal); after this nothing more is traced."""
        if self.tracing is not None and wait:
            from gameday.targets.alert_path import TRACE_WITHIN_S

            self.tracing.join(timeout=TRACE_WITHIN_S + 1)
        with self.trace_lock:
            self.closed = True

    @property
    def drilling(self) -> bool:
        return self.sc.response.mode == "drill"

    def drill_hold(self) -> None:
        """People respond; injects fire on the drill clock or on events; the time box
        counts drill time (a pause stops it); the game master may end it."""
        from gameday.drills.master import fire_due_injects
        from gameday.scenarios.drill import Clock, DrillSpec

        spec = self.sc.drill or DrillSpec()
        while not wait(self.det.mitigated, 0.2):
            timeline = self.inc.events()
            if any(e.kind == Kind.DRILL_ENDED for e in timeline):
                self.say("the game master ended the drill")
                return
            for name in fire_due_injects(self.inc, spec):
                self.say(f"inject: {name}")
            self.second_faults(spec, timeline)
            elapsed = Clock.of(timeline).at(time.monotonic_ns()) or 0.0
            if elapsed > spec.time_box:
                self.escalate(spec.time_box)
                return

    def second_faults(self, spec: Any, timeline: list[Any]) -> None:
        """Inject the fault of every inject that fired (on time, on an event, or by the
        game master's hand) and has not had it yet."""
        from gameday.game import chaos

        done = {e.data.get("inject") for e in timeline if e.kind == Kind.DRILL_FAULT}
        fired = [e.data.get("name") for e in self.inc.events() if e.kind == Kind.DRILL_INJECT]
        for inject in spec.injects:
            if inject.fault and inject.name in fired and inject.name not in done:
                status = chaos.run_action(self.run_dir, dict(inject.fault))
                self.inc.record(events.drill_fault(inject.name, inject.fault.get("name"),
                                                   status, inject.fault.get("provider")),
                                "chaos")
                self.say(f"second fault for {inject.name}: {inject.fault.get('name')} "
                         f"({status})")

    def tick(self) -> bool:
        """A step of the hold; whether the incident has ended (people may resolve it by
        hand at any moment, whatever the response mode): then the hold lets go."""
        if self.inc.ended:
            return True
        self.keep_up()
        return False

    def keep_up(self) -> None:
        """Severity as measured, and the updates that are due (also while a runbook
        runs: one that has started finishes, whoever resolves the incident)."""
        if not self.inc.ended:
            self.watch_severity()
            self.post_updates(due_only=True)

    # -- people -----------------------------------------------------------------------
    def staff(self, severity: str) -> None:
        who = staffing(self.sc.team, severity)
        self.inc.page(who.oncall, "incident_commander" if not who.dedicated_ic else "responder",
                      reason=f"{self.alert[0]} fired")
        if who.dedicated_ic:
            self.inc.page(who.incident_commander, "incident_commander",
                          reason=f"{severity} under the {self.sc.team.model} model")
        if self.sc.response.mode == "auto":  # unless a person ended it first
            self.inc.unless_ended(lambda: self.inc.engage(who.oncall, via="auto"))
            if who.dedicated_ic:
                self.inc.unless_ended(
                    lambda: self.inc.engage(who.incident_commander, via="auto"))
            self.assign_support_roles()
        elif self.drilling:  # people answer: the roster's scribe and comms lead are paged too
            team = self.sc.team
            for role, person in (("comms_lead", team.comms), ("scribe", team.scribe)):
                if person and person not in (who.oncall, who.incident_commander):
                    self.inc.page(person, role, reason=f"the {team.name} roster's "
                                                       f"{role.replace('_', ' ')}")

    def assign_support_roles(self) -> None:
        roles = self.inc.roles()
        ic = roles.get("incident_commander", "gameday")
        if self.sc.team.scribe and "scribe" not in roles:
            self.inc.assign("scribe", self.sc.team.scribe, ic)
        if self.sc.team.comms and "comms_lead" not in roles:
            self.inc.assign("comms_lead", self.sc.team.comms, ic)
        for person in self.sc.team.responders:
            self.inc.assign("responder", person, ic)

    def watch_severity(self) -> None:
        sli = self.det.current()
        current = self.inc.severity
        if sli is None or current is None or self.det.mitigated.is_set():
            return
        measured = measured_severity(sli, self.sc.slo)
        # whether the fix has landed is asked last, as close to the record as can be
        if worse(measured, current) and not self.det.recovering():
            self.raise_severity(measured, f"measured impact worsened: "
                                          f"{comms.describe_impact(sli.as_dict())}")

    def raise_severity(self, severity: str, reason: str) -> None:
        previous = self.inc.severity or "SEV-4"
        ic = self.inc.roles().get("incident_commander", "gameday")
        self.inc.change_severity(severity, ic, reason, measured_severity=severity)
        if needs_dedicated_ic(self.sc.team, severity) and \
                not needs_dedicated_ic(self.sc.team, previous):
            self.page_dedicated_ic(f"bumped to {severity}")
        self.post_updates()

    def page_dedicated_ic(self, reason: str) -> None:
        ic = staffing(self.sc.team, "SEV-1").incident_commander
        if self.inc.roles().get("incident_commander") == ic:
            return
        self.inc.page(ic, "incident_commander", reason=reason)
        if self.sc.response.mode == "auto":
            self.inc.engage(ic, via="auto")

    def escalate(self, window: float | None = None) -> None:
        window = self.sc.timeouts.mitigate if window is None else window
        self.inc.record(events.incident_escalated(
            f"not mitigated within {window:g}s",
            self.runbook_status[0] if self.runbook_status else None), "gameday")
        self.say(f"not mitigated within {window:g}s: escalating")
        sli = self.det.current()
        if sli is not None and self.inc.severity:
            measured = measured_severity(sli, self.sc.slo)
            if worse(measured, self.inc.severity):
                self.raise_severity(measured, "escalation: impact warrants a higher severity")
        self.page_dedicated_ic("escalation: containment did not work")

    # -- comms ------------------------------------------------------------------------
    def post_updates(self, due_only: bool = False, final: bool = False) -> None:
        severity = self.inc.severity or "SEV-4"
        every = self.sc.target_for(severity).get("update_every")
        now = time.monotonic()
        if due_only and (every is None or now - self.last_update < every):
            return
        self.last_update = now
        roles = self.inc.roles()
        author = roles.get("comms_lead") or roles.get("incident_commander") or "gameday"
        facts = self.facts(severity, every)
        for audience in comms.audiences_for(severity):
            text = comms.render(audience, facts)
            self.comms_seq += 1
            path = self.run_dir / "comms" / f"{self.comms_seq:02d}-{audience}.md"
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            self.inc.record(events.comms_posted(audience, text, final), author)

    def facts(self, severity: str, every: float | None) -> dict[str, Any]:
        sli = self.det.current()
        first = next((e for e in self.inc.events() if e.kind == Kind.IMPACT_STARTED), None)
        started_ago = (time.monotonic_ns() - first.at_monotonic_ns) / 1e9 if first else 0.0
        return comms.facts(self.inc.row | {"severity": severity}, roles=self.inc.roles(),
                           sli=sli.as_dict() if sli else None, runbook=self.runbook_status,
                           every=every, started_ago=started_ago,
                           customer_summary=self.sc.customer_facing, service=self.sc.service)

    # -- containment --------------------------------------------------------------------
    def linked(self) -> Route:
        name, labels, annotations = self.alert
        return route(name, labels, annotations, runbook=self.sc.response.runbook,
                     overrides=self.sc.response.params)

    def contain(self) -> None:
        found = self.linked()
        if found.runbook is None and found.error is None:
            self.inc.record(events.runbook_missing(found.alert), "gameday")
            self.say(f"no runbook is linked to {found.alert}")
            return
        if not found.ok or found.runbook is None or found.params is None:
            name = found.runbook.name if found.runbook else None
            self.inc.record(events.runbook_rejected(name, str(found.error)), "gameday")
            self.say(f"runbook {name or ''} refused: {found.error}")
            return
        runbook = found.runbook
        roles = self.inc.roles()
        actor = roles.get("responder") or roles.get("incident_commander", "gameday")
        self.runbook_status = (runbook.name, "running")
        seq = sum(1 for e in self.inc.events() if e.kind == Kind.RUNBOOK_STARTED) + 1
        try:
            result = runs.run(self.inc.store, runbook, found.params,
                              self.run_dir / "runbooks" / f"{seq:02d}-{runbook.name}",
                              incident=self.inc, who=actor, env=self.env, tick=self.keep_up)
        except GamedayError as exc:
            self.runbook_status = (runbook.name, "could not start")
            self.say(str(exc))
            return
        self.runbook_status = (runbook.name, result.status)

    def drill_instructions(self) -> str:
        found = self.linked()
        i = self.inc.id
        lines = [f"Drill: incident {i} is {self.inc.severity}. Responders:",
                 f"  gameday incident ack {i} --as NAME",
                 f"  gameday incident severity {i} SEV-n --as IC --reason TEXT",
                 f"  gameday incident comms {i} --audience internal --as COMMS_LEAD",
                 f"  gameday incident resolve {i} --as IC"]
        if found.runbook:
            args = " ".join(f"-e {k}={v}" for k, v in found.raw.items())
            lines.append(f"  gameday runbook run {found.runbook.name} {args} "
                         f"--incident {self.inc.id}")
        return "\n".join(lines)
