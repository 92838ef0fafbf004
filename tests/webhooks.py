"""Alertmanager's side of ``gameday serve`` in tests: its webhook payloads, runbooks that
answer them, and waiting for their runs."""

from __future__ import annotations

from pathlib import Path

import yaml
from serving import eventually

from gameday.store import Store

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def write_runbook(directory: Path, name: str, alerts: list[str], *, auto: bool = True,
                  sleep: float = 0.0, destructive: bool = False,
                  concurrency: int = 1) -> None:
    tasks = [{"name": "say the service", "ansible.builtin.command": {
        "argv": ["echo", "restarting {{ service }}"]}}]
    if sleep:
        tasks.insert(0, {"name": "take a while",
                         "ansible.builtin.command": {"argv": ["sleep", str(sleep)]}})
    (directory / f"{name}.yml").write_text(yaml.safe_dump([{
        "name": name, "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                 "gameday_runbook": {
                     "summary": "test", "alerts": alerts, "auto": auto,
                     "destructive": destructive, "concurrency": concurrency,
                     "parameters": {"service": {"type": "string", "required": True,
                                                "pattern": "^[a-z][a-z0-9-]{0,30}$"}}}},
        "tasks": tasks}]))


def payload(*alerts: dict, status: str = "firing", group: str = "{}:{alertname=\"Boom\"}",
            truncated: int = 0) -> dict:
    return {"version": "4", "groupKey": group, "truncatedAlerts": truncated,
            "status": status, "receiver": "gameday", "groupLabels": {"alertname": "Boom"},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
            "alerts": list(alerts)}


def alert(name: str = "Boom", *, fingerprint: str = "abc123", service: str = "checkout",
          status: str = "firing", starts: str = "2026-11-22T10:00:00Z",
          annotations: dict | None = None) -> dict:
    return {"status": status, "labels": {"alertname": name, "service": service,
                                         "severity": "critical"},
            "annotations": annotations or {"summary": f"{name} on {service}"},
            "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": fingerprint}


def wait_runs_done(store: Store, n: int, timeout: float = 60) -> list[dict]:
    """At least ``n`` runs, every one finished."""
    def done() -> list[dict] | None:
        runs = store.runs()
        return runs if len(runs) >= n and all(r["finished_at"] for r in runs) else None

    return eventually(done, timeout, lambda: f"{n} finished runs: {store.runs()}")
