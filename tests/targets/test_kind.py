"""Opt-in: every kind scenario against a real kind cluster (needs kind, kubectl and a
running container engine; none runs on our CI machines). GAMEDAY_KIND=1 turns it on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.targets.cluster import container_engine

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("kind-*.yaml"))


def why_skip() -> str | None:
    if os.environ.get("GAMEDAY_KIND") != "1":
        return "opt-in: set GAMEDAY_KIND=1 to run game days on a real kind cluster"
    missing = [b for b in ("kind", "kubectl") if not __import__("shutil").which(b)]
    if missing:
        return f"needs {' and '.join(missing)} on PATH"
    if container_engine() is None:
        return "needs a running container engine (docker or podman)"
    return None


pytestmark = [pytest.mark.kind, pytest.mark.skipif(why_skip() is not None,
                                                   reason=why_skip() or "")]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kind_scenario(tmp_path, scenario):
    env = {**os.environ, "GAMEDAY_DB": str(tmp_path / "g.db"),
           "GAMEDAY_RUNS": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "gameday", "run",
                           f"scenarios/{scenario}.yaml", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "resolved"
    if scenario.endswith("wrong-runbook"):
        assert result["metrics"]["escalated"]
        assert result["metrics"]["contained_by"] == "experiment rollback"
    else:
        assert result["metrics"]["contained_by"].startswith("runbook ")
