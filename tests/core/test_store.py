"""The store on both databases it runs on (SQLite, and a real PostgreSQL server): what
the database itself must enforce, whatever process writes."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from gameday.core.errors import GamedayError, NotFound
from gameday.core.events import Kind
from gameday.store import HEAD, Store, integrity_errors

ROOT = Path(__file__).resolve().parents[2]
FIRED = Kind.ALERT_FIRED.value


def test_events_get_their_sequence_and_read_back(any_store: Store):
    i = any_store.create_incident("checkout down", service="checkout")
    first = any_store.append(i, FIRED, "detector", {"n": 1, "big": 2**40})
    second = any_store.append(i, FIRED, "detector", {"n": 2},
                              incident_updates={"state": "declared"})
    assert (first.seq, second.seq) == (1, 2)
    assert [e.data["n"] for e in any_store.events(i)] == [1, 2]
    assert any_store.events(i, after_seq=1)[0].seq == 2
    assert any_store.incident(i)["state"] == "declared"
    assert any_store.incidents(limit=1)[0]["id"] == i
    with pytest.raises(NotFound):
        any_store.append(i + 100, FIRED, "detector", {})
    with pytest.raises(GamedayError):
        any_store.append(i, "no.such.kind", "detector", {})


def test_the_timeline_and_the_audit_log_are_append_only_in_the_database(any_store: Store):
    i = any_store.create_incident("x")
    any_store.append(i, FIRED, "detector", {})
    any_store.audit("ana", "run", {"runbook": "restart"})
    for sql in ("UPDATE events SET actor = 'someone'", "DELETE FROM events",
                "UPDATE audit SET who = 'someone'", "DELETE FROM audit"):
        with pytest.raises(Exception, match="append-only"), any_store.transaction() as db:
            db.execute(sql)
    assert any_store.events(i)[0].actor == "detector"
    assert any_store.audit_log()[0]["who"] == "ana"


def test_concurrent_appends_leave_no_gap_and_no_duplicate(any_store: Store):
    i = any_store.create_incident("busy")
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(15):
                any_store.append(i, FIRED, "w", {})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [e.seq for e in any_store.events(i)] == list(range(1, 61))


def test_one_alert_instance_is_claimed_once(any_store: Store):
    claims = [any_store.claim_alert("g|f|t", alertname="A", group_key="g", fingerprint="f")
              for _ in range(3)]
    assert claims == [True, False, False]
    i = any_store.create_incident("alert")
    any_store.bind_alert("g|f|t", i)
    any_store.update_incident(i, state="declared")
    assert any_store.open_incident_for_group("g") == i
    assert any_store.alert_instance("g|f|t")["incident_id"] == i


def test_many_alert_instances_events_and_audit_entries_at_once(any_store: Store):
    """What the intake writes for a batch at once: only new instances are claimed (and
    said to be), events follow the incident's sequence, audit entries keep their order."""
    from gameday.store.incidents import Pending

    assert any_store.claim_alert("k0", alertname="A", group_key="g", fingerprint="f0")
    i = any_store.create_incident("alert")
    new = any_store.claim_alerts([("k0", "A", "g", "f0", i), ("k1", "A", "g", "f1", i),
                                  ("k2", "A", "g", "f2", None)])
    assert new == {"k1", "k2"}
    assert any_store.alert_instance("k1")["incident_id"] == i
    assert any_store.alert_instance("k0")["incident_id"] is None  # the first claim stands
    assert any_store.alert_incidents(["k0", "k1", "nope"]) == {"k0": None, "k1": i}
    any_store.append(i, FIRED, "x", {"n": 0})
    j = any_store.create_incident("another")
    any_store.append_many({j: [Pending(FIRED, "z", {"n": 9})],
                           i: [Pending(FIRED, "x", {"n": 1}), Pending(FIRED, "y", {"n": 2})]})
    assert [(e.seq, e.actor, e.data["n"]) for e in any_store.events(i)] == [
        (1, "x", 0), (2, "x", 1), (3, "y", 2)]
    assert [(e.seq, e.data["n"]) for e in any_store.events(j)] == [(1, 9)]
    with pytest.raises(NotFound):
        any_store.append_many({j + 1: [Pending(FIRED, "x", {})]})
    with pytest.raises(GamedayError):
        any_store.append_many({i: [Pending("no.such.kind", "x", {})]})
    assert any_store.open_incidents_for_groups(["g", "none", "g"]) == {"g": i, "none": None}
    any_store.bind_alert("k0", j)  # the newest open incident of the group
    assert any_store.open_incidents_for_groups(["g"]) == {
        "g": any_store.open_incident_for_group("g")} == {"g": j}
    any_store.update_incident(j, state="resolved")
    assert any_store.open_incidents_for_groups(["g"]) == {"g": i}
    any_store.audit_many([("2026-12-06T00:00:00", "a", "one", {}),
                          ("2026-12-06T00:00:01", "b", "two", {"k": 1})])
    assert [(a["who"], a["action"], a["data"]) for a in any_store.audit_log()] == [
        ("a", "one", {}), ("b", "two", {"k": 1})]


