"""Training drills: the drill clock, injects, hints, per-person scorecards from the
timeline, the Wheel of Misfortune, and a whole drill scripted through the CLI against
the real sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from serving import eventually

from gameday.cli.main import cli
from gameday.core.errors import ValidationError
from gameday.drills.master import DrillRun, drill_title, heading, spin
from gameday.drills.scorecards import scorecards
from gameday.scenarios.drill import Clock, DrillSpec, due_injects
from gameday.scenarios.scenario import load_scenario
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
DRILL = {
    "injects": [
        {"name": "exec-asks-eta", "at": "2s", "from": "executive",
         "message": "The VP of sales asks when checkout will be back.",
         "expect": {"event": "comms.posted", "audience": "executive", "within": "90s",
                    "role": "comms_lead"}},
        {"name": "support-tickets", "when": "runbook.started", "from": "support",
         "message": "Support has 40 tickets about failed payments."},
        {"name": "payments-slow", "when": "severity.changed", "from": "monitoring",
         "message": "Payments is slow too.",
         "fault": {"type": "action", "name": "slow-payments", "provider": {
             "type": "python", "module": "gameday.activities.sandbox",
             "func": "inject_latency", "arguments": {"service": "payments", "ms": 40}}},
         "rollback": {"type": "action", "name": "payments-back", "provider": {
             "type": "python", "module": "gameday.activities.sandbox",
             "func": "remove_latency", "arguments": {"service": "payments"}}}},
    ],
    "hints": [{"stage": "triage", "text": "gameday sandbox status checkout", "cost": 5},
              {"stage": "mitigate", "text": "restart-replica is linked", "cost": 10}],
}


def ev(kind: str, t: float, actor: str = "gameday", **data) -> dict:
    return {"kind": kind, "at_monotonic_ns": int(t * S), "seq": int(t * 1000),
            "actor": actor, "at_utc": "", "data": data}


@pytest.fixture
def drill_scenario(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "scenarios/checkout-replica-crash.yaml").read_text())
    raw["experiment"] = str(ROOT / "experiments/checkout-replica-crash.yaml")
    raw["response"] = {"mode": "drill"}
    raw["timeouts"]["mitigate"] = "90s"
    raw["drill"] = DRILL
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# -- the clock and injects -------------------------------------------------------------------
def test_the_clock_leaves_pauses_out():
    timeline = [ev("fault.injected", 10), ev("drill.paused", 20), ev("drill.resumed", 50),
                ev("drill.paused", 60)]
    clock = Clock.of(timeline)
    assert clock.at(int(5 * S)) is None
    assert clock.at(int(20 * S)) == 10 and clock.at(int(40 * S)) == 10
    assert clock.at(int(55 * S)) == 15 and clock.at(int(100 * S)) == 20
    assert clock.paused


def test_injects_fire_on_time_and_on_events_never_while_paused():
    spec = DrillSpec.model_validate(DRILL)
    start = [ev("fault.injected", 10)]
    assert due_injects(spec, start, int(11 * S)) == []
    assert [i.name for i in due_injects(spec, start, int(12 * S))] == ["exec-asks-eta"]
    fired = [*start, ev("drill.inject", 12, name="exec-asks-eta")]
    assert due_injects(spec, fired, int(30 * S)) == []
    started = [*fired, ev("runbook.started", 20, runbook="restart-replica")]
    assert [i.name for i in due_injects(spec, started, int(21 * S))] == ["support-tickets"]
    paused = [*start, ev("drill.paused", 10.5)]
    assert due_injects(spec, paused, int(60 * S)) == []  # 0.5 s of drill time only


def test_an_inject_after_the_alert_keeps_its_offset_from_the_alert():
    """A replayed incident's question came 10 s after its alert: in the drill it comes
    10 s after the drill's alert, however long detection took, pauses left out."""
    spec = DrillSpec.model_validate({"injects": [
        {"name": "vp", "at": "10s", "after": "alert.fired", "from": "executive",
         "message": "When is checkout back?"}]})
    before = [ev("fault.injected", 10)]
    assert due_injects(spec, before, int(60 * S)) == []      # no alert: nothing to count from
    fired = [*before, ev("alert.fired", 14)]
    assert due_injects(spec, fired, int(23.9 * S)) == []
    assert [i.name for i in due_injects(spec, fired, int(24 * S))] == ["vp"]
    paused = [*fired, ev("drill.paused", 16), ev("drill.resumed", 26)]
    assert due_injects(spec, paused, int(33.9 * S)) == []
    assert [i.name for i in due_injects(spec, paused, int(34 * S))] == ["vp"]


