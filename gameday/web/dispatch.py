"""From an Alertmanager notification to incidents and runbook runs.

Each firing alert instance is claimed once in the store (at-least-once delivery: a
redelivery finds its key taken and starts nothing). It opens an incident, or joins
the open one of its alert group, and finds its runbook through the ``runbook_url``
annotation or the runbooks whose metadata lists its ``alertname``. Automatic runbooks
start at once on a bounded pool (queued beyond it); the others get a one-click link.
Label values reach a playbook only after the runbook's parameter schema accepts them.

A run's events reach its page as ``stream_item``s: live from its ``RunStream`` while
it runs here, else replayed from the incident's timeline (``Dispatcher.items``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gameday import events, runs
from gameday.alerts import AlertInstance, Notification
from gameday.errors import GamedayError
from gameday.events import Audit, Entry, describe
from gameday.incident import Incident
from gameday.policy import severity_from_labels
from gameday.routing import route
from gameday.runbook import Dirs, Runbook
from gameday.store import Store


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
                 data_dir: Path, max_concurrent: int = 2, env: dict[str, str] | None = None):
        self.store = store
        self.runbook_dir = runbook_dir
        self.data_dir = data_dir
        self.env = env or {}
        self.streams: dict[int, RunStream] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent,
                                        thread_name_prefix="runbook")
        self._lock = threading.Lock()

    def items(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        """A run's events so far: live when it runs (or ran) in this process, else as
        recorded on its incident's timeline (a game day's run, or one from before a
        restart). A run without an incident has no recorded events."""
        stream = self.streams.get(run["id"])
        if stream is not None:
            return stream.since(0)
        if not run.get("incident_id"):
            return []
        return [stream_item(e["kind"], e["data"])
                for e in events.in_time_order(self.store.events(run["incident_id"]))
                if e["data"].get("run_id") == run["id"]]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    # -- alerts -----------------------------------------------------------------------
    def handle(self, note: Notification) -> dict[str, Any]:
        results = [self._one(alert) for alert in note.alerts]
        incident_ids = [r["incident_id"] for r in results if r.get("incident_id")]
        return {"incident_id": incident_ids[0] if incident_ids else None,
                "truncated_alerts": note.truncated, "alerts": results}

    def _one(self, alert: AlertInstance) -> dict[str, Any]:
        if alert.status == "resolved":
            return self._resolved(alert)
        with self._lock:  # one incident per group even when notifications race
            if not self.store.claim_alert(alert.key, alertname=alert.name,
                                          group_key=alert.group_key,
                                          fingerprint=alert.fingerprint):
                seen = self.store.alert_instance(alert.key) or {}
                return {"alertname": alert.name, "duplicate": True,
                        "incident_id": seen.get("incident_id")}
            existing = self.store.open_incident_for_group(alert.group_key)
            if existing:
                incident = Incident(self.store, existing)
            else:
                incident = Incident.open(self.store, alert.annotations.get("summary")
                                         or alert.name, service=alert.labels.get("service"))
            self.store.bind_alert(alert.key, incident.id)
        incident.record(events.alert_fired(alert.name, alert.labels, alert.annotations,
                                           starts_at=alert.starts_at,
                                           fingerprint=alert.fingerprint), "alertmanager")
        if incident.state == "pending":
            incident.declare(severity_from_labels(alert.labels), "alertmanager",
                             alert=alert.name)
        out: dict[str, Any] = {"alertname": alert.name, "incident_id": incident.id,
                               "duplicate": False}
        found = route(alert.name, alert.labels, alert.annotations, dirs=self.runbook_dir)
        if found.runbook is None:
            if found.error:
                incident.record(events.runbook_rejected(None, found.error), "gameday")
                return out | {"runbook": None, "error": found.error}
            return out | {"runbook": None}
        out["runbook"] = found.runbook.name
        out["link"] = found.link(incident.id)
        if not found.runbook.auto:
            return out
        if found.error or found.params is None:
            error = str(found.error)
            incident.record(events.runbook_rejected(found.runbook.name, error), "gameday")
            self.store.audit("alertmanager", Audit.RUNBOOK_REJECTED,
                             {"runbook": found.runbook.name, "error": error,
                              "incident_id": incident.id})
            return out | {"error": error}
        out["run_id"] = self.start(found.runbook, found.params, incident.id, "alertmanager")
        return out

    def _resolved(self, alert: AlertInstance) -> dict[str, Any]:
        seen = self.store.alert_instance(alert.key)
        if not seen or not seen.get("incident_id"):
            return {"alertname": alert.name, "resolved": True, "incident_id": None}
        Incident(self.store, seen["incident_id"]).record(
            events.alert_resolved(alert.name, alert.labels, fingerprint=alert.fingerprint,
                                  ends_at=alert.ends_at), "alertmanager")
        return {"alertname": alert.name, "resolved": True, "incident_id": seen["incident_id"]}

    # -- runs -------------------------------------------------------------------------
    def start(self, runbook: Runbook, params: dict[str, Any], incident_id: int | None,
              who: str, check: bool = False) -> int:
        incident = Incident(self.store, incident_id) if incident_id else None
        run_id = runs.queue(self.store, runbook, params, incident=incident, who=who,
                            check=check)
        self.streams[run_id] = RunStream()
        self._pool.submit(self._execute, run_id, runbook, params, incident, who, check)
        return run_id

    def _execute(self, run_id: int, runbook: Runbook, params: dict[str, Any],
                 incident: Incident | None, who: str, check: bool) -> None:
        stream = self.streams[run_id]
        try:
            runs.execute(self.store, run_id, runbook, params,
                         self.data_dir / f"run-{run_id:05d}-{runbook.name}",
                         incident=incident, who=who, check=check, env=self.env,
                         on_event=stream.add)
        except GamedayError:
            pass  # recorded: runbook.finished says why, the run's row says error
        finally:
            stream.done.set()
