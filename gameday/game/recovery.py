"""After a crash: ``gameday recover`` (and the start of every ``gameday run`` and
``gameday serve``) finds game days whose lease ran out and finishes them.

A running game day holds a lease in the store with a heartbeat, and writes, before
each fault, what undoes it (``game.Lease``). A lease has run out when its process is
gone (same host: the pid is not running, or is another process now) or its heartbeat
is older than ``LEASE_TTL_S`` (on another host only). Recovery takes the lease over for
its own process (so a second recover does nothing, and the service stays held while it
works), records ``run.crashed``, plays the experiment's rollbacks against the target
if a fault had started (each a ``fault.rolled_back``; the sandbox dies with the game
day, and a kind or kwok cluster is deleted when the game day stops it, their faults with
them, so there they are recorded as gone with the target), stops whatever the run left
(every process carrying its ``GAMEDAY_RUN`` marker, the sandbox, a cluster it created)
and ends the incident ``aborted``.

A game day whose rollbacks did not all succeed, or whose target could not be stopped,
keeps its lease when it ends (``store.leases.Lease.release``), so recovery plays them
again (those whose last run did not succeed) and stops the target once its process is
gone. A recovery whose rollbacks fail, or that cannot stop the target, gives the lease
back as it found it: the fault, or the world it is in, may still be there, and the next ``gameday
recover`` tries again (``gameday recover`` exits 1 meanwhile when a rollback failed).
A target recovery stopped is on the record (``target.stopped``): a cluster's faults
went with it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gameday.core import events, settings
from gameday.core.errors import GamedayError
from gameday.core.events import Kind
from gameday.core.states import DrillState
from gameday.game import chaos
from gameday.incidents.incident import TERMINAL_STATES, Incident
from gameday.runs import run as runs
from gameday.store import Store
from gameday.store.leases import (
    LEASE_TTL_S,
    ended,
    expired,
    not_undone,
    process_start,
    stop_leftovers,
)
from gameday.store.rows import LeaseRow, RunRow

ACTOR = "recover"
# How long a recover holds a lease it took over, as other hosts see it (on this host,
# while its process runs): enough for rollbacks that take their time.
RECOVERING_S = 600.0


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _target_gone(run_dir: Path, undo: dict[str, Any], incident: Incident) -> bool:
    """Whether the world the faults were in is gone, and the faults with it: the
    sandbox dies with its game day; a kind or kwok cluster is deleted when the game day
    stops its target (``target.stopped`` on the record), unless it ran inside it."""
    target = undo.get("target")
    if target == "sandbox":
        from gameday.targets.sandbox.client import sandbox_processes

        return not sandbox_processes(run_dir / "sandbox")
    if target in ("kind", "kwok"):
        from gameday.targets.cluster import in_cluster

        return not in_cluster() and bool(incident.store.events(
            incident.id, kinds=[Kind.TARGET_STOPPED], limit=1))
    return False


def _rollbacks(run_dir: Path, undo: dict[str, Any], incident: Incident,
               pending: list[str]) -> None:
    """Play the experiment's rollbacks named ``pending`` (those that have not undone
    their fault yet) against the target, each on the timeline: one that succeeded
    before is not played twice."""
    experiment = json.loads((run_dir / "experiment.json").read_text())
    rollbacks = [rb for rb in experiment.get("rollbacks") or []
                 if str(rb.get("name")) in pending]
    if _target_gone(run_dir, undo, incident):
        for rb in rollbacks:  # the fault went with the target
            incident.record(events.fault_rolled_back(rb.get("name"), events.TARGET_GONE,
                                                     rb.get("provider"), 0.0), ACTOR)
        return
    from gameday.targets.kube import use_kubeconfig

    env = undo.get("env") or {}
    failed = []
    previous = use_kubeconfig(env.get("KUBECONFIG"))
    try:
        with _environment(env), settings.overridden(sandbox_dir=run_dir / "sandbox"):
            for rb in rollbacks:
                began = time.monotonic()
                status = chaos.execute(experiment, rb)  # one that cannot run is recorded
                incident.record(events.fault_rolled_back(
                    rb.get("name"), status, rb.get("provider"),
                    round(time.monotonic() - began, 3)), ACTOR)
                if status != "succeeded":
                    failed.append(f"{rb.get('name')}: {status}")
    finally:
        use_kubeconfig(previous)
    if failed:
        raise GamedayError(f"rollbacks that did not succeed: {'; '.join(failed)}")


def _stop_target(run_dir: Path, target: str) -> None:
    from gameday.targets.base import TARGETS

    TARGETS[target].release(run_dir, target)


def recover_one(store: Store, lease: LeaseRow) -> dict[str, Any] | None:
    incident_id, run_dir = lease["incident_id"], Path(lease["run_dir"])
    # held by this process meanwhile: the service stays held, a second recover skips it
    if not store.claim_lease(lease, host=socket.gethostname(), pid=os.getpid(),
                             started=process_start(os.getpid()) or 0,
                             hold_s=RECOVERING_S):
        return None  # another recover got there first
    undo = lease["undo"]
    incident = Incident(store, incident_id)
    faults = list(undo.get("faults") or [])
    # a game day that ended (its verdict, or its interruption, on the record) kept its
    # lease for a rollback or a target it could not finish; one without either crashed,
    # said once however many recovers it takes
    how = ended(store, incident_id)
    crashed = how is None or how.kind == Kind.RUN_CRASHED
    if how is None:
        incident.record(events.run_crashed(lease["pid"], lease["host"],
                                           round(lease["age"], 1), faults), ACTOR)
    errors = []
    target = undo.get("target", "sandbox")
    if target == "sandbox":  # it dies with the game day (PDEATHSIG); its faults with it
        stop_leftovers(str(run_dir))
        _stop_target(run_dir, target)
    undone = True
    # every rollback already succeeded (a game day that could not stop its target):
    # nothing to play again
    pending = not_undone(store, incident_id, list(undo.get("rollbacks") or []))
    if faults and pending:
        try:
            _rollbacks(run_dir, undo, incident, pending)
        except Exception as exc:  # keep going: stop what is left, end the incident
            errors.append(f"rollbacks: {exc}")
            undone = False
    stopped = stop_leftovers(str(run_dir))
    target_stopped = True
    try:
        with _environment(undo.get("env") or {}):  # the cluster it created, by its name
            _stop_target(run_dir, target)
        incident.record(events.target_stopped(target), ACTOR)  # its faults went with it
    except Exception as exc:
        errors.append(f"stopping the target: {' '.join(str(exc).split())[:600]} (the "
                      "next `gameday recover` tries again)")
        target_stopped = False
    if incident.state not in TERMINAL_STATES:
        incident.abort("the game day crashed; recovered", ACTOR)
    for drill in store.drills():  # a drill's game day: its console and list stop waiting
        if drill["incident_id"] == incident_id and drill["state"] == DrillState.RUNNING:
            store.update_drill(drill["id"], state=DrillState.FAILED)
    if not undone or not target_stopped:  # the fault, or its world, may still be in
        store.give_back_lease(lease)  # for the next recover
    else:
        store.release_lease(incident_id, "recovered")
    return {"incident_id": incident_id, "run_dir": str(run_dir), "faults": faults,
            "undone": undone, "stopped": stopped, "state": incident.state,
            "errors": errors, "crashed": crashed}


def orphaned_runs(store: Store) -> list[RunRow]:
    """End the runbook runs left queued or running by a process that is gone (a
    ``gameday serve`` or a game day that was killed, here or on another host):
    ``runs.orphaned``."""
    return runs.orphaned(store, who=ACTOR)


def recover(store: Store, *, ttl: float = LEASE_TTL_S,
            say: Callable[[str], None] = lambda text: None) -> list[dict[str, Any]]:
    """Recover every game day whose lease ran out, and end the runbook runs whose
    process is gone; returns the game days recovered."""
    for run in orphaned_runs(store):
        say(f"ended runbook run #{run['id']} ({run['runbook']}, {run['status']}): "
            f"its process is gone")
    done = []
    for lease in store.running_leases():
        if not expired(lease, ttl):
            continue
        result = recover_one(store, lease)
        if result:
            say(said(result))
            done.append(result)
    return done


def by_hand(store: Store, incident_id: int, who: str, reason: str) -> dict[str, Any]:
    """A person took out by hand what game day ``incident_id`` left and recovery could
    not undo (its faults, or a target it could not stop), and says how (``reason``):
    each rollback still pending is recorded undone by hand, so is the target if it was
    not stopped, and the lease is let go, all in one transaction. Refused while the game
    day runs (stopping it rolls its faults back), while a recover plays its rollbacks,
    and before ``gameday recover`` has tried."""
    from gameday.core.audit import Audit
    from gameday.core.errors import NotFound, ValidationError
    from gameday.incidents.moves import text

    reason = text(reason, "--reason", limit=500)
    if "\n" in reason or "\t" in reason:
        raise ValidationError("one line, at most 500 characters", field="--reason")
    lease = next((row for row in store.running_leases()
                  if row["incident_id"] == incident_id), None)
    if lease is None:
        raise NotFound(f"game day {incident_id} holds nothing: none of its faults or "
                       "targets is waiting to be undone")
    how = ended(store, incident_id)
    where = f"pid {lease['pid']} on {lease['host']}"
    if not expired(lease):
        raise GamedayError(
            f"`gameday recover` is playing game day {incident_id}'s rollbacks again ({where}):"
            " wait for it" if how is not None else
            f"game day {incident_id} is running ({where}): stop it (Ctrl-C, SIGTERM or "
            "`gameday freeze on`) and it rolls its faults back")
    if how is None:
        raise GamedayError(f"game day {incident_id} stopped without finishing: run `gameday "
                           "recover` first, it rolls back what it left")
    incident = Incident(store, incident_id)
    faults = list(lease["undo"].get("faults") or [])
    pending = not_undone(store, incident_id, list(lease["undo"].get("rollbacks") or [])) \
        if faults else []
    stopped = bool(store.events(incident_id, kinds=[Kind.TARGET_STOPPED], limit=1))
    result = {"incident_id": incident_id, "rollbacks": pending, "target": lease["target"],
              "target_stopped": not stopped, "reason": reason}
    with store.transaction():  # all of it on the record, or none
        if not store.release_lease(incident_id, "by hand"):
            raise GamedayError(f"game day {incident_id} was let go meanwhile")
        for name in pending:
            incident.record(events.fault_undone_by_hand(name, reason), who)
        if not stopped:
            incident.record(events.target_stopped(lease["target"], by_hand=reason), who)
        store.audit(who, Audit.UNDONE_BY_HAND, result)
    return result


def said(result: dict[str, Any]) -> str:
    """One recovered game day, as ``recover`` tells it."""
    head = (f"{'crashed ' if result.get('crashed', True) else ''}game day "
            f"#{result['incident_id']} ({result['run_dir']}"
            f"{')' if result.get('crashed', True) else ', its target left running)'}: ")
    tail = (f"stopped {len(result['stopped'])} processes, incident {result['state']}"
            + "".join(f"; {error}" for error in result["errors"]))
    if not result["undone"]:
        return (f"{head}NOT rolled back ({', '.join(result['faults'])}: the fault may "
                f"still be in; the next `gameday recover` tries again), {tail}")
    return f"recovered {head}rolled back {', '.join(result['faults']) or 'no fault'}, {tail}"
