"""Scorecards of a training drill: a card per person who held a role or was paged,
computed from the timeline alone against the scenario's targets and the drill's
expectations, each deduction explained (what the debrief shows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gameday.core.events import Kind, in_time_order
from gameday.core.policy import (
    Deduction,
    audiences_for,
    rank,
    worst,
)
from gameday.scenarios.drill import Clock, DrillSpec, ExpectSpec, event_ns
from gameday.scenarios.scenario import Scenario


@dataclass
class Card:
    """One person's scorecard, by the roles they held."""

    person: str
    roles: list[str]
    measures: dict[str, float | str | None] = field(default_factory=dict)
    deductions: list[Deduction] = field(default_factory=list)

    @property
    def score(self) -> int:
        return max(0, 100 - sum(d.points for d in self.deductions))

    def deduct(self, points: int, measure: str, why: str) -> None:
        self.deductions.append(Deduction(points, measure, why))

    def as_dict(self) -> dict[str, Any]:
        return {"person": self.person, "roles": self.roles, "score": self.score,
                "measures": self.measures,  # a deduction as the debrief's JSON says it
                "deductions": [{"points": d.points, "measure": d.metric, "why": d.reason}
                               for d in self.deductions]}


def _late(card: Card, measure: str, value: float | None, target: float | None, points: int,
          what: str) -> None:
    card.measures[measure] = value
    if target is None:
        return
    if value is None:
        card.deduct(points, measure, f"never {what} (target {target:g} s)")
    elif value > target:
        card.deduct(min(points, max(1, round(points * (value - target) / target))), measure,
                    f"{what} after {value:.1f} s, target {target:g} s")


def _since(clock: Clock, start: Any, done: Any) -> float | None:
    """Drill seconds from ``start`` to ``done``; 0 when it was done before it started."""
    if start is not None and done is not None and event_ns(done) <= event_ns(start):
        return 0.0
    return clock.between(start, done)


def scorecards(sc: Scenario, timeline: Sequence[Any]) -> list[Card]:
    """A card for every person who held a role or was paged, from the timeline alone."""
    ev = [e if isinstance(e, Mapping) else e.as_dict() for e in in_time_order(list(timeline))]
    clock = Clock.of(ev)
    people: dict[str, Card] = {}

    def card(person: str) -> Card:
        return people.setdefault(person, Card(person, []))

    for e in ev:
        d = e["data"]
        if e["kind"] == Kind.ROLE_ASSIGNED and d["role"] not in card(d["person"]).roles:
            card(d["person"]).roles.append(d["role"])
        elif e["kind"] == Kind.PAGE_SENT:
            card(d["person"])
    declared = next((e for e in ev if e["kind"] == Kind.INCIDENT_DECLARED), None)
    severity_events = [e for e in ev if e["kind"] in (Kind.INCIDENT_DECLARED,
                                                       Kind.SEVERITY_CHANGED)]
    measured = worst(e["data"].get("measured_severity") for e in severity_events)
    spec = sc.drill or DrillSpec()
    targets = spec.target_for(measured or (declared["data"]["severity"] if declared
                                           else "SEV-3"))

    for person, c in people.items():
        pages = [e for e in ev if e["kind"] == Kind.PAGE_SENT and e["data"]["person"] == person]
        acted = [e for e in ev if e["actor"] == person]
        if pages:  # answering the page (someone already at their post answered at once)
            answered = next((e for e in ev if e["actor"] == person and e["kind"] in (
                Kind.INCIDENT_ACKNOWLEDGED, Kind.ROLE_ASSIGNED)), None)
            _late(c, "time_to_answer_page", _since(clock, pages[0], answered),
                  targets.get("ack"), 15, "answered the page")
        if "incident_commander" in c.roles:
            _score_ic(c, sc, ev, clock, acted, targets, measured)
        if "comms_lead" in c.roles or (
                "incident_commander" in c.roles and not any(
                    "comms_lead" in other.roles for other in people.values())):
            _score_comms(c, sc, ev, clock, acted, targets, measured)
        if "responder" in c.roles or (not c.roles and any(
                p["data"]["role"] == "responder" for p in pages)):
            _score_responder(c, sc, ev, clock, acted, targets)
        hints = [e for e in acted if e["kind"] == Kind.DRILL_HINT]
        for h in hints:
            c.deduct(int(h["data"].get("cost") or 0), "hints",
                     f"took the {h['data'].get('stage')} hint")
    _score_injects(sc, ev, clock, people)
    return sorted(people.values(), key=lambda c: (-len(c.roles), c.person))


