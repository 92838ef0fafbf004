"""Scoring: pure functions from a timeline and targets to metrics and a scorecard.

Ground truth is the game day's own record: it injected the fault, so TTD and TTM
start at ``fault.injected``, not at the alert. Metrics are seconds between measured
event timestamps (monotonic clock); ``None`` where a moment was never reached.
The score starts at 100 and every deduction says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gameday.core.events import Kind, in_time_order
from gameday.core.policy import Deduction, downplayed, serious, worst
from gameday.core.states import RunStatus


def first(events: list[dict[str, Any]], kind: Kind, **match: Any) -> dict[str, Any] | None:
    for e in events:
        if e["kind"] == kind and all(e["data"].get(k) == v for k, v in match.items()):
            return e
    return None


def span(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if a is None or b is None:
        return None
    return round(int(b["at_monotonic_ns"] - a["at_monotonic_ns"]) / 1e9, 3)


@dataclass(frozen=True)
class Metrics:
    TTD: float | None
    TTA: float | None
    TTE: float | None
    TTFC: float | None
    TTM: float | None
    TTR: float | None
    severity_declared: str | None
    severity_final: str | None
    severity_measured: str | None
    requests_during_impact: int | None
    bad_requests: int | None
    budget_burned: float | None
    runbook: str | None
    runbook_status: str | None
    contained_by: str | None
    escalated: bool
    detection_missed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RUNBOOK_MOMENTS = (Kind.RUNBOOK_STARTED, Kind.RUNBOOK_FINISHED)


def compute_metrics(events: Iterable[Any], slo_success_ratio: float = 0.99) -> Metrics:
    ev = in_time_order(events)
    fault = first(ev, Kind.FAULT_INJECTED)
    alert = first(ev, Kind.ALERT_FIRED)
    declared = first(ev, Kind.INCIDENT_DECLARED)
    ack = first(ev, Kind.INCIDENT_ACKNOWLEDGED)
    ic = first(ev, Kind.ROLE_ASSIGNED, role="incident_commander")
    comms = first(ev, Kind.COMMS_POSTED)
    mitigated = first(ev, Kind.MITIGATED)
    resolved = first(ev, Kind.INCIDENT_RESOLVED)
    rolled_back = first(ev, Kind.FAULT_ROLLED_BACK)
    # a runbook's dry run (--check) changes nothing: its first run for real is the one
    ran = [e for e in ev if e["kind"] not in RUNBOOK_MOMENTS or not e["data"].get("check")]
    started = first(ran, Kind.RUNBOOK_STARTED)
    finished = first(ran, Kind.RUNBOOK_FINISHED)

    severity_events = [e for e in ev
                       if e["kind"] in (Kind.INCIDENT_DECLARED, Kind.SEVERITY_CHANGED)]
    measured = worst(e["data"].get("measured_severity") for e in severity_events)
    final = severity_events[-1]["data"]["severity"] if severity_events else None

    contained_by = None
    if mitigated:
        if rolled_back and rolled_back["at_monotonic_ns"] <= mitigated["at_monotonic_ns"]:
            contained_by = "experiment rollback"
        elif finished and finished["at_monotonic_ns"] <= mitigated["at_monotonic_ns"] + 5e9 \
                and started and started["at_monotonic_ns"] <= mitigated["at_monotonic_ns"]:
            contained_by = f"runbook {started['data']['runbook']}"
        else:
            contained_by = "responders"

    requests = bad = None
    budget = None
    if mitigated:
        requests = mitigated["data"].get("requests")
        bad = mitigated["data"].get("bad_requests")
        # a Prometheus reading is not a request: the budget is the team's own to read
        counted = mitigated["data"].get("unit", "request") == "request"
        allowed = (1 - slo_success_ratio) * (requests or 0) if counted else 0
        budget = round(bad / allowed, 2) if allowed and bad is not None else None

    return Metrics(
        TTD=span(fault, alert), TTA=span(alert, ack), TTE=span(declared, ic),
        TTFC=span(declared, comms), TTM=span(fault, mitigated), TTR=span(fault, resolved),
        severity_declared=declared["data"]["severity"] if declared else None,
        severity_final=final,
        severity_measured=measured,
        requests_during_impact=requests, bad_requests=bad, budget_burned=budget,
        runbook=started["data"]["runbook"] if started else None,
        runbook_status=finished["data"]["status"] if finished else None,
        contained_by=contained_by, escalated=first(ev, Kind.INCIDENT_ESCALATED) is not None,
        detection_missed=first(ev, Kind.DETECTION_MISSED) is not None)


@dataclass(frozen=True)
class Scorecard:
    score: int
    metrics: Metrics
    targets: dict[str, float]
    deductions: tuple[Deduction, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "metrics": self.metrics.as_dict(), "targets": self.targets,
                "deductions": [asdict(d) for d in self.deductions]}


def late(name: str, value: float | None, target: float | None, points: int,
          missing: int, what: str) -> Deduction | None:
    if target is None:
        return None
    if value is None:
        return Deduction(missing, name, f"{what} never happened (target {target:g}s)")
    if value > target:
        return Deduction(points, name, f"{what} took {value:.2f}s, target {target:g}s")
    return None


def score(metrics: Metrics, targets_by_severity: Mapping[str, Mapping[str, float]]) -> Scorecard:
    """100 minus explained deductions, against the targets of the final severity."""
    m = metrics
    severity = m.severity_final or "SEV-4"
    targets = dict(targets_by_severity.get(severity, {}))
    found: list[Deduction | None] = []
    if m.TTD is None:
        found.append(Deduction(40, "TTD", "the fault was never detected"))
    else:
        if m.detection_missed:  # the fallback detector opened it: the response still counts
            found.append(Deduction(40, "TTD", "the alert did not fire; gameday's SLO burn "
                                              f"detector opened the incident {m.TTD:.1f} s "
                                              "after the fault began"))
        found.append(late("TTA", m.TTA, targets.get("ack"), 10, 15, "acknowledgement"))
        if serious(severity):
            found.append(late("TTE", m.TTE, targets.get("engage_ic"), 10, 15,
                               "engaging an incident commander"))
        found.append(late("TTFC", m.TTFC, targets.get("first_comms"), 10, 10,
                           "the first status update"))
        if m.TTM is None:
            found.append(Deduction(30, "TTM", "the impact was never mitigated"))
        else:
            found.append(late("TTM", m.TTM, targets.get("mitigate"), 15, 0, "mitigation"))
        if m.TTR is None:
            found.append(Deduction(10, "TTR", "the incident was never resolved"))
        if m.runbook is None:
            found.append(Deduction(10, "runbook", "no runbook was run"))
        elif m.runbook_status != RunStatus.SUCCESSFUL:
            found.append(Deduction(15, "runbook",
                                   f"runbook {m.runbook} ended {m.runbook_status}"))
        if m.contained_by == "experiment rollback":
            found.append(Deduction(20, "containment",
                                   "the response did not contain the fault; the experiment's "
                                   "rollback did"))
        if m.escalated:
            found.append(Deduction(10, "escalation",
                                   "containment ran out of time and the incident escalated"))
        if downplayed(m.severity_final, m.severity_measured):
            found.append(Deduction(10, "severity",
                                   f"the incident was run as {m.severity_final}, but the "
                                   f"measured impact reached {m.severity_measured}"))
    deductions = tuple(d for d in found if d is not None)
    total = max(0, 100 - sum(d.points for d in deductions))
    return Scorecard(total, metrics, targets, deductions)
