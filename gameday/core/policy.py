"""The incident policy in one place: severities, the roles, who is paged under each
response model, response targets, who hears about an incident, when action items are
due.

Severity comes from measured impact (when unsure, the higher one):

=======  ===============================================================
SEV-1    success ratio < 50 %, or nothing completes
SEV-2    success ratio < 95 %, or p99 over twice the objective
SEV-3    outside the objective, below SEV-2
SEV-4    no user impact measured
=======  ===============================================================

SEV-1 and SEV-2 are the *serious* ones: they page the dedicated incident commander
under the hybrid model, need an IC engaged within target, and tell executives and
customers. Response models: ``hybrid`` (default: SEV-3/4 stay with the owning team,
SEV-1/2 page the dedicated IC), ``centralized`` (always the dedicated IC),
``distributed`` (always the owning team).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gameday.core import clock

SEVERITIES = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")
ROLES = ("incident_commander", "deputy", "scribe", "comms_lead", "responder")
MODELS = ("centralized", "distributed", "hybrid")
AUDIENCES = ("internal", "executive", "customer")

# Response targets per severity, in seconds. Defaults from the design: SEV-1 ack, IC
# engaged and first message within 5 min, updates every 20 min; SEV-2 ack within 15 min.
@dataclass(frozen=True)
class Deduction:
    """Points taken off a score, the measure they were taken for (``TTA``, ``runbook``,
    ``hints``, ...) and why, in words a debrief can show."""

    points: int
    metric: str
    reason: str


TARGET_KEYS = ("ack", "engage_ic", "first_comms", "mitigate", "resolve", "update_every")
DEFAULT_TARGETS: dict[str, dict[str, float]] = {
    "SEV-1": {"ack": 300, "engage_ic": 300, "first_comms": 300, "update_every": 1200},
    "SEV-2": {"ack": 900, "engage_ic": 900, "first_comms": 900, "update_every": 1800},
    "SEV-3": {"ack": 1800},
    "SEV-4": {"ack": 86400},
}
# A training drill is an incident compressed into half an hour with people clicking
# through it: the same targets, scaled to what a drill can ask (a scenario's ``drill``
# block overrides them key by key).
DRILL_TARGETS: dict[str, dict[str, float]] = {
    "SEV-1": {"ack": 60, "engage_ic": 120, "first_comms": 180, "mitigate": 600,
              "update_every": 300},
    "SEV-2": {"ack": 60, "engage_ic": 120, "first_comms": 180, "mitigate": 600,
              "update_every": 300},
    "SEV-3": {"ack": 120, "first_comms": 300, "mitigate": 900},
    "SEV-4": {"ack": 300},
}
DUE_DAYS = {"SEV-1": 7, "SEV-2": 14, "SEV-3": 30, "SEV-4": 60}

# Alertmanager's customary ``severity`` label values, for alerts that do not say SEV-n.
LABEL_SEVERITY = {"critical": "SEV-2", "page": "SEV-2", "warning": "SEV-3", "info": "SEV-4"}
UNLABELLED = "SEV-3"


# -- severity ---------------------------------------------------------------------------
def rank(severity: str) -> int:
    """1 for SEV-1 (worst) .. 4 for SEV-4."""
    return SEVERITIES.index(severity) + 1


def worse(a: str, b: str) -> bool:
    """Whether ``a`` is a higher severity than ``b``."""
    return rank(a) < rank(b)


def worst(severities: Iterable[str | None]) -> str | None:
    found = [s for s in severities if s]
    return min(found, key=rank) if found else None


def serious(severity: str | None) -> bool:
    """SEV-1 and SEV-2."""
    return severity is not None and rank(severity) <= 2


def downplayed(declared: str | None, measured: str | None) -> bool:
    """Run at a lower severity than the measured impact warranted."""
    return declared is not None and measured is not None and worse(measured, declared)


class Objective(Protocol):
    @property
    def success_ratio(self) -> float: ...
    @property
    def latency_p99_ms(self) -> float: ...


class Measured(Protocol):
    """The SLIs over a window (``traffic.Sli`` is one)."""

    @property
    def total(self) -> int: ...
    @property
    def success_ratio(self) -> float | None: ...
    @property
    def p99_ms(self) -> float | None: ...


def measured_severity(sli: Measured, slo: Objective) -> str:
    """The severity the measured impact implies (the table above)."""
    if sli.total == 0 or sli.success_ratio is None or sli.success_ratio < 0.5:
        return "SEV-1"
    p99 = sli.p99_ms or 0.0
    if sli.success_ratio < 0.95 or p99 > 2 * slo.latency_p99_ms:
        return "SEV-2"
    if sli.success_ratio < slo.success_ratio or p99 > slo.latency_p99_ms:
        return "SEV-3"
    return "SEV-4"


def severity_from_labels(labels: dict[str, str]) -> str:
    """An alert's severity: ``SEV-n`` as given, else the customary label values."""
    value = labels.get("severity", "")
    if value.upper() in SEVERITIES:
        return value.upper()
    return LABEL_SEVERITY.get(value.lower(), UNLABELLED)