def _score_ic(c: Card, sc: Scenario, ev: list[dict[str, Any]], clock: Clock,
              acted: list[dict[str, Any]], targets: Mapping[str, float],
              measured: str | None) -> None:
    declared = next((e for e in ev if e["kind"] == Kind.INCIDENT_DECLARED), None)
    took = next((e for e in ev if e["kind"] == Kind.ROLE_ASSIGNED and e["data"]["role"] ==
                 "incident_commander" and e["data"]["person"] == c.person), None)
    _late(c, "time_to_take_command", _since(clock, declared, took), targets.get("engage_ic"),
          15, "took command")
    held = [e for e in ev if e["kind"] in (Kind.INCIDENT_DECLARED, Kind.SEVERITY_CHANGED)]
    final = held[-1]["data"]["severity"] if held else None
    c.measures["severity_set"] = final
    c.measures["severity_measured"] = measured
    if measured and final and rank(final) > rank(measured):
        c.deduct(20, "severity", f"left the incident at {final} while the impact measured "
                                 f"{measured}: downplayed")
    elif measured and final and rank(final) < rank(measured):
        c.deduct(5, "severity", f"set {final}, more than the measured {measured}")
    mitigated = next((e for e in ev if e["kind"] == Kind.MITIGATED), None)
    window = (sc.drill or DrillSpec()).time_box
    escalated = next((e for e in ev if e["kind"] == Kind.INCIDENT_ESCALATED), None)
    fault = next((e for e in ev if e["kind"] == Kind.FAULT_INJECTED), None)
    to_mitigate = clock.between(fault, mitigated)
    if (to_mitigate is None or to_mitigate > window) and (
            escalated is None or escalated["actor"] != c.person):
        c.deduct(10, "escalation", f"the {window:g} s time box ran out and the incident "
                                   "commander did not escalate")
    handovers = [e for e in ev if e["kind"] == Kind.ROLE_ASSIGNED and e["data"]["role"] ==
                 "deputy" and e["data"].get("reason") == "handoff"]
    c.measures["handovers"] = len(handovers)
    called = next((e for e in acted if e["kind"] == Kind.MITIGATION_DECLARED), None)
    if called is not None:
        early = clock.between(called, mitigated) if mitigated is not None else None
        c.measures["declared_mitigated_after_measured"] = (
            None if early is None else round(-early, 1))
        if mitigated is None or event_ns(called) < event_ns(mitigated):
            c.deduct(10, "mitigation_call", "declared the impact contained while the SLIs "
                     "were still outside the objective" + (
                         f" ({early:.0f} s before they recovered)" if early else ""))


def _score_comms(c: Card, sc: Scenario, ev: list[dict[str, Any]], clock: Clock,
                 acted: list[dict[str, Any]], targets: Mapping[str, float],
                 measured: str | None) -> None:
    declared = next((e for e in ev if e["kind"] == Kind.INCIDENT_DECLARED), None)
    posts = [e for e in acted if e["kind"] == Kind.COMMS_POSTED]
    for audience in audiences_for(measured or "SEV-3"):
        first = next((e for e in posts if e["data"]["audience"] == audience), None)
        _late(c, f"first_update_{audience}", clock.between(declared, first),
              targets.get("first_comms"), 10, f"posted a first {audience} update")
    every = targets.get("update_every")
    end = next((e for e in ev if e["kind"] in (Kind.MITIGATED, Kind.INCIDENT_RESOLVED)), None)
    internal = [e for e in posts if e["data"]["audience"] == "internal"]
    if every and internal and end:
        gaps = [clock.between(a, b) or 0.0 for a, b in zip(internal, [*internal[1:], end],
                                                           strict=False)]
        longest = max(gaps)
        c.measures["longest_gap_between_updates"] = round(longest, 1)
        if longest > every * 1.5:
            c.deduct(10, "cadence", f"{longest:.0f} s between internal updates, cadence "
                                    f"{every:g} s")
    missing = [e["data"].get("missing") for e in posts if e["data"].get("missing")]
    for fields in missing:
        c.deduct(5, "required_fields", f"an update left out {', '.join(fields)}")


