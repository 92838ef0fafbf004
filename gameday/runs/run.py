"""A runbook run on the record, whoever started it (a game day, ``gameday serve``, a
responder's CLI): a row in ``runbook_runs`` that goes queued → running → its result,
its events on the incident's timeline tagged with the run's id (a run outside any
incident: in ``run_output``), and the audit log.

Every run keeps its world and its kind: where it acts (``world``: a game day's own
sandbox or cluster, or ``default``, the environment real incidents are handled in) and
what it serves (``kind``: a real ``incident``, a ``gameday``, a ``drill``). An alert
joins only a run of its own world and kind, and a runbook's concurrency is counted per
world with real runs first (``Store.claim_run_slot``): a rehearsal never absorbs,
delays or stands in for work on a real incident. A run ends once
(``Store.end_run``); a result that arrives after another process ended it is kept as
a late result (``runbook.late_result``), never a second end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from gameday.core import clock
from gameday.core.audit import Audit
from gameday.core.errors import GamedayError
from gameday.core.events import (
    Entry,
    Kind,
    approval_expired,
    approval_requested,
    runbook_approved,
    runbook_finished,
    runbook_late_result,
    runbook_queued,
    runbook_rejected,
    with_run_id,
)
from gameday.core.settings import TARGET_KINDS
from gameday.core.settings import current as current_settings
from gameday.incidents.incident import INCIDENT, TERMINAL_STATES, Incident, kind_of_row
from gameday.runbooks.runbook import Runbook, RunbookResult, run_runbook
from gameday.runs.targets import admit_run, alert_target
from gameday.store import Store
from gameday.store.leases import alive, owner
from gameday.store.rows import RunRow

HEARTBEAT_S = 5.0  # how often a process says it still holds its runs
RUN_TTL_S = 30.0   # a run on another host whose heartbeat is older is orphaned
DEFAULT_WORLD = "default"  # the process's own environment: where real incidents are
# The variables that choose what a runbook's commands act on (``targets``: a game day's
# sandbox, a cluster's kubeconfig, context and name, a service's inventory).
WORLD_VARS = ("GAMEDAY_SANDBOX", "KUBECONFIG", "KUBERNETES_CONTEXT", "GAMEDAY_CLUSTER",
              "GAMEDAY_INVENTORY")


def world(env: Mapping[str, str] | None) -> str:
    """Where a run with ``env`` acts, as a key: the target-choosing variables it sets,
    or ``default`` when it sets none (it acts where the process that runs it does). The
    project's own sandbox is the default world too: ``gameday serve`` names it, a
    ``gameday runbook run`` by hand does not, and both act on it. A game day's sandbox,
    in its run directory, is its own world, also in the game day's process, whose
    settings point at it while the experiment runs."""
    chosen = {k: env[k] for k in WORLD_VARS if env and env.get(k)}
    sandbox = chosen.get("GAMEDAY_SANDBOX")
    if sandbox and _projects_sandbox(Path(sandbox)):
        del chosen["GAMEDAY_SANDBOX"]
    return " ".join(f"{k}={v}" for k, v in chosen.items()) or DEFAULT_WORLD


def _projects_sandbox(sandbox: Path) -> bool:
    """Whether ``sandbox`` is the project's own, not one in a game day's run directory."""
    here, sandbox = current_settings(), sandbox.resolve()
    return sandbox == here.sandbox_dir.resolve() \
        and not sandbox.is_relative_to(here.runs_dir.resolve())


def acted_on(key: str | None, run_dir: str | None) -> str:
    """A run's world as its incident's page says it: ``its own sandbox`` for a game
    day's or a drill's run on the sandbox in its run directory (``run_dir``), else the
    world's key (``default``: where real incidents are handled)."""
    if run_dir and key == world({"GAMEDAY_SANDBOX": str(Path(run_dir) / "sandbox")}):
        return "its own sandbox"
    return key or DEFAULT_WORLD


def not_as_asked(run: Mapping[str, Any], book: Runbook) -> str | None:
    """Why a run waiting for approval can no longer be approved as it was asked for: its
    runbook changed since (``Runbook.version``), or it was asked for before runs kept
    one; None while the runbook reads as it did. ``Dispatcher.approve`` refuses it, and
    the run's page says so, in these words."""
    asked = run.get("runbook_version")
    if asked == book.version:
        return None
    return (f"runbook {book.name} changed since it was asked for" if asked else
            f"run {run['id']} was asked for before gameday kept runbook versions")


