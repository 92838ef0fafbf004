"""The rollbacks of a game day on a team's own service: never cut short by a signal, and
never forgotten when they fail. The backend podinfo frozen on its host through Ansible
(``test_service.on_hosts``): its rollback, a play of its own, takes long enough for a
signal to land inside it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from serving import eventually
from teamstack import TeamStack, needs_build
from test_service import GAMEDAY, gameday, on_hosts, stack, write_project

from gameday.store import Store

pytestmark = [pytest.mark.slow, needs_build]
__all__ = ["stack"]  # the team's stack, one for the module


def held_by_nobody(root: Path, stack: TeamStack, **timeouts: str) -> Path:
    """The frozen-backend game day with nobody to contain it: the fault holds until the
    mitigation timeout, then the rollback thaws it."""
    scenario = write_project(root, stack)
    on_hosts(root, scenario, stack)
    raw = yaml.safe_load(scenario.read_text())
    raw["response"] = {"mode": "none"}
    raw["timeouts"].update(timeouts)
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    return scenario


def rolling_back(tmp: Path) -> bool:
    """Whether the rollback's play (SIGCONT) is running: ansible-runner's private data
    directory for it exists while it does."""
    return any("CONT" in extravars.read_text()
               for extravars in tmp.glob("gameday-hosts-*/env/extravars"))


def run_and_signal(root: Path, scenario: Path, stack: TeamStack, first: signal.Signals,
                   second: signal.Signals | None) -> tuple[int, str]:
    """Start the game day; send ``first`` once the backend is frozen (or, without a
    ``second``, once the rollback's play runs), and ``second`` once it runs."""
    tmp = root / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    run = subprocess.Popen([*GAMEDAY, "run", str(scenario)], cwd=root,
                           env={**env, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        if second is not None:
            eventually(lambda: stack.state("backend") in ("T", "t"), 90, "the frozen backend")
            run.send_signal(first)
        eventually(lambda: rolling_back(tmp) or run.poll() is not None, 90,
                   "the rollback's play")
        assert run.poll() is None, run.communicate()[0][-3000:]
        run.send_signal(second or first)
        out, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    return run.returncode, out


@pytest.mark.parametrize("first,second", [(signal.SIGINT, signal.SIGINT),
                                          (signal.SIGTERM, signal.SIGTERM),
                                          (signal.SIGTERM, None)])
def test_a_signal_during_the_rollback_does_not_cut_it_short(tmp_path, stack, first, second):
    """Ctrl-C, then Ctrl-C again while the rollback runs (or SIGTERM while it runs): the
    rollback finishes, the backend runs again, and the game day exits as interrupted by
    the first signal, its lease let go."""
    scenario = held_by_nobody(tmp_path, stack, mitigate="5s")
    code, out = run_and_signal(tmp_path, scenario, stack, first, second)
    try:
        assert code == 128 + first, out[-3000:]
        assert "Traceback" not in out
        assert stack.state("backend") not in ("T", "t"), out[-3000:]
    finally:
        os.kill(stack.procs["backend"].pid, signal.SIGCONT)  # whatever the outcome
    (run_dir,) = (tmp_path / ".gameday" / "runs").iterdir()
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert [(r["activity"]["name"], r["status"]) for r in journal["rollbacks"]] == \
        [("thaw-backend", "succeeded")]
    store = Store(tmp_path / ".gameday" / "gameday.db")
    (incident,) = store.incidents()
    kinds = [e.kind for e in store.events(incident["id"])]
    assert "gameday.interrupted" in kinds and kinds[-1] == "target.stopped"
    assert store.running_leases() == []
    assert stack.unchanged()


def test_a_rollback_that_fails_is_kept_for_recover_until_it_succeeds(tmp_path, stack):
    """The rollback cannot run (its inventory is not there yet): the game day does not
    pass (exit 3, naming the rollback), its lease stays, and `gameday recover` plays the
    rollback again, exits 1 and keeps it while it still fails, and lets go once it
    succeeds."""
    scenario = held_by_nobody(tmp_path, stack, mitigate="5s", recover="5s")
    experiment = tmp_path / "experiments" / "podinfo-slow.yaml"
    doc = yaml.safe_load(experiment.read_text())
    doc["rollbacks"][0]["provider"]["arguments"]["inventory"] = "thaw.ini"
    experiment.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        done = gameday(tmp_path, "run", str(scenario), "--json")
        assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-3000:]
        result = json.loads(done.stdout)
        after = next(c for c in result["verdict"]["checks"]
                     if c["name"] == "steady state after the fault")
        assert "rollback thaw-backend did not succeed" in after["message"], after
        assert stack.state("backend") in ("T", "t")  # the fault is still in
        store = Store(tmp_path / ".gameday" / "gameday.db")
        assert [lease["incident_id"] for lease in store.running_leases()] == \
            [result["incident_id"]]
        again = gameday(tmp_path, "recover")
        assert again.returncode == 1, again.stdout + again.stderr
        assert "NOT rolled back" in again.stdout and "Traceback" not in again.stderr
        assert "a rollback did not succeed" in again.stderr
        assert len(store.running_leases()) == 1 and stack.state("backend") in ("T", "t")
        (tmp_path / "thaw.ini").write_text((tmp_path / "inventory.ini").read_text())
        fixed = gameday(tmp_path, "recover")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "rolled back freeze-backend" in fixed.stdout
        assert stack.state("backend") not in ("T", "t")
        assert store.running_leases() == []
        # It ended with its verdict: never said to have crashed, however many recovers
        # it took; each recover played the one rollback that had not undone its fault.
        assert "crashed" not in again.stdout + fixed.stdout
        kinds = [e.kind for e in store.events(result["incident_id"])]
        assert "run.crashed" not in kinds
        rolled = [e.data["status"] for e in store.events(result["incident_id"])
                  if e.kind == "fault.rolled_back"]
        assert rolled[-1] == "succeeded" and rolled.count("succeeded") == 1, rolled
        assert gameday(tmp_path, "recover").stdout.strip() == "nothing to recover"
    finally:
        os.kill(stack.procs["backend"].pid, signal.SIGCONT)
    assert stack.unchanged()


def test_a_fault_left_in_holds_its_service_until_someone_undoes_it_by_hand(tmp_path, stack):
    """The rollback cannot run, so the backend stays frozen: the next game day on podinfo
    is refused (exit 4, naming the one that holds it and both ways out) and injects
    nothing, --preflight says so. Once a person has thawed it, `gameday recover
    --by-hand` records who did what and lets go (bad input is refused first), and
    podinfo is free for game days again."""
    scenario = held_by_nobody(tmp_path, stack, mitigate="5s", recover="5s")
    experiment = tmp_path / "experiments" / "podinfo-slow.yaml"
    doc = yaml.safe_load(experiment.read_text())
    doc["rollbacks"][0]["provider"]["arguments"]["inventory"] = "thaw.ini"
    experiment.write_text(yaml.safe_dump(doc, sort_keys=False))
    backend = stack.procs["backend"].pid
    try:
        done = gameday(tmp_path, "run", str(scenario), "--json")
        assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-3000:]
        held = json.loads(done.stdout)["incident_id"]
        store = Store(tmp_path / ".gameday" / "gameday.db")

        # The next one: its recover plays the rollback again (it fails again), then the
        # guardrail refuses before any incident is opened or fault injected.
        refused = gameday(tmp_path, "run", str(scenario))
        assert refused.returncode == 4, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert (f"game day {held} left a fault its rollbacks have not undone (thaw-backend) "
                "on podinfo") in refused.stderr
        assert f"gameday recover --by-hand {held}" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert [i["id"] for i in store.incidents()] == [held]
        checked = gameday(tmp_path, "run", str(scenario), "--preflight", "--json")
        other = next(c for c in json.loads(checked.stdout) if c["name"] == "no other game day")
        assert not other["ok"] and f"game day {held} left a fault" in other["detail"]
        drill = gameday(tmp_path, "drill", "start", str(scenario))
        assert drill.returncode == 4, drill.stdout + drill.stderr[-2000:]
        assert f"the drill's game day may not start: game day {held} left a fault" in \
            drill.stderr and "Traceback" not in drill.stderr
        gameday(tmp_path, "schedule", "add", "podinfo-weekly",
                str(scenario.relative_to(tmp_path)), "--cron", "0 10 * * 2")
        gameday(tmp_path, "schedule", "run-now", "podinfo-weekly")
        skipped = store.schedule_runs("podinfo-weekly")[0]
        assert skipped["status"] == "skipped", skipped
        assert f"game day {held} left a fault" in skipped["reason"]
        assert [i["id"] for i in store.incidents()] == [held]

        for args, code, said in (
                (["--by-hand", str(held), "--as", "ana"], 2, "--reason"),
                (["--by-hand", str(held), "--as", "ana", "--reason", "a\nb"], 2, "one line"),
                (["--by-hand", str(held), "--reason", "thawed"], 2, "--as"),
                (["--as", "ana", "--reason", "thawed"], 2, "--by-hand"),
                (["--by-hand", str(held + 1), "--as", "ana", "--reason", "thawed"], 1,
                 f"game day {held + 1} holds nothing")):
            bad = gameday(tmp_path, "recover", *args)
            assert bad.returncode == code and said in bad.stderr, (args, bad.stderr)
            assert "Traceback" not in bad.stderr
        assert len(store.running_leases()) == 1

        os.kill(backend, signal.SIGCONT)  # ana thaws it on its host
        eventually(lambda: stack.state("backend") not in ("T", "t"), 10, "the thawed backend")
        by_hand = gameday(tmp_path, "recover", "--by-hand", str(held), "--as", "ana",
                          "--reason", "sent SIGCONT to podinfo's backend on its host")
        assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
        assert f"game day {held}: rollback thaw-backend undone, by hand by ana" in by_hand.stdout
        assert store.running_leases() == []
        last = [e for e in store.events(held) if e.kind == "fault.rolled_back"][-1]
        assert (last.actor, last.data["status"], last.data["reason"]) == \
            ("ana", "undone by hand", "sent SIGCONT to podinfo's backend on its host")
        audit = [a for a in store.audit_log() if a["action"] == "gameday.undone_by_hand"]
        assert [(a["who"], a["data"]["rollbacks"]) for a in audit] == [("ana",
                                                                       ["thaw-backend"])]
        assert gameday(tmp_path, "recover").stdout.strip() == "nothing to recover"
        again = gameday(tmp_path, "run", str(scenario), "--preflight", "--json")
        other = next(c for c in json.loads(again.stdout) if c["name"] == "no other game day")
        assert other["ok"], other
    finally:
        os.kill(backend, signal.SIGCONT)
    assert stack.unchanged()
