"""The real chain: Prometheus scrapes the sandbox, a replica dies, Alertmanager posts
to `gameday serve`, which opens an incident and runs the linked runbook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from serving import eventually

from gameday.store import Store
from gameday.targets.sandbox import start_sandbox, stop_sandbox
from gameday.targets.sandbox.alerting import missing_binaries, start_alerting

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    bool(missing_binaries()),
    reason=f"needs Debian's {', '.join(missing_binaries())} (make test installs them)")]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "chain-token-0123456789abcdef"


def until(check, timeout: float, what: str):
    return eventually(check, timeout, what, every=0.2)




def test_replica_down_alert_runs_the_restart_runbook(tmp_path, gameday_serve):
    sandbox_dir = tmp_path / "sandbox"
    shop = start_sandbox(sandbox_dir)
    db = tmp_path / "gameday.db"
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db),
           "GAMEDAY_SANDBOX": str(sandbox_dir)}
    stack = None
    try:
        port = gameday_serve(env, "--data-dir", str(tmp_path / "serve")).port
        stack = start_alerting(tmp_path / "alerting", shop.state(),
                               webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
                               token=TOKEN, gameday_url=f"http://127.0.0.1:{port}")
        until(lambda: stack.targets_up() == 7, 30, "all seven replicas scraped")
        shop.operate("signal", service="checkout", replica=2, signal="KILL")
        store = Store(db)
        run = until(lambda: next((r for r in store.runs() if r["finished_at"]), None), 90,
                    "the runbook run to finish")
        assert run["runbook"] == "restart-replica" and run["status"] == "successful"
        assert run["params"] == {"service": "checkout"} and run["started_by"] == "alertmanager"
        events = store.events(run["incident_id"])
        fired = next(e for e in events if e.kind == "alert.fired")
        assert fired.data["alertname"] == "ServiceReplicaDown"
        assert fired.data["labels"]["replica"] == "2"
        assert fired.data["annotations"]["runbook_url"] == \
            f"http://127.0.0.1:{port}/runbooks/restart-replica?service=checkout"
        replicas = shop.state()["services"]["checkout"]["replicas"]
        assert [r["status"] for r in replicas] == ["running"] * 3
        kinds = [e.kind for e in events]
        assert kinds.count("runbook.started") == 1
    finally:
        if stack:
            stack.stop()
        stop_sandbox(sandbox_dir)


def test_game_day_with_real_alerting(tmp_path):
    """`gameday run --alerting prometheus`: the incident opens on Alertmanager's
    notification, not on the built-in detector."""
    import json

    env = {**os.environ, "GAMEDAY_DB": str(tmp_path / "g.db"),
           "GAMEDAY_RUNS": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "gameday", "run",
                           "scenarios/checkout-replica-crash.yaml", "--alerting", "prometheus",
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    result = json.loads(proc.stdout or "{}")
    assert proc.returncode == 0, (result.get("verdict"), proc.stderr[-3000:])
    assert result["status"] == "resolved"
    assert result["metrics"]["contained_by"] == "runbook restart-replica"
    events = Store(tmp_path / "g.db").events(result["incident_id"])
    fired = [e for e in events if e.kind == "alert.fired"]
    assert len(fired) == 1 and fired[0].actor == "alertmanager"
    assert fired[0].data["alertname"] == "ServiceReplicaDown"
    injected = next(e for e in events if e.kind == "fault.injected")
    assert fired[0].at_monotonic_ns > injected.at_monotonic_ns
    assert not list((tmp_path / "runs").glob("*/alerting/prometheus-data/lock"))
