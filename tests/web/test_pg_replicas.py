"""Two real ``gameday serve`` replicas on one PostgreSQL database: at-least-once
delivery to both still starts exactly one runbook run (the database decides), and a
run started on one streams live from the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from webhooks import TOKEN, alert, payload, write_runbook

from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def post(port: int, body: dict, timeout: float = 30) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/alerts", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(urllib.request.urlopen(request, timeout=30).read())
        except OSError:
            assert time.monotonic() < deadline, "gameday serve did not start"
            time.sleep(0.2)


def follow(port: int, run_id: int, store: Store) -> list[tuple[str, dict, str]]:
    """``/runs/ID/events`` read as a browser's EventSource would: each message, and the
    run's status in the store when it arrived."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/runs/{run_id}/events",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    got: list[tuple[str, dict, str]] = []
    event = "message"
    with urllib.request.urlopen(request, timeout=60) as stream:
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                got.append((event, json.loads(line[len("data: "):]),
                            store.run(run_id)["status"]))
                if event == "done":
                    return got
                event = "message"
    return got


def test_two_replicas_on_one_postgresql_start_one_run(tmp_path, postgres, gameday_serve):
    url = postgres.database()
    books = tmp_path / "runbooks"
    books.mkdir()
    write_runbook(books, "restart-it", ["Boom"])
    write_runbook(books, "restart-slowly", [], auto=False, sleep=3)
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": url,
           "GAMEDAY_RUNBOOKS": str(books)}
    ports = [gameday_serve(env, "--no-scheduler", "--data-dir", str(tmp_path / f"data{n}"),
                           name=f"serve{n}").port for n in range(2)]
    try:
        body = payload(alert(fingerprint="same-one"))
        for port in ports:  # both up before the race
            post(port, payload(alert(fingerprint=f"warm-{port}", name="Other")))
        answers: list[dict] = []

        def deliver(port: int) -> None:
            answers.append(post(port, body))

        threads = [threading.Thread(target=deliver, args=(port,)) for port in ports * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(answers) == 6
        store = Store(url)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                runs = store.runs()
                if runs and all(r["finished_at"] for r in runs):
                    break
                time.sleep(0.2)
            (run,) = store.runs()
            assert run["runbook"] == "restart-it" and run["status"] == "successful", run
            incident = {a["incident_id"] for a in answers} - {None}
            assert len(incident) == 1
            fired = [e for e in store.events(incident.pop()) if e.kind == "alert.fired"
                     and e.data["labels"]["alertname"] == "Boom"]
            assert len(fired) == 1  # five redeliveries, recorded once

            # A run outside any incident, started on the first replica, followed live
            # on the second: its output is in the store, not in the first's memory.
            request = urllib.request.Request(
                f"http://127.0.0.1:{ports[0]}/api/v1/runbooks/restart-slowly/run",
                data=json.dumps({"as": "ana", "params": {"service": "checkout"}}).encode(),
                headers={"Authorization": f"Bearer {TOKEN}",
                         "Content-Type": "application/json"})
            run_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["run_id"]
            got = follow(ports[1], run_id, store)
            event, ending, _ = got[-1]
            assert event == "done" and ending["status"] == "successful", got
            items = [(data, status) for event, data, status in got if event == "message"]
            assert any(status == "running" for _, status in items), got  # live, not after
            assert "restarting checkout" in "".join(d.get("stdout") or "" for d, _ in items)
            run = store.run(run_id)
            assert run["owner"] and run["incident_id"] is None
            page = urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{ports[1]}/runs/{run_id}",
                headers={"Authorization": f"Bearer {TOKEN}"}), timeout=30).read().decode()
            assert "restarting checkout" in page  # the finished run, from the other replica

            # Its concurrency (1) holds across the replicas: asked of both at once, the
            # two runs go one after the other, the second started by its own replica
            # once the store says the first ended.
            def run_on(port: int, service: str) -> int:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/v1/runbooks/restart-slowly/run",
                    data=json.dumps({"as": "ana", "params": {"service": service}}).encode(),
                    headers={"Authorization": f"Bearer {TOKEN}",
                             "Content-Type": "application/json"})
                return json.loads(urllib.request.urlopen(request, timeout=30).read())["run_id"]

            both = [run_on(ports[0], "cart"), run_on(ports[1], "search")]
            deadline = time.monotonic() + 90
            while not all(store.run(r)["finished_at"] for r in both):
                assert time.monotonic() < deadline, [store.run(r) for r in both]
                time.sleep(0.2)
            first, second = sorted((store.run(r) for r in both), key=lambda r: r["started_at"])
            assert first["status"] == second["status"] == "successful"
            assert first["finished_at"] <= second["started_at"], (first, second)
        finally:
            store.close()
    finally:
        for n in range(2):
            print((tmp_path / f"serve{n}.log").read_text()[-3000:])