@pytest.mark.parametrize("change, message", [
    ({"injects": [{"name": "x", "after": "alert.fired", "when": "mitigated",
                   "from": "support", "message": "m"}]}, "after counts at from an event"),
    ({"injects": [{"name": "x", "from": "executive", "message": "m"}]}, "exactly one of"),
    ({"injects": [{"name": "x", "at": "1s", "when": "mitigated", "from": "support",
                   "message": "m"}]}, "exactly one of"),
    ({"injects": [{"name": "x", "at": "1s", "from": "the moon", "message": "m"}]}, "from"),
    ({"injects": [{"name": "x", "at": "1s", "from": "support", "message": "m"},
                  {"name": "x", "at": "2s", "from": "support", "message": "m"}]}, "unique"),
    ({"hints": [{"stage": "triage", "text": "t", "cost": 500}]}, "cost"),
    ({"injects": [{"name": "x", "at": "1s", "from": "support", "message": "m",
                   "fault": {"type": "action", "name": "f", "provider": {}}}]}, "rollback"),
    ({"injects": [{"name": "x", "at": "1s", "from": "support", "message": "m",
                   "fault": {"type": "probe", "name": "f", "provider": {}},
                   "rollback": {"type": "action", "name": "r", "provider": {}}}]},
     "Chaos Toolkit action"),
])
def test_bad_drill_blocks_name_the_field(tmp_path, drill_scenario, change, message):
    raw = yaml.safe_load(drill_scenario.read_text())
    raw["drill"] = change
    drill_scenario.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError) as caught:
        load_scenario(drill_scenario)
    assert "drill" in str(caught.value) and message in str(caught.value)


# -- scorecards from a timeline -----------------------------------------------------------
def test_scorecards_explain_every_deduction(drill_scenario):
    sc = load_scenario(drill_scenario)
    timeline = [
        ev("fault.injected", 0),
        ev("alert.fired", 5, alertname="ServiceReplicaDown",
           labels={"service": "checkout"}, annotations={}),
        ev("incident.declared", 5, severity="SEV-3", measured_severity="SEV-2"),
        ev("page.sent", 5, person="ana", role="incident_commander", reason="r"),
        ev("role.assigned", 9, "ana", role="incident_commander", person="ana"),
        ev("role.assigned", 10, "cara", role="comms_lead", person="cara"),
        ev("role.assigned", 10, "ben", role="responder", person="ben"),
        ev("drill.inject", 7, "game-master", name="exec-asks-eta", sender="executive",
           message="m"),
        ev("drill.hint", 12, "ben", stage="triage", text="t", cost=5),
        ev("runbook.started", 14, "ben", runbook="rollback-release", params={}, check=False),
        ev("comms.posted", 20, "cara", audience="internal", text="t", final=False),
        ev("mitigated", 40),
    ]
    cards = {c.person: c for c in scorecards(sc, timeline)}
    assert set(cards) == {"ana", "ben", "cara"}
    ana = cards["ana"]
    assert ana.measures["time_to_answer_page"] == 4.0
    assert ana.measures["severity_set"] == "SEV-3" and ana.measures["severity_measured"] == "SEV-2"
    assert any(d.metric == "severity" and "downplayed" in d.reason and d.points == 20
               for d in ana.deductions)
    ben = cards["ben"]
    assert ben.measures["first_runbook"] == "rollback-release"
    assert {d.metric for d in ben.deductions} >= {"runbook", "hints"}
    assert next(d for d in ben.deductions if d.metric == "hints").points == 5
    cara = cards["cara"]
    assert cara.measures["first_update_internal"] == 15.0
    missed = [d for d in cara.deductions if d.metric == "inject:exec-asks-eta"]
    assert missed and "never came" in missed[0].reason and missed[0].points == 10
    for card in cards.values():
        assert card.score == 100 - sum(d.points for d in card.deductions)


