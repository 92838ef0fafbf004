"""A rehearsal never stands in for a real incident: every run keeps its world (where it
acts) and its kind (what it serves), an alert joins only a run of its own world and
kind, and a runbook's concurrency counts per world with real runs first. A run ends
once; a result after its end is kept as a late result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from webhooks import AUTH, TOKEN, alert, payload, wait_runs_done, write_runbook

from gameday.core.settings import current
from gameday.incidents.incident import Incident
from gameday.runbooks.runbook import find
from gameday.runs import run as runs
from gameday.runs.alerts import parse
from gameday.runs.intake import Delivery, Intake
from gameday.store import Store
from gameday.web.app import create_app

SERVE_ENV = {"GAMEDAY_SANDBOX": "/srv/gameday/sandbox"}  # where real alerts' runs act
PARAMS = {"service": "checkout"}


@pytest.fixture
def books(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    write_runbook(d, "restart-it", ["Boom"])
    write_runbook(d, "one-at-a-time", ["Slow"], sleep=2.0, concurrency=1)
    return d


def rehearsal(store: Store, tmp_path: Path, kind: str, name: str) -> Incident:
    """A game day's or a drill's incident, with its own sandbox in its run directory."""
    run_dir = tmp_path / name
    (run_dir / "sandbox").mkdir(parents=True)
    incident = Incident.open(store, f"{kind} {name}", service="checkout", scenario=name,
                             run_dir=str(run_dir), kind=kind)
    incident.declare("SEV-2", "gameday")
    return incident


def deliver(intake: Intake, fingerprint: str) -> dict:
    answers, _ = intake.handle([Delivery(parse(payload(alert(fingerprint=fingerprint))),
                                         "alertmanager")])
    (answer,) = answers
    assert isinstance(answer, dict), answer
    return answer["alerts"][0]


def test_runs_record_their_world_and_kind(any_store, tmp_path, books):
    book = find("restart-it", books)
    game = rehearsal(any_store, tmp_path, "gameday", "gd")
    env, _ = runs.environment(game)
    gd_run = runs.queue(any_store, book, PARAMS, incident=game, who="gameday", env=env)
    by_hand = runs.queue(any_store, book, PARAMS, incident=None, who="ana")
    assert any_store.run(gd_run)["world"] == f"GAMEDAY_SANDBOX={tmp_path / 'gd' / 'sandbox'}"
    assert any_store.run(gd_run)["kind"] == "gameday"
    assert (any_store.run(by_hand)["world"], any_store.run(by_hand)["kind"]) == \
        ("default", "incident")
    assert runs.world({"KUBECONFIG": "/k/config", "GAMEDAY_CLUSTER": "gd-1", "HOME": "/h"}) \
        == "KUBECONFIG=/k/config GAMEDAY_CLUSTER=gd-1"
    # the project's own sandbox, named (gameday serve) or not (a run by hand): one world
    own = {"GAMEDAY_SANDBOX": str(current().sandbox_dir)}
    assert runs.world(own) == runs.world({}) == "default"


def test_a_real_alert_never_joins_a_rehearsals_run(any_store, tmp_path, books):
    """The game day's and the drill's runs of the same runbook with the same parameters
    (one succeeded a moment ago, one still running) do not absorb the real alert: it
    starts its own run; a second real alert for the service joins that one."""
    book = find("restart-it", books)
    game = rehearsal(any_store, tmp_path, "gameday", "gd")
    env, _ = runs.environment(game)
    done = runs.run(any_store, book, PARAMS, tmp_path / "gd-run", incident=game,
                    who="gameday", env=env)
    assert done.status == "successful"
    drill = rehearsal(any_store, tmp_path, "drill", "dr")
    env, _ = runs.environment(drill)
    running = runs.queue(any_store, book, PARAMS, incident=drill, who="ben", env=env)
    assert any_store.claim_run_slot(running, book.name, 5) == "started"

    intake = Intake(any_store, runbook_dir=books, env=SERVE_ENV)
    first = deliver(intake, "real-1")
    assert "coalesced" not in first and first["run_id"] not in \
        {r["id"] for r in any_store.runs() if r["kind"] != "incident"}
    real = any_store.run(first["run_id"])
    assert (real["kind"], real["world"]) == ("incident", "GAMEDAY_SANDBOX=/srv/gameday/sandbox")
    kinds = [e.kind for e in any_store.events(first["incident_id"])]
    assert "runbook.coalesced" not in kinds and "runbook.queued" in kinds
    second = deliver(intake, "real-2")  # the same service again: one remediation
    assert second["run_id"] == first["run_id"] and second["coalesced"].startswith(
        f"run {first['run_id']} is queued")
    # and a game day's alert-free rehearsal never counts a real run as its own
    assert any_store.joinable_run(book.name, PARAMS, world=real["world"], kind="gameday",
                                  succeeded_since=None) is None


@pytest.mark.parametrize("kind", ["gameday", "drill"])
def test_a_real_alert_never_joins_a_rehearsals_incident(any_store, tmp_path, books, kind):
    """A game day's (or a drill's) own Alertmanager delivered an alert of the same group
    as a real one to its receiver: the real alert still opens a real incident of its
    own, and its runbook runs for it, in the real world, held by nothing a rehearsal
    proved or did."""
    from gameday.game.receiver import AlertReceiver

    game = rehearsal(any_store, tmp_path, kind, "gd")
    AlertReceiver(any_store, game.id, lambda a: None, lambda a: None).take(
        parse(payload(alert(fingerprint="rehearsed"))).alerts[0])
    assert any_store.open_incident_for_group('{}:{alertname="Boom"}') is None
    intake = Intake(any_store, runbook_dir=books, env=SERVE_ENV)
    first = deliver(intake, "real-1")
    assert first["incident_id"] != game.id
    real = any_store.incident(first["incident_id"])
    assert real["kind"] == "incident" and real["scenario"] is None
    run = any_store.run(first["run_id"])
    assert (run["kind"], run["world"]) == ("incident", "GAMEDAY_SANDBOX=/srv/gameday/sandbox")
    second = deliver(intake, "real-2")  # the real incident is the group's from now on
    assert second["incident_id"] == first["incident_id"]
    assert [e.kind for e in any_store.events(game.id)].count("alert.fired") == 0


def test_concurrency_counts_per_world_and_real_runs_first(any_store):
    def queued(world: str, kind: str) -> int:
        return any_store.create_run(None, "one-at-a-time", PARAMS, "t", False, owner="h:1:1",
                                    world=world, kind=kind)

    a1, b1 = queued("sandbox-a", "gameday"), queued("sandbox-b", "drill")
    assert any_store.claim_run_slot(a1, "one-at-a-time", 1) == "started"
    assert any_store.claim_run_slot(b1, "one-at-a-time", 1) == "started"  # another world
    a2 = queued("sandbox-a", "gameday")
    assert any_store.claim_run_slot(a2, "one-at-a-time", 1) == "busy"
    # where a rehearsal runs in the real world, a real run is not held up by it...
    rehearsing = queued("default", "gameday")
    assert any_store.claim_run_slot(rehearsing, "one-at-a-time", 1) == "started"
    real = queued("default", "incident")
    assert any_store.claim_run_slot(real, "one-at-a-time", 1) == "started"
    # ...but a rehearsal waits for real work
    later = queued("default", "drill")
    any_store.update_run(rehearsing, status="successful")
    assert any_store.claim_run_slot(later, "one-at-a-time", 1) == "busy"
    any_store.update_run(real, status="successful")
    assert any_store.claim_run_slot(later, "one-at-a-time", 1) == "started"


def test_two_sandboxes_runs_do_not_wait_for_each_other_in_serve(tmp_path, books):
    """Through gameday serve: two drills' runs of a ``concurrency: 1`` runbook, each in
    its own sandbox, run at the same time; a second one in the same sandbox waits."""
    store = Store(tmp_path / "serve.db")
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data", runbook_dir=books,
                     max_concurrent=3, env=SERVE_ENV)
    one, two = (rehearsal(store, tmp_path, "drill", n) for n in ("d1", "d2"))
    with TestClient(app) as client:
        ids = [client.post("/api/v1/runbooks/one-at-a-time/run", headers=AUTH,
                           json={"params": PARAMS, "incident": inc.id, "as": "ben"}
                           ).json()["run_id"] for inc in (one, two, one)]
        done = {r["id"]: r for r in wait_runs_done(store, 3)}
    first, second, third = (done[i] for i in ids)
    assert {r["status"] for r in done.values()} == {"successful"}
    assert first["world"] != second["world"] and first["world"] == third["world"]
    assert second["started_at"] < first["finished_at"]  # side by side
    assert third["started_at"] >= first["finished_at"]  # its own sandbox's slot: after


def test_a_result_after_the_run_ended_is_kept_not_a_second_end(any_store, tmp_path, books):
    """Another replica took the run for orphaned and ended it; the playbook then
    finishes here: one ``runbook.finished`` (the cancel), and the late result beside
    it, on the timeline and the run's row."""
    book = find("one-at-a-time", books)
    incident = Incident.open(any_store, "real", service="checkout")
    incident.declare("SEV-2", "alertmanager")
    run_id = runs.queue(any_store, book, PARAMS, incident=incident, who="alertmanager")

    def ended_elsewhere(entry) -> None:  # while the playbook runs, the sweep ends it
        if entry.kind == "runbook.started":
            assert any_store.end_orphan_run(run_id, stale_for=None)
            runs._canceled(any_store, run_id, book.name, incident=incident, who="replica-b",
                           reason="its process (h:1:1) ended before it did")

    result = runs.execute(any_store, run_id, book, PARAMS, tmp_path / "run",
                          incident=incident, who="alertmanager", on_event=ended_elsewhere)
    assert result.status == "successful"
    timeline = [e for e in any_store.events(incident.id) if e.data.get("run_id") == run_id]
    finished = [e for e in timeline if e.kind == "runbook.finished"]
    assert [e.data["status"] for e in finished] == ["canceled"]
    (late,) = [e for e in timeline if e.kind == "runbook.late_result"]
    assert late.data["status"] == "successful" and late.data["ended_as"] == "canceled"
    row = any_store.run(run_id)
    assert (row["status"], row["late_status"], row["late_rc"]) == ("canceled", "successful", 0)
    assert row["late_at"] >= row["finished_at"]
    results = [a for a in any_store.audit_log() if a["action"] == "runbook.result"]
    ours = [a["data"] for a in results if a["data"]["run_id"] == run_id]
    assert len(ours) == 2 and ours[-1]["late"] is True  # the cancel, then the late result