def test_a_game_day_on_postgresql_works_as_on_sqlite(tmp_path, postgres):
    url = postgres.database()
    # the runbook's own ``gameday`` commands must import this checkout's package too
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "GAMEDAY_DB": url, "GAMEDAY_RUNS": str(tmp_path / "runs"),
           "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-m", "gameday", "run",
                           "scenarios/checkout-replica-crash.yaml", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "resolved" and result["verdict"]["status"] == "passed"
    assert result["metrics"]["runbook_status"] == "successful"
    store = Store(url)
    try:
        assert store.incident(result["incident_id"])["state"] == "resolved"
        assert store.running_leases() == []
        (run,) = store.runs(incident_id=result["incident_id"])
        assert run["status"] == "successful"
    finally:
        store.close()


def test_a_lost_database_connection_is_a_503_then_recovers(tmp_path, postgres, swept_once):
    """PostgreSQL restarted or failed over under ``gameday serve``: the request that
    finds its connection gone gets 503 with Retry-After (a webhook sender retries);
    the next one opens a new connection."""
    import psycopg
    from starlette.testclient import TestClient

    from gameday.incidents.incident import Incident
    from gameday.web import app as web_app

    url = postgres.database()
    store = Store(url)
    incident = Incident.open(store, "checkout down", service="checkout")
    app = web_app.create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with TestClient(app) as client:
            assert swept_once.wait(30), "gameday serve's first sweep did not finish"
            assert client.get(f"/api/v1/incidents/{incident.id}", headers=auth).status_code == 200
            with psycopg.connect(url, autocommit=True) as admin:
                gone = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                    " current_database() AND pid <> pg_backend_pid()").fetchall()
            assert gone, "the server had no connection of gameday serve to end"
            lost = client.get(f"/api/v1/incidents/{incident.id}", headers=auth)
            assert lost.status_code == 503 and lost.headers["Retry-After"] == "5"
            assert lost.json()["error"] == "the store cannot take requests now; retry"
            assert "127.0.0.1" not in lost.text  # where the database is stays in the log
            back = client.get(f"/api/v1/incidents/{incident.id}", headers=auth)
            assert back.status_code == 200 and back.json()["id"] == incident.id
    finally:  # a failed assertion leaves no open connection to a later test
        store.close()