def test_a_savepoint_rolls_back_alone_and_inner_calls_join_the_outer(any_store: Store):
    with any_store.transaction():
        kept = any_store.create_incident("kept")
        with pytest.raises(RuntimeError), any_store.transaction():
            any_store.create_incident("dropped")
            raise RuntimeError
    assert [r["title"] for r in any_store.incidents()] == ["kept"]
    with pytest.raises(RuntimeError), any_store.transaction():
        any_store.append(kept, FIRED, "x", {})
        raise RuntimeError
    assert any_store.events(kept) == []


def test_a_schedule_is_claimed_once_per_due_moment(any_store: Store):
    any_store.add_schedule("nightly", "scenarios/x.yaml", {"cron": "0 3 * * *"}, "2026-01-01")
    with pytest.raises(GamedayError, match="exists"):
        any_store.add_schedule("nightly", "scenarios/x.yaml", {}, "2026-01-01")
    first = any_store.claim_schedule_run("nightly", "2026-11-23T03:00", target="t", by="a")
    assert first is not None
    assert any_store.claim_schedule_run("nightly", "2026-11-23T03:00", target="t", by="b") is None
    assert any_store.schedule("nightly")["last_due"] == "2026-11-23T03:00"
    any_store.update_schedule_run(first, status="finished", summary={"ok": True}, score=0.5)
    assert any_store.schedule_run(first)["summary"] == {"ok": True}
    assert any_store.schedule_runs("nightly")[0]["score"] == 0.5


def test_approval_is_one_conditional_update(any_store: Store):
    run = any_store.create_run(None, "restart", {"svc": "a"}, "ana", False,
                               approve_by="9999-01-01")
    assert any_store.run(run)["status"] == "awaiting_approval"
    assert not any_store.approve_run(run, "ana", "p1")  # not the requester's own
    assert any_store.approve_run(run, "bo", "p1")
    assert not any_store.approve_run(run, "cy", "p2")  # only one wins
    assert any_store.run(run)["approved_by"] == "bo"
    late = any_store.create_run(None, "restart", {}, "ana", False, approve_by="2000-01-01")
    assert [r["id"] for r in any_store.expire_approvals()] == [late]
    assert not any_store.approve_run(late, "bo", "p1")


