"""Real game days on the embedded sandbox, end to end through the CLI process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.core import events
from gameday.core.events import in_time_order as timeline
from gameday.game.scoring import compute_metrics
from gameday.incidents.incident import Incident
from gameday.store import Store
from gameday.targets.sandbox.client import sandbox_processes

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ORDER = ["fault.injected", "impact.started", "alert.fired", "incident.declared",
         "incident.acknowledged", "runbook.started", "mitigated", "incident.resolved"]


def run_scenario(name: str, tmp: Path) -> tuple[dict, Store]:
    env = {**os.environ, "GAMEDAY_DB": str(tmp / "gameday.db"), "GAMEDAY_RUNS": str(tmp / "runs")}
    proc = subprocess.run([sys.executable, "-m", "gameday", "run", f"scenarios/{name}.yaml",
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]  # the verdict's exit code
    result = json.loads(proc.stdout)
    assert proc.returncode == result["verdict"]["exit_code"]
    (tmp / "terminal.txt").write_text(proc.stderr)  # the progress, with --json
    return result, Store(tmp / "gameday.db")


@pytest.fixture(scope="module")
def crash(tmp_path_factory):
    return run_scenario("checkout-replica-crash", tmp_path_factory.mktemp("crash"))


@pytest.fixture(scope="module")
def wrong(tmp_path_factory):
    return run_scenario("checkout-bad-deploy-wrong-runbook", tmp_path_factory.mktemp("wrong"))


def first_at(events, kind):
    return next(e["at_monotonic_ns"] for e in events if e["kind"] == kind)


def test_run_directory_and_result(crash):
    result, _ = crash
    run_dir = Path(result["run_dir"])
    assert result["status"] == "resolved" and result["incident_id"] >= 1
    assert result["verdict"]["status"] == "passed"  # exit 0
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "completed" and not journal["deviated"]
    samples = (run_dir / "samples.jsonl").read_text().splitlines()
    assert len(samples) > 100
    for name in ("review.md", "review.html", "sli-chart.svg", "sli.jsonl", "scorecard.json"):
        assert (run_dir / name).stat().st_size > 0, name
    status = run_dir / "runbooks" / "01-restart-replica" / "artifacts" / "run" / "status"
    assert status.read_text() == "successful"
    assert sandbox_processes(run_dir / "sandbox") == []


def test_the_terminal_counts_time_from_where_the_review_does(crash):
    """Both from the game day's first event: an event's time on the terminal is the
    time the review's timeline gives it (what is said before it has no time)."""
    import re

    result, _ = crash
    run_dir = Path(result["run_dir"])
    terminal = (run_dir.parents[1] / "terminal.txt").read_text()
    review = (run_dir / "review.md").read_text()
    assert terminal.startswith(f"{'':8}  run directory {run_dir}"), terminal[:200]
    for kind in ("target.ready", "fault.injected", "alert.fired", "runbook.started",
                 "mitigated", "incident.resolved"):
        said = re.search(rf"^ *([0-9.]+)s  {re.escape(kind)} ", terminal, re.MULTILINE)
        reviewed = re.search(rf"^\| ([0-9.]+) \| {re.escape(kind)} \|", review, re.MULTILINE)
        assert said and reviewed, kind
        assert abs(float(said[1]) - float(reviewed[1])) < 0.006, (kind, said[0], reviewed[0])


def test_timeline_is_ordered_by_measured_time(crash):
    result, store = crash
    events = timeline(store.events(result["incident_id"]))
    moments = [first_at(events, kind) for kind in ORDER]
    assert moments == sorted(moments) and len(set(moments)) == len(moments)
    declared = next(e for e in events if e["kind"] == "incident.declared")
    assert declared["data"]["severity"] == "SEV-2"   # a third of checkouts failing
    roles = {e["data"]["role"]: e["data"]["person"] for e in events
             if e["kind"] == "role.assigned"}
    assert roles["incident_commander"] in ("chidi", "dana")  # hybrid: dedicated IC