def test_a_server_gone_costs_one_503_not_one_per_thread(postgres):
    """``gameday serve`` reads the store from several threads, each with its own
    connection. When one of them finds the server gone, the others' connections (to the
    same server) are dropped too before their next transaction: a failover costs one
    request a 503, not one per thread that had a connection."""
    import psycopg

    from gameday.core.errors import StoreUnavailable
    from gameday.incidents.incident import Incident

    url = postgres.database()
    store = Store(url)
    incident = Incident.open(store, "checkout down", service="checkout")
    ready, answers = threading.Barrier(5), []

    def read_twice() -> None:
        store.incident(incident.id)  # this thread's connection, opened
        ready.wait()  # the server's connections ended
        ready.wait()  # the first thread found it out
        try:
            answers.append(store.incident(incident.id)["id"])
        except StoreUnavailable as exc:
            answers.append(exc)

    threads = [threading.Thread(target=read_twice) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                          " datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(StoreUnavailable):
            store.incident(incident.id)  # this thread's connection: gone, it finds
        ready.wait()
        for thread in threads:
            thread.join(10)
        assert answers == [incident.id] * 4
    finally:
        store.close()


def test_two_replicas_put_one_alert_groups_alerts_in_one_incident(tmp_path, postgres):
    """Two alerts of one group, delivered to two replicas' intakes at the same moment:
    the second joins the incident the first opened (one batch at a time), and their
    runbook, with the same parameters, runs once."""
    from gameday.runs.alerts import parse
    from gameday.runs.intake import Delivery, Intake

    url = postgres.database()
    books = tmp_path / "runbooks"
    books.mkdir()
    write_runbook(books, "restart-it", ["Boom"])
    intakes = [Intake(Store(url), runbook_dir=books) for _ in range(2)]
    group = '{}:{alertname="Boom"}'
    notes = [parse(payload(alert(fingerprint=f"replica-{n}"), group=group))
             for n in range(2)]
    barrier = threading.Barrier(2)
    answers: list = [None, None]

    def deliver(n: int) -> None:
        barrier.wait()
        answers[n] = intakes[n].handle([Delivery(notes[n], "token")])

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = Store(url)
    try:
        assert len(store.incidents()) == 1, store.incidents()
        started = [s for _, starts in answers for s in starts]
        assert len(started) == 1 and len(store.runs()) == 1
        coalesced = [a["alerts"][0].get("coalesced") for found, _ in answers for a in found]
        assert sum(c is not None for c in coalesced) == 1
    finally:
        store.close()
        for intake in intakes:
            intake.store.close()


def test_a_run_whose_replica_died_is_ended_once_when_its_heartbeat_stops(tmp_path, postgres):
    """A run held by a process on another host (a replica's pod that is gone) is judged
    by its heartbeat, on the database's clock: ended once it is older than RUN_TTL_S, by
    one of two replicas looking at the same moment, on the record; a run whose
    heartbeat is fresh stays, and so does one its process here still holds."""
    from gameday.incidents.incident import Incident
    from gameday.runs import run as runs
    from gameday.store.leases import owner

    url = postgres.database()
    store = Store(url)
    incident = Incident.open(store, "storm", service="checkout")
    incident.declare("SEV-3", "test")
    gone = "pod-gone-7f9c:4242:99"
    stale = store.create_run(incident.id, "restart-it", {"service": "checkout"}, "alerts",
                             False, owner=gone)
    fresh = store.create_run(None, "restart-it", {"service": "cart"}, "alerts", False,
                             owner="pod-alive-1b2c:4242:99")
    mine = store.create_run(None, "restart-it", {"service": "web"}, "alerts", False,
                            owner=owner())
    assert store.claim_run_slot(stale, "restart-it", 2) == "started"
    assert runs.orphaned(store) == []  # every heartbeat is new
    store._db.execute("UPDATE runbook_runs SET heartbeat = heartbeat - ? WHERE id IN (?, ?)",
                      (runs.RUN_TTL_S + 5, stale, mine))
    store.heartbeat_runs(owner(), [mine])  # this process still holds its own: a beat
    replicas = [Store(url), Store(url)]
    barrier = threading.Barrier(2)
    ended: list[list[dict]] = []

    def sweep(replica: Store) -> None:
        barrier.wait()
        ended.append(runs.orphaned(replica))

    threads = [threading.Thread(target=sweep, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["id"] for found in ended for r in found) == [stale]  # once, by one
    assert store.run(stale)["status"] == "canceled"
    assert store.run(fresh)["status"] == store.run(mine)["status"] == "queued"
    finished = [e for e in store.events(incident.id) if e.kind == "runbook.finished"]
    assert len(finished) == 1 and gone in finished[0].data["error"]
    assert store.joinable_run("restart-it", {"service": "checkout"},
                              succeeded_since=None) is None  # no alert joins it now
    for s in (store, *replicas):
        s.close()


def test_an_approval_two_replicas_find_expired_is_expired_once(tmp_path, postgres):
    """Both replicas sweep every few seconds (and a run's page looks too): a run whose
    approval ran out is ended by one of them, and its incident says so once. The row is
    held while both look, so both find it before either ends it."""
    import psycopg

    from gameday.incidents.incident import Incident
    from gameday.runs.pool import Dispatcher

    url = postgres.database()
    store = Store(url)
    incident = Incident.open(store, "payments replica 2 is slow", service="payments")
    run_id = store.create_run(incident.id, "drain-replica", {"service": "payments"}, "cleo",
                              False, approve_by="2000-01-01T00:00:00+00:00")
    replicas = [Store(url), Store(url)]
    dispatchers = [Dispatcher(r, data_dir=tmp_path / f"data{i}")
                   for i, r in enumerate(replicas)]
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watch:
        holder.execute("SELECT 1 FROM runbook_runs WHERE id = %s FOR UPDATE", (run_id,))
        threads = [threading.Thread(target=d.expire_approvals) for d in dispatchers]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while watch.execute("SELECT count(*) FROM pg_stat_activity WHERE"
                            " wait_event_type = 'Lock'").fetchone()[0] < 2:
            assert time.monotonic() < deadline, "the replicas never reached the run"
            time.sleep(0.05)
        holder.rollback()
        for t in threads:
            t.join()
    assert store.run(run_id)["status"] == "expired"
    expired = [e for e in store.events(incident.id) if e.kind == "runbook.approval_expired"]
    audited = [a for a in store.audit_log() if a["action"] == "approval.expired"]
    assert len(expired) == 1 and len(audited) == 1
    for d in dispatchers:
        d.shutdown()
    for s in (store, *replicas):
        s.close()
