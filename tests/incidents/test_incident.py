from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gameday.core import clock, events
from gameday.core.errors import GamedayError
from gameday.core.policy import measured_severity, needs_dedicated_ic, on_duty, staffing
from gameday.incidents.incident import Incident, InvalidTransition
from gameday.scenarios.scenario import Slo, Team
from gameday.slis.samples import Sli

SLO = Slo(success_ratio=0.99, latency_p99_ms=300, window_s=2)


def sli(total=100, ratio=1.0, p99=50.0):
    return Sli(0, "", total, ratio, 10.0, p99)


@pytest.mark.parametrize("s,expected", [
    (sli(ratio=0.40), "SEV-1"),
    (sli(total=0, ratio=None, p99=None), "SEV-1"),
    (sli(ratio=0.70), "SEV-2"),
    (sli(ratio=0.999, p99=700), "SEV-2"),
    (sli(ratio=0.97), "SEV-3"),
    (sli(ratio=1.0, p99=400), "SEV-3"),
    (sli(ratio=1.0, p99=100), "SEV-4"),
])
def test_severity_policy(s, expected):
    assert measured_severity(s, SLO) == expected


def team(model):
    return Team(name="t", model=model, oncall=("ana",), ic_rotation=("chidi",),
                scribe="eli", comms="fay")


@pytest.mark.parametrize("model,severity,dedicated", [
    ("hybrid", "SEV-1", True), ("hybrid", "SEV-2", True), ("hybrid", "SEV-3", False),
    ("hybrid", "SEV-4", False), ("centralized", "SEV-4", True),
    ("distributed", "SEV-1", False)])
def test_response_models(model, severity, dedicated):
    assert needs_dedicated_ic(team(model), severity) is dedicated
    who = staffing(team(model), severity)
    assert who.incident_commander == ("chidi" if dedicated else "ana")


def test_rotation_follows_iso_week():
    people = ("a", "b", "c")
    monday = datetime(2026, 11, 23, tzinfo=UTC)  # ISO week 48
    assert on_duty(people, monday) == people[48 % 3]


def test_who_is_paged_follows_the_week_it_is(moment, scenario):
    """The shipped roster (on call [ana, ben], IC rotation [chidi, dana]) at each pinned
    moment: even ISO weeks ana and chidi, odd ones ben and dana, whatever the local zone,
    across the turn of a year and a daylight-saving change."""
    assert clock.now().isocalendar().week == moment.iso_week
    odd = moment.iso_week % 2
    for severity in ("SEV-1", "SEV-2"):
        who = staffing(scenario.team, severity)
        assert (who.oncall, who.incident_commander) == (("ana", "ben")[odd],
                                                        ("chidi", "dana")[odd])
    minor = staffing(scenario.team, "SEV-3")   # hybrid: the on-call commands a minor one
    assert minor.incident_commander == minor.oncall == ("ana", "ben")[odd]


def test_state_machine_and_timeline(store):
    inc = Incident.open(store, "t")
    assert inc.state == "pending"
    with pytest.raises(InvalidTransition):
        inc.acknowledge("ana")
    inc.declare("SEV-3", "gameday")
    inc.page("ana", "incident_commander", "alert")
    inc.engage("ana")
    assert inc.state == "acknowledged"
    assert inc.roles() == {"incident_commander": "ana"}
    inc.change_severity("SEV-2", "ana", "worse")
    inc.page("chidi", "incident_commander", "bumped")
    inc.engage("chidi")
    assert inc.roles() == {"incident_commander": "chidi", "deputy": "ana"}
    inc.record(events.mitigated(2.0, 100, 10, 10), "detector")
    inc.resolve("chidi")
    with pytest.raises(InvalidTransition):
        inc.record(events.mitigated(2.0, 100, 10, 10), "detector")
    kinds = [e.kind for e in inc.events()]
    assert kinds == ["incident.declared", "page.sent", "incident.acknowledged",
                     "role.assigned", "severity.changed", "page.sent", "role.assigned",
                     "role.assigned", "mitigated", "incident.resolved"]
    seqs = [e.seq for e in inc.events()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(a.at_monotonic_ns <= b.at_monotonic_ns
               for a, b in zip(inc.events(), inc.events()[1:], strict=False))
    assert store.incident(inc.id)["severity"] == "SEV-2"


def test_engage_without_page_is_refused(store):
    inc = Incident.open(store, "t")
    inc.declare("SEV-3", "gameday")
    with pytest.raises(Exception, match="not paged"):
        inc.engage("mallory")


def test_the_store_refuses_a_kind_outside_the_vocabulary(store):
    inc = Incident.open(store, "t")
    with pytest.raises(GamedayError, match="unknown event kind 'alert.fird'"):
        store.append(inc.id, "alert.fird", "x", {})
    assert inc.events() == []