def test_incident_show_lists_the_timeline_in_time_order(crash, tmp_path):
    """Recording order is not time order (impact is dated by the request that showed it,
    a move made in chat by its server's time, each recorded later); what people read is
    in time order, ties broken by sequence. Whether the game day itself recorded one
    out of order depends on how its requests fell, so a copy of its store gets one
    more: a note dated just after the fault, recorded last."""
    result, store = crash
    copy = tmp_path / "gameday.db"
    with sqlite3.connect(store.path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    fault = next(e for e in Store(copy).events(result["incident_id"])
                 if e.kind == "fault.injected")
    Incident(Store(copy), result["incident_id"]).record(
        events.note_added("seen just after the fault, written down later"), "dana",
        at_ns=fault.at_monotonic_ns + 1, at_utc=fault.at_utc)
    env = {**os.environ, "GAMEDAY_DB": str(copy)}
    proc = subprocess.run([sys.executable, "-m", "gameday", "incident", "show",
                           str(result["incident_id"]), "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)["timeline"]
    keys = [(e["at_monotonic_ns"], e["seq"]) for e in shown]
    assert keys == sorted(keys)
    assert [e["seq"] for e in shown] != sorted(e["seq"] for e in shown)  # it did reorder
    after_fault = [e["kind"] for e in shown][[e["kind"] for e in shown].index(
        "fault.injected") + 1]
    assert after_fault == "note.added"
    run = next(e for e in shown if e["kind"] == "runbook.started")
    assert run["data"]["run_id"] == 1  # the game day's run is on the record
    assert crash[1].run(1)["status"] == "successful"


def test_review_matches_the_stored_timeline(crash):
    result, store = crash
    run_dir = Path(result["run_dir"])
    metrics = compute_metrics(store.events(result["incident_id"]))
    review = (run_dir / "review.md").read_text()
    for section in ("## Summary", "## Impact", "## Timeline", "## Detection", "## Response",
                    "## Contributing factors", "## What went well", "## What was hard",
                    "## Where we got lucky", "## Action items", "## Metrics against targets",
                    "## Supporting data"):
        assert section in review
    assert f"| TTD time to detect | {metrics.TTD:.2f} s |" in review
    assert f"| TTM time to mitigate | {metrics.TTM:.2f} s |" in review
    assert result["metrics"]["TTD"] == metrics.TTD and result["metrics"]["TTM"] == metrics.TTM
    assert store.actions(incident_id=result["incident_id"])  # tracked action items
    html = (run_dir / "review.html").read_text()
    assert "<svg" in html and "mitigated" in html


def test_rescoring_gives_the_same_score(crash):
    from click.testing import CliRunner

    from gameday.cli.main import cli

    result, store = crash
    out = CliRunner().invoke(cli, ["--db", str(store.path), "score", result["run_dir"],
                                   "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["score"] == result["score"]


def test_wrong_runbook_escalates_and_scores_lower(crash, wrong):
    result, store = wrong
    assert result["verdict"]["status"] == "deviated"  # exit 3: contained only by rollback
    events = timeline(store.events(result["incident_id"]))
    kinds = [e["kind"] for e in events]
    assert "incident.escalated" in kinds
    finished = next(e for e in events if e["kind"] == "runbook.finished")
    assert finished["data"]["status"] == "successful"   # it ran fine and fixed nothing
    assert first_at(events, "fault.rolled_back") < first_at(events, "mitigated")
    assert result["metrics"]["contained_by"] == "experiment rollback"
    assert result["score"] < crash[0]["score"]
    review = (Path(result["run_dir"]) / "review.md").read_text()
    assert "incident.escalated" in review and "does not contain this failure mode" in review


@pytest.mark.parametrize("name,runbook", [("checkout-bad-deploy", "rollback-release"),
                                          ("fraud-dependency-slowdown", "disable-flag")])
def test_other_scenarios_are_contained_by_their_runbooks(tmp_path, name, runbook):
    result, _ = run_scenario(name, tmp_path)
    assert result["status"] == "resolved"
    assert result["metrics"]["contained_by"] == f"runbook {runbook}"
    assert result["metrics"]["TTM"] is not None
