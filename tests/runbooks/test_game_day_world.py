"""A game day's runbook runs act on its own sandbox, in its run directory, and say so:
on the record (their world) and on the incident page (acted on: its own sandbox, the
world's key in its title), as the page's banner does; never ``default``, the world
real incidents are handled in."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gameday.core import settings
from gameday.runs import run as runs
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "world-token-0123456789abcdef"


def test_a_game_days_sandbox_is_its_own_world_in_its_own_process(tmp_path):
    """While its experiment runs, a game day points this process's settings at its
    sandbox (for the chaos activities): its runs still act on that sandbox, not on the
    project's, which stays the default world."""
    project = settings.current()
    sandbox = project.runs_dir / "20261207T090000Z-checkout-replica-crash" / "sandbox"
    with settings.overridden(sandbox_dir=sandbox):
        assert runs.world({"GAMEDAY_SANDBOX": str(sandbox)}) == f"GAMEDAY_SANDBOX={sandbox}"
        assert runs.world({"GAMEDAY_SANDBOX": str(project.sandbox_dir)}) \
            != runs.world({"GAMEDAY_SANDBOX": str(sandbox)})
    assert runs.world({"GAMEDAY_SANDBOX": str(project.sandbox_dir)}) == runs.DEFAULT_WORLD
    # as the incident page says it
    own = runs.world({"GAMEDAY_SANDBOX": str(sandbox)})
    assert runs.acted_on(own, str(sandbox.parent)) == "its own sandbox"
    assert runs.acted_on(own, str(tmp_path / "another")) == own
    assert runs.acted_on(None, None) == runs.acted_on("default", None) == "default"


@pytest.mark.slow
def test_a_cli_game_days_run_acts_on_its_sandbox_as_its_page_says(tmp_path, gameday_serve):
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db"),
           "GAMEDAY_RUNS": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-m", "gameday", "run",
                           "scenarios/checkout-replica-crash.yaml", "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    store = Store(tmp_path / "g.db")
    (run,) = store.runs(incident_id=result["incident_id"])
    store.close()
    sandbox = Path(result["run_dir"]) / "sandbox"
    assert run["world"] == f"GAMEDAY_SANDBOX={sandbox}", run["world"]

    base = gameday_serve(env, "--data-dir", str(tmp_path / "data"), "--no-scheduler").base
    request = urllib.request.Request(f"{base}/incidents/{result['incident_id']}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    page = urllib.request.urlopen(request, timeout=30).read().decode()
    banner = re.search(r'id="rehearsal">(.*?)</p>', page)
    assert banner and "act on its own sandbox" in banner.group(1), page
    acted_on = [(html.unescape(key), said) for key, said in
                re.findall(r'<code class="world" title="(.*?)">(.*?)</code>', page)]
    assert acted_on == [(f"GAMEDAY_SANDBOX={sandbox}", "its own sandbox")], acted_on