def kind(incident: Incident | None) -> str:
    """What a run serves: its incident's kind; a run outside any incident is real work."""
    return kind_of_row(incident.row) if incident is not None else INCIDENT


def queue(store: Store, runbook: Runbook, params: dict[str, Any], *,
          incident: Incident | None, who: str, check: bool = False,
          env: Mapping[str, str] | None = None) -> int:
    """Record a run that is about to start (or wait for a free worker) in this process:
    it is this process's to run, and ``recovery`` ends it if the process dies first.
    ``env``: the environment it will run with (its world). Refused (GamedayError, on
    the incident's record) in a team's cluster outside the project's allowlist."""
    _admitted(store, runbook, params, incident=incident, who=who, env=env)
    run_id = store.create_run(incident.id if incident else None, runbook.name, params, who,
                              check, owner=owner(), world=world(env), kind=kind(incident),
                              version=runbook.version)
    store.audit(who, Audit.RUNBOOK_RUN, {"run_id": run_id, "runbook": runbook.name,
                                         "params": params, "check": check,
                                         "incident_id": incident.id if incident else None})
    if incident:
        incident.record(runbook_queued(runbook.name, run_id), who)
    return run_id


def _admitted(store: Store, runbook: Runbook, params: dict[str, Any], *,
              incident: Incident | None, who: str, env: Mapping[str, str] | None) -> None:
    try:
        admit_run(incident, runbook, params, env)
    except GamedayError as exc:
        store.audit(who, Audit.RUNBOOK_REJECTED, {
            "runbook": runbook.name, "error": str(exc),
            "incident_id": incident.id if incident else None})
        if incident:
            incident.record(runbook_rejected(runbook.name, str(exc)), who)
        raise


def approval_window(destructive: bool, harmless: bool, four_eyes: str,
                    ttl: float | None) -> float | None:
    """Four eyes: how long a run waits for a second person, or None when it starts at
    once: destructive runs (every run with ``--four-eyes all``, none with ``off``);
    never a ``harmless`` one (``Runbook.changes_nothing``: a check-mode run of a runbook
    whose dry run is dry)."""
    if harmless or four_eyes == "off" or ttl is None:
        return None
    return ttl if destructive or four_eyes == "all" else None


def ask_approval(store: Store, runbook: Runbook, params: dict[str, Any], *,
                 incident: Incident | None, who: str, check: bool, within_s: float,
                 env: Mapping[str, str] | None = None) -> int:
    """Four eyes: record a run that waits for a second person until ``within_s`` from
    now (``Dispatcher.approve``); nothing runs before. Refused as ``queue`` refuses."""
    _admitted(store, runbook, params, incident=incident, who=who, env=env)
    until = (clock.now() + timedelta(seconds=within_s)).isoformat(timespec="microseconds")
    run_id = store.create_run(incident.id if incident else None, runbook.name, params, who,
                              check, approve_by=until, world=world(env),
                              kind=kind(incident), version=runbook.version)
    store.audit(who, Audit.APPROVAL_REQUESTED, {
        "run_id": run_id, "runbook": runbook.name, "version": runbook.version,
        "params": params, "check": check,
        "incident_id": incident.id if incident else None, "expires_at": until})
    if incident:
        incident.record(approval_requested(runbook.name, run_id, until), who)
    return run_id


def approved(store: Store, run: RunRow, who: str, *,
             incident: Incident | None) -> None:
    store.audit(who, Audit.APPROVED, {"run_id": run["id"], "runbook": run["runbook"],
                                      "requested_by": run["started_by"]})
    if incident:
        incident.record(runbook_approved(run["runbook"], run["id"], run["started_by"]), who)


def expired(store: Store, run: RunRow, *, incident: Incident | None) -> None:
    store.audit("gameday", Audit.APPROVAL_EXPIRED, {
        "run_id": run["id"], "runbook": run["runbook"], "requested_by": run["started_by"],
        "expires_at": run["approve_by"]})
    if incident:
        incident.record(approval_expired(run["runbook"], run["id"], run["approve_by"]),
                        "gameday")


