"""An incident's moments as SQL over its events: the first event of each kind the facts
are derived from (``FIRST``), a payload value on either database (``store.json_value``),
and a game day's first word on its alert (``alert_word_sql``)."""

from __future__ import annotations

from collections.abc import Iterable

from gameday.core.events import Kind
from gameday.store import Connection

FIRST: dict[str, tuple[Kind, dict[str, str]]] = {
    "fault": (Kind.FAULT_INJECTED, {}),
    "alert": (Kind.ALERT_FIRED, {"team": "$.labels.team"}),
    "declared": (Kind.INCIDENT_DECLARED, {"declared": "$.severity", "model": "$.model",
                                          "mode": "$.mode", "measured0": "$.measured_severity"}),
    "ack": (Kind.INCIDENT_ACKNOWLEDGED, {}),
    "comms": (Kind.COMMS_POSTED, {}),
    "mitigated": (Kind.MITIGATED, {"requests": "$.requests", "bad": "$.bad_requests"}),
    "resolved": (Kind.INCIDENT_RESOLVED, {}),
    "rolled_back": (Kind.FAULT_ROLLED_BACK, {}),
    "rb_started": (Kind.RUNBOOK_STARTED, {"runbook": "$.runbook"}),
    "rb_finished": (Kind.RUNBOOK_FINISHED, {"runbook_status": "$.status"}),
    "escalated": (Kind.INCIDENT_ESCALATED, {}),
    "missed": (Kind.DETECTION_MISSED, {}),
}


NUMBERS = {"requests": "bigint", "bad": "bigint"}  # the rest are text
# A runbook's dry run (``--check``) changes nothing: it neither contains a fault nor
# proves the runbook, so the runbook's moments are its first run for real.
REAL_RUNS_ONLY = ("rb_started", "rb_finished")


def not_a_dry_run(*, postgres: bool) -> str:
    """SQL true for an event whose payload's ``check`` is not true (absent included)."""
    if postgres:
        return "(data_json::jsonb #>> '{check}') IS DISTINCT FROM 'true'"
    return "json_extract(data_json, '$.check') IS NOT 1"


def alert_word_sql(where: str, *, postgres: bool) -> str:
    """Each incident's first word on its alert, among its events matching ``where``:
    the first ``alert.fired`` or ``detection.missed``, in recording order, that names
    one (a non-empty string: the alert that fired, or the one waited for in vain), with
    its ``seq`` and ``at_utc``: ``id, seq, at_utc, fired, alert``. Which alerts game
    days proved (``alerts.proof``) counts these."""
    fired, missed = Kind.ALERT_FIRED.value, Kind.DETECTION_MISSED.value
    field = f"CASE kind WHEN '{fired}' THEN 'alertname' ELSE 'alert' END"
    among = f"kind IN ('{fired}', '{missed}') AND {where}"
    if postgres:
        return (f"SELECT DISTINCT ON (incident_id) incident_id AS id, seq, at_utc,"
                f" kind = '{fired}' AS fired, value #>> '{{}}' AS alert FROM"
                f" (SELECT incident_id, seq, at_utc, kind, data_json::jsonb -> {field} AS value"
                f" FROM events WHERE {among}) e WHERE jsonb_typeof(value) = 'string'"
                f" AND value #>> '{{}}' <> '' ORDER BY incident_id, seq")
    path = f"'$.' || {field}"
    return (f"SELECT incident_id AS id, MIN(seq) AS seq, at_utc, kind = '{fired}' AS fired,"
            f" json_extract(data_json, {path}) AS alert FROM events WHERE {among}"
            f" AND json_type(data_json, {path}) = 'text'"
            f" AND json_extract(data_json, {path}) <> '' GROUP BY incident_id")


def alert_words(db: Connection, ids: Iterable[int]) -> dict[int, tuple[str, bool, str]]:
    """``alert_word_sql`` of a few incidents: id -> (alert, fired, at_utc)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = db.tuples(alert_word_sql(f"incident_id IN ({','.join(map(str, wanted))})",
                                    postgres=db.postgres))
    return {r[0]: (r[4], bool(r[3]), r[2]) for r in rows}
