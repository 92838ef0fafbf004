"""Faults never outlive the game day: SIGINT and SIGTERM to a real `gameday run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from serving import eventually

from gameday.store import Store
from gameday.targets.sandbox.client import sandbox_processes

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def kinds_so_far(db: Path) -> list[str]:
    if not db.exists():
        return []
    store = Store(db)
    try:
        return [e.kind for i in store.incidents() for e in store.events(i["id"])]
    finally:
        store.close()


def wait_for_event(db: Path, kind: str, proc: subprocess.Popen[str],
                   timeout: float = 90) -> None:
    """Until the run records ``kind``; fail at once if the run ends first, with what it
    printed and recorded (a run that ended cannot record it later)."""
    def seen() -> bool:
        if kind in kinds_so_far(db):
            return True
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the run ended (exit {proc.returncode}) before "
                                 f"{kind}; recorded {kinds_so_far(db)}; printed:\n{out}")
        return False

    eventually(seen, timeout, lambda: f"{kind}; recorded so far {kinds_so_far(db)}")


@pytest.mark.parametrize("sig,moment", [(signal.SIGINT, "incident.declared"),
                                        (signal.SIGTERM, "incident.declared"),
                                        (signal.SIGINT, "runbook.task"),
                                        (signal.SIGTERM, "runbook.task")])
def test_signal_mid_fault_rolls_back_and_leaves_nothing(tmp_path, sig, moment):
    db = tmp_path / "gameday.db"
    env = {**os.environ, "GAMEDAY_DB": str(db), "GAMEDAY_RUNS": str(tmp_path / "runs")}
    # The wrong-runbook scenario keeps its fault live the longest.
    proc = subprocess.Popen([sys.executable, "-m", "gameday", "run",
                             "scenarios/checkout-bad-deploy-wrong-runbook.yaml"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_event(db, moment, proc)
        run_dir = next((tmp_path / "runs").iterdir())
        assert len(sandbox_processes(run_dir / "sandbox")) == 8
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 128 + sig, out  # 130 for SIGINT, 143 for SIGTERM
    assert "Traceback" not in out
    assert sandbox_processes(run_dir / "sandbox") == []
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == \
        ["roll-checkout-back-unless-done"]
    assert journal["rollbacks"][0]["status"] == "succeeded"
    store = Store(db)
    (incident,) = store.incidents()
    kinds = [e.kind for e in store.events(incident["id"])]
    assert "fault.rolled_back" in kinds and "gameday.interrupted" in kinds
    assert kinds[-1] == "target.stopped"  # nothing (a playbook, say) carried on after


@pytest.mark.parametrize("moment", ["target.ready", "fault.injected"])
def test_a_reader_that_goes_away_stops_the_game_day_as_a_signal_would(tmp_path, moment):
    """``gameday run ... | head``: the pipe breaks when the reader has had enough. The game
    day stops as on SIGTERM, on the record as SIGPIPE, its fault rolled back and its
    incident ended, and exits 141, as a shell reports a tool its broken pipe ended."""
    db = tmp_path / "g.db"
    env = {**os.environ, "GAMEDAY_DB": str(db), "GAMEDAY_RUNS": str(tmp_path / "runs")}
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "gameday", "run",
                             "scenarios/checkout-replica-crash.yaml"], cwd=ROOT, env=env,
                            stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    try:
        wait_for_event(db, moment, proc)
        os.close(read)  # the reader goes away; the next line written finds the pipe broken
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == 141, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    store = Store(db)
    (incident,) = store.incidents()
    assert incident["state"] in ("cancelled", "aborted", "resolved"), incident
    interrupted = [e for e in store.events(incident["id"]) if e.kind == "gameday.interrupted"]
    assert interrupted and "SIGPIPE" in json.dumps(interrupted[0].data)
    for run_dir in (tmp_path / "runs").glob("*"):
        assert sandbox_processes(run_dir / "sandbox") == []
    assert store.running_leases() == []
    store.close()


def test_a_signal_once_the_verdict_is_given_is_remembered_not_raised():
    """Once the game day is over (``interrupts.settle``), a signal cannot cut short the
    way out: raised while the store closed a connection, it printed a traceback and
    "Aborted!". It is remembered, so the exit code still says it came (never 0)."""
    import time

    from gameday.game import interrupts

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupts.install()
    try:
        interrupts.settle()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # the handler runs on this thread between two statements
        except KeyboardInterrupt:
            pytest.fail("a signal after the verdict was raised")
        assert interrupts.exit_code() == 130 and interrupts.name() == "SIGINT"
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        interrupts.received = None