def test_the_incident_list_marks_and_filters_each_kind(tmp_path):
    store = Store(tmp_path / "serve.db")
    for kind in ("incident", "gameday", "drill"):
        Incident.open(store, f"a {kind}", kind=kind)
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    with TestClient(app) as client:
        client.post("/login", data={"name": "ana", "token": TOKEN})
        every = client.get("/incidents").text
        assert all(f'class="badge kind-{k}">{label}<' in every for k, label in (
            ("incident", "real incident"), ("gameday", "game day"), ("drill", "drill")))
        drills = client.get("/incidents?kind=drill").text
        assert "a drill" in drills and "a gameday" not in drills and "a incident" not in drills
        refused = client.get("/incidents?kind=outage")
        assert refused.status_code == 422 and "kind" in refused.text


def test_incident_list_in_the_terminal_says_which_kind(store):
    from click.testing import CliRunner

    from gameday.cli.main import cli

    for kind in ("incident", "gameday", "drill"):
        Incident.open(store, f"a {kind}", kind=kind)
    every = CliRunner().invoke(cli, ["incident", "list"])
    assert every.exit_code == 0, every.output
    lines = every.output.splitlines()
    assert ["real incident" in lines[0], "game day" in lines[1], "drill" in lines[2]] == \
        [True] * 3
    games = CliRunner().invoke(cli, ["incident", "list", "--kind", "gameday", "--json"])
    assert [r["title"] for r in json.loads(games.output)] == ["a gameday"]
    assert CliRunner().invoke(cli, ["incident", "list", "--kind", "outage"]).exit_code == 2
    ids = [r["id"] for r in json.loads(CliRunner().invoke(cli, ["incident", "list",
                                                                "--json"]).output)]
    page = CliRunner().invoke(cli, ["incident", "list", "--before", str(ids[2]), "--limit",
                                    "1", "--json"])
    assert [r["id"] for r in json.loads(page.output)] == [ids[1]]  # the page before it
    bad = CliRunner().invoke(cli, ["incident", "list", "--before", "last"])
    assert bad.exit_code == 2 and "--before" in bad.output


