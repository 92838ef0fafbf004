"""From Alertmanager notifications to incidents and runbook runs, a batch at a time.

Each firing alert instance is claimed once in the store (delivery is at-least-once: a
redelivery finds its key taken and does nothing). It opens an incident, or joins the
open one of its alert group, and is routed to its runbook (``routing``). An automatic
runbook's run is queued, unless a run of the same runbook with the same parameters, in
the same world and of the same kind (``runs``: a real alert never joins a game day's or
a drill's run), is already queued or running, or succeeded within the coalescing
window: then the alert joins that run (``runbook.coalesced``), so a storm of alerts
about one thing starts one remediation. Runbooks that are not automatic get a one-click
link.

A storm arrives as many small requests. ``Batcher`` hands them to one writer thread
that takes whatever has queued up (under load, waiting a moment for as many as the
last batch had) and commits it in one transaction: one fsync for the batch. The batch
is written at once, with as few statements as it takes; should a notification fail,
that is rolled back and the batch written again with each notification in its own
savepoint, so a bad notification rolls back alone. A request is answered only once
its batch is committed, so an accepted alert is in the store; runs start after the
commit.

A batch is one moment: it holds the intake's lock (``Store.serialize``) from its first
notification to its commit, so no other batch changes what it looked up, and on
SQLite nothing else does (the write lock). On PostgreSQL a person or a finishing run
may change an incident or a run meanwhile; the batch then decides as of its start, as
if it had arrived those milliseconds earlier. It therefore looks each thing up once
(``Moment``): the open incident of each alert group, each incident's world, the run
each runbook and parameters join, and keeps them current as it opens incidents and
queues runs. A notification that rolls back makes it forget all of them. Each alert's
runbook and parameters are remembered longer, as long as the runbook files stay the
same (``Routes``: checked once a batch). A new real incident says so when a rehearsal
is at work on its service (``beside_rehearsals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from gameday.core import clock, events
from gameday.core.audit import Audit
from gameday.core.errors import GamedayError, StoreUnavailable
from gameday.core.events import Entry
from gameday.core.policy import severity_from_labels
from gameday.core.settings import AlertTarget
from gameday.core.settings import current as current_settings
from gameday.core.states import IncidentKind, RunStatus
from gameday.incidents.incident import STATE_OF_EVENT, Incident, beside_rehearsals, kind_of_row
from gameday.runbooks.routing import route
from gameday.runbooks.runbook import Dirs, Runbook
from gameday.runs import run as runs
from gameday.runs.alerts import AlertInstance, Notification
from gameday.runs.routes import Routes
from gameday.runs.targets import admit, alert_target
from gameday.store import Store
from gameday.store.base import params_key, utc_now
from gameday.store.incidents import Pending

ACTOR = "alertmanager"
LASTING = 4096  # real incidents whose environment the intake keeps between batches
COALESCE_WINDOW_S = 300.0  # after a run succeeded, the same alerts join it this long


@dataclass(frozen=True)
class Start:
    """A run queued by a batch, to start once the batch is committed."""

    run_id: int
    runbook: Runbook
    params: dict[str, Any]
    incident_id: int | None
    who: str
    check: bool = False
    world: str = runs.DEFAULT_WORLD  # where it acts and what it serves (``runs``)
    kind: str = IncidentKind.INCIDENT
    # checked for this environment (an alert's own target over its incident's): None, its incident's
    env: dict[str, str] | None = None

    @property
    def queue(self) -> tuple[bool, str, str]:
        """Which of the dispatcher's queues it waits in: real runs first, then one
        queue per runbook and world (a busy one holds up nothing else)."""
        return self.kind != IncidentKind.INCIDENT, self.runbook.name, self.world


@dataclass(frozen=True)
class Delivery:
    """A notification and who sent it (the audit log's ``who``)."""

    note: Notification
    who: str


class Moment:
    """One batch: what it looked up, kept for its other notifications (the module's
    docstring says why that holds), and, written all at once (``deferred``), what it
    claims and records.

    Deferred, the batch's alert instances are claimed up front in one statement
    (``claim_all``), and the events that change nothing about their incident and the
    audit entries are kept (``record``, ``audit``) until ``flush``: before anything is
    written straight away (an incident opened or declared, a run queued), and at the
    batch's end. So the timeline and the audit log get the same rows, in the same order,
    as writing each at once would give them."""

    def __init__(self, store: Store, *, deferred: bool = False,
                 lasting: dict[int, tuple[dict[str, str], str]] | None = None) -> None:
        self.store = store
        self.deferred = deferred
        self.open_incidents: dict[str, int | None] = {}  # by group key
        self.environments: dict[int, tuple[dict[str, str], str]] = {}  # env, kind
        # real incidents' environments, kept from batch to batch (``environment``)
        self.lasting = lasting if lasting is not None else {}
        self.worlds: dict[tuple[tuple[str, str], ...], str] = {}
        self.runs: dict[tuple[str, str, str, str], dict[str, Any] | None] = {}
        self.claimed: dict[str, int | None] = {}  # claimed up front, not yet taken
        self.seen: dict[str, int | None] = {}  # instances of earlier batches: their incident
        self._events: dict[int, list[Pending]] = {}  # by incident, in order
        self._audits: list[tuple[str, str, str, dict[str, Any]]] = []
        self.held: dict[tuple[str, str, str | None], str | None] = {}  # the trust policy's word

    def forget(self) -> None:
        """After a notification rolled back: what it wrote, and saw, is gone."""
        for memo in (self.open_incidents, self.environments, self.worlds, self.runs,
                     self.lasting):  # an incident rolled back: its id may come again
            memo.clear()

    def open_incident(self, group_key: str) -> int | None:
        if group_key not in self.open_incidents:
            self.open_incidents[group_key] = self.store.open_incident_for_group(group_key)
        return self.open_incidents[group_key]

    def environment(self, incident: Incident, env: dict[str, str]) -> tuple[dict[str, str],
                                                                            str]:
        """Where ``incident``'s runs act (``runs.environment``) and its kind. A real
        incident's (not a game day's or a drill's: no run directory, no lease) follows
        from the project's targets and its first alert alone, neither of which changes:
        it is kept for later batches too."""
        found = self.lasting.get(incident.id) or self.environments.get(incident.id)
        if found is None:
            row = incident.row
            found = (runs.environment(incident, env)[0], kind_of_row(row))
            if found[1] == IncidentKind.INCIDENT and not row.get("run_dir"):
                if len(self.lasting) >= LASTING:
                    self.lasting.clear()
                self.lasting[incident.id] = found
            else:
                self.environments[incident.id] = found
        where, kind = found
        return dict(where), kind

    def world(self, env: dict[str, str]) -> str:
        key = tuple(sorted(env.items()))
        if key not in self.worlds:
            self.worlds[key] = runs.world(env)
        return self.worlds[key]

    def claim_all(self, notes: Sequence[Notification]) -> None:
        """Claim every firing instance of the batch, each in its group's open incident
        when it has one (the first of a key, should a batch carry it twice)."""
        claims: dict[str, tuple[str, str, str, str, int | None]] = {}
        groups = [a.group_key for n in notes for a in n.alerts
                  if a.group_key not in self.open_incidents]
        self.open_incidents.update(self.store.open_incidents_for_groups(groups))
        for note in notes:
            for alert in note.alerts:
                if alert.status != "resolved" and alert.key not in claims:
                    claims[alert.key] = (alert.key, alert.name, alert.group_key,
                                         alert.fingerprint, self.open_incident(alert.group_key))
        new = self.store.claim_alerts(list(claims.values()))
        self.claimed = {key: claims[key][4] for key in new}
        self.seen = self.store.alert_incidents([key for key in claims if key not in new])

    def claim(self, alert: AlertInstance, incident_id: int | None) -> tuple[bool, int | None]:
        """Whether ``alert`` is a new instance, and the incident its row names."""
        if self.deferred:
            if alert.key not in self.claimed:
                return False, None
            return True, self.claimed.pop(alert.key)
        new = self.store.claim_alert(alert.key, alertname=alert.name,
                                     group_key=alert.group_key,
                                     fingerprint=alert.fingerprint, incident_id=incident_id)
        return new, incident_id

    def incident_of(self, key: str) -> int | None:
        """The incident a known alert instance is in."""
        if key in self.seen:
            return self.seen[key]
        seen = self.store.alert_instance(key)
        return seen["incident_id"] if seen else None

    def record(self, incident: Incident, entry: Entry, actor: str) -> None:
        if self.deferred and entry.kind not in STATE_OF_EVENT:
            self._events.setdefault(incident.id, []).append(Pending(entry.kind, actor,
                                                                    entry.data))
            return
        self.flush()
        incident.record(entry, actor)

    def audit(self, who: str, action: str, data: dict[str, Any]) -> None:
        if self.deferred:
            self._audits.append((utc_now(), who, action, data))
            return
        self.store.audit(who, action, data)

    def flush(self) -> None:
        """Write what was kept: each incident's events, then the audit entries."""
        events, self._events = self._events, {}
        audits, self._audits = self._audits, []
        if events:
            self.store.append_many(events)
        if audits:
            self.store.audit_many(audits)


# report.trust.holder: (runbook, its version now, the alert's target kind) -> why it waits
Hold = Callable[[str, str, str | None], str | None]
Answers = tuple[list[dict[str, Any] | Exception], list[Start]]  # a batch's, and its runs


class Writes(Protocol):
    """What records a batch: ``Intake`` in this process, or one in a process of its
    own (``web.writer``)."""

    def handle(self, deliveries: Sequence[Delivery]) -> Answers: ...

    def close(self) -> None: ...


class Intake:
    """``hold``: the project's trust policy for automatic runs (``report.trust``):
    given a runbook and the kind of target an alert is about, why its run must wait for
    a person, or None to run it by itself. Asked for real alerts only, once per runbook
    and target kind in a batch."""

    def __init__(self, store: Store, *, runbook_dir: Dirs = None,
                 coalesce_window: float = COALESCE_WINDOW_S,
                 env: Mapping[str, str] | None = None, hold: Hold | None = None):
        self.store = store
        self.hold = hold
        self.runbook_dir = runbook_dir
        self.coalesce_window = coalesce_window
        self.env = dict(env or {})  # where an alert's runbook acts (gameday serve's)
        self._local = threading.local()  # the batch each thread is in: its ``Moment``
        self._routes = Routes(runbook_dir)
        self._routes_lock = threading.Lock()
        self._lasting: dict[int, tuple[dict[str, str], str]] = {}
        self._settings: object = None  # the settings ``_lasting`` was worked out with
        self._targets: Sequence[AlertTarget] = ()  # theirs

    def close(self) -> None:
        """Nothing to let go of: the store is the caller's."""

    @property
    def _moment(self) -> Moment:
        moment: Moment | None = getattr(self._local, "moment", None)
        return moment if moment is not None else Moment(self.store)

    def handle(self, deliveries: Sequence[Delivery]) -> tuple[list[dict[str, Any] | Exception],
                                                               list[Start]]:
        """Record a batch of notifications in one transaction: each one's answer (or
        the exception that rolled it back alone), and the runs to start.

        The batch is first written all at once (``Moment``, deferred); should any
        notification fail, that transaction is rolled back and the batch written again
        in another, one notification at a time, each in its own savepoint, so that the
        failing one rolls back alone."""
        with self._routes_lock:
            self._routes.check()
            settings = current_settings()
            if settings is not self._settings:  # other targets, perhaps
                self._settings, self._targets = settings, settings.targets
                self._lasting.clear()
        try:
            try:
                return self._written(self._at_once, deliveries)
            except StoreUnavailable:  # no store to try again on: the batch failed
                raise
            except Exception:  # one of them failed (all of it rolled back): each on its own
                self._lasting.clear()  # what it opened is gone; its ids may come again
            return self._written(self._one_by_one, deliveries)
        finally:
            self._local.moment = None

    def _written(self, write: Callable[[Sequence[Delivery]], Answers],
                 deliveries: Sequence[Delivery]) -> Answers:
        with self.store.transaction():
            # One batch at a time across replicas: which open incident an alert joins,
            # which run it coalesces into, are decided on what the last batch wrote.
            self.store.serialize("intake")
            return write(deliveries)

    def _at_once(self, deliveries: Sequence[Delivery]) -> tuple[list[dict[str, Any] | Exception],
                                                                list[Start]]:
        moment = self._local.moment = Moment(self.store, deferred=True,
                                             lasting=self._lasting)
        moment.claim_all([d.note for d in deliveries])
        answers: list[dict[str, Any] | Exception] = []
        starts: list[Start] = []
        for delivery in deliveries:
            answers.append(self._received(delivery, starts))
        moment.flush()
        return answers, starts

    def _one_by_one(self, deliveries: Sequence[Delivery]
                    ) -> tuple[list[dict[str, Any] | Exception], list[Start]]:
        moment = self._local.moment = Moment(self.store, lasting=self._lasting)
        answers: list[dict[str, Any] | Exception] = []
        starts: list[Start] = []
        for delivery in deliveries:
            queued: list[Start] = []
            try:
                with self.store.transaction():
                    answers.append(self._received(delivery, queued))
            except Exception as exc:  # this notification only; the batch goes on
                moment.forget()
                answers.append(exc)
                continue
            starts += queued
        return answers, starts

    def _received(self, delivery: Delivery, queued: list[Start]) -> dict[str, Any]:
        answer = self._notification(delivery.note, queued)
        self._moment.audit(delivery.who, Audit.ALERTS_RECEIVED, {
            "groupKey": delivery.note.group_key, "status": delivery.note.status,
            "result": answer})
        return answer

    def _notification(self, note: Notification, queued: list[Start]) -> dict[str, Any]:
        results = [self._resolved(alert) if alert.status == "resolved"
                   else self._firing(alert, queued) for alert in note.alerts]
        incident_ids = [r["incident_id"] for r in results if r.get("incident_id")]
        return {"incident_id": incident_ids[0] if incident_ids else None,
                "truncated_alerts": note.truncated, "alerts": results}

    def _firing(self, alert: AlertInstance, queued: list[Start]) -> dict[str, Any]:
        store, moment = self.store, self._moment
        existing = moment.open_incident(alert.group_key)
        new, bound = moment.claim(alert, existing)
        if not new:
            return {"alertname": alert.name, "duplicate": True,
                    "incident_id": moment.incident_of(alert.key)}
        incident = self._joined(alert, existing, bound)
        out: dict[str, Any] = {"alertname": alert.name, "incident_id": incident.id,
                               "duplicate": False}
        try:
            # which of the team's systems (the project's, as the batch read them)
            target = alert_target(incident, alert.labels, targets=self._targets)
        except GamedayError as exc:
            moment.record(incident, events.runbook_rejected(None, str(exc)), "gameday")
            moment.audit(ACTOR, Audit.RUNBOOK_REJECTED, {"runbook": None, "error": str(exc),
                                                        "incident_id": incident.id})
            return out | {"runbook": None, "error": str(exc)}
        if target is not None:
            out["target"] = target.name
            found = route(alert.name, {**alert.labels, **target.labels}, alert.annotations,
                          dirs=self.runbook_dir)
        else:
            with self._routes_lock:
                found = self._routes.route(alert)
        if found.runbook is None:
            if found.error:
                moment.record(incident, events.runbook_rejected(None, found.error), "gameday")
                return out | {"runbook": None, "error": found.error}
            return out | {"runbook": None}
        out["runbook"] = found.runbook.name
        out["link"] = found.link(incident.id)
        if not found.runbook.auto:
            return out
        # values the runbook refuses first: a held run must be one a click could start
        if found.error or found.params is None:
            error = str(found.error)
            moment.record(incident, events.runbook_rejected(found.runbook.name, error), "gameday")
            moment.audit(ACTOR, Audit.RUNBOOK_REJECTED, {"runbook": found.runbook.name,
                                                        "error": error,
                                                        "incident_id": incident.id})
            return out | {"error": error}
        held = self._held(moment, incident, found.runbook, target.kind if target else None)
        if held:
            moment.record(incident, events.runbook_held(found.runbook.name, held, out["link"]),
                          "gameday")
            moment.audit(ACTOR, Audit.RUNBOOK_HELD, {"runbook": found.runbook.name,
                                                     "why": held, "incident_id": incident.id})
            return out | {"held": held}
        try:
            env, kind = moment.environment(incident, self.env)
            if target is not None:  # this alert's, should the incident's first differ
                env.update(target.env)
            admit(target, found.runbook, found.params)
        except GamedayError as exc:  # elsewhere, or outside what the project allows
            moment.record(incident, events.runbook_rejected(found.runbook.name, str(exc)),
                          "gameday")
            moment.audit(ACTOR, Audit.RUNBOOK_REJECTED, {"runbook": found.runbook.name,
                                                        "error": str(exc),
                                                        "incident_id": incident.id})
            return out | {"error": str(exc)}
        start = Start(0, found.runbook, found.params, incident.id, ACTOR,
                      world=moment.world(env), kind=kind, env=env)
        joined = self._joinable(start)
        if joined:
            run_id, because = joined
            moment.record(incident, events.runbook_coalesced(
                found.runbook.name, run_id, alert.name, fingerprint=alert.fingerprint,
                because=because), "gameday")
            return out | {"run_id": run_id, "coalesced": because}
        moment.flush()
        run_id = runs.queue(store, found.runbook, found.params, incident=incident, who=ACTOR,
                            env=env)
        moment.runs[self._run_key(start)] = {"id": run_id, "status": RunStatus.QUEUED}
        queued.append(replace(start, run_id=run_id))
        return out | {"run_id": run_id}

    def _joined(self, alert: AlertInstance, existing: int | None,
                bound: int | None) -> Incident:
        """The incident a new alert instance joins (its group's open one, ``existing``)
        or opens and declares, with the instance's row in it (``bound``: the incident
        the row names so far) and its ``alert.fired`` recorded."""
        store, moment = self.store, self._moment
        if existing:
            incident = Incident(store, existing)
        else:
            moment.flush()
            incident = Incident.open(store, alert.annotations.get("summary") or alert.name,
                                     service=alert.labels.get("service"))
            moment.open_incidents[alert.group_key] = incident.id
        if bound != incident.id:
            store.bind_alert(alert.key, incident.id)
        moment.record(incident, events.alert_fired(alert.name, alert.labels, alert.annotations,
                                                   starts_at=alert.starts_at,
                                                   fingerprint=alert.fingerprint), ACTOR)
        if existing is None:
            moment.flush()
            incident.declare(severity_from_labels(alert.labels), ACTOR, alert=alert.name)
            for where, entry in beside_rehearsals(store, incident, alert.name):
                moment.record(where, entry, ACTOR)
        return incident

    @staticmethod
    def _run_key(start: Start) -> tuple[str, str, str, str]:
        return start.runbook.name, params_key(start.params), start.world, start.kind

    def _held(self, moment: Moment, incident: Incident, runbook: Runbook,
              target_kind: str | None) -> str | None:
        """Why this real alert's automatic run waits for a person (the trust policy), or
        None. Rehearsals are never held: they are how a runbook earns its proof."""
        if self.hold is None or moment.environment(incident, self.env)[1] != \
                IncidentKind.INCIDENT:
            return None
        if (key := (runbook.name, runbook.version, target_kind)) not in moment.held:
            moment.held[key] = self.hold(*key)
        return moment.held[key]

    def _joinable(self, start: Start) -> tuple[int, str] | None:
        """The run this alert joins, and why: one with the same parameters, in the same
        world and of the same kind (a real alert never joins a rehearsal's run), that
        is queued, running, or succeeded within the window."""
        now = clock.now()
        key, moment = self._run_key(start), self._moment
        if key not in moment.runs:
            since = (now - timedelta(seconds=self.coalesce_window)).isoformat(
                timespec="microseconds") if self.coalesce_window > 0 else None
            moment.runs[key] = self.store.joinable_run(
                start.runbook.name, start.params, world=start.world, kind=start.kind,
                succeeded_since=since)
        run = moment.runs[key]
        if run is None:
            return None
        if run["status"] != RunStatus.SUCCESSFUL:
            return run["id"], f"run {run['id']} is {run['status']}"
        ago = (now - datetime.fromisoformat(run["finished_at"])).total_seconds()
        return run["id"], f"run {run['id']} succeeded {ago:.0f}s ago"

    def _resolved(self, alert: AlertInstance) -> dict[str, Any]:
        seen = self.store.alert_instance(alert.key)
        incident_id = seen["incident_id"] if seen else None
        if not incident_id:
            return {"alertname": alert.name, "resolved": True, "incident_id": None}
        self._moment.record(Incident(self.store, incident_id), events.alert_resolved(
            alert.name, alert.labels, fingerprint=alert.fingerprint, ends_at=alert.ends_at),
            ACTOR)
        return {"alertname": alert.name, "resolved": True, "incident_id": incident_id}


# -- group commit ---------------------------------------------------------------------------
Item = TypeVar("Item")
LINGER_S = 0.001  # under load, how long a batch waits for as many as the last one had
Answer = TypeVar("Answer")


class Batcher(Generic[Item, Answer]):
    """One thread that takes everything queued so far (up to ``max_batch``) and hands
    it to ``handle`` at once; each submitter gets its own answer as a future. An answer
    that is an exception is raised to its submitter alone.

    With ``threads=2`` a second batch is gathered and handed over while the first is
    being handled: for a ``handle`` that hands batches on to another process, which
    takes them in the order they came (``web.writer``), so that it never waits for
    this one between batches."""

    _STOP = object()

    def __init__(self, handle: Callable[[list[Item]], Sequence[Answer | Exception]], *,
                 max_batch: int = 128, linger: float = LINGER_S, name: str = "intake",
                 threads: int = 1):
        self._handle = handle
        self._max_batch = max_batch
        self._linger = linger
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=name, daemon=True)
                         for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, item: Item) -> Future[Answer]:
        future: Future[Answer] = Future()
        self._queue.put((item, future))
        return future

    def submit_to(self, item: Item, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Answer]:
        """``submit`` for a caller on ``loop``: its answer is set on the loop, with the
        rest of its batch's in one call (not one wake-up of the loop per answer)."""
        future: asyncio.Future[Answer] = loop.create_future()
        self._queue.put((item, future))
        return future

    def stop(self) -> None:
        """Finish what was submitted, then end the threads."""
        for _ in self._threads:
            self._queue.put(self._STOP)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        expected = 1
        while True:
            first = self._queue.get()
            if first is self._STOP:
                return
            batch, stop = self._gather(first, expected)
            expected = len(batch)
            self._run(batch)
            if stop:
                return

    def _gather(self, first: Any, expected: int) -> tuple[list[Any], bool]:
        """``first`` and whatever else is queued, up to ``max_batch``. Under load (the
        last batch had more than one), it waits up to ``linger`` seconds for as many as
        the last batch had: their requests are being read meanwhile, and each batch
        costs a commit (an fsync) whatever its size."""
        batch = [first]
        deadline = time.monotonic() + (self._linger if expected > 1 else 0.0)
        while len(batch) < self._max_batch:
            wait = deadline - time.monotonic() if len(batch) < expected else 0.0
            try:
                more = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if more is self._STOP:
                return batch, True
            batch.append(more)
        return batch, False

    def _run(self, batch: list[tuple[Item, Any]]) -> None:
        try:
            answers: Sequence[Answer | Exception] = self._handle([item for item, _ in batch])
        except Exception as exc:  # the whole batch failed (say, the commit)
            answers = [exc] * len(batch)
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
        for (_, future), answer in zip(batch, answers, strict=True):
            if isinstance(future, asyncio.Future):
                on_loops.setdefault(future.get_loop(), []).append((future, answer))
            else:
                _settle(future, answer)
        for loop, settled in on_loops.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle_all, settled)


def _settle(future: Future[Any] | asyncio.Future[Any], answer: Any) -> None:
    """Give ``future`` its answer, unless whoever waited for it went away (cancelled)."""
    if future.cancelled():
        return
    with contextlib.suppress(InvalidStateError, asyncio.InvalidStateError):
        if isinstance(answer, Exception):
            future.set_exception(answer)
        else:
            future.set_result(answer)


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, answer in settled:
        _settle(future, answer)
