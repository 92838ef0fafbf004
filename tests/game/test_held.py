"""What holds a team's service against a second game day (``store.leases.holding``), and
how a person lets go of a fault they took out by hand (``recovery.by_hand``): leases
in a real store, held by real processes (this one, and one that has exited)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.core import events
from gameday.core.errors import GamedayError, NotFound, ValidationError
from gameday.game.recovery import by_hand
from gameday.incidents.incident import Incident
from gameday.scenarios.scenario import OWN
from gameday.store import Store
from gameday.store.leases import holding, process_start


def exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def game_day(store: Store, run_dir: Path, *, service: str, target: str, pid: int) -> int:
    """A game day's incident and lease, one fault in (``slow``, undone by ``unslow``)."""
    incident = store.create_incident("Game day: slow", service=service, scenario="s.yaml",
                                     kind="gameday")
    store.take_lease(incident, run_dir=str(run_dir), host=socket.gethostname(), pid=pid,
                     started=process_start(pid) or 0, target=target)
    store.record_undo(incident, {"target": target, "faults": ["slow"],
                                 "rollbacks": ["unslow"]})
    return incident


def test_a_running_game_day_holds_its_service_and_is_not_let_go_by_hand(tmp_path):
    store = Store(tmp_path / "g.db")
    assert holding(store, "payments", OWN) is None
    running = game_day(store, tmp_path, service="payments", target="service", pid=os.getpid())
    assert holding(store, "payments", OWN) == f"game day {running} is running on payments " \
                                              "(service)"
    assert holding(store, "checkout", OWN) is None  # another service
    assert holding(store, "payments", ("kubernetes",)) is None  # not asked for that target
    with pytest.raises(GamedayError, match=f"game day {running} is running .* stop it"):
        by_hand(store, running, "ana", "removed it")
    assert len(store.running_leases()) == 1


def test_a_fault_left_in_holds_until_a_person_undoes_it_by_hand(tmp_path):
    store = Store(tmp_path / "g.db")
    gone = game_day(store, tmp_path, service="payments", target="kubernetes",
                    pid=exited_pid())
    # crashed, and no recover has tried yet: the next game day's recover takes it first
    assert holding(store, "payments", OWN) is None
    with pytest.raises(GamedayError, match="run `gameday recover` first"):
        by_hand(store, gone, "ana", "scaled it back")
    incident = Incident(store, gone)
    incident.record(events.run_crashed(1, "h", 30.0, ["slow"]), "recover")
    incident.record(events.fault_rolled_back("unslow", "failed", None, 0.4), "recover")
    held = holding(store, "payments", OWN)
    assert held is not None and held.startswith(
        f"game day {gone} left a fault its rollbacks have not undone (unslow) on payments")
    assert f"`gameday recover --by-hand {gone} --as NAME --reason TEXT`" in held

    for who, reason, error in (("ana", "", ValidationError), ("ana", "a\nb", ValidationError)):
        with pytest.raises(error):
            by_hand(store, gone, who, reason)
    with pytest.raises(NotFound, match=f"game day {gone + 1} holds nothing"):
        by_hand(store, gone + 1, "ana", "scaled it back")

    done = by_hand(store, gone, "ana", "scaled the deployment back to 3 by hand")
    assert done == {"incident_id": gone, "rollbacks": ["unslow"], "target": "kubernetes",
                    "target_stopped": True,
                    "reason": "scaled the deployment back to 3 by hand"}
    assert holding(store, "payments", OWN) is None and store.running_leases() == []
    undone = [(e.kind, e.actor, e.data.get("status"), e.data.get("reason"))
              for e in store.events(gone)[-2:]]
    assert undone == [
        ("fault.rolled_back", "ana", "undone by hand", "scaled the deployment back to 3 by hand"),
        ("target.stopped", "ana", "undone by hand", "scaled the deployment back to 3 by hand")]
    (audit,) = [a for a in store.audit_log() if a["action"] == "gameday.undone_by_hand"]
    assert (audit["who"], audit["data"]["incident_id"]) == ("ana", gone)
    with pytest.raises(NotFound):  # once
        by_hand(store, gone, "bo", "again")


def test_a_sandbox_game_day_never_holds_a_teams_service(tmp_path):
    """The sandbox is gameday's own world: a game day there that left its lease holds
    nothing of a team's, even under the same service name."""
    store = Store(tmp_path / "g.db")
    left = game_day(store, tmp_path, service="checkout", target="sandbox", pid=exited_pid())
    Incident(store, left).record(events.run_crashed(1, "h", 30.0, ["slow"]), "recover")
    assert holding(store, "checkout", OWN) is None
