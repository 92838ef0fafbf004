"""A runbook's dry run (``--check``) changes nothing, so it proves nothing: a drill in
which someone ran the runbook in check mode and the service then came back (by the
experiment's rollback, or by hand) does not make the runbook proven, and the scorecard
does not say the runbook contained the fault. The runbook's moments are its first run
for real, on either database and in the scorecard alike."""

from __future__ import annotations

import time

from gameday.core import events
from gameday.core.settings import Automation
from gameday.game.scoring import compute_metrics
from gameday.incidents.incident import Incident
from gameday.report import insights
from gameday.report.trust import PROVEN, UNPROVEN, runbook_trust

PARAMS = {"service": "checkout"}
PROVIDER = {"type": "python", "module": "m", "func": "f", "arguments": {}}


def drill(store, *, dry_run_first: bool, for_real: bool) -> Incident:
    """A drill's timeline: fault, alert, declare, a dry run of the runbook (perhaps),
    then (perhaps) a run for real, the SLIs back, resolved."""
    incident = Incident.open(store, "drill", service="checkout", scenario="replica-crash",
                             kind="drill")
    base = time.monotonic_ns()

    def at(s: float) -> int:
        return base + int(s * 1e9)

    incident.record(events.fault_injected("kill", "succeeded", PROVIDER, 0.1), "chaos",
                    at_ns=at(0))
    incident.record(events.alert_fired("Burn", {"service": "checkout"}, {}), "gameday",
                    at_ns=at(1))
    incident.record(events.incident_declared("SEV-2", "Burn", mode="drill"), "gameday",
                    at_ns=at(1.1))
    runs = [(True, 5.0)] if dry_run_first else []
    runs += [(False, 7.0)] if for_real else []
    for check, t in runs:
        run = store.create_run(incident.id, "restart-replica", PARAMS, "ana", check,
                               kind="drill")
        incident.record(events.runbook_started("restart-replica", PARAMS, check, "a", run),
                        "ana", at_ns=at(t))
        incident.record(events.runbook_finished("restart-replica", "successful", 0,
                                                check=check, run_id=run), "ana",
                        at_ns=at(t + 1))
        store.update_run(run, status="successful")
    incident.record(events.mitigated(2.0, 100, 10, 10), "detector", at_ns=at(8.5))
    incident.record(events.incident_resolved("SLIs back"), "chidi", at_ns=at(9))
    return incident


def contained_by(store, incident: Incident) -> tuple[str | None, str | None]:
    """What the scorecard (from the timeline) and the report (from SQL) say contained it."""
    metrics = compute_metrics([e.as_dict() for e in incident.events()])
    t = insights.table(store)
    fact = t.facets[t.code[t.ids.index(incident.id)]]
    assert fact.contained_by == metrics.contained_by and fact.runbook == metrics.runbook
    return metrics.contained_by, fact.runbook


def test_a_dry_run_before_the_recovery_proves_nothing(any_store):
    incident = drill(any_store, dry_run_first=True, for_real=False)
    assert contained_by(any_store, incident) == ("responders", None)
    trust = runbook_trust(any_store, "restart-replica", Automation(require="proven"))
    assert trust.level == UNPROVEN, trust


def test_the_run_for_real_after_a_dry_run_is_the_one_that_counts(any_store):
    incident = drill(any_store, dry_run_first=True, for_real=True)
    assert contained_by(any_store, incident) == ("runbook restart-replica",
                                                 "restart-replica")
    trust = runbook_trust(any_store, "restart-replica", Automation(require="proven"))
    assert trust.level == PROVEN and trust.verified_by == incident.id, trust


def test_the_verdict_says_only_a_dry_run_ran(store):
    from gameday.game.verdict import _runbook

    incident = drill(store, dry_run_first=True, for_real=False)
    outcome = _runbook([e.as_dict() for e in incident.events()])
    assert "no runbook was run for real (only a dry run of restart-replica)" in str(outcome)


def test_a_cancelled_dry_run_ends_as_a_dry_run(store):
    from gameday.runs import run as runs

    incident = drill(store, dry_run_first=False, for_real=False)
    run_id = store.create_run(incident.id, "restart-replica", PARAMS, "ana", True,
                              kind="drill")
    runs.cancel(store, run_id, "restart-replica", incident=incident, who="ana",
                reason="its server stopped")
    (ended,) = [e for e in incident.events() if e.kind == "runbook.finished"]
    assert ended.data["status"] == "canceled" and ended.data["check"] is True
    assert contained_by(store, incident) == ("responders", None)
