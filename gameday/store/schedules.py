"""Schedules, their scheduled runs (claimed once across processes), and the freeze.
"""

from __future__ import annotations

import json
from typing import Any, cast

from gameday.core.errors import GamedayError, NotFound
from gameday.store.base import (
    Database,
    _schedule_run,
    utc_now,
)
from gameday.store.rows import FreezeRow, ScheduleRow, ScheduleRunRow


class ScheduleStore(Database):
    # -- schedules, their runs, and the freeze ------------------------------------------
    def add_schedule(self, name: str, scenario: str, spec: dict[str, Any],
                     created_at: str) -> None:
        try:
            with self._tx() as db:
                db.execute("INSERT INTO schedules (name, scenario, spec_json, created_at,"
                           " updated_at) VALUES (?, ?, ?, ?, ?)",
                           (name, scenario, json.dumps(spec, sort_keys=True), created_at,
                            utc_now()))
        except self._integrity:
            raise GamedayError(f"a schedule named {name!r} exists (gameday schedule "
                               f"remove {name}, or pick another name)") from None

    def schedules(self) -> list[ScheduleRow]:
        return [cast(ScheduleRow, {**dict(r), "spec": json.loads(r["spec_json"])})
                for r in self._db.execute("SELECT * FROM schedules ORDER BY name")]

    def schedule(self, name: str) -> ScheduleRow:
        row = self._db.execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(r["name"] for r in self.schedules()) or "none"
            raise NotFound(f"no schedule {name!r} (known: {known})")
        return cast(ScheduleRow, {**dict(row), "spec": json.loads(row["spec_json"])})

    def update_schedule(self, name: str, **fields: Any) -> None:
        assert set(fields) <= {"paused", "last_due"}, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            if db.execute(f"UPDATE schedules SET {sets}, updated_at = ? WHERE name = ?",
                          (*fields.values(), utc_now(), name)).rowcount == 0:
                raise NotFound(f"no schedule {name!r}")

    def remove_schedule(self, name: str) -> None:
        """The schedule goes; its history stays (``schedule_runs``)."""
        with self._tx() as db:
            if db.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no schedule {name!r}")

    def claim_schedule_run(self, name: str, due_at: str, *, target: str, by: str,
                           advance: bool = True) -> int | None:
        """Claim the game day ``name`` owes at ``due_at``: its id, or None when another
        process claimed it first. ``advance`` moves the schedule past ``due_at``."""
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO schedule_runs (schedule, due_at, claimed_at, claimed_by,"
                " target, status) VALUES (?, ?, ?, ?, ?, 'claimed') ON CONFLICT DO NOTHING"
                " RETURNING id", (name, due_at, utc_now(), by, target)).fetchone()
            if row is None:
                return None
            run_id = int(row[0])
            if advance:
                db.execute("UPDATE schedules SET last_due = ?, updated_at = ? WHERE name = ?"
                           " AND (last_due IS NULL OR last_due < ?)",
                           (due_at, utc_now(), name, due_at))
            return run_id

    def update_schedule_run(self, run_id: int, **fields: Any) -> None:
        allowed = {"status", "reason", "incident_id", "run_dir", "score", "owner",
                   "started_at", "finished_at", "summary"}
        assert set(fields) <= allowed, fields
        if "summary" in fields:
            fields["summary_json"] = json.dumps(fields.pop("summary"), default=str)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE schedule_runs SET {sets} WHERE id = ?",
                       (*fields.values(), run_id))

    def schedule_run(self, run_id: int) -> ScheduleRunRow:
        row = self._db.execute("SELECT * FROM schedule_runs WHERE id = ?",
                               (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"no scheduled run {run_id}")
        return _schedule_run(row)

    def schedule_runs(self, name: str | None = None, *, limit: int = 20,
                      unfinished: bool = False) -> list[ScheduleRunRow]:
        """Newest first."""
        sql, args = "SELECT * FROM schedule_runs WHERE 1=1", []
        if name is not None:
            sql, args = sql + " AND schedule = ?", [name]
        if unfinished:
            sql += " AND status IN ('claimed', 'running')"
        rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])
        return [_schedule_run(r) for r in rows]

    def set_freeze(self, frozen: bool, reason: str | None, who: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO \"freeze\" (id, frozen, reason, who, at) VALUES (1, ?, ?, ?, ?)"
                       " ON CONFLICT (id) DO UPDATE SET frozen = excluded.frozen,"
                       " reason = excluded.reason, who = excluded.who, at = excluded.at",
                       (int(frozen), reason, who, utc_now()))

    def freeze(self) -> FreezeRow | None:
        """The safety lever, when it is on: who pulled it, when and why."""
        row = self._db.execute("SELECT * FROM \"freeze\" WHERE id = 1 AND frozen = 1").fetchone()
        return cast(FreezeRow, dict(row)) if row else None
