"""Resolving the incident by hand is a legitimate move at any time, also before gameday's
detector has seen the SLIs back inside the objective for the recovery window.

People got there first: the detector records the recovery it measured without trying
to move the incident back to ``mitigated``, the drill ends by itself (its fault rolled
back, its sandbox stopped, the drill over, the debrief written), ``gameday drill end``
on it succeeds, and nothing prints a traceback. The same holds for a game day whose
runbook runs by itself while a person resolves the incident by hand.

Which came first is made certain from the events, not from sleeps: the scenario's
recovery window is longer than the moves take, and each test checks on the timeline
that the incident was resolved while no ``mitigated`` had been recorded yet. The last
tests hold the same rules to the store alone, races included (which move came first is
decided under the incident's lock).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from serving import eventually

from gameday.core import events as entries
from gameday.core.detached import spawn_gameday
from gameday.core.errors import GamedayError
from gameday.core.settings import Settings
from gameday.drills import master
from gameday.game.run import record_measured
from gameday.game.scoring import compute_metrics
from gameday.incidents.incident import Incident, InvalidTransition
from gameday.scenarios.drill import DrillSpec
from gameday.scenarios.scenario import load_scenario
from gameday.store import Store, utc_now
from gameday.store.leases import leftovers
from gameday.targets.sandbox.client import sandbox_processes

ROOT = Path(__file__).resolve().parents[2]
RECOVERY_WINDOW = "6s"  # the detector confirms the SLIs back this long after they were
PROMPTLY_S = 60         # the drill's end after the resolve: seconds, not its 15-minute time box


def scenario(tmp_path: Path, mode: str) -> Path:
    raw = yaml.safe_load((ROOT / "scenarios/checkout-replica-crash.yaml").read_text())
    raw["experiment"] = str(ROOT / "experiments/checkout-replica-crash.yaml")
    raw["response"] = {"mode": mode}
    raw["recovery_window"] = RECOVERY_WINDOW
    path = tmp_path / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def gameday(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "gameday", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert not check or done.returncode == 0, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr, (args, done.stderr)
    return done


def kinds(store: Store, incident_id: int) -> list[str]:
    return [e.kind for e in store.events(incident_id)]


def first(store: Store, incident_id: int, kind: str, timeout: float = 90) -> Any:
    return eventually(
        lambda: next((e for e in store.events(incident_id) if e.kind == kind), None),
        timeout, lambda: f"{kind}: {kinds(store, incident_id)}")


def resolve_before_mitigated(store: Store, incident_id: int, who: str) -> None:
    """A person resolves it (as ``gameday incident resolve`` does, in this process: a
    command's start-up on a loaded machine could let the recovery land first), and
    proof from the timeline that it came first."""
    Incident(store, incident_id).resolve(who)
    seen = kinds(store, incident_id)
    assert "incident.resolved" in seen and "mitigated" not in seen, seen


def nothing_left(run_dir: str) -> None:
    """No process of the run: the sandbox and every process a game day starts carry its
    marker (the sandbox's own shutdown on SIGTERM may take a moment after its parent)."""
    eventually(lambda: not sandbox_processes(Path(run_dir) / "sandbox")
               and not leftovers(run_dir), 10,
               lambda: f"processes left: {sandbox_processes(Path(run_dir) / 'sandbox')} "
                       f"{leftovers(run_dir)}")


@pytest.mark.slow
@pytest.mark.parametrize("fix", ["runbook", "nothing"])
def test_a_drill_resolved_before_mitigated_is_recorded_ends_by_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fix: str) -> None:
    """As a reviewer did it: acknowledge, run the runbook (or do nothing about the
    fault), resolve at once. ``gameday drill start`` is ``master.start_drill``, run here
    so that the drill's game-day process is this test's child and its exit code is read
    where it happens."""
    store = Store(os.environ["GAMEDAY_DB"])
    spawned: list[subprocess.Popen[bytes]] = []

    def spawn(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        spawned.append(child := spawn_gameday(*args, **kwargs))
        return child

    monkeypatch.setattr("gameday.drills.master.spawn_gameday", spawn)
    started = master.start_drill(store, Settings.load(cwd=ROOT),
                                 scenario(tmp_path, "drill"), game_master="gm")
    drill_id, incident_id = started["drill_id"], started["incident_id"]
    game, log = spawned[0], Path(started["log"])
    try:
        first(store, incident_id, "page.sent")
        gameday("incident", "ack", str(incident_id), "--as", "ana")
        if fix == "runbook":
            gameday("runbook", "run", "restart-replica", "-e", "service=checkout",
                    "--incident", str(incident_id), "--as", "ana")
        resolve_before_mitigated(store, incident_id, "chidi")
        code = game.wait(timeout=PROMPTLY_S)
    finally:
        if game.poll() is None:
            game.kill()
            game.wait()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]

    row = store.drill(drill_id)
    assert row["state"] == "ended"
    assert store.incident(incident_id)["state"] == "resolved"
    events = store.events(incident_id)
    verdict = next(e for e in events if e.kind == "gameday.verdict")
    assert code == verdict.data["exit_code"], (verdict.data, output[-2000:])
    rolled = {e.data["activity"]: e.data["status"] for e in events
              if e.kind == "fault.rolled_back"}
    assert rolled["restart-checkout-replica-2-if-down"] == "succeeded", rolled
    assert set(rolled.values()) == {"succeeded"}, rolled  # the drill's second fault's too
    # It ended because the incident did, as soon as the SLIs said what they would.
    resolved_at = next(e for e in events if e.kind == "incident.resolved").at_monotonic_ns
    ended_by = next(e for e in events if e.kind == "drill.ended")
    assert ended_by.actor == master.GAME_MASTER and "resolved by chidi" in \
        ended_by.data["reason"]
    stopped = next(e for e in events if e.kind == "target.stopped")
    assert (stopped.at_monotonic_ns - resolved_at) / 1e9 < PROMPTLY_S
    assert row["run_dir"]
    nothing_left(row["run_dir"])

    # The recovery was measured and is on the record without moving the incident back;
    # resolved once, by the person.
    resolved = [e for e in events if e.kind == "incident.resolved"]
    assert [e.actor for e in resolved] == ["chidi"]
    mitigated = [e for e in events if e.kind == "mitigated"]
    assert len(mitigated) == 1 and mitigated[0].seq > resolved[0].seq
    metrics = compute_metrics(events)
    assert metrics.TTM is not None and metrics.TTR is not None
    if fix == "runbook":  # the SLIs came back with the runbook, before the resolve
        assert metrics.TTM < metrics.TTR
        assert metrics.contained_by == "runbook restart-replica"
        assert code == 0, verdict.data  # the steady state was back before the rollbacks
    else:  # nobody fixed it: the drill's end rolled the fault back
        assert metrics.contained_by == "experiment rollback"
        assert code == 3, verdict.data  # deviated: it did not come back until then
        assert verdict.data["failed"] == ["steady state after the fault", "runbook succeeded"]

    # Ending it is done already: the game master's end succeeds and changes nothing.
    gameday("drill", "end", str(drill_id), "--as", "gm")
    assert kinds(store, incident_id).count("drill.ended") == 1
    listed = gameday("drill", "list").stdout.splitlines()
    assert "ended" in next(line for line in listed if line.startswith(f"{drill_id:>4} "))
    debrief = json.loads(gameday("drill", "debrief", str(drill_id), "--json").stdout)
    assert debrief["incident_state"] == "resolved" and debrief["state"] == "ended"
    assert debrief["review"] and Path(debrief["review"]).is_file()
    cards = {c["person"]: c for c in debrief["scorecards"]}
    assert "ana" in cards and "incident_commander" in cards["ana"]["roles"]
    if fix == "runbook":  # mitigated in time: no one is blamed for a time box that never ran out
        assert not any(d["measure"] == "escalation" for c in cards.values()
                       for d in c["deductions"])


def resolved_while_running(path: Path, first_kind: str) -> tuple[Store, int, int, str, str]:
    """``gameday run PATH --json``, resolved by a person once its timeline has
    ``first_kind``: the store, the incident, the game day's exit code and its output."""
    game = subprocess.Popen([sys.executable, "-m", "gameday", "run", str(path), "--json"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        store = Store(os.environ["GAMEDAY_DB"])
        seen = eventually(lambda: next((e for i in store.incidents()
                                        for e in store.events(i["id"])
                                        if e.kind == first_kind), None), 90, first_kind)
        resolve_before_mitigated(store, seen.incident_id, "chidi")
        out, err = game.communicate(timeout=PROMPTLY_S)
    finally:
        if game.poll() is None:
            game.kill()
            game.communicate()
    assert "Traceback" not in out + err, err[-3000:]
    return store, seen.incident_id, game.returncode, out, err


@pytest.mark.slow
def test_a_game_day_resolved_by_hand_while_its_runbook_runs(tmp_path: Path) -> None:
    """``response: auto``: the linked runbook runs by itself, and a person resolves the
    incident by hand as it starts. The game day measures the recovery, leaves the
    person's resolution alone, and ends with its verdict."""
    store, incident_id, code, out, err = resolved_while_running(scenario(tmp_path, "auto"),
                                                                "runbook.started")
    result = json.loads(out)
    assert result["status"] == "resolved"
    assert code == result["verdict"]["exit_code"] == 0, (result["verdict"], err)
    seen = kinds(store, incident_id)
    assert "gameday.failed" not in seen and "recovery.missed" not in seen, seen
    assert seen.count("incident.resolved") == 1 and seen.count("mitigated") == 1
    assert next(e for e in store.events(incident_id)
                if e.kind == "incident.resolved").actor == "chidi"
    assert result["metrics"]["TTM"] is not None
    nothing_left(result["run_dir"])


@pytest.mark.slow
def test_a_game_day_nobody_responds_to_ends_when_a_person_resolves_it(tmp_path: Path) -> None:
    """``response: none``: nobody is meant to respond, and the hold waits for the SLIs or
    the containment window. A person who resolves the incident by hand ends the hold at
    once: the fault is rolled back, and nothing is escalated or paged on an incident
    that is over."""
    path = scenario(tmp_path, "none")
    raw = yaml.safe_load(path.read_text())
    raw["timeouts"]["mitigate"] = "10m"  # far past PROMPTLY_S: the hold must not wait it out
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    store, incident_id, code, out, err = resolved_while_running(path, "page.sent")
    result = json.loads(out)
    assert result["status"] == "resolved"
    assert code == result["verdict"]["exit_code"], (result["verdict"], err)
    events = store.events(incident_id)
    resolved = next(e for e in events if e.kind == "incident.resolved")
    assert resolved.actor == "chidi"
    after = [e.kind for e in events if e.seq > resolved.seq]
    assert "incident.escalated" not in after and "page.sent" not in after, after
    rolled = [e for e in events if e.kind == "fault.rolled_back"]
    assert rolled and {e.data["status"] for e in rolled} == {"succeeded"}, rolled
    assert (rolled[0].at_monotonic_ns - resolved.at_monotonic_ns) / 1e9 < PROMPTLY_S
    assert result["metrics"]["contained_by"] == "experiment rollback"
    nothing_left(result["run_dir"])


# -- the same rules, without a sandbox -------------------------------------------------------
def opened(store: Store) -> Incident:
    incident = Incident.open(store, "drill", service="checkout", kind="drill")
    incident.declare("SEV-3", "gameday")
    return incident


def test_a_recovery_measured_after_the_resolve_is_recorded_and_the_state_stays(store):
    incident = opened(store)
    incident.resolve("chidi")
    record_measured(incident, entries.mitigated(2.0, 100, 30, 30), time.monotonic_ns(),
                    utc_now())
    assert incident.state == "resolved"
    assert kinds(store, incident.id)[-2:] == ["incident.resolved", "mitigated"]
    before = opened(store)  # measured first, it moves the incident as always
    record_measured(before, entries.mitigated(2.0, 100, 30, 30), time.monotonic_ns(),
                    utc_now())
    assert before.state == "mitigated"


def test_the_game_days_own_resolve_loses_to_a_persons_without_an_error(store):
    incident = opened(store)

    def theirs_lands_first() -> None:
        incident.resolve("chidi")    # a person's move, a moment before the game day's
        incident.resolve("gameday")  # refused under the incident's lock

    assert incident.unless_ended(theirs_lands_first) is False
    assert [e.actor for e in store.events(incident.id)
            if e.kind == "incident.resolved"] == ["chidi"]
    assert incident.unless_ended(lambda: incident.resolve("gameday")) is False
    pending = Incident.open(store, "not declared", kind="drill")
    with pytest.raises(InvalidTransition):  # a refusal for another reason is not hidden
        pending.unless_ended(lambda: pending.resolve("gameday"))


def test_a_drill_ends_with_its_incident_once_and_ending_it_again_is_done(store):
    sc = load_scenario(ROOT / "scenarios/checkout-replica-crash.yaml")
    incident = opened(store)
    incident.record(entries.fault_injected("kill", "succeeded", {}, 0.0), "chaos")
    drill_id = store.create_drill("scenarios/checkout-replica-crash.yaml", game_master="gm",
                                  difficulty="normal", oncall=None)
    store.update_drill(drill_id, incident_id=incident.id, state="running")
    spec = DrillSpec.model_validate({"injects": [
        {"name": "now", "at": "0s", "from": "support", "message": "m"},
        {"name": "on-ack", "when": "incident.acknowledged", "from": "support",
         "message": "m"}]})
    assert master.fire_due_injects(incident, spec) == ["now"]
    incident.acknowledge("ana")
    incident.resolve("chidi")
    for _ in range(2):  # a tick of the hold, then the next
        assert master.fire_due_injects(incident, spec) == []  # nothing fires any more
    ended = [e for e in store.events(incident.id) if e.kind == "drill.ended"]
    assert [(e.actor, e.data["reason"]) for e in ended] == [
        (master.GAME_MASTER, "incident resolved by chidi: the drill ends")]
    drill = master.Drill(store, store.drill(drill_id), sc)
    assert drill.end("gm") is False  # over already: done, nothing added
    assert kinds(store, incident.id).count("drill.ended") == 1
    with pytest.raises(GamedayError, match="is over"):  # the moves that need it open
        drill.hint("ben")
