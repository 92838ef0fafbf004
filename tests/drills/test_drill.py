"""A responder-training drill: people answer pages and run the runbook themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gameday.game.scoring import compute_metrics
from gameday.store import Store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def events_of(db: Path, kind: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            store = Store(db)
            found = [e for i in store.incidents() for e in store.events(i["id"])
                     if e.kind == kind]
            if found:
                return found
        time.sleep(0.1)
    raise AssertionError(f"no {kind} within {timeout}s")


def test_drill_people_ack_and_run_the_runbook(tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios/checkout-replica-crash.yaml").read_text())
    raw["experiment"] = str(ROOT / "experiments/checkout-replica-crash.yaml")
    raw["response"] = {"mode": "drill"}
    raw["timeouts"]["mitigate"] = "60s"
    raw["drill"]["resolve_within"] = "5s"  # nobody resolves: the game day does, after this
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(yaml.safe_dump(raw))
    db = tmp_path / "gameday.db"
    env = {**os.environ, "GAMEDAY_DB": str(db), "GAMEDAY_RUNS": str(tmp_path / "runs")}
    game = subprocess.Popen([sys.executable, "-m", "gameday", "run", str(scenario), "--json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        pages = events_of(db, "page.sent")
        time.sleep(0.3)  # the IC's page follows the on-call's
        pages = events_of(db, "page.sent")
        incident_id = pages[0].incident_id

        def gameday(*args):
            return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=60, check=True)

        for person in {p.data["person"] for p in pages}:
            gameday("incident", "ack", str(incident_id), "--as", person)
        gameday("runbook", "run", "restart-replica", "-e", "service=checkout",
                "--incident", str(incident_id), "--as", "ben")
        out, err = game.communicate(timeout=90)
    finally:
        if game.poll() is None:
            game.kill()
    result = json.loads(out)
    assert game.returncode == result["verdict"]["exit_code"], err[-2000:]
    assert result["status"] == "resolved"
    m = compute_metrics(Store(db).events(incident_id))
    assert m.contained_by == "runbook restart-replica"
    assert m.TTA is not None and m.TTA > 0.05   # a person, not automation, answered
    assert m.TTM is not None and result["metrics"]["TTM"] == m.TTM
    kinds = [e.kind for e in Store(db).events(incident_id)]
    assert kinds.count("runbook.task") >= 6
