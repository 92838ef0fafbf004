"""A running game day's lease: its claim in the store, with a heartbeat, and what undoes
its faults, written before each one is injected. Every process the game day starts
carries its ``GAMEDAY_RUN`` marker in the environment, so what it leaves behind after a
crash can be found (``leftovers``) and stopped; ``recovery`` does that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from gameday.core.events import UNDONE, Kind
from gameday.store import Event, Store
from gameday.store.rows import FreezeRow, LeaseRow

log = logging.getLogger(__name__)

LEASE_EVERY_S = 1.0
LEASE_TTL_S = 10.0
MARKER = "GAMEDAY_RUN"  # in the environment of every process a game day starts


class Lease:
    """This game day's claim in the store: a heartbeat while it runs, and, before each
    fault, what undoes it (the experiment's rollbacks, the target and its environment).
    ``gameday recover`` reads it after a crash."""

    def __init__(self, store: Store, incident_id: int, run_dir: Path, target: str,
                 experiment: dict[str, Any],
                 on_freeze: Callable[[FreezeRow], None] | None = None):
        self.store, self.incident_id, self.run_dir = store, incident_id, run_dir
        self.on_freeze = on_freeze
        self.undo: dict[str, Any] = {
            "target": target, "faults": [],
            "rollbacks": [r.get("name") for r in experiment.get("rollbacks") or []]}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease", daemon=True)

    def take(self, target_env: dict[str, str]) -> None:
        # Everything this run starts carries the marker, so a later recover finds it.
        os.environ[MARKER] = str(self.run_dir)
        self.undo["env"] = target_env
        self.store.take_lease(self.incident_id, run_dir=str(self.run_dir),
                              host=socket.gethostname(), pid=os.getpid(),
                              started=process_start(os.getpid()) or 0,
                              target=self.undo["target"])
        self.store.record_undo(self.incident_id, self.undo)
        self._thread.start()

    def before_fault(self, name: str) -> None:
        self.undo["faults"].append(name)
        self.store.record_undo(self.incident_id, self.undo)

    def _beat(self) -> None:
        """Every second: the heartbeat, and a look at the freeze (``gameday freeze on``
        stops running game days too, on any host sharing the store)."""
        frozen_seen = False
        while not self._stop.wait(LEASE_EVERY_S):
            try:
                self.store.heartbeat(self.incident_id)
                frozen = self.store.freeze() if self.on_freeze and not frozen_seen else None
            except Exception as exc:  # the store away a moment (a failover): next second
                log.warning("game day %s: no heartbeat this time (%s: %s)", self.incident_id,
                            type(exc).__name__, exc)
                continue
            if frozen and self.on_freeze:
                frozen_seen = True
                self.on_freeze(frozen)

    def release(self, *, target_stopped: bool = True) -> bool:
        """The game day is over: the heartbeat stops, and the lease is let go once
        what undoes its faults is on the record as done (each of the experiment's
        rollbacks' last ``fault.rolled_back`` succeeded) and its target stopped. While
        not, the lease stays, so ``gameday recover`` (also run by the next ``gameday
        run`` and ``gameday serve``) plays the rollbacks again and stops the target once
        this process is gone. Whether it was let go."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if not target_stopped or (self.undo["faults"] and self.not_undone()):
            return False
        self.store.release_lease(self.incident_id)
        return True

    def not_undone(self) -> list[str]:
        """The experiment's rollbacks whose last run on the record did not succeed (or
        that never ran)."""
        return not_undone(self.store, self.incident_id, self.undo["rollbacks"])


def not_undone(store: Store, incident_id: int, rollbacks: list[Any]) -> list[str]:
    """Of ``rollbacks`` (their names), those whose last run on the incident's record did
    not undo their fault (``events.UNDONE``), or that never ran."""
    last: dict[str, Any] = {}
    for event in store.events(incident_id, kinds=[Kind.FAULT_ROLLED_BACK]):
        last[str(event.data.get("activity"))] = event.data.get("status")
    return [str(name) for name in rollbacks if last.get(str(name)) not in UNDONE]


def expired(lease: LeaseRow, ttl: float = LEASE_TTL_S) -> bool:
    """Whether the process holding ``lease`` (the game day's, or a recover's) is gone. On
    this host its process says: not running, or another process now (a heartbeat late
    behind a busy machine or a store away for a moment never counts a live one gone).
    On another host, its heartbeat older than ``ttl`` by the database's clock (both
    written and read there: the hosts' own clocks are never compared)."""
    if lease["host"] == socket.gethostname():
        started = process_start(lease["pid"])
        return started is None or bool(lease["started"] and started != lease["started"])
    return bool(lease["age"] > ttl)


def ended(store: Store, incident_id: int) -> Event | None:
    """How a game day holding a lease ended, if it did: its verdict, its interruption,
    or ``gameday recover`` finding it crashed. None: its process went without a word."""
    found = store.events(incident_id, kinds=[Kind.GAMEDAY_VERDICT, Kind.GAMEDAY_INTERRUPTED,
                                             Kind.RUN_CRASHED], limit=1)
    return found[0] if found else None


def holding(store: Store, service: str, targets: Collection[str], *,
            me: int | None = None) -> str | None:
    """Why no game day may start on ``service`` in one of ``targets`` (a team's own
    systems, by the scenario's service): another game day holds it, running (or being
    recovered) or ended with faults its rollbacks have not undone (or a target it could
    not stop). None when none does. A game day that crashed holds it only once ``gameday
    recover`` has tried. ``me``: the game day asking again once its own lease is taken;
    of two that started at once, the first opened goes on."""
    for lease in store.running_leases():
        target, game_day = lease["target"], lease["incident_id"]
        if target not in targets or game_day == me or \
                store.incident(game_day)["service"] != service:
            continue
        how = ended(store, game_day)
        if not expired(lease):
            if how is not None:
                return (f"`gameday recover` is playing the rollbacks of game day {game_day} "
                        f"on {service} again (pid {lease['pid']} on {lease['host']})")
            if me is not None and game_day > me:
                continue  # it started after this one: it gives way
            return f"game day {game_day} is running on {service} ({target})"
        if how is None:  # crashed: the recover every game day starts with
            continue  # takes it first (``session.play``), then asks again
        faults = list(lease["undo"].get("faults") or [])
        pending = not_undone(store, game_day, list(lease["undo"].get("rollbacks") or [])) \
            if faults else []
        what = (f"a fault its rollbacks have not undone ({', '.join(pending)})" if pending
                else f"its {target} target not stopped")
        return (f"game day {game_day} left {what} on {service}: fix what stops "
                f"{'them' if pending else 'it'} and run `gameday recover`, or, once someone "
                f"has done it by hand, `gameday recover --by-hand {game_day} --as NAME "
                "--reason TEXT`")
    return None


def owner(pid: int | None = None) -> str:
    """This process (or ``pid``) as the store names who is running something:
    ``host:pid:start``, so a pid reused by another process is not mistaken for it."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid) or 0}"


def alive(name: str) -> bool | None:
    """Whether the process ``owner()`` named still runs: None when it is on another host
    (nothing here can tell)."""
    parts = name.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return False
    host, pid, started = parts[0], int(parts[1]), int(parts[2])
    if host != socket.gethostname():
        return None
    now = process_start(pid)
    return now is not None and (started == 0 or now == started)


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def leftovers(run_dir: str) -> list[int]:
    """Processes that carry the run's marker (the sandbox, a playbook, Prometheus...)."""
    found, needle = [], f"{MARKER}={run_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_leftovers(run_dir: str, grace_s: float = 5.0) -> list[int]:
    pids = leftovers(run_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(process_start(p) for p in pids):
            time.sleep(0.05)
    return pids
