"""The incident: a state machine over an append-only timeline, the severity policy,
roles, and who gets paged under each response model.

States: ``pending → declared → acknowledged → mitigated → resolved → reviewed``, plus
``cancelled``. Every change is an event in the store; the incident row's ``state``
and ``severity`` are projections of those events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gameday.errors import GamedayError
from gameday.scenario import Slo, Team
from gameday.store import Event, Store
from gameday.traffic import Sli

SEVERITIES = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")
ROLES = ("incident_commander", "deputy", "scribe", "comms_lead", "responder")

TRANSITIONS = {
    "pending": {"declared", "cancelled"},
    "declared": {"acknowledged", "mitigated", "resolved", "cancelled"},
    "acknowledged": {"mitigated", "resolved", "cancelled"},
    "mitigated": {"resolved"},
    "resolved": {"reviewed"},
    "reviewed": set(),
    "cancelled": set(),
}
STATE_OF_EVENT = {
    "incident.declared": "declared",
    "incident.acknowledged": "acknowledged",
    "mitigated": "mitigated",
    "incident.resolved": "resolved",
    "incident.reviewed": "reviewed",
    "incident.cancelled": "cancelled",
}


class InvalidTransition(GamedayError):
    pass


# -- severity -----------------------------------------------------------------------
def rank(severity: str) -> int:
    """1 for SEV-1 (worst) .. 4 for SEV-4."""
    return SEVERITIES.index(severity) + 1


def worse(a: str, b: str) -> bool:
    return rank(a) < rank(b)


def measured_severity(sli: Sli, slo: Slo) -> str:
    """The default policy: the severity the measured impact implies.

    SEV-1 outage (success < 50 %, or nothing completes); SEV-2 significant degradation
    (success < 95 %, or p99 over twice the objective); SEV-3 outside the objective but
    below SEV-2; SEV-4 no user impact measured.
    """
    if sli.total == 0 or sli.success_ratio is None or sli.success_ratio < 0.5:
        return "SEV-1"
    assert sli.p99_ms is not None
    if sli.success_ratio < 0.95 or sli.p99_ms > 2 * slo.latency_p99_ms:
        return "SEV-2"
    if sli.success_ratio < slo.success_ratio or sli.p99_ms > slo.latency_p99_ms:
        return "SEV-3"
    return "SEV-4"


# -- who is paged --------------------------------------------------------------------
def on_duty(people: tuple[str, ...], at: datetime | None = None) -> str:
    """Who holds a weekly rotation at ``at`` (ISO week modulo the rotation's length)."""
    week = (at or datetime.now(UTC)).isocalendar().week
    return people[week % len(people)]


def needs_dedicated_ic(team: Team, severity: str) -> bool:
    if team.model == "centralized":
        return True
    if team.model == "distributed":
        return False
    return rank(severity) <= 2  # hybrid: SEV-1/2 page the dedicated IC


@dataclass(frozen=True)
class Staffing:
    """Who is paged for an incident of a given severity under the team's model."""

    oncall: str
    incident_commander: str
    dedicated_ic: bool
    scribe: str | None
    comms_lead: str | None


def staffing(team: Team, severity: str, at: datetime | None = None) -> Staffing:
    oncall = on_duty(team.oncall, at)
    dedicated = needs_dedicated_ic(team, severity)
    ic = on_duty(team.ic_rotation, at) if dedicated else oncall
    return Staffing(oncall=oncall, incident_commander=ic, dedicated_ic=dedicated,
                    scribe=team.scribe, comms_lead=team.comms)


# -- the incident --------------------------------------------------------------------
class Incident:
    def __init__(self, store: Store, incident_id: int,
                 listener: Callable[[Event], None] | None = None):
        self.store = store
        self.id = incident_id
        self.listener = listener

    @classmethod
    def open(cls, store: Store, title: str, **fields: Any) -> Incident:
        return cls(store, store.create_incident(title, **fields))

    @property
    def row(self) -> dict[str, Any]:
        return self.store.incident(self.id)

    @property
    def state(self) -> str:
        return self.row["state"]

    @property
    def severity(self) -> str | None:
        return self.row["severity"]

    def events(self) -> list[Event]:
        return self.store.events(self.id)

    def roles(self) -> dict[str, str]:
        held: dict[str, str] = {}
        for e in self.events():
            if e.kind == "role.assigned":
                held[e.data["role"]] = e.data["person"]
        return held

    def record(self, kind: str, actor: str, data: dict[str, Any] | None = None, *,
               at_ns: int | None = None, at_utc: str | None = None) -> Event:
        """Append an event; state-changing kinds must be valid transitions."""
        data = data or {}
        target = STATE_OF_EVENT.get(kind)
        row = self.row
        if target and target not in TRANSITIONS[row["state"]]:
            raise InvalidTransition(
                f"incident {self.id} is {row['state']}; it cannot become {target}")
        updates: dict[str, Any] = {}
        if target:
            updates["state"] = target
        if kind in ("incident.declared", "severity.changed"):
            updates["severity"] = data["severity"]
        event = self.store.append(self.id, kind, actor, data, at_monotonic_ns=at_ns,
                                  at_utc=at_utc, incident_updates=updates)
        if self.listener:
            self.listener(event)
        return event

    def declare(self, severity: str, actor: str, **data: Any) -> Event:
        return self.record("incident.declared", actor, {"severity": severity, **data})

    def acknowledge(self, actor: str, **data: Any) -> Event:
        return self.record("incident.acknowledged", actor, data)

    def assign(self, role: str, person: str, actor: str, **data: Any) -> Event:
        if role not in ROLES:
            raise GamedayError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        return self.record("role.assigned", actor, {"role": role, "person": person, **data})

    def page(self, person: str, role: str, reason: str, actor: str = "gameday") -> Event:
        return self.record("page.sent", actor, {"person": person, "role": role,
                                                "reason": reason})

    def change_severity(self, severity: str, actor: str, reason: str, **data: Any) -> Event:
        return self.record("severity.changed", actor, {"severity": severity,
                                                       "previous": self.severity,
                                                       "reason": reason, **data})

    def engage(self, person: str, via: str = "pager") -> list[Event]:
        """``person`` answers their pages: the first answer acknowledges the incident,
        and each role they were paged for becomes theirs. A dedicated IC taking over
        leaves the previous IC as deputy."""
        done: list[Event] = []
        pages = [e for e in self.events() if e.kind == "page.sent" and e.data["person"] == person]
        if not pages:
            raise GamedayError(f"{person} was not paged for incident {self.id}")
        if self.state == "declared":
            done.append(self.acknowledge(person, via=via))
        held = self.roles()
        for page in pages:
            role = page.data["role"]
            if held.get(role) == person:
                continue
            previous = held.get(role)
            done.append(self.assign(role, person, person, via=via, paged_seq=page.seq))
            if role == "incident_commander" and previous and previous != person:
                done.append(self.assign("deputy", previous, person, reason="handoff"))
            held = self.roles()
        return done

    def resolve(self, actor: str, **data: Any) -> Event:
        return self.record("incident.resolved", actor, data)

    def as_dict(self) -> dict[str, Any]:
        row = self.row
        return {**row, "roles": self.roles(),
                "timeline": [e.as_dict() for e in self.events()]}