def _score_responder(c: Card, sc: Scenario, ev: list[dict[str, Any]], clock: Clock,
                     acted: list[dict[str, Any]], targets: Mapping[str, float]) -> None:
    runs = [e for e in acted if e["kind"] == Kind.RUNBOOK_STARTED
            and not e["data"].get("check")]
    expected = _expected_runbook(sc, ev)
    c.measures["first_runbook"] = runs[0]["data"]["runbook"] if runs else None
    if runs and expected and runs[0]["data"]["runbook"] != expected:
        c.deduct(15, "runbook", f"ran {runs[0]['data']['runbook']} first; the alert links to "
                                f"{expected}")
    fault = next((e for e in ev if e["kind"] == Kind.FAULT_INJECTED), None)
    mitigated = next((e for e in ev if e["kind"] == Kind.MITIGATED), None)
    _late(c, "time_to_mitigate", clock.between(fault, mitigated), targets.get("mitigate"),
          15, "mitigated")


def _expected_runbook(sc: Scenario, ev: list[dict[str, Any]]) -> str | None:
    if sc.response.runbook:
        return sc.response.runbook
    fired = next((e for e in ev if e["kind"] == Kind.ALERT_FIRED), None)
    if fired is None:
        return None
    from gameday.runbooks.routing import route

    found = route(fired["data"]["alertname"], fired["data"].get("labels") or {},
                  fired["data"].get("annotations") or {})
    return found.runbook.name if found.runbook else None


def _score_injects(sc: Scenario, ev: list[dict[str, Any]], clock: Clock,
                   people: dict[str, Card]) -> None:
    spec = sc.drill
    if spec is None:
        return
    for inject in (e for e in ev if e["kind"] == Kind.DRILL_INJECT):
        declared = next((i for i in spec.injects if i.name == inject["data"]["name"]), None)
        if declared is None or declared.expect is None:
            continue
        want = declared.expect
        holders = [p for p, c in people.items() if want.role is None or want.role in c.roles]
        took = clock.between(inject, _answer(want, inject, ev,
                                             holders if want.role else None))
        if took is not None and took <= want.within:
            continue
        blamed = [people[p] for p in holders] or list(people.values())[:1]
        why = (f"inject {declared.name}: {want.event}"
               f"{' for ' + want.audience if want.audience else ''} "
               + (f"after {took:.0f} s" if took is not None else "never came")
               + f" (within {want.within:g} s expected)")
        for c in blamed:
            c.deduct(want.points, f"inject:{declared.name}", why)


def _answer(want: ExpectSpec, inject: dict[str, Any], ev: list[dict[str, Any]],
            by: list[str] | None = None) -> dict[str, Any] | None:
    """The first event after ``inject`` that is what it expected (by one of ``by``)."""
    return next((e for e in ev if e["kind"] == want.event and event_ns(e) >= event_ns(inject)
                 and (want.audience is None or e["data"].get("audience") == want.audience)
                 and (by is None or e["actor"] in by)), None)


def answered(spec: DrillSpec, timeline: Sequence[Any]) -> list[dict[str, Any]]:
    """Each inject fired so far, and whether (and how fast) it was answered."""
    ev = [e if isinstance(e, Mapping) else e.as_dict() for e in in_time_order(list(timeline))]
    clock = Clock.of(ev)
    out = []
    for inject in (e for e in ev if e["kind"] == Kind.DRILL_INJECT):
        declared = next((i for i in spec.injects if i.name == inject["data"]["name"]), None)
        want = declared.expect if declared else None
        took = clock.between(inject, _answer(want, inject, ev)) if want else None
        out.append({"name": inject["data"]["name"], "from": inject["data"].get("sender"),
                    "message": inject["data"].get("message"),
                    "at_s": clock.at(event_ns(inject)), "by": inject["actor"],
                    "expected": (f"{want.event}"
                                 f"{' for ' + want.audience if want.audience else ''}"
                                 f" within {want.within:g} s") if want else None,
                    "answered_after_s": took,
                    "met": None if want is None else (took is not None and took <= want.within)})
    return out