def test_a_run_ended_elsewhere_before_it_started_never_runs(any_store, tmp_path, books):
    book = find("restart-it", books)
    run_id = runs.queue(any_store, book, PARAMS, incident=None, who="alertmanager")
    assert any_store.end_orphan_run(run_id, stale_for=None)  # another replica's sweep
    result = runs.execute(any_store, run_id, book, PARAMS, tmp_path / "run", incident=None,
                          who="alertmanager")
    assert (result.status, any_store.run(run_id)["status"]) == ("canceled", "canceled")
    assert not (tmp_path / "run").exists()  # no playbook ran
    runs.cancel(any_store, run_id, book.name, incident=None, who="t", reason="again")
    ended = [a for a in any_store.audit_log() if a["action"] == "runbook.result"]
    assert ended == []  # it was never this process's to end


def test_concurrency_holds_for_a_game_day_and_a_run_by_hand_at_once(any_store, tmp_path,
                                                                    books):
    """`concurrency: 1`: a game day's run and `gameday runbook run --incident` for it,
    started at the same moment in two processes, run one after the other."""
    import os
    import subprocess
    import sys
    import threading

    book = find("one-at-a-time", books)
    game = rehearsal(any_store, tmp_path, "gameday", "gd")
    env, _ = runs.environment(game)
    by_hand = subprocess.Popen(
        [sys.executable, "-m", "gameday", "runbook", "run", book.name, "-e", "service=checkout",
         "--incident", str(game.id), "--as", "ben", "--run-dir", str(tmp_path / "by-hand")],
        env={**os.environ, "GAMEDAY_DB": any_store.url, "GAMEDAY_RUNBOOKS": str(books)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = []
    game_day = threading.Thread(target=lambda: results.append(runs.run(
        any_store, book, PARAMS, tmp_path / "game", incident=game, who="gameday", env=env)))
    game_day.start()
    out, _ = by_hand.communicate(timeout=120)
    game_day.join(timeout=120)
    assert by_hand.returncode == 0, out
    assert [r.status for r in results] == ["successful"]
    first, second = sorted(any_store.runs(incident_id=game.id), key=lambda r: r["started_at"])
    assert {first["status"], second["status"]} == {"successful"}
    assert first["world"] == second["world"]
    assert second["started_at"] >= first["finished_at"], (first, second)  # never side by side