def test_leases_users_freeze_actions_drills(any_store: Store):
    i = any_store.create_incident("gd", scenario="s.yaml")
    any_store.take_lease(i, run_dir="/r", host="h", pid=1, started=2**40, target="sandbox")
    with pytest.raises(integrity_errors()):
        any_store.take_lease(i, run_dir="/r", host="h", pid=1, started=1, target="sandbox")
    any_store.record_undo(i, {"kill": [1]})
    assert any_store.running_leases()[0]["undo"] == {"kill": [1]}
    assert any_store.release_lease(i) and not any_store.release_lease(i)
    any_store.add_user("ana", "admin", "h1", "root")
    with pytest.raises(GamedayError, match="already"):
        any_store.add_user("ana", "viewer", "h2", "root")
    assert any_store.user_by_token("h1")["name"] == "ana" and any_store.has_users()
    assert any_store.revoke_user("ana") and any_store.user("ana") is None
    any_store.set_freeze(True, "launch", "ana")
    any_store.set_freeze(True, "still", "bo")
    assert any_store.freeze()["reason"] == "still"
    any_store.upsert_action(i, "k", "Fix", "team", "2026-12-01")
    any_store.upsert_action(i, "k", "Fix it", "team", "2026-12-01")
    (action,) = any_store.actions(incident_id=i)
    assert action["title"] == "Fix it"
    any_store.close_action(action["id"])
    d = any_store.create_drill("s.yaml", game_master="gm", difficulty="easy", oncall=None)
    any_store.update_drill(d, state="running")
    assert any_store.drill(d)["state"] == "running"
    assert any_store.past_outages() == ({"s.yaml"}, set())


def test_a_postgresql_store_behind_the_schema_is_refused_until_upgraded(postgres):
    url = postgres.database(upgrade=False)
    with pytest.raises(GamedayError, match="gameday db upgrade"):
        Store(url)
    from click.testing import CliRunner

    from gameday.cli.main import cli

    out = CliRunner().invoke(cli, ["--db", url, "incident", "list"])
    assert out.exit_code == 1 and "gameday db upgrade" in out.output
    out = CliRunner().invoke(cli, ["--db", url, "db", "upgrade"])
    assert out.exit_code == 0, out.output
    assert HEAD in out.output
    store = Store(url)
    store.create_incident("now it opens")
    store.close()


def test_a_sqlite_store_made_before_alembic_is_upgraded_when_opened(tmp_path):
    """The schema as commit 3017426 left it (raw sqlite3, no alembic_version)."""
    old = subprocess.run(["git", "show", "3017426:gameday/store.py"], cwd=ROOT,
                         capture_output=True, text=True)
    if old.returncode != 0:
        pytest.skip("commit 3017426 is not in this checkout")
    namespace: dict[str, object] = {}
    source = old.stdout.split("\n\n# Columns added after")[0].split("SCHEMA = ", 1)[1]
    exec("SCHEMA = " + source, namespace)  # noqa: S102
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(str(namespace["SCHEMA"]))
    db.execute("INSERT INTO incidents (title, state, created_at, updated_at) VALUES"
               " ('old', 'resolved', 'then', 'then')")
    db.commit()
    db.close()
    store = Store(path)
    assert store.incident(1)["title"] == "old" and store.incident(1)["kind"] is None
    store.create_run(None, "r", {}, "ana", False, approve_by="9999")
    assert store.reader().execute("SELECT version_num FROM alembic_version").fetchone()[0] == HEAD
    Store(path).close()  # and opens again as it is
    store.close()


