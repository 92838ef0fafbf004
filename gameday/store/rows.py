"""What the store's reads return: one typed row per table, its JSON columns decoded.

Rows stay plain dicts at run time (what the pages, the JSON API and the templates
read); these say which keys each has and what they hold, so mypy checks every reader.
A column the database may leave empty is ``X | None``.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class IncidentRow(TypedDict):
    id: int
    title: str
    service: str | None
    scenario: str | None
    run_dir: str | None
    state: str                   # states.IncidentState
    severity: str | None
    created_at: str
    updated_at: str
    kind: str | None             # states.IncidentKind (None: a real incident, before 0004)
    last_seq: int
    clock_boot: str | None
    clock_mono_ns: int | None
    clock_epoch_ns: int | None


class RunRow(TypedDict):
    id: int
    incident_id: int | None
    runbook: str
    params_json: str
    params: NotRequired[dict[str, Any]]   # decoded by the reads that return it
    check_mode: int
    started_by: str
    status: str                  # states.RunStatus
    rc: int | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    owner: str | None
    approve_by: str | None
    approved_by: str | None
    heartbeat: float | None
    world: str | None
    kind: str | None
    late_status: str | None
    late_rc: int | None
    late_at: str | None
    runbook_version: str | None  # Runbook.version when it was asked for (None: before 0010)


class AuditRow(TypedDict):
    id: int
    at_utc: str
    who: str
    action: str
    data_json: str
    data: dict[str, Any]


class DrillRow(TypedDict):
    id: int
    scenario: str
    game_master: str
    difficulty: str
    oncall: str | None
    state: str                   # states.DrillState
    incident_id: int | None
    run_dir: str | None
    created_at: str


class ScheduleRow(TypedDict):
    name: str
    scenario: str
    spec_json: str
    spec: dict[str, Any]
    paused: int
    last_due: str | None
    created_at: str
    updated_at: str


class ScheduleRunRow(TypedDict):
    id: int
    schedule: str
    due_at: str
    claimed_at: str
    claimed_by: str
    target: str
    status: str                  # states.ScheduleRunStatus
    reason: str | None
    incident_id: int | None
    run_dir: str | None
    score: float | None
    owner: str | None
    started_at: str | None
    finished_at: str | None
    summary: Any                 # the game day's summary (JSON), or None


class FreezeRow(TypedDict):
    id: int
    frozen: int
    reason: str | None
    who: str
    at: str


class UserRow(TypedDict):
    name: str
    role: str
    token_sha256: str
    created_at: str
    created_by: str
    revoked_at: str | None


class ActionRow(TypedDict):
    id: int
    incident_id: int
    key: str
    title: str
    owner: str
    due: str
    status: str
    created_at: str


class AlertInstanceRow(TypedDict):
    key: str
    incident_id: int | None
    alertname: str
    group_key: str
    fingerprint: str
    received_at: str
    resolved_at: str | None


class LeaseRow(TypedDict):
    incident_id: int
    run_dir: str
    host: str
    pid: int
    started: int
    target: str
    undo_json: str
    undo: dict[str, Any]
    heartbeat: float
    state: str
    age: float  # seconds since the heartbeat, by the database's clock
