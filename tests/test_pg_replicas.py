"""Two real ``gameday serve`` replicas on one PostgreSQL database: at-least-once
delivery to both still starts exactly one runbook run (the database decides)."""

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
from test_web import TOKEN, alert, payload, write_runbook

from gameday.sandbox.supervisor import free_port
from gameday.store import Store

ROOT = Path(__file__).resolve().parent.parent
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


def test_two_replicas_on_one_postgresql_start_one_run(tmp_path, postgres):
    url = postgres.database()
    books = tmp_path / "runbooks"
    books.mkdir()
    write_runbook(books, "restart-it", ["Boom"])
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": url,
           "GAMEDAY_RUNBOOKS": str(books)}
    ports = [free_port(), free_port()]
    logs, procs = [], []
    try:
        for n, port in enumerate(ports):
            log = open(tmp_path / f"serve{n}.log", "wb")  # noqa: SIM115 - closed below
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "gameday", "serve", "--port", str(port),
                 "--no-scheduler", "--data-dir", str(tmp_path / f"data{n}")],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
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
        finally:
            store.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
        for log in logs:
            log.close()
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
