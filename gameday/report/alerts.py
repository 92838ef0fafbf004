"""Which alerts game days proved: for each alert a game day or drill waited for, how
often it fired and how often it did not (``detection.missed``), and what happened the
last time. An alert that never fired in a game day is not proven to page for the
failure modes rehearsed; one that missed the last time is suspect."""

from __future__ import annotations

import json
from typing import Any

from gameday.core.events import Kind
from gameday.incidents.incident import DRILL, GAMEDAY
from gameday.report.facts import Table
from gameday.store import Connection

PROVEN, NEVER, MISSED_LAST = "proven", "never fired", "missed last time"


def proof(db: Connection, t: Table) -> list[dict[str, Any]]:
    """One row per alert, worst first: ``alert``, ``game_days``, ``fired``, ``missed``,
    ``last`` (incident id), ``last_at``, ``status``."""
    rehearsed = {t.ids[r] for r in range(len(t.ids))
                 if t.facets[t.code[r]].kind in (GAMEDAY, DRILL)}
    if not rehearsed:
        return []
    seen: dict[int, tuple[str, bool, str]] = {}  # incident -> (alert, fired, at)
    for row in db.execute("SELECT incident_id, kind, at_utc, data_json FROM events WHERE"
                          " kind IN (?, ?) ORDER BY incident_id, seq",
                          (Kind.ALERT_FIRED.value, Kind.DETECTION_MISSED.value)):
        incident = int(row["incident_id"])
        if incident not in rehearsed or incident in seen:
            continue  # the first word on an incident is its answer
        data = json.loads(row["data_json"])
        fired = row["kind"] == Kind.ALERT_FIRED
        name = data.get("alertname") if fired else data.get("alert")
        if name:
            seen[incident] = (str(name), fired, str(row["at_utc"]))
    alerts: dict[str, dict[str, Any]] = {}
    for incident in sorted(seen):
        name, fired, at = seen[incident]
        a = alerts.setdefault(name, {"alert": name, "game_days": 0, "fired": 0, "missed": 0})
        a["game_days"] += 1
        a["fired" if fired else "missed"] += 1
        a.update(last=incident, last_at=at, last_fired=fired)
    for a in alerts.values():
        a["status"] = (NEVER if not a["fired"] else PROVEN if a.pop("last_fired")
                       else MISSED_LAST)
        a.pop("last_fired", None)
    order = {NEVER: 0, MISSED_LAST: 1, PROVEN: 2}
    return sorted(alerts.values(), key=lambda a: (order[a["status"]], a["alert"]))