def test_the_report_follows_an_event_that_commits_late(postgres):
    """On PostgreSQL writers commit out of order: an event written before the report
    is derived but committed after it is still counted the next time (its incident's
    ``last_seq`` commits with it), and the report runs from the CLI on that database."""
    from click.testing import CliRunner

    from gameday.cli.main import cli
    from gameday.core import events
    from gameday.incidents.incident import Incident
    from gameday.report import facts as incident_facts

    url = postgres.database()
    writer, reader = Store(url), Store(url)
    inc = Incident.open(writer, "late", service="checkout")
    inc.declare("SEV-3", "ana", alert="CheckoutDown")
    with writer.transaction():
        inc.record(events.role_assigned("incident_commander", "dana"), "dana")
        other = Incident.open(reader, "meanwhile", service="search")  # commits first
        assert incident_facts.refresh(reader, {}) == 2
        (before,) = [f for f in incident_facts.load(reader, "i.id = :id", {"id": inc.id}, {})]
        assert before.TTE is None  # the commander's event is not committed yet
    assert incident_facts.refresh(reader, {}) == 1
    (after,) = incident_facts.load(reader, "i.id = :id", {"id": inc.id}, {})
    assert after.TTE is not None and other.id != inc.id
    out = CliRunner().invoke(cli, ["--db", url, "report", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["counts"]["incident"] == 2
    writer.close()
    reader.close()


def test_a_signal_inside_a_statement_leaves_the_store_usable(any_store: Store):
    """SQLAlchemy drops a connection a KeyboardInterrupt (or our Terminated) lands in;
    the store opens another, and what the interrupted write held is rolled back."""
    from sqlalchemy import event

    i = any_store.create_incident("x")
    fired = []

    def interrupt(*_args: object, **_kwargs: object) -> None:
        if not fired:
            fired.append(True)
            raise KeyboardInterrupt

    event.listen(any_store._engine, "before_cursor_execute", interrupt)
    with pytest.raises(KeyboardInterrupt):
        any_store.append(i, FIRED, "x", {})
    event.remove(any_store._engine, "before_cursor_execute", interrupt)
    assert any_store.append(i, FIRED, "x", {}).seq == 1


def test_a_runbooks_concurrency_holds_across_processes(any_store: Store):
    """Each replica asks the store for a slot: of eight queued runs claimed at once from
    eight connections, two start (concurrency 2); the rest wait, then start as slots
    free. A cancelled run is gone, never started."""
    runs = [any_store.create_run(None, "restart", {"n": n}, "ana", False, owner="h:1:1")
            for n in range(8)]
    stores = [Store(any_store.url) for _ in runs]
    answers: dict[int, str] = {}

    def claim(store: Store, run_id: int) -> None:
        answers[run_id] = store.claim_run_slot(run_id, "restart", 2)

    threads = [threading.Thread(target=claim, args=pair) for pair in zip(stores, runs, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [r for r, a in answers.items() if a == "started"]
    assert len(started) == 2 and sorted(answers.values()).count("busy") == 6
    assert {any_store.run(r)["status"] for r in started} == {"running"}
    waiting = [r for r in runs if r not in started]
    assert any_store.claim_run_slot(waiting[0], "restart", 2) == "busy"
    any_store.update_run(started[0], status="successful")
    assert any_store.claim_run_slot(waiting[0], "restart", 2) == "started"
    any_store.update_run(waiting[1], status="canceled")
    assert any_store.claim_run_slot(waiting[1], "restart", 2) == "gone"
    other = any_store.create_run(None, "other-book", {}, "ana", False, owner="h:1:1")
    assert any_store.claim_run_slot(other, "other-book", 1) == "started"  # per runbook
    for store in stores:
        store.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_store_at_the_first_schema_with_history_upgrades_in_place(database, tmp_path,
                                                                   request):
    """A store at revision 0001 with incidents and events: upgraded, each incident's
    last_seq is its last event's (so the next append continues the sequence), its
    unfinished runs get a heartbeat, and the report derives it."""
    from alembic import command
    from sqlalchemy import create_engine

    from gameday.report import facts as incident_facts
    from gameday.store import _alembic_config, _engine_url

    if database == "sqlite":
        url = str(tmp_path / "old.db")
        engine = create_engine(f"sqlite:///{url}")
    else:
        url = request.getfixturevalue("postgres").database(upgrade=False)
        engine = create_engine(_engine_url(url))
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.exec_driver_sql("INSERT INTO incidents (id, title, state, created_at,"
                             " updated_at, kind) VALUES (7, 'old', 'declared', 't', 't',"
                             " 'incident')")
        for seq, kind in ((1, "alert.fired"), (2, "incident.declared"), (3, "note.added")):
            conn.exec_driver_sql(
                "INSERT INTO events VALUES (7, %(seq)s, 't', %(ns)s, %(kind)s, 'ana', '{}')"
                if database == "postgresql" else
                "INSERT INTO events VALUES (7, :seq, 't', :ns, :kind, 'ana', '{}')",
                {"seq": seq, "ns": seq * 10**9, "kind": kind})
        conn.exec_driver_sql("INSERT INTO runbook_runs (runbook, params_json, check_mode,"
                             " started_by, status, created_at, owner) VALUES"
                             " ('r', '{}', 0, 'ana', 'running', 't', 'gone-host:1:1')")
    engine.dispose()
    if database == "postgresql":
        with pytest.raises(GamedayError, match="gameday db upgrade"):
            Store(url)
        from gameday.store import upgrade
        upgrade(url)
    store = Store(url)  # SQLite: upgraded as it opens
    try:
        assert store.incident(7)["last_seq"] == 3
        assert store.append(7, "note.added", "ana", {"text": "after"}).seq == 4
        (run,) = store.unfinished_runs()
        assert run["heartbeat"] is not None
        assert incident_facts.refresh(store, {}) == 1
        with pytest.raises(GamedayError, match="newer than this gameday"):
            store._db.execute("UPDATE alembic_version SET version_num = '9999'")
            Store(url)
    finally:
        store.close()


def test_an_event_from_another_host_is_placed_on_the_incidents_clock(any_store: Store):
    """Monotonic clocks of two hosts cannot be compared: an event recorded on a host
    other than the one that opened the incident (a move through another replica) is
    placed on the incident's clock through the wall clock."""
    import time

    elsewhere = any_store.create_incident("opened by another replica")
    anchor_mono, anchor_epoch = 5 * 10**15, time.time_ns() - 7 * 10**9  # 7 s ago, there
    any_store._db.execute("UPDATE incidents SET clock_boot = 'another-host',"
                          " clock_mono_ns = ?, clock_epoch_ns = ? WHERE id = ?",
                          (anchor_mono, anchor_epoch, elsewhere))
    event = any_store.append(elsewhere, "note.added", "ana", {"text": "from here"})
    assert abs(event.at_monotonic_ns - (anchor_mono + 7 * 10**9)) < 2 * 10**9
    here = any_store.create_incident("opened here")
    before = time.monotonic_ns()
    local = any_store.append(here, "note.added", "ana", {"text": "here"})
    assert before <= local.at_monotonic_ns <= time.monotonic_ns()  # this host's own clock


def test_who_wins_is_decided_under_the_incidents_lock(any_store: Store):
    """Two processes (two replicas; a game day and a game master) deciding at the same
    moment: of two resolutions one is recorded and the other refused, and an inject
    fires once whoever fires it."""
    from gameday.core import events
    from gameday.core.errors import AlreadyRecorded
    from gameday.incidents.incident import Incident, InvalidTransition

    inc = Incident.open(any_store, "race", service="checkout")
    inc.declare("SEV-2", "ana", alert="CheckoutDown")
    inc.record(events.mitigated(1.0, 10, 1, 1), "gameday")
    replicas = [Store(any_store.url) for _ in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(replicas))

    def act(store: Store, n: int) -> None:
        mine = Incident(store, inc.id)
        barrier.wait()
        try:
            if n % 2:
                mine.record(events.incident_resolved("SLIs back"), f"p{n}")
            else:
                mine.record(events.drill_inject("stakeholder", "CEO", "status?"), f"p{n}",
                            once="name")
            outcomes.append(f"ok-{n % 2}")
        except (InvalidTransition, AlreadyRecorded) as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=act, args=(s, n)) for n, s in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["AlreadyRecorded", "InvalidTransition", "ok-0", "ok-1"]
    kinds = [e.kind for e in any_store.events(inc.id)]
    assert kinds.count("incident.resolved") == 1 and kinds.count("drill.inject") == 1
    for store in replicas:
        store.close()


def test_processes_opening_a_new_store_at_once_migrate_it_once(tmp_path):
    """Each new SQLite store is migrated under its write lock: four processes opening
    the same new file at once all succeed (none runs a revision a second time)."""
    import subprocess
    import sys

    for n in range(3):
        path = tmp_path / f"new-{n}.db"
        procs = [subprocess.Popen([sys.executable, "-c",
                                   f"from gameday.store import Store; Store({str(path)!r})"],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