# -- the wheel ----------------------------------------------------------------------------
def test_the_wheel_picks_a_sandbox_scenario_and_an_oncall():
    picks = {spin(ROOT / "scenarios", seed=s) for s in range(12)}
    assert len({p for p, _ in picks}) > 1
    for path, oncall in picks:
        sc = load_scenario(path)
        assert sc.target == "sandbox" and oncall in sc.team.oncall
    assert spin(ROOT / "scenarios", seed=7) == spin(ROOT / "scenarios", seed=7)


# -- what a drill is called, and when it started ---------------------------------------------
@pytest.mark.parametrize("title, drilled, shown", [
    ("Game day: a checkout replica crashes", "Drill: a checkout replica crashes",
     "Drill 7: a checkout replica crashes"),
    ("Game day (kwok): every node is cordoned", "Drill (kwok): every node is cordoned",
     "Drill 7 (kwok): every node is cordoned"),
    ("podinfo answers 400 ms late", "Drill: podinfo answers 400 ms late",
     "Drill 7: podinfo answers 400 ms late"),
    ("Drill: the fraud dependency slows down", "Drill: the fraud dependency slows down",
     "Drill 7: the fraud dependency slows down"),
    ("Game days: a list", "Drill: Game days: a list", "Drill 7: Game days: a list"),
])
def test_a_drill_is_titled_as_a_drill(title, drilled, shown):
    assert drill_title(title) == drilled
    assert heading(7, title) == shown == heading(7, drilled)


def test_a_drills_incident_takes_a_drills_title(store, drill_scenario):
    """The title the drill's game day opens its incident with; a replay's says already
    that it rehearses a real incident."""
    sc = load_scenario(drill_scenario)
    run = DrillRun(store, store.create_drill(str(drill_scenario), game_master="gm",
                                             difficulty="normal", oncall=None))
    assert run.scenario(sc).title == "Drill: a checkout replica crashes"
    assert run.scenario(sc).response.mode == "drill"
    replay = replace(sc, title="Rehearsal of incident #4: checkout down",
                     replay={"incident": 4, "alert": "A", "fault": "f", "why": "w"})
    assert run.scenario(replay).title == "Rehearsal of incident #4: checkout down"


def test_drill_list_says_its_times_are_utc(moment, store):
    store.create_drill("scenarios/checkout-replica-crash.yaml", game_master="gm",
                       difficulty="normal", oncall=None)
    listed = CliRunner().invoke(cli, ["drill", "list"])
    assert listed.exit_code == 0, listed.output
    started = moment.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    assert listed.output.startswith(f"   1 {started}:")
    assert " UTC  starting" in listed.output


# -- a whole drill through the CLI -----------------------------------------------------------
def gameday(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GAMEDAY_URL"}
    return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=check)


def wait_for(store: Store, incident_id: int, kind: str, timeout: float = 90, **match):
    return eventually(
        lambda: next((e for e in store.events(incident_id) if e.kind == kind
                      and all(e.data.get(k) == v for k, v in match.items())), None),
        timeout, lambda: f"{kind} {match}: {[e.kind for e in store.events(incident_id)]}")


