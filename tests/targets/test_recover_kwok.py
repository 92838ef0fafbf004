"""A kwok game day SIGKILLed while its fault holds: the fault outlives the process, and
`gameday recover` plays the experiment's rollback against the cluster the game day
created (before it deletes it), ends the incident aborted, and stops the cluster."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from controlplane import kwokctl, needs_build, own_home

from gameday.targets import cluster as k8s

pytestmark = [pytest.mark.slow, needs_build]
ROOT = Path(__file__).resolve().parents[2]
NAME = f"gameday-recover-{os.getpid()}"  # never a user's cluster, nor another run's


def _kinds(db: Path) -> list[tuple[str, dict]]:
    """The events on record, read-only (the game day writes the store meanwhile)."""
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=5)) as conn:
            rows = conn.execute("SELECT kind, data_json FROM events ORDER BY incident_id, seq")
            return [(kind, json.loads(data)) for kind, data in rows]
    except sqlite3.OperationalError:  # the schema is still being created
        return []


def _kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the game day and whatever shares its process group (it leads one)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigkilled_kwok_game_day_is_rolled_back_and_its_cluster_stopped(tmp_path,
                                                                        monkeypatch):
    kubeconfig = own_home(monkeypatch, tmp_path / "home", NAME)
    db = tmp_path / "gameday.db"
    env = {**os.environ, "GAMEDAY_DB": str(db), "GAMEDAY_RUNS": str(tmp_path / "runs")}
    kubectl = [str(k8s.k8s_bin() / "kubectl"), "--kubeconfig", str(kubeconfig),
               "-n", k8s.NAMESPACE]
    log = (tmp_path / "run.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "gameday", "run",
                             "scenarios/kwok-frontend-scaled-to-zero.yaml", "--json"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    watch = None
    try:
        deadline = time.monotonic() + 240  # the cluster up, the steady state, the fault
        while not any(k == "fault.injected" for k, _ in _kinds(db)):
            assert proc.poll() is None, f"the game day ended first: {log.name}"
            assert time.monotonic() < deadline, "no fault.injected within 240 s"
            time.sleep(0.05)
        _kill(proc)
        assert proc.returncode == -signal.SIGKILL
        before = [k for k, _ in _kinds(db)]
        assert "runbook.started" not in before and "fault.rolled_back" not in before, before

        # The fault outlives the game day: the frontend stays scaled to zero.
        replicas = subprocess.run([*kubectl, "get", "deployment", "frontend", "-o",
                                   "jsonpath={.spec.replicas}"],
                                  capture_output=True, text=True, timeout=60)
        assert replicas.returncode == 0 and replicas.stdout == "0", replicas.stderr
        # What the API server says while recover runs: the rollback's scale to 3 must
        # land on this cluster before recover deletes it.
        watch = subprocess.Popen([*kubectl, "get", "deployment", "frontend", "--watch",
                                  "-o", "jsonpath={.spec.replicas}{\"\\n\"}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)

        # recover from a shell whose KUBECONFIG points elsewhere: the rollback must act
        # on the cluster the game day recorded, not on whatever is current.
        rec_env = {**env, "KUBECONFIG": str(tmp_path / "elsewhere.kubeconfig")}
        rec = subprocess.run([sys.executable, "-m", "gameday", "recover", "--json"],
                             cwd=ROOT, env=rec_env, capture_output=True, text=True,
                             timeout=180)
        assert rec.returncode == 0, rec.stderr[-3000:]
        assert "Traceback" not in rec.stdout + rec.stderr, rec.stderr[-3000:]
        (done,) = json.loads(rec.stdout)
        assert done["state"] == "aborted" and done["errors"] == [], done
        assert done["faults"] == ["scale-frontend-to-zero"]

        from gameday.store import Store

        store = Store(db)
        assert store.incident(done["incident_id"])["state"] == "aborted"
        events = store.events(done["incident_id"])
        kinds = [e.kind for e in events]
        assert "run.crashed" in kinds
        (rolled,) = [e for e in events if e.kind == "fault.rolled_back"]
        assert rolled.actor == "recover"
        assert rolled.data["activity"] == "scale-frontend-back-to-three"
        assert rolled.data["status"] == "succeeded", rolled.data
        assert kinds.index("run.crashed") < kinds.index("fault.rolled_back") \
            < kinds.index("incident.aborted")
        assert store.running_leases() == []
        seen, _ = watch.communicate(timeout=30)  # it ends with the API server
        assert "3" in seen.split(), f"the rollback never reached the cluster: {seen!r}"

        # The cluster the game day created is gone.
        assert not kubeconfig.parent.exists()
        assert NAME not in kwokctl("get", "clusters").stdout.split()

        again = subprocess.run([sys.executable, "-m", "gameday", "recover", "--json"],
                               cwd=ROOT, env=rec_env, capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 0 and json.loads(again.stdout) == [], again.stderr
    finally:
        if proc.poll() is None:
            _kill(proc)
        if watch and watch.poll() is None:
            watch.kill()
            watch.wait()
        log.close()
        if kubeconfig.parent.exists() or NAME in kwokctl("get", "clusters").stdout.split():
            kwokctl("delete", "cluster", "--name", NAME)