def execute(store: Store, run_id: int, runbook: Runbook, params: dict[str, Any],
            data_dir: Path, *, incident: Incident | None, who: str, check: bool = False,
            env: dict[str, str] | None = None,
            on_event: Callable[[Entry], None] | None = None,
            tick: Callable[[], None] | None = None) -> RunbookResult:
    """Run a queued run; its row, the incident's timeline and the audit log follow.
    Its end is written once: if another process ended it meanwhile (it took the run for
    orphaned), what the playbook says at the end is kept as a late result instead."""
    ended: list[bool] = []  # [True]: this process wrote the run's end; [False]: too late

    def end(status: str, rc: int | None) -> bool:
        if not ended:
            ended.append(store.end_run(run_id, status, rc))
            if not ended[0]:
                store.late_result(run_id, status, rc)
        return ended[0]

    def report(entry: Entry) -> None:
        entry = with_run_id(entry, run_id)
        if entry.kind == Kind.RUNBOOK_FINISHED and \
                not end(entry.data["status"], entry.data.get("rc")):
            entry = runbook_late_result(entry, store.run(run_id)["status"])
        if incident:
            incident.record(entry, who)
        else:
            store.record_run_output(run_id, entry.kind, entry.data)
        if on_event:
            on_event(entry)

    beat = [time.monotonic()]

    def ticked() -> None:  # the run is in hand: its heartbeat, every few seconds
        if time.monotonic() - beat[0] >= HEARTBEAT_S:
            beat[0] = time.monotonic()
            # A store away for a moment must not stop the playbook: the next beat
            # comes before RUN_TTL_S.
            with contextlib.suppress(Exception):
                store.heartbeat_runs(owner(), [run_id])
        if tick:
            tick()

    if not store.start_run(run_id, owner()):  # ended elsewhere before it started: not run
        return RunbookResult(runbook.name, "canceled", None, data_dir / "artifacts" / "run",
                             {"ok": 0, "failed": 0, "skipped": 0, "unreachable": 0},
                             "none")
    status, rc = "error", None
    try:
        result = run_runbook(runbook, params, data_dir, check=check, env=env,
                             on_event=report, tick=ticked)
        status, rc = result.status, result.rc
        return result
    except GamedayError:
        raise
    except BaseException:  # Ctrl-C, SIGTERM: the playbook was stopped
        status = "canceled"
        raise
    finally:
        late = not end(status, rc)  # already written if the playbook reported its end
        store.audit(who, Audit.RUNBOOK_RESULT, {"run_id": run_id, "runbook": runbook.name,
                                                "status": status, "rc": rc, "late": late})


def recorded(store: Store, run: RunRow) -> list[tuple[str, dict[str, Any]]]:
    """A run's events as the store has them, ``(kind, data)`` in the order they were
    recorded (so a list read again only grows at its end, as a live stream needs): on
    its incident's timeline, else in ``run_output``. Any process can read them, while
    the run goes on elsewhere (another ``gameday serve`` replica) or after it ended."""
    incident_id = run["incident_id"]
    if not incident_id:
        return store.run_output(run["id"])
    return [(e.kind, e.data) for e in store.events(incident_id)
            if e.data.get("run_id") == run["id"]]


def cancel(store: Store, run_id: int, runbook: str, *, incident: Incident | None,
           who: str, reason: str) -> None:
    """End a run that will never finish here (its server stopped before it started,
    or its process died), on the record."""
    if store.end_run(run_id, "canceled", None):  # once: not if it ended meanwhile
        _canceled(store, run_id, runbook, incident=incident, who=who, reason=reason)


def _canceled(store: Store, run_id: int, runbook: str, *, incident: Incident | None,
              who: str, reason: str) -> None:
    store.audit(who, Audit.RUNBOOK_RESULT, {"run_id": run_id, "runbook": runbook,
                                            "status": "canceled", "rc": None,
                                            "reason": reason})
    if incident:  # a dry run's end is a dry run's, as its start was
        row = store.run(run_id)
        incident.record(runbook_finished(runbook, "canceled", None, error=reason,
                                         run_id=run_id,
                                         check=bool(row and row["check_mode"])), who)


def orphaned(store: Store, *, who: str = "gameday") -> list[RunRow]:
    """End the runs nobody will finish, on the record: cancelled, so no alert joins them
    and they hold no concurrency slot. A run is orphaned when its process is gone
    (this host can tell), when it has no owner (from before owners were kept), or, on
    PostgreSQL, when its heartbeat is older than ``RUN_TTL_S`` by the database's clock
    (its process on another host, a replica's pod, is gone or cut off). Several
    processes may look at once: each run is ended by one of them."""
    found: dict[int, tuple[RunRow, float | None]] = {}
    for run in store.unfinished_runs():
        if not run["owner"] or alive(run["owner"]) is False:
            found[run["id"]] = (run, None)
    for run in store.stale_runs(RUN_TTL_S):
        found.setdefault(run["id"], (run, RUN_TTL_S))
    ended = []
    for run_id in sorted(found):
        run, stale_for = found[run_id]
        if not store.end_orphan_run(run_id, stale_for=stale_for):
            continue  # finished, or ended by someone else, meanwhile
        incident = Incident(store, incident_id) if (incident_id := run["incident_id"]) else None
        if incident and incident.state in TERMINAL_STATES:
            incident = None  # its timeline is closed; the run's row and the audit say it
        _canceled(store, run_id, run["runbook"], incident=incident, who=who,
                  reason=f"its process ({run['owner'] or 'unknown'}) ended before it did")
        ended.append(run)
    return ended


