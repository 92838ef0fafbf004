"""What ``gameday serve`` runs: alerts in (``intake``, a batch at a time), runbook
runs out, on a bounded pool.

Notifications go to the intake's writer thread (``Batcher``), which records each batch
itself or hands it to a process of its own (``web.writer``); a request is answered
once its batch is committed. Runs start after that: at most ``max_concurrent`` at
once in all, and at most the runbook's own ``concurrency`` of each runbook; the rest
wait their turn in order. On shutdown the running ones finish and the waiting ones
are cancelled, on the record.

A run's events reach its page as ``stream_item``s: live from its ``RunStream`` while
it runs here, else replayed from the incident's timeline (``Dispatcher.items``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict, defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gameday.core.audit import Audit
from gameday.core.errors import GamedayError
from gameday.core.events import Entry
from gameday.core.policy import may
from gameday.core.sentences import describe
from gameday.core.states import RunStatus
from gameday.incidents.incident import Incident
from gameday.people.auth import NOT_PEOPLE, Forbidden
from gameday.runbooks.runbook import Dirs, Runbook, find, validate_params
from gameday.runs import run as runs
from gameday.runs.intake import (
    COALESCE_WINDOW_S,
    LINGER_S,
    Batcher,
    Delivery,
    Hold,
    Intake,
    Start,
    Writes,
)
from gameday.runs.targets import admit_run
from gameday.store import Store
from gameday.store.leases import owner
from gameday.store.rows import RunRow

KEEP_STREAMS = 256  # finished runs whose live stream is kept; older ones replay from the store


def stream_item(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """One event of a run as the run page and ``/runs/ID/events`` carry it: its kind,
    its payload, and the line a person reads (``text``), as the terminal shows it."""
    return {"kind": str(kind), **data, "text": describe(kind, "", data)}


class RunStream:
    """A run's events as they happen, for live pages (server-sent events)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def add(self, entry: Entry) -> None:
        with self._lock:
            self.items.append(stream_item(entry.kind, entry.data))

    def since(self, index: int) -> list[dict[str, Any]]:
        with self._lock:
            return self.items[index:]


