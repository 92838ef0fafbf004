"""Scoring as pure functions over hand-built timelines."""

from __future__ import annotations

from gameday.game.scoring import compute_metrics, score
from gameday.scenarios.scenario import DEFAULT_TARGETS

S = 1_000_000_000


def timeline(*items):
    return [{"seq": i + 1, "at_monotonic_ns": int(t * S), "at_utc": "", "kind": kind,
             "actor": "x", "data": data} for i, (t, kind, data) in enumerate(items)]


GOOD = timeline(
    (10.0, "fault.injected", {}),
    (10.1, "impact.started", {}),
    (11.0, "alert.fired", {}),
    (11.0, "incident.declared", {"severity": "SEV-2", "measured_severity": "SEV-2"}),
    (11.2, "incident.acknowledged", {}),
    (11.5, "role.assigned", {"role": "incident_commander", "person": "dana"}),
    (11.6, "comms.posted", {"audience": "internal"}),
    (11.7, "runbook.started", {"runbook": "restart-replica"}),
    (13.0, "mitigated", {"requests": 200, "bad_requests": 40}),
    (13.5, "runbook.finished", {"runbook": "restart-replica", "status": "successful"}),
    (16.0, "fault.rolled_back", {}),
    (16.2, "incident.resolved", {}),
)
TARGETS = {"SEV-2": {"ack": 5, "engage_ic": 5, "first_comms": 5, "mitigate": 15}}


def test_metrics_are_spans_between_events():
    m = compute_metrics(GOOD)
    assert (m.TTD, m.TTA, m.TTE, m.TTFC, m.TTM, m.TTR) == (1.0, 0.2, 0.5, 0.6, 3.0, 6.2)
    assert m.contained_by == "runbook restart-replica"
    assert m.budget_burned == 20.0  # 40 bad where 1% of 200 = 2 were allowed
    assert m.severity_declared == m.severity_final == "SEV-2"


def test_a_clean_response_scores_100():
    card = score(compute_metrics(GOOD), TARGETS)
    assert card.score == 100 and card.deductions == ()


def test_every_deduction_is_explained():
    slow = [dict(e) for e in GOOD]
    slow[4]["at_monotonic_ns"] = int(20 * S)   # ack 9 s after the alert
    card = score(compute_metrics(slow), TARGETS)
    assert card.score == 90
    (d,) = card.deductions
    assert d.metric == "TTA" and "9.00s" in d.reason and "5s" in d.reason


def test_wrong_runbook_scores_lower_than_right_one():
    wrong = timeline(
        (10.0, "fault.injected", {}),
        (11.0, "alert.fired", {}),
        (11.0, "incident.declared", {"severity": "SEV-2", "measured_severity": "SEV-2"}),
        (11.2, "incident.acknowledged", {}),
        (11.5, "role.assigned", {"role": "incident_commander", "person": "dana"}),
        (11.6, "comms.posted", {}),
        (11.7, "runbook.started", {"runbook": "restart-replica"}),
        (13.5, "runbook.finished", {"runbook": "restart-replica", "status": "successful"}),
        (21.0, "incident.escalated", {}),
        (22.0, "fault.rolled_back", {}),
        (24.0, "mitigated", {"requests": 500, "bad_requests": 150}),
        (25.0, "incident.resolved", {}),
    )
    m = compute_metrics(wrong)
    assert m.contained_by == "experiment rollback" and m.escalated
    card = score(m, TARGETS)
    assert card.score < score(compute_metrics(GOOD), TARGETS).score
    assert {d.metric for d in card.deductions} == {"containment", "escalation"}


def test_missed_detection_and_unresolved():
    events = timeline((10.0, "fault.injected", {}), (30.0, "detection.missed", {}))
    card = score(compute_metrics(events), DEFAULT_TARGETS)
    assert card.metrics.TTD is None and card.metrics.TTM is None
    assert card.score == 60 and card.deductions[0].metric == "TTD"


def test_running_below_the_measured_severity_is_a_finding():
    events = timeline(
        (10.0, "fault.injected", {}), (11.0, "alert.fired", {}),
        (11.0, "incident.declared", {"severity": "SEV-3", "measured_severity": "SEV-1"}),
        (11.1, "incident.acknowledged", {}), (11.2, "comms.posted", {}),
        (11.3, "runbook.started", {"runbook": "r"}),
        (12.0, "runbook.finished", {"runbook": "r", "status": "successful"}),
        (12.0, "mitigated", {}), (13.0, "incident.resolved", {}))
    card = score(compute_metrics(events), {"SEV-3": {"ack": 10}})
    assert [d.metric for d in card.deductions] == ["severity"]


def test_a_failed_runbook_is_scored():
    failed = [dict(e) for e in GOOD]
    failed[9] = {**failed[9], "data": {"runbook": "restart-replica", "status": "failed"}}
    card = score(compute_metrics(failed), TARGETS)
    assert card.metrics.runbook_status == "failed"
    assert [d.metric for d in card.deductions] == ["runbook"]
    assert "ended failed" in card.deductions[0].reason