def run(store: Store, runbook: Runbook, params: dict[str, Any], data_dir: Path, *,
        incident: Incident | None, who: str, check: bool = False,
        env: dict[str, str] | None = None, on_event: Callable[[Entry], None] | None = None,
        tick: Callable[[], None] | None = None) -> RunbookResult:
    """Queue, wait for a slot, and execute (game days and the CLI): the runbook's
    ``concurrency`` holds for these runs as for ``gameday serve``'s."""
    run_id = queue(store, runbook, params, incident=incident, who=who, check=check, env=env)
    try:
        wait_for_slot(store, run_id, runbook, tick=tick)
    except BaseException:  # Ctrl-C, SIGTERM while it waited: it never runs
        cancel(store, run_id, runbook.name, incident=incident, who=who,
               reason="stopped while it waited for a free slot")
        raise
    return execute(store, run_id, runbook, params, data_dir, incident=incident, who=who,
                   check=check, env=env, on_event=on_event, tick=tick)


SLOT_POLL_S = 0.1  # how often a run waiting for its runbook's slot asks again


def wait_for_slot(store: Store, run_id: int, runbook: Runbook, *,
                  tick: Callable[[], None] | None = None) -> bool:
    """Wait until the runbook has fewer than its ``concurrency`` runs going in the run's
    world (counted in the store, so across processes and hosts), and take the slot:
    True then; False if the run ended meanwhile (``execute`` then runs nothing). The
    run keeps its heartbeat while it waits; ``tick`` is called as it waits."""
    beat = time.monotonic()
    while True:
        claimed = store.claim_run_slot(run_id, runbook.name, runbook.concurrency)
        if claimed != "busy":
            return claimed == "started"
        if time.monotonic() - beat >= HEARTBEAT_S:
            beat = time.monotonic()
            store.heartbeat_runs(owner(), [run_id])
        if tick:
            tick()
        time.sleep(SLOT_POLL_S)


def environment(incident: Incident | None, env: dict[str, str] | None = None
                ) -> tuple[dict[str, str], Path | None]:
    """Where a runbook started by hand for ``incident`` acts, and the game day's run
    directory: a real alert's, in the team's system its labels choose (``targets``); a
    game day's or a drill's runs go with it, against its own sandbox, or the team's
    cluster context or inventory its target gave it (what its lease keeps).

    A game day going on on another host (its run directory is not here: another
    ``gameday serve`` replica started the drill) is reached from here only on a team's
    own system (a cluster, a service: the project's configuration reaches it from any
    host); a world gameday built on that host (a sandbox, a kwok or kind cluster) is
    refused, never replaced by this host's."""
    env = dict(env or {})
    game_dir = incident.row.get("run_dir") if incident is not None else None
    if not game_dir:
        target = alert_target(incident)  # a real alert's: the team's system it is about
        return {**env, **(target.env if target else {})}, None
    assert incident is not None
    lease = next((row for row in incident.store.running_leases()
                  if row["incident_id"] == incident.id), None)
    here = Path(game_dir).exists()
    if not here and incident.state not in TERMINAL_STATES and not (
            lease and lease["undo"].get("target") in TARGET_KINDS):
        raise GamedayError(f"incident {incident.id}'s game day runs on another host (its "
                           f"run directory {game_dir} is not on this one): run the "
                           "runbook from the gameday serve that started it")
    if (Path(game_dir) / "sandbox").exists():
        env["GAMEDAY_SANDBOX"] = str(Path(game_dir) / "sandbox")
    target_env = (lease["undo"].get("env") or {}) if lease else {}
    env.update({k: str(v) for k, v in target_env.items()
                if k in WORLD_VARS and k != "GAMEDAY_SANDBOX"})
    return env, (Path(game_dir) if here else None)
