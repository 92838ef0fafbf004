"""From an Alertmanager notification to incidents and runbook runs.

Each firing alert instance is claimed once in the store (at-least-once delivery: a
redelivery finds its key taken and starts nothing). It opens an incident, or joins
the open one of its alert group, and finds its runbook through the ``runbook_url``
annotation or the runbooks whose metadata lists its ``alertname``. Automatic runbooks
start at once on a bounded pool (queued beyond it); the others get a one-click link.
Label values reach a playbook only after the runbook's parameter schema accepts them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gameday.errors import GamedayError, ValidationError
from gameday.incident import SEVERITIES, Incident
from gameday.response import linked_runbook
from gameday.runbook import Runbook, find, run_runbook, validate_params
from gameday.store import Store, utc_now
from gameday.web.alerts import AlertInstance, Notification

LABEL_SEVERITY = {"critical": "SEV-2", "page": "SEV-2", "warning": "SEV-3", "info": "SEV-4"}


def severity_of(labels: dict[str, str]) -> str:
    value = labels.get("severity", "")
    if value.upper() in SEVERITIES:
        return value.upper()
    return LABEL_SEVERITY.get(value.lower(), "SEV-3")


class RunStream:
    """A run's events as they happen, for live pages (server-sent events)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def add(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.items.append({"kind": kind, **data})

    def since(self, index: int) -> list[dict[str, Any]]:
        with self._lock:
            return self.items[index:]


class Dispatcher:
    def __init__(self, store: Store, *, runbook_dir: Path | None = None,
                 data_dir: Path, max_concurrent: int = 2, env: dict[str, str] | None = None):
        self.store = store
        self.runbook_dir = runbook_dir
        self.data_dir = data_dir
        self.env = env or {}
        self.streams: dict[int, RunStream] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent,
                                        thread_name_prefix="runbook")
        self._lock = threading.Lock()

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
        incident.record("alert.fired", "alertmanager", {
            "alertname": alert.name, "labels": alert.labels, "annotations": alert.annotations,
            "startsAt": alert.starts_at, "fingerprint": alert.fingerprint})
        if incident.state == "pending":
            incident.declare(severity_of(alert.labels), "alertmanager", alert=alert.name)
        out: dict[str, Any] = {"alertname": alert.name, "incident_id": incident.id,
                               "duplicate": False}
        try:
            runbook, query = linked_runbook(alert.name, alert.annotations, self.runbook_dir)
        except GamedayError as exc:
            incident.record("runbook.rejected", "gameday", {"error": str(exc)})
            return out | {"runbook": None, "error": str(exc)}
        if runbook is None:
            return out | {"runbook": None}
        wanted = {p.name for p in runbook.parameters}
        raw = runbook.from_labels(alert.labels) | \
              {k: v for k, v in query.items() if k in wanted}
        out["runbook"] = runbook.name
        out["link"] = link(runbook.name, raw, incident.id)
        if not runbook.auto:
            return out
        try:
            params = validate_params(runbook, raw)
        except ValidationError as exc:
            incident.record("runbook.rejected", "gameday",
                            {"runbook": runbook.name, "error": str(exc)})
            self.store.audit("alertmanager", "runbook.rejected",
                             {"runbook": runbook.name, "error": str(exc),
                              "incident_id": incident.id})
            return out | {"error": str(exc)}
        out["run_id"] = self.start(runbook, params, incident.id, "alertmanager")
        return out

    def _resolved(self, alert: AlertInstance) -> dict[str, Any]:
        seen = self.store.alert_instance(alert.key)
        if not seen or not seen.get("incident_id"):
            return {"alertname": alert.name, "resolved": True, "incident_id": None}
        Incident(self.store, seen["incident_id"]).record(
            "alert.resolved", "alertmanager", {"alertname": alert.name,
                                               "fingerprint": alert.fingerprint,
                                               "endsAt": alert.ends_at})
        return {"alertname": alert.name, "resolved": True, "incident_id": seen["incident_id"]}

    # -- runs -------------------------------------------------------------------------
    def start(self, runbook: Runbook, params: dict[str, Any], incident_id: int | None,
              who: str, check: bool = False) -> int:
        run_id = self.store.create_run(incident_id, runbook.name, params, who, check)
        self.streams[run_id] = RunStream()
        self.store.audit(who, "runbook.run", {"run_id": run_id, "runbook": runbook.name,
                                              "params": params, "check": check,
                                              "incident_id": incident_id})
        if incident_id:
            Incident(self.store, incident_id).record(
                "runbook.queued", who, {"runbook": runbook.name, "run_id": run_id})
        self._pool.submit(self._execute, run_id, runbook.name, params, incident_id, who, check)
        return run_id

    def _execute(self, run_id: int, name: str, params: dict[str, Any],
                 incident_id: int | None, who: str, check: bool) -> None:
        stream = self.streams[run_id]
        incident = Incident(self.store, incident_id) if incident_id else None

        def on_event(kind: str, data: dict[str, Any]) -> None:
            stream.add(kind, data)
            if incident:
                incident.record(kind, who, {**data, "run_id": run_id})

        self.store.update_run(run_id, status="running", started_at=utc_now())
        status, rc = "error", None
        try:
            result = run_runbook(find(name, self.runbook_dir), params,
                                 self.data_dir / f"run-{run_id:05d}-{name}", check=check,
                                 env=self.env, on_event=on_event)
            status, rc = result.status, result.rc
        except GamedayError as exc:
            stream.add("runbook.error", {"error": str(exc)})
        finally:
            self.store.update_run(run_id, status=status, rc=rc, finished_at=utc_now())
            self.store.audit(who, "runbook.result", {"run_id": run_id, "runbook": name,
                                                     "status": status, "rc": rc})
            stream.done.set()


def link(runbook: str, params: dict[str, str], incident_id: int | None) -> str:
    from urllib.parse import urlencode

    query = dict(params) | ({"incident": str(incident_id)} if incident_id else {})
    return f"/runbooks/{runbook}" + (f"?{urlencode(query)}" if query else "")
