"""Which alerts game days proved: for each alert a game day or drill waited for, how
often it fired and how often it did not (``detection.missed``), and what happened the
last time. An alert that never fired in a game day is not proven to page for the
failure modes rehearsed; one that missed the last time is suspect."""

from __future__ import annotations

from typing import Any

from gameday.incidents.incident import DRILL, GAMEDAY
from gameday.report.facts import Table
from gameday.report.moments import alert_words
from gameday.store import Connection

PROVEN, NEVER, MISSED_LAST = "proven", "never fired", "missed last time"


def proof(db: Connection, t: Table) -> list[dict[str, Any]]:
    """One row per alert, worst first: ``alert``, ``game_days``, ``fired``, ``missed``,
    ``last`` (incident id), ``last_at``, ``status``. Each game day's first word on its
    alert is one of its facets (``Facets.alert``, ``alert_fired``), so this counts
    distinct facets; only the latest game day of each alert is read again, for when
    that word was recorded."""
    alerts: dict[str, dict[str, Any]] = {}
    latest: dict[str, tuple[int, bool]] = {}  # alert -> (incident, fired)
    for code, n in sorted(t.per_code.items()):
        f = t.facets[code]
        if f.kind not in (GAMEDAY, DRILL) or not f.alert:
            continue
        a = alerts.setdefault(f.alert, {"alert": f.alert, "game_days": 0, "fired": 0,
                                        "missed": 0})
        a["game_days"] += n
        a["fired" if f.alert_fired else "missed"] += n
        if t.latest_id[code] > latest.get(f.alert, (0, False))[0]:
            latest[f.alert] = (t.latest_id[code], f.alert_fired)
    said = alert_words(db, (incident for incident, _ in latest.values()))
    for name, a in alerts.items():
        incident, fired = latest[name]
        a.update(last=incident, last_at=str(said[incident][2]))
        a["status"] = NEVER if not a["fired"] else PROVEN if fired else MISSED_LAST
    order = {NEVER: 0, MISSED_LAST: 1, PROVEN: 2}
    return sorted(alerts.values(), key=lambda a: (order[a["status"]], a["alert"]))
