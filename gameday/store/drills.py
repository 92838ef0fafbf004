"""Training drills: their rows, beside the incident each one runs.
"""

from __future__ import annotations

from typing import Any, cast

from gameday.core.errors import NotFound
from gameday.store.base import (
    Database,
    _inserted_id,
    utc_now,
)
from gameday.store.rows import DrillRow


class DrillStore(Database):
    # -- drills ----------------------------------------------------------------------
    def create_drill(self, scenario: str, *, game_master: str, difficulty: str,
                     oncall: str | None) -> int:
        with self._tx() as db:
            return _inserted_id(db.execute(
                "INSERT INTO drills (scenario, game_master, difficulty, oncall, state,"
                " created_at) VALUES (?, ?, ?, ?, 'starting', ?) RETURNING id",
                (scenario, game_master, difficulty, oncall, utc_now())))

    def drill(self, drill_id: int) -> DrillRow:
        row = self._db.execute("SELECT * FROM drills WHERE id = ?", (drill_id,)).fetchone()
        if row is None:
            raise NotFound(f"no drill {drill_id}")
        return cast(DrillRow, dict(row))

    def drill_of(self, incident_id: int) -> DrillRow | None:
        """The drill an incident is, if it is one."""
        row = self._db.execute("SELECT * FROM drills WHERE incident_id = ?",
                               (incident_id,)).fetchone()
        return cast(DrillRow, dict(row)) if row else None

    def drills(self) -> list[DrillRow]:
        return [cast(DrillRow, dict(r))
                for r in self._db.execute("SELECT * FROM drills ORDER BY id DESC")]

    def update_drill(self, drill_id: int, **fields: Any) -> None:
        assert set(fields) <= {"state", "incident_id", "run_dir"}, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE drills SET {sets} WHERE id = ?", (*fields.values(), drill_id))
