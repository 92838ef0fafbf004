"""What holds a team's service against a second game day (``store.leases.holding``), and
how a person lets go of a fault they took out by hand (``recovery.by_hand``): leases
in a real store, held by real processes (this one, and one that has exited)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gameday.core import events
from gameday.core.clock import epoch as clock_now
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


def test_of_two_game_days_started_at_once_the_first_goes_on(tmp_path):
    """Both passed the first look before either took its lease; asked again with their
    own lease taken, the later one gives way and the first does not."""
    store = Store(tmp_path / "g.db")
    first = game_day(store, tmp_path, service="payments", target="service", pid=os.getpid())
    second = game_day(store, tmp_path, service="payments", target="service", pid=os.getpid())
    assert holding(store, "payments", OWN, me=first) is None
    assert holding(store, "payments", OWN, me=second) == \
        f"game day {first} is running on payments (service)"


def test_a_recover_playing_the_rollbacks_again_holds_the_service(tmp_path):
    """While ``gameday recover`` plays a failed rollback again, the lease is its
    process's: the service stays held, by_hand waits, and a rollback that fails again
    gives the lease back to the process that is gone, for the next recover."""
    store = Store(tmp_path / "g.db")
    gone = game_day(store, tmp_path, service="payments", target="service", pid=exited_pid())
    incident = Incident(store, gone)
    incident.record(events.run_crashed(1, "h", 30.0, ["slow"]), "recover")
    (lease,) = store.running_leases()
    me = os.getpid()
    assert store.claim_lease(lease, host=socket.gethostname(), pid=me,
                             started=process_start(me) or 0, hold_s=600)
    assert not store.claim_lease(lease, host=socket.gethostname(), pid=me,  # one recover
                                 started=process_start(me) or 0, hold_s=0.0)
    held = holding(store, "payments", OWN)
    assert held is not None and held.startswith(
        f"`gameday recover` is playing the rollbacks of game day {gone} on payments again "
        f"(pid {me} on ")
    with pytest.raises(GamedayError, match="wait for it"):
        by_hand(store, gone, "ana", "thawed it")
    store.give_back_lease(lease)
    (back,) = store.running_leases()
    assert (back["pid"], back["heartbeat"]) == (lease["pid"], lease["heartbeat"])
    assert holding(store, "payments", OWN).startswith(f"game day {gone} left a fault")


def test_a_live_game_day_here_is_never_taken_for_gone_by_its_heartbeat(tmp_path):
    """A heartbeat late behind a busy machine, or a store away for a moment, does not
    make recover roll back under a game day whose process still runs on this host."""
    from gameday.store.leases import expired

    store = Store(tmp_path / "g.db")
    game_day(store, tmp_path, service="payments", target="service", pid=os.getpid())
    (lease,) = store.running_leases()
    assert not expired({**lease, "age": 3600.0})
    assert expired({**lease, "host": "elsewhere", "age": 3600.0})
    assert not expired({**lease, "host": "elsewhere", "age": 1.0})
    assert expired({**lease, "pid": exited_pid()})


def test_the_heartbeat_goes_on_after_the_store_was_away_a_moment(tmp_path, monkeypatch):
    from gameday.core.errors import StoreUnavailable
    from gameday.store.leases import Lease

    store = Store(tmp_path / "g.db")
    incident = store.create_incident("Game day: slow", service="payments",
                                     scenario="s.yaml", kind="gameday")
    lease = Lease(store, incident, tmp_path, "service", {"rollbacks": []})
    beat, failures = store.heartbeat, []

    def failover_once(incident_id: int) -> None:
        if not failures:
            failures.append(incident_id)
            raise StoreUnavailable("the store's database connection failed")
        beat(incident_id)

    monkeypatch.setattr(store, "heartbeat", failover_once)
    monkeypatch.delenv("GAMEDAY_RUN", raising=False)  # the lease sets it: put back after
    lease.take({})
    try:
        (taken,) = store.running_leases()
        deadline = time.monotonic() + 30
        while store.running_leases()[0]["heartbeat"] == taken["heartbeat"]:
            assert time.monotonic() < deadline, "no heartbeat after the store came back"
            time.sleep(0.1)
        assert failures == [incident]
    finally:
        lease.release()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_leases_age_is_read_by_the_stores_clock_not_the_hosts(tmp_path, request, database):
    """Hosts sharing a store never compare their own clocks: a game day on a host whose
    clock is an hour behind, beating every second, is not taken for gone by a recover
    elsewhere (it would roll the faults back under it), and one whose heartbeat has
    stopped is, whatever either clock says."""
    import time_machine

    from gameday.store.leases import expired

    url = (request.getfixturevalue("postgres").database() if database == "postgresql"
           else tmp_path / "g.db")
    store = Store(url)
    try:
        incident = store.create_incident("Game day: slow", service="payments",
                                         scenario="s.yaml", kind="gameday")
        with time_machine.travel(clock_now() - 3600, tick=True):  # the other host's clock
            store.take_lease(incident, run_dir=str(tmp_path), host="elsewhere", pid=4242,
                             started=99, target="service")
            store.heartbeat(incident)
        (lease,) = store.running_leases()
        assert abs(lease["age"]) < 60, lease["age"]
        assert not expired(lease)
        assert holding(store, "payments", OWN) == \
            f"game day {incident} is running on payments (service)"
        store._db.execute("UPDATE leases SET heartbeat = heartbeat - 30")  # it stopped
        (lease,) = store.running_leases()
        assert expired(lease)
    finally:
        store.close()
