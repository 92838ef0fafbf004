"""A kwok game day whose cluster cannot be deleted when it ends (``kwokctl delete
cluster`` fails: its configuration is no longer one kwokctl reads). The game day still
finishes its record: the incident ended, the failure on its timeline and in its verdict
(exit 1, no traceback), and its lease kept, so that ``gameday recover`` deletes the
cluster, trying again while it still cannot."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from controlplane import kwokctl, needs_build, own_home

pytestmark = [pytest.mark.slow, needs_build]
ROOT = Path(__file__).resolve().parents[2]
NAME = f"gameday-unstopped-{os.getpid()}"  # never a user's cluster, nor another run's


def _injected(db: Path) -> bool:
    """Whether the fault is on the record (read-only: the game day writes meanwhile)."""
    if not db.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=5)) as conn:
            return conn.execute("SELECT 1 FROM events WHERE kind = 'fault.injected'"
                                ).fetchone() is not None
    except sqlite3.OperationalError:  # the schema is still being created
        return False


def _recover(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    done = subprocess.run([sys.executable, "-m", "gameday", "recover", "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    return done, json.loads(done.stdout)


def test_a_cluster_that_cannot_be_deleted_is_said_and_left_to_recover(tmp_path, monkeypatch):
    kubeconfig = own_home(monkeypatch, tmp_path / "home", NAME)
    db = tmp_path / "gameday.db"
    env = {**os.environ, "GAMEDAY_DB": str(db), "GAMEDAY_RUNS": str(tmp_path / "runs")}
    config = kubeconfig.parent / "kwok.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "gameday", "run",
                             "scenarios/kwok-frontend-scaled-to-zero.yaml", "--json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    saved = None
    try:
        deadline = time.monotonic() + 240  # the cluster up, the steady state, the fault
        while not _injected(db):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no fault.injected within 240 s"
            time.sleep(0.05)
        saved = config.read_text()
        config.write_text("::: no longer a configuration kwokctl reads\n")
        out, err = proc.communicate(timeout=300)

        # The game day says what happened: exit 1, its verdict naming the failure.
        assert proc.returncode == 1, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        result = json.loads(out)
        assert result["verdict"]["status"] == "failed", result["verdict"]
        (after,) = [c for c in result["verdict"]["checks"]
                    if c["name"] == "steady state after the fault"]
        assert "could not be stopped" in after["message"], after
        assert "kwokctl delete cluster failed" in after["message"], after
        assert "gameday recover" in after["message"], after

        # Its record is finished: the incident ended, the failure on the timeline, and
        # no target.stopped (the cluster is still there); the lease stays for recover.
        from gameday.store import Store

        store = Store(db)
        incident = store.incident(result["incident_id"])
        assert incident["state"] == "resolved", incident
        events = store.events(result["incident_id"])
        kinds = [e.kind for e in events]
        assert "target.stopped" not in kinds, kinds
        (failed,) = [e for e in events if e.kind == "gameday.failed"]
        assert "kwokctl delete cluster failed" in failed.data["error"], failed.data
        assert [lease["incident_id"] for lease in store.running_leases()] == \
            [result["incident_id"]]
        assert kubeconfig.parent.exists()

        # recover cannot delete it either while kwokctl cannot read it: it says so and
        # keeps the lease; once it can, the cluster is deleted and the lease let go.
        rec, (first,) = _recover(env)
        assert any("stopping the target" in e for e in first["errors"]), first
        assert first["state"] == "resolved" and first["undone"], first
        assert rec.returncode == 1 and "could not be stopped" in rec.stderr, rec.stderr
        assert first["crashed"] is False  # it ended; only its target was left running
        assert "run.crashed" not in [e.kind for e in store.events(result["incident_id"])]
        assert len(store.running_leases()) == 1
        config.write_text(saved)
        rec, (second,) = _recover(env)
        assert rec.returncode == 0, rec.stderr[-3000:]
        assert second["errors"] == [] and second["undone"], second
        assert store.running_leases() == []
        assert not kubeconfig.parent.exists()
        assert NAME not in kwokctl("get", "clusters").stdout.split()
        rec, again = _recover(env)
        assert again == [] and rec.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if kubeconfig.parent.exists():
            if saved is not None:
                config.write_text(saved)
            kwokctl("delete", "cluster", "--name", NAME)
