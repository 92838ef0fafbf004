"""Persistence: incidents, their append-only timelines and SLI windows, runbook runs,
drills, schedules, people and the audit log, one store per aggregate over one engine
(``base``).

SQLite (the project's ``.gameday/gameday.db``, or ``--db`` / ``GAMEDAY_DB``), in WAL mode
so a game day, ``gameday serve`` and a responder's CLI can share it; or PostgreSQL
(``postgresql://...``), so several ``gameday serve`` replicas can. SQLAlchemy Core
connects (SQL is written once, with ``?`` placeholders, in the dialect both share);
Alembic keeps the schema (``gameday/migrations``). Events are never
updated or deleted; the incident row is a projection kept in step with them.
"""

from __future__ import annotations

from gameday.store.base import (
    BOOT_ID,
    HEAD,
    KINDS,
    Connection,
    Cursor,
    Database,
    Event,
    Row,
    _alembic_config,
    _engine_url,
    clock_ns,
    integrity_errors,
    json_value,
    params_key,
    upgrade,
    utc_now,
)
from gameday.store.chat import ChatStore
from gameday.store.drills import DrillStore
from gameday.store.incidents import IncidentStore
from gameday.store.people import PeopleStore
from gameday.store.runs import RunStore
from gameday.store.schedules import ScheduleStore
from gameday.store.slis import SliStore

__all__ = ["BOOT_ID", "HEAD", "KINDS", "Connection", "Cursor", "Database", "Event", "Row",
           "Store", "_alembic_config", "_engine_url", "clock_ns", "integrity_errors",
           "json_value", "params_key", "upgrade", "utc_now"]


class Store(IncidentStore, RunStore, DrillStore, ScheduleStore, PeopleStore, SliStore,
            ChatStore):
    """The whole store: every aggregate's reads and writes, one engine, one
    transaction at a time per thread (``transaction()`` joins them)."""