def due_days(severity: str | None) -> int:
    return DUE_DAYS.get(severity or "", 30)


def audiences_for(severity: str) -> tuple[str, ...]:
    """Serious incidents tell executives and customers too; the rest stay internal."""
    return AUDIENCES if serious(severity) else ("internal",)


# -- who is paged ----------------------------------------------------------------------
class Roster(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def oncall(self) -> Sequence[str]: ...
    @property
    def ic_rotation(self) -> Sequence[str]: ...
    @property
    def scribe(self) -> str | None: ...
    @property
    def comms(self) -> str | None: ...


def on_duty(people: Sequence[str], at: datetime | None = None) -> str:
    """Who holds a weekly rotation at ``at`` (ISO week modulo the rotation's length)."""
    week = (at or clock.now()).isocalendar().week
    return people[week % len(people)]


def needs_dedicated_ic(team: Roster, severity: str) -> bool:
    if team.model == "centralized":
        return True
    if team.model == "distributed":
        return False
    return serious(severity)  # hybrid


@dataclass(frozen=True)
class Staffing:
    """Who is paged for an incident of a given severity under the team's model."""

    oncall: str
    incident_commander: str
    dedicated_ic: bool
    scribe: str | None
    comms_lead: str | None


def staffing(team: Roster, severity: str, at: datetime | None = None) -> Staffing:
    oncall = on_duty(team.oncall, at)
    dedicated = needs_dedicated_ic(team, severity)
    ic = on_duty(team.ic_rotation, at) if dedicated else oncall
    return Staffing(oncall=oncall, incident_commander=ic, dedicated_ic=dedicated,
                    scribe=team.scribe, comms_lead=team.comms)


# -- who may do what in ``gameday serve`` ------------------------------------------------------
# A person's access role (``gameday user add NAME --role ...``); each role may do what the
# ones before it may. The shared token is ``admin`` (single-user setups, scripts); a signed
# Alertmanager webhook may only post alerts.
ACCESS_ROLES = ("viewer", "responder", "commander", "admin")
NEEDS = {
    "view": "viewer",                 # pages, incidents, reviews, runs, insights
    "run": "responder",               # run a runbook, post alerts, moves in incidents/drills
    "run_destructive": "commander",   # ask for a destructive run (a second person approves)
    "approve": "commander",           # approve someone else's destructive run
    "start": "commander",             # start drills and game days from the server
    "freeze": "responder",            # pull the safety lever: anyone may stop the line
    "unfreeze": "commander",          # lift it
    "admin": "admin",                 # people and their tokens
}


def may(role: str | None, permission: str) -> bool:
    """Whether an access ``role`` may do ``permission`` (a key of ``NEEDS``)."""
    if role not in ACCESS_ROLES:
        return False
    return ACCESS_ROLES.index(role) >= ACCESS_ROLES.index(NEEDS[permission])