class Dispatcher:
    def __init__(self, store: Store, *, runbook_dir: Dirs = None,
                 data_dir: Path, max_concurrent: int = 2, env: dict[str, str] | None = None,
                 coalesce_window: float = COALESCE_WINDOW_S, hold: Hold | None = None,
                 writer: Writes | None = None):
        self.store = store
        self.runbook_dir = runbook_dir
        self.data_dir = data_dir
        self.env = env or {}
        self.streams: OrderedDict[int, RunStream] = OrderedDict()
        # what records alerts: given (``web.writer``: another process), else a thread here
        self.intake: Writes = writer or Intake(store, runbook_dir=runbook_dir,
                                               coalesce_window=coalesce_window, env=self.env,
                                               hold=hold)
        self._elsewhere = writer is not None
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent,
                                        thread_name_prefix="runbook")
        self._workers = max_concurrent
        self._lock = threading.Lock()
        self._busy = 0  # workers running a playbook, or reserved for one
        self._held: set[int] = set()  # the runs waiting or running here: their heartbeat
        # waiting runs, a queue per (rehearsal?, runbook, world): real ones tried first
        self._waiting: defaultdict[tuple[bool, str, str], deque[Start]] = defaultdict(deque)
        self._closing = False
        # another process writes: the next batch is handed over while it takes one
        self._batcher: Batcher[Delivery, dict[str, Any]] = Batcher(
            self._handle, threads=2 if writer else 1, linger=0.0 if writer else LINGER_S)

    def items(self, run: RunRow) -> list[dict[str, Any]]:
        """A run's events so far: live when it runs (or ran) in this process, else as
        the store has them (``runs.recorded``: a game day's run, one on another
        replica, one from before a restart)."""
        stream = self.streams.get(run["id"])
        if stream is not None:
            return stream.since(0)
        return [stream_item(kind, data) for kind, data in runs.recorded(self.store, run)]

    def shutdown(self) -> None:
        """Stop taking alerts, let running playbooks finish, cancel the waiting runs."""
        self._batcher.stop()
        self.intake.close()
        with self._lock:
            self._closing = True
            waiting = [start for queue in self._waiting.values() for start in queue]
            self._waiting.clear()
        for start in waiting:
            self._cancel(start)
        self._pool.shutdown(wait=True)

    # -- alerts -----------------------------------------------------------------------
    def receive(self, note: Any, who: str) -> Future[dict[str, Any]]:
        """Hand a notification to the intake; the future is its answer, set once it is
        committed (an exception if it was refused)."""
        return self._batcher.submit(Delivery(note, who))

    def answer(self, note: Any, who: str) -> asyncio.Future[dict[str, Any]]:
        """``receive`` for the event loop this is called on: the answer is set there."""
        return self._batcher.submit_to(Delivery(note, who), asyncio.get_running_loop())

    def _handle(self, deliveries: list[Delivery]) -> list[dict[str, Any] | Exception]:
        answers, starts = self.intake.handle(deliveries)
        if starts and self._elsewhere:  # queued by the writer process: ours to run now
            self.store.adopt_runs(owner(), [start.run_id for start in starts])
        for start in starts:
            self._launch(start)
        return answers

    # -- runs -------------------------------------------------------------------------
    def start(self, runbook: Runbook, params: dict[str, Any], incident_id: int | None,
              who: str, check: bool = False, approve_within: float | None = None) -> int:
        """A run asked for by a person (a one-click page): queued on the record, then
        started when its runbook and the pool have room. With ``approve_within`` (four
        eyes) it waits that many seconds for a second person's ``approve`` instead."""
        incident = Incident(self.store, incident_id) if incident_id else None
        env, _ = runs.environment(incident, self.env)  # a game day on another host: refused
        if approve_within is not None:
            return runs.ask_approval(self.store, runbook, params, incident=incident, who=who,
                                     check=check, within_s=approve_within, env=env)
        run_id = runs.queue(self.store, runbook, params, incident=incident, who=who,
                            check=check, env=env)
        self._launch(Start(run_id, runbook, params, incident_id, who, check,
                           world=runs.world(env), kind=runs.kind(incident), env=env))
        return run_id

    def approve(self, run_id: int, who: str) -> None:
        """A second person approves a waiting run: it starts. Refused to the person who
        asked for it, once its time ran out (it is then ``expired`` for good), once its
        asker may no longer ask for it (revoked, or their role changed since), once the
        runbook changed since it was asked for (its ``version``: the approver approves
        what was asked for), and when the runbook as it reads now refuses its values or
        where it would act (it is read again: the run is queued with what is on disk
        now)."""
        self.expire_approvals()
        run = self.store.run(run_id)
        if run["status"] != RunStatus.AWAITING_APPROVAL:
            raise GamedayError(f"run {run_id} is {run['status']}: there is nothing to approve")
        if run["started_by"] == who:
            raise Forbidden(f"{who} asked for run {run_id}: a second person approves it")
        book = find(run["runbook"], self.runbook_dir)  # before anything is decided
        self._as_asked(run, book, who)
        self._still_asked(run, book, who)
        incident = Incident(self.store, run["incident_id"]) if run["incident_id"] else None
        env, _ = runs.environment(incident, self.env)
        params = validate_params(book, run["params"])
        admit_run(incident, book, params, env)
        if not self.store.approve_run(run_id, who, owner()):
            self.expire_approvals()
            raise GamedayError(f"run {run_id} is {self.store.run(run_id)['status']}: it can "
                               "no longer be approved")
        runs.approved(self.store, run, who, incident=incident)
        self._launch(Start(run_id, book, params, run["incident_id"], run["started_by"],
                           bool(run["check_mode"]), world=run["world"] or runs.DEFAULT_WORLD,
                           kind=run["kind"] or "incident", env=env))

    def _as_asked(self, run: RunRow, book: Runbook, who: str) -> None:
        """Whether the runbook reads as it did when the run was asked for: one changed
        since (``Runbook.version``) is not approved (``who`` tried: the audit log says
        so), and someone asks again for it as it is now."""
        why = runs.not_as_asked(run, book)
        if why is None:
            return
        self.store.audit(who, Audit.FORBIDDEN, {
            "need": "approve", "run_id": run["id"], "runbook": book.name,
            "requested_by": run["started_by"], "asked_version": run.get("runbook_version"),
            "version": book.version, "why": why})
        raise GamedayError(f"{why}: ask again")

    def _still_asked(self, run: RunRow, book: Runbook, who: str) -> None:
        """Whether the person who asked for a waiting run may still ask for it: a revoked
        person's request, or one a role they no longer hold allowed, is not approved
        (``who`` tried: the audit log says so)."""
        harmless = book.changes_nothing(bool(run["check_mode"]))
        need = "run_destructive" if book.destructive and not harmless else "run"
        asker = self.store.user(run["started_by"])
        if asker is not None and may(str(asker["role"]), need):
            return
        now = "no longer a gameday user" if asker is None else f"a {asker['role']} now"
        self.store.audit(who, Audit.FORBIDDEN, {"need": "approve", "run_id": run["id"],
                                                "requested_by": run["started_by"],
                                                "why": f"the requester is {now}"})
        raise Forbidden(f"{run['started_by']} asked for run {run['id']} and is {now}: someone "
                        "who may ask for it must ask again")

    def expire_approvals(self) -> None:
        """Runs nobody approved in time: expired on the record, never to run."""
        for run in self.store.expire_approvals():
            incident = Incident(self.store, run["incident_id"]) if run["incident_id"] else None
            runs.expired(self.store, run, incident=incident)

    def _launch(self, start: Start) -> None:
        with self._lock:
            self.streams[start.run_id] = RunStream()
            closing = self._closing
            if not closing:
                self._waiting[start.queue].append(start)
                self._held.add(start.run_id)
        if closing:
            self._cancel(start)
            return
        with contextlib.suppress(Exception):  # queued on the record: the sweep retries
            self.pump()

    def pump(self) -> None:
        """Start waiting runs while a worker here is free and their runbook has a slot:
        ``runbook.concurrency`` counts runs in the store, so it holds across replicas
        (a run waiting here starts when one ends anywhere: the sweep calls this). The
        store is asked outside the lock, with a worker reserved meanwhile."""
        tried: set[tuple[bool, str, str]] = set()
        while True:
            with self._lock:
                if self._closing or self._busy >= self._workers:
                    return
                key = min((k for k, q in self._waiting.items() if q and k not in tried),
                          default=None, key=lambda k: k[0])  # real ones first
                if key is None:
                    return
                start = self._waiting[key].popleft()
                self._busy += 1
            claimed, stop = "busy", None  # an error leaves it waiting, and is raised
            try:
                claimed = self.store.claim_run_slot(start.run_id, start.runbook.name,
                                                    start.runbook.concurrency)
            finally:
                with self._lock:
                    if claimed == "started" and not self._closing:
                        self._pool.submit(self._execute, start)
                    else:
                        self._busy -= 1
                        if claimed == "busy" and not self._closing:
                            self._waiting[key].appendleft(start)
                            tried.add(key)
                        elif claimed in ("started", "busy"):  # shutting down: never runs
                            stop = start
                        else:  # gone: cancelled or ended elsewhere meanwhile
                            self._held.discard(start.run_id)
                    if not self._waiting.get(key):
                        self._waiting.pop(key, None)
            if stop is not None:
                self._cancel(stop)
            elif claimed == "gone":
                stream = self.streams.get(start.run_id)
                if stream:
                    stream.done.set()

    def sweep(self) -> None:
        """Every few seconds (``create_app``'s lifespan): approvals nobody gave in time
        end; the runs this process holds say so (their heartbeat); runs whose process is
        gone, here or on another replica, end; waiting runs get the slots they freed."""
        self.expire_approvals()
        with self._lock:
            held = list(self._held)
        self.store.heartbeat_runs(owner(), held)
        runs.orphaned(self.store)
        self.pump()

    def _execute(self, start: Start) -> None:
        stream = self.streams[start.run_id]
        incident = Incident(self.store, start.incident_id) if start.incident_id else None
        try:
            gone = self._asker_gone(start)
            if gone:  # it waited for a slot while its asker lost the right to ask
                runs.cancel(self.store, start.run_id, start.runbook.name, incident=incident,
                            who="gameday", reason=f"{gone}: someone who may ask for it "
                                                  "must ask again")
                return
            try:  # where it was checked to act, else its incident's (a drill's sandbox)
                env = start.env if start.env is not None else \
                    runs.environment(incident, self.env)[0]
            except GamedayError as exc:
                runs.cancel(self.store, start.run_id, start.runbook.name, incident=incident,
                            who=start.who, reason=str(exc))
                return
            runs.execute(self.store, start.run_id, start.runbook, start.params,
                         self.data_dir / f"run-{start.run_id:05d}-{start.runbook.name}",
                         incident=incident, who=start.who, check=start.check, env=env,
                         on_event=stream.add)
        except GamedayError:
            pass  # recorded: runbook.finished says why, the run's row says error
        finally:
            stream.done.set()
            with self._lock:
                self._busy -= 1
                self._held.discard(start.run_id)
                self._forget_old_streams()
            with contextlib.suppress(Exception):  # the sweep tries again
                self.pump()  # its slot and this worker are free

    def _asker_gone(self, start: Start) -> str | None:
        """Why the person who asked for a run that waited for its slot may no longer
        have it run: revoked since, or holding a role that no longer lets them ask for
        it. None for anyone else (automation, the shared token)."""
        asker = None if start.who in NOT_PEOPLE else self.store.person(start.who)
        if asker is None:
            return None
        if asker["revoked_at"]:
            return f"{start.who} asked for run {start.run_id} and was revoked since"
        harmless = start.runbook.changes_nothing(start.check)
        need = "run_destructive" if start.runbook.destructive and not harmless else "run"
        if may(str(asker["role"]), need):
            return None
        return f"{start.who} asked for run {start.run_id} and is a {asker['role']} now"

    def _cancel(self, start: Start) -> None:
        with self._lock:
            self._held.discard(start.run_id)
        incident = Incident(self.store, start.incident_id) if start.incident_id else None
        runs.cancel(self.store, start.run_id, start.runbook.name, incident=incident,
                    who=start.who,
                    reason="gameday serve stopped before it started")
        stream = self.streams.get(start.run_id)
        if stream:
            stream.done.set()

    def _forget_old_streams(self) -> None:
        finished = [run_id for run_id, stream in self.streams.items() if stream.done.is_set()]
        for run_id in finished[:max(0, len(finished) - KEEP_STREAMS)]:
            del self.streams[run_id]
