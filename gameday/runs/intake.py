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
that takes whatever has queued up and commits it in one transaction, each
notification in its own savepoint: one fsync for the batch, and a bad notification
rolls back alone. A request is answered only once its batch is committed, so an
accepted alert is in the store; runs start after the commit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from gameday.core import clock, events
from gameday.core.audit import Audit
from gameday.core.errors import GamedayError
from gameday.core.policy import severity_from_labels
from gameday.core.states import IncidentKind, RunStatus
from gameday.incidents.incident import Incident
from gameday.runbooks.routing import route
from gameday.runbooks.runbook import Dirs, Runbook
from gameday.runs import run as runs
from gameday.runs.alerts import AlertInstance, Notification
from gameday.runs.targets import admit, alert_target
from gameday.store import Store

ACTOR = "alertmanager"
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
    # The environment it was checked for (``runs.environment``, and an alert's own
    # target over its incident's first): it runs in that one. None: its incident's.
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


Hold = Callable[[str, str | None], str | None]


class Intake:
    """``hold``: the project's trust policy for automatic runs (``report.trust``):
    given a runbook and the kind of target an alert is about, why its run must wait for
    a person, or None to run it by itself. Asked only for real alerts, once per
    runbook and target kind in a batch."""

    def __init__(self, store: Store, *, runbook_dir: Dirs = None,
                 coalesce_window: float = COALESCE_WINDOW_S,
                 env: Mapping[str, str] | None = None, hold: Hold | None = None):
        self.store = store
        self.runbook_dir = runbook_dir
        self.coalesce_window = coalesce_window
        self.env = dict(env or {})  # where an alert's runbook acts (gameday serve's)
        self.hold = hold
        self._held: dict[tuple[str, str | None], str | None] = {}  # this batch's answers

    def handle(self, deliveries: Sequence[Delivery]) -> tuple[list[dict[str, Any] | Exception],
                                                               list[Start]]:
        """Record a batch of notifications in one transaction: each one's answer (or
        the exception that rolled it back alone), and the runs to start."""
        answers: list[dict[str, Any] | Exception] = []
        starts: list[Start] = []
        self._held.clear()
        with self.store.transaction():
            # One batch at a time across replicas: which open incident an alert joins,
            # which run it coalesces into, are decided on what the last batch wrote.
            self.store.serialize("intake")
            for delivery in deliveries:
                queued: list[Start] = []
                try:
                    with self.store.transaction():
                        answer = self._notification(delivery.note, queued)
                        self.store.audit(delivery.who, Audit.ALERTS_RECEIVED, {
                            "groupKey": delivery.note.group_key,
                            "status": delivery.note.status, "result": answer})
                except Exception as exc:  # this notification only; the batch goes on
                    answers.append(exc)
                    continue
                answers.append(answer)
                starts += queued
        return answers, starts

    def _notification(self, note: Notification, queued: list[Start]) -> dict[str, Any]:
        results = [self._resolved(alert) if alert.status == "resolved"
                   else self._firing(alert, queued) for alert in note.alerts]
        incident_ids = [r["incident_id"] for r in results if r.get("incident_id")]
        return {"incident_id": incident_ids[0] if incident_ids else None,
                "truncated_alerts": note.truncated, "alerts": results}

    def _firing(self, alert: AlertInstance, queued: list[Start]) -> dict[str, Any]:
        store = self.store
        if not store.claim_alert(alert.key, alertname=alert.name, group_key=alert.group_key,
                                 fingerprint=alert.fingerprint):
            seen = store.alert_instance(alert.key)
            return {"alertname": alert.name, "duplicate": True,
                    "incident_id": seen["incident_id"] if seen else None}
        existing = store.open_incident_for_group(alert.group_key)
        if existing:
            incident = Incident(store, existing)
        else:
            incident = Incident.open(store, alert.annotations.get("summary") or alert.name,
                                     service=alert.labels.get("service"))
        store.bind_alert(alert.key, incident.id)
        incident.record(events.alert_fired(alert.name, alert.labels, alert.annotations,
                                           starts_at=alert.starts_at,
                                           fingerprint=alert.fingerprint), ACTOR)
        if existing is None:
            incident.declare(severity_from_labels(alert.labels), ACTOR, alert=alert.name)
        out: dict[str, Any] = {"alertname": alert.name, "incident_id": incident.id,
                               "duplicate": False}
        try:
            target = alert_target(incident, alert.labels)  # which of the team's systems
        except GamedayError as exc:
            incident.record(events.runbook_rejected(None, str(exc)), "gameday")
            store.audit(ACTOR, Audit.RUNBOOK_REJECTED, {"runbook": None, "error": str(exc),
                                                        "incident_id": incident.id})
            return out | {"runbook": None, "error": str(exc)}
        labels = {**alert.labels, **(target.labels if target else {})}
        if target is not None:
            out["target"] = target.name
        found = route(alert.name, labels, alert.annotations, dirs=self.runbook_dir)
        if found.runbook is None:
            if found.error:
                incident.record(events.runbook_rejected(None, found.error), "gameday")
                return out | {"runbook": None, "error": found.error}
            return out | {"runbook": None}
        out["runbook"] = found.runbook.name
        out["link"] = found.link(incident.id)
        if not found.runbook.auto:
            return out
        held = self._hold(incident, found.runbook.name, target.kind if target else None)
        if held:
            incident.record(events.runbook_held(found.runbook.name, held, out["link"]),
                            "gameday")
            store.audit(ACTOR, Audit.RUNBOOK_HELD, {"runbook": found.runbook.name,
                                                    "why": held, "incident_id": incident.id})
            return out | {"held": held}
        if found.error or found.params is None:
            error = str(found.error)
            incident.record(events.runbook_rejected(found.runbook.name, error), "gameday")
            store.audit(ACTOR, Audit.RUNBOOK_REJECTED, {"runbook": found.runbook.name,
                                                        "error": error,
                                                        "incident_id": incident.id})
            return out | {"error": error}
        try:
            env, _ = runs.environment(incident, self.env)
            if target is not None:  # this alert's, should the incident's first differ
                env.update(target.env)
            admit(target, found.runbook, found.params)
        except GamedayError as exc:  # elsewhere, or outside what the project allows
            incident.record(events.runbook_rejected(found.runbook.name, str(exc)), "gameday")
            store.audit(ACTOR, Audit.RUNBOOK_REJECTED, {"runbook": found.runbook.name,
                                                        "error": str(exc),
                                                        "incident_id": incident.id})
            return out | {"error": str(exc)}
        start = Start(0, found.runbook, found.params, incident.id, ACTOR,
                      world=runs.world(env), kind=runs.kind(incident), env=env)
        joined = self._joinable(start)
        if joined:
            run_id, because = joined
            incident.record(events.runbook_coalesced(found.runbook.name, run_id, alert.name,
                                                     fingerprint=alert.fingerprint,
                                                     because=because), "gameday")
            return out | {"run_id": run_id, "coalesced": because}
        run_id = runs.queue(store, found.runbook, found.params, incident=incident, who=ACTOR,
                            env=env)
        queued.append(replace(start, run_id=run_id))
        return out | {"run_id": run_id}

    def _hold(self, incident: Incident, runbook: str, target_kind: str | None) -> str | None:
        """Why this real alert's automatic run waits for a person (the trust policy),
        or None. Rehearsals are never held: they are how a runbook earns its proof."""
        if self.hold is None or runs.kind(incident) != IncidentKind.INCIDENT:
            return None
        key = (runbook, target_kind)
        if key not in self._held:
            self._held[key] = self.hold(runbook, target_kind)
        return self._held[key]

    def _joinable(self, start: Start) -> tuple[int, str] | None:
        """The run this alert joins, and why: one with the same parameters, in the same
        world and of the same kind (a real alert never joins a rehearsal's run), that
        is queued, running, or succeeded within the window."""
        now = clock.now()
        since = (now - timedelta(seconds=self.coalesce_window)).isoformat(
            timespec="microseconds") if self.coalesce_window > 0 else None
        run = self.store.joinable_run(start.runbook.name, start.params, world=start.world,
                                      kind=start.kind, succeeded_since=since)
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
        Incident(self.store, incident_id).record(
            events.alert_resolved(alert.name, alert.labels, fingerprint=alert.fingerprint,
                                  ends_at=alert.ends_at), ACTOR)
        return {"alertname": alert.name, "resolved": True, "incident_id": incident_id}


# -- group commit ---------------------------------------------------------------------------
Item = TypeVar("Item")
Answer = TypeVar("Answer")


class Batcher(Generic[Item, Answer]):
    """One thread that takes everything queued so far (up to ``max_batch``) and hands
    it to ``handle`` at once; each submitter gets its own answer as a future. An answer
    that is an exception is raised to its submitter alone."""

    _STOP = object()

    def __init__(self, handle: Callable[[list[Item]], Sequence[Answer | Exception]], *,
                 max_batch: int = 128, name: str = "intake"):
        self._handle = handle
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> Future[Answer]:
        future: Future[Answer] = Future()
        self._queue.put((item, future))
        return future

    def stop(self) -> None:
        """Finish what was submitted, then end the thread."""
        self._queue.put(self._STOP)
        self._thread.join()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is self._STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is self._STOP:
                    stop = True
                    break
                batch.append(more)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[Item, Future[Answer]]]) -> None:
        try:
            answers = self._handle([item for item, _ in batch])
        except Exception as exc:  # the whole batch failed (say, the commit)
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)