@pytest.mark.slow
def test_a_scripted_drill_from_start_to_debrief(drill_scenario):
    store = Store(os.environ["GAMEDAY_DB"])
    begun = gameday("drill", "start", str(drill_scenario), "--json")
    started = json.loads(begun.stdout)
    drill_id, incident_id = started["drill_id"], started["incident_id"]
    # Nobody said where gameday serve runs: the link is on its default address, and the
    # output says so and how to set it, beside the JSON a script reads.
    assert started["join_url"] == f"http://127.0.0.1:8080/drills/{drill_id}"
    assert started["join_url_assumed"] is True
    assert "the join link assumes gameday serve at its default address" in begun.stderr
    assert "GAMEDAY_URL" in begun.stderr and "[serve] url" in begun.stderr
    assert store.incident(incident_id)["title"] == "Drill: a checkout replica crashes"
    try:
        for person, role in (("ana", "incident_commander"), ("cara", "comms_lead"),
                             ("ben", "responder")):
            gameday("drill", "join", str(drill_id), "--as", person, "--role", role)
        wait_for(store, incident_id, "drill.inject", name="exec-asks-eta")
        gameday("drill", "pause", str(drill_id), "--as", "game-master")
        again = gameday("drill", "pause", str(drill_id), "--as", "game-master", check=False)
        assert again.returncode == 1 and "already paused" in again.stderr
        gameday("drill", "resume", str(drill_id), "--as", "game-master")
        hint = gameday("drill", "hint", str(drill_id), "--as", "ben", "--stage", "mitigate")
        assert "restart-replica is linked" in hint.stdout and "costs 10" in hint.stdout
        gameday("incident", "comms", str(incident_id), "--audience", "executive",
                "--as", "cara")
        gameday("incident", "severity", str(incident_id), "SEV-2", "--as", "ana",
                "--reason", "a third of checkouts fail")
        gameday("runbook", "run", "restart-replica", "-e", "service=checkout",
                "--incident", str(incident_id), "--as", "ben")
        wait_for(store, incident_id, "drill.inject", name="support-tickets")
        second = wait_for(store, incident_id, "drill.fault", inject="payments-slow")
        assert second.data["status"] == "succeeded"
        wait_for(store, incident_id, "mitigated")
        gameday("incident", "resolve", str(incident_id), "--as", "ana")
        wait_for(store, incident_id, "target.stopped", timeout=120)
    finally:
        gameday("drill", "end", str(drill_id), "--as", "game-master", check=False)
    rolled = {e.data["activity"]: e.data["status"] for e in store.events(incident_id)
              if e.kind == "fault.rolled_back"}
    assert rolled["payments-back"] == "succeeded"   # the second fault did not outlive it
    debrief = json.loads(gameday("drill", "debrief", str(drill_id), "--json").stdout)
    cards = {c["person"]: c for c in debrief["scorecards"]}
    assert {"ana", "ben", "cara"} <= set(cards)
    assert "incident_commander" in cards["ana"]["roles"]
    assert cards["ben"]["measures"]["first_runbook"] == "restart-replica"
    hints = [d for d in cards["ben"]["deductions"] if d["measure"] == "hints"]
    assert [d["points"] for d in hints] == [10]
    injects = {i["name"]: i for i in debrief["injects"]}
    assert injects["exec-asks-eta"]["met"] is True
    assert injects["support-tickets"]["met"] is None  # nothing expected of it
    assert debrief["incident_state"] == "resolved"
    for card in debrief["scorecards"]:
        assert card["score"] == max(0, 100 - sum(d["points"] for d in card["deductions"]))
    kinds = [e["kind"] for e in debrief["timeline"]]
    assert kinds.count("drill.paused") == 1 and kinds.count("drill.resumed") == 1
    assert store.drill(drill_id)["state"] == "ended"
    assert store.incident(incident_id)["kind"] == "drill"


def test_declaring_mitigation_before_the_slis_recover_is_a_finding(drill_scenario):
    sc = load_scenario(drill_scenario)
    base = [ev("fault.injected", 0), ev("incident.declared", 5, severity="SEV-2",
                                         measured_severity="SEV-2"),
            ev("role.assigned", 6, "ana", role="incident_commander", person="ana")]
    early = [*base, ev("incident.mitigation_declared", 30, "ana", how="restarted"),
             ev("mitigated", 40)]
    ana = next(c for c in scorecards(sc, early) if c.person == "ana")
    called = [d for d in ana.deductions if d.metric == "mitigation_call"]
    assert called and called[0].points == 10 and "10 s before" in called[0].reason
    assert ana.measures["declared_mitigated_after_measured"] == -10.0
    late = [*base, ev("mitigated", 40), ev("incident.mitigation_declared", 43, "ana")]
    ana = next(c for c in scorecards(sc, late) if c.person == "ana")
    assert not [d for d in ana.deductions if d.metric == "mitigation_call"]
    assert ana.measures["declared_mitigated_after_measured"] == 3.0
