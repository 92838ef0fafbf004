"""A game day's SLI windows, as its detector computed them, in the store: what any
``gameday serve`` replica charts for a running drill (the run directory's ``sli.jsonl``
is on one host only). Written a second at a time by the game day, read after an id."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gameday.store.base import Database

READ_LIMIT = 2000  # windows per read: a console catching up reads on from the last id


class SliStore(Database):
    def add_sli_windows(self, incident_id: int, windows: Iterable[dict[str, Any]]) -> None:
        rows = [(incident_id, int(w["at_ns"]), json.dumps(w)) for w in windows]
        if not rows:
            return
        with self._tx() as db:
            db.executemany("INSERT INTO sli_windows (incident_id, at_ns, body_json)"
                           " VALUES (?, ?, ?)", rows)

    def sli_windows(self, incident_id: int, after: int = 0,
                    limit: int = READ_LIMIT) -> tuple[list[dict[str, Any]], int]:
        """The windows after id ``after`` (oldest first), and the id to read on from."""
        found = self._db.execute(
            "SELECT id, body_json FROM sli_windows WHERE incident_id = ? AND id > ?"
            " ORDER BY id LIMIT ?", (incident_id, after, limit)).fetchall()
        return [json.loads(r["body_json"]) for r in found], (found[-1]["id"] if found
                                                             else after)

    def last_sli_window(self, incident_id: int) -> dict[str, Any] | None:
        """The newest window with requests in it: what the SLIs are now."""
        for row in self._db.execute(
                "SELECT body_json FROM sli_windows WHERE incident_id = ?"
                " ORDER BY id DESC LIMIT 20", (incident_id,)):
            window: dict[str, Any] = json.loads(row["body_json"])
            if window.get("total"):
                return window
        return None
