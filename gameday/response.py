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

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gameday import comms
from gameday.detection import Detector
from gameday.errors import GamedayError, NotFound, ValidationError
from gameday.incident import Incident, measured_severity, needs_dedicated_ic, staffing, worse
from gameday.runbook import Runbook, discover, find, run_runbook, validate_params
from gameday.scenario import Scenario

POLL_S = 0.05
Say = Callable[[str], None]


def wait(event: threading.Event, timeout_s: float, tick: Callable[[], None] | None = None) -> bool:
    """Wait for ``event`` in short steps, so signals reach the main thread promptly."""
    deadline = time.monotonic() + timeout_s
    while not event.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        event.wait(min(POLL_S, remaining))
        if tick:
            tick()
    return True


def linked_runbook(alert_name: str, annotations: dict[str, str],
                   runbook_dir: Path | None = None) -> tuple[Runbook | None, dict[str, str]]:
    """The runbook an alert links to (``runbook_url`` → ``/runbooks/NAME?k=v``), else the
    runbook whose metadata lists the alert."""
    url = annotations.get("runbook_url")
    if url:
        parts = urlsplit(url)
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) >= 2 and segments[-2] == "runbooks":
            return find(segments[-1], runbook_dir), dict(parse_qsl(parts.query))
    for rb in discover(runbook_dir):
        if alert_name in rb.alerts:
            return rb, {}
    return None, {}


class Response:
    def __init__(self, scenario: Scenario, incident: Incident, detector: Detector,
                 run_dir: Path, env: dict[str, str], say: Say):
        self.sc, self.inc, self.det = scenario, incident, detector
        self.run_dir, self.env, self.say = run_dir, env, say
        self.comms_seq = 0
        self.last_update = 0.0
        self.runbook_status: tuple[str, str] | None = None
        # Where the alert comes from: the built-in detector, or a real Alertmanager
        # (see ``external_alert``), in which case ``alert`` is what it sent.
        self.fired = detector.fired
        self.alert = (scenario.alert.name, dict(scenario.alert.labels),
                      dict(scenario.alert.annotations))

    def external_alert(self, name: str, labels: dict[str, str],
                       annotations: dict[str, str]) -> None:
        if not self.fired.is_set():
            self.alert = (name, labels, annotations)
            self.fired.set()

    # -- the hold ---------------------------------------------------------------------
    def run(self) -> None:
        sc = self.sc
        if not wait(self.fired, sc.timeouts.detect):
            self.inc.record("detection.missed", "gameday",
                            {"waited_s": sc.timeouts.detect, "alert": self.alert[0]})
            self.say(f"no alert within {sc.timeouts.detect:g}s: detection missed")
            return
        sli = self.det.current()
        assert sli is not None
        severity = measured_severity(sli, sc.slo)
        self.inc.declare(severity, "gameday", alert=self.alert[0], measured=sli.as_dict(),
                         measured_severity=severity,
                         model=sc.team.model, mode=sc.response.mode)
        self.staff(severity)
        self.post_updates()
        if sc.response.mode == "auto":
            self.contain()
        elif sc.response.mode == "drill":
            self.say(self.drill_instructions())
        if not wait(self.det.mitigated, sc.timeouts.mitigate, tick=self.tick):
            self.escalate()

    def tick(self) -> None:
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
        if self.sc.response.mode == "auto":
            self.inc.engage(who.oncall, via="auto")
            if who.dedicated_ic:
                self.inc.engage(who.incident_commander, via="auto")
            self.assign_support_roles()

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
        if sli is None or current is None or self.det.mitigated.is_set() \
                or self.det.recovering():
            return
        measured = measured_severity(sli, self.sc.slo)
        if worse(measured, current):
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

    def escalate(self) -> None:
        self.inc.record("incident.escalated", "gameday", {
            "reason": f"not mitigated within {self.sc.timeouts.mitigate:g}s",
            "runbook": self.runbook_status[0] if self.runbook_status else None})
        self.say(f"not mitigated within {self.sc.timeouts.mitigate:g}s: escalating")
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
            self.inc.record("comms.posted", author, {"audience": audience, "text": text,
                                                     "final": final})

    def facts(self, severity: str, every: float | None) -> dict[str, Any]:
        row = self.inc.row
        sli = self.det.current()
        first = next((e for e in self.inc.events() if e.kind == "impact.started"), None)
        started_ago = (time.monotonic_ns() - first.at_monotonic_ns) / 1e9 if first else 0.0
        return {"id": self.inc.id, "title": row["title"], "severity": severity,
                "state": row["state"], "service": self.sc.service,
                "impact": comms.describe_impact(sli.as_dict() if sli else None),
                "roles": self.inc.roles(),
                "runbook": self.runbook_status[0] if self.runbook_status else None,
                "runbook_status": self.runbook_status[1] if self.runbook_status else None,
                "next_update": comms.human_duration(every or 1800),
                "started_ago": comms.human_duration(started_ago),
                "customer_summary": "checkout" if self.sc.service in ("checkout", "payments",
                                                                      "fraud") else "the shop"}

    # -- containment --------------------------------------------------------------------
    def contain(self) -> None:
        sc = self.sc
        name, labels, annotations = self.alert
        try:
            if sc.response.runbook:
                runbook, params = find(sc.response.runbook), {}
            else:
                runbook, params = linked_runbook(name, annotations)
        except (NotFound, ValidationError) as exc:
            self.inc.record("runbook.rejected", "gameday", {"error": str(exc)})
            return
        if runbook is None:
            self.inc.record("runbook.missing", "gameday", {"alert": name})
            self.say(f"no runbook is linked to {name}")
            return
        raw = runbook.from_labels(labels) | params | sc.response.params
        try:
            extravars = validate_params(runbook, raw)
        except ValidationError as exc:
            self.inc.record("runbook.rejected", "gameday",
                            {"runbook": runbook.name, "error": str(exc)})
            self.say(f"runbook {runbook.name} refused: {exc}")
            return
        actor = self.inc.roles().get("responder") or self.inc.roles().get(
            "incident_commander", "gameday")
        self.runbook_status = (runbook.name, "running")
        seq = sum(1 for e in self.inc.events() if e.kind == "runbook.started") + 1
        try:
            result = run_runbook(
                runbook, extravars, self.run_dir / "runbooks" / f"{seq:02d}-{runbook.name}",
                env=self.env, on_event=lambda kind, data: self.inc.record(kind, actor, data),
                tick=self.tick)
        except GamedayError as exc:
            self.runbook_status = (runbook.name, "could not start")
            self.say(str(exc))
            return
        self.runbook_status = (runbook.name, result.status)

    def drill_instructions(self) -> str:
        rb, params = None, {}
        name, labels, annotations = self.alert
        with contextlib.suppress(GamedayError):
            rb, params = linked_runbook(name, annotations)
        lines = [f"Drill: incident {self.inc.id} is {self.inc.severity}. Responders:",
                 f"  gameday incident ack {self.inc.id} --as NAME"]
        if rb:
            args = " ".join(f"-e {k}={v}" for k, v in
                            ({k: v for k, v in labels.items()
                              if k in {p.name for p in rb.parameters}} | params).items())
            lines.append(f"  gameday runbook run {rb.name} {args} --incident {self.inc.id}")
        return "\n".join(lines)
