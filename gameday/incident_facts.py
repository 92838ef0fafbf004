"""One row per incident for the report (``insights``): who and what, and the figures
its scorecard reads (``scoring.Metrics``), derived from the stored events by SQL
aggregates and kept on the incident row.

**Derived in SQL.** One aggregate per event kind over the ``events_by_kind`` index
gives every incident's first moment of that kind (the scorecard reads first moments,
in time order) and, through SQLite's min/max rule for bare columns, what the
scorecard takes from that event's payload. ``_contained_by`` is the scorecard's rule
on those moments; ``tests/test_insights.py`` holds every derived row equal to
``scoring.compute_metrics`` over the same timeline.

**Kept on the incident row.** The incident row is already a projection of its events
(state, severity); ``facts`` (a JSON array) and ``facts_upto`` (the last event rowid
it has seen) extend it, in ``store.ADDED_COLUMNS`` (``CACHE_COLUMNS``). Events are
append-only and their rowids only grow, so ``refresh`` re-derives exactly the
incidents with an event past the last refresh: a report over 100,000 incidents reads
their rows, not their 2,000,000 events. A store without those columns is derived in
full every time (correct, slower). A game day's score is kept with the fingerprint of
the targets it was scored against and scored again when its scenario's targets change.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from gameday.events import Kind
from gameday.incident import TERMINAL_STATES
from gameday.scoring import Metrics, score
from gameday.store import Store

GAMEDAY, DRILL, INCIDENT = "gameday", "drill", "incident"
KINDS = (GAMEDAY, DRILL, INCIDENT)
GROUND_TRUTH = (GAMEDAY, DRILL)  # a fault was injected: timed from it, scored
VERSION = 3  # of the kept array (its last element); a row kept by another is derived again

CACHE_COLUMNS = ("facts", "facts_upto")  # on the incident row (``store.ADDED_COLUMNS``)


def kind_sql(alias: str = "i") -> str:
    """Which kind an incident row is: its ``kind`` (written when it was opened), else,
    for a row from before that column, ``gameday`` with a scenario and ``incident``
    without (``kind_of`` then tells a drill by its declaration). A new kind (a
    tabletop exercise with no fault, say) is a new value of the column and a member
    of ``KINDS``: every figure gets a column for it."""
    return (f"COALESCE({alias}.kind, CASE WHEN {alias}.scenario IS NULL THEN '{INCIDENT}'"
            f" ELSE '{GAMEDAY}' END)")


def kind_of(row_kind: str, stored: str | None, mode: str | None) -> str:
    """The stored kind; for an older row, a game day declared in ``drill`` mode (people
    responding) is a drill."""
    if stored is None and row_kind == GAMEDAY and mode == DRILL:
        return DRILL
    return row_kind


class Fact(NamedTuple):
    """One incident: the row's own columns, then what its events say."""

    id: int
    scenario: str | None
    service: str | None
    state: str
    severity_final: str | None
    created_at: str
    kind: str
    team: str | None
    model: str | None
    TTD: float | None
    TTA: float | None
    TTE: float | None
    TTFC: float | None
    TTM: float | None
    TTR: float | None
    severity_declared: str | None
    severity_measured: str | None
    runbook: str | None
    runbook_status: str | None
    contained_by: str | None
    escalated: bool
    detection_missed: bool
    requests: int | None
    bad: int | None
    budget: float | None
    score: int | None
    targets_key: str | None
    version: int = VERSION

    @property
    def values(self) -> tuple[float | None, ...]:
        return (self.TTD, self.TTA, self.TTE, self.TTFC, self.TTM, self.TTR)

    @property
    def week(self) -> str:
        """The ISO week it was opened in (``2026-W47``)."""
        return iso_week(self.created_at[:10])

    @property
    def metrics(self) -> Metrics:
        """The scorecard's metrics, as ``scoring.compute_metrics`` gives them."""
        return Metrics(
            TTD=self.TTD, TTA=self.TTA, TTE=self.TTE, TTFC=self.TTFC, TTM=self.TTM,
            TTR=self.TTR, severity_declared=self.severity_declared,
            severity_final=self.severity_final, severity_measured=self.severity_measured,
            requests_during_impact=self.requests, bad_requests=self.bad,
            budget_burned=self.budget, runbook=self.runbook,
            runbook_status=self.runbook_status, contained_by=self.contained_by,
            escalated=self.escalated, detection_missed=self.detection_missed)


ROW = "i.id, i.scenario, i.service, i.state, i.severity, i.created_at"
N_ROW = 6
TTD_AT = Fact._fields.index("TTD")  # TTD .. TTR follow it


@lru_cache(maxsize=4096)
def iso_week(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


# -- from the events, in SQL ---------------------------------------------------------------
_FIRST: dict[str, tuple[Kind, dict[str, str]]] = {
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


def derive_sql(where: str) -> str:
    """Every incident matching ``where`` (over ``incidents i``) with its first moments.
    Each kind's aggregate reads one range of ``events_by_kind``, from the lowest
    incident selected on."""
    ctes = [f"sel AS (SELECT {ROW}, i.kind AS stored_kind, {kind_sql()} AS kind"
            f" FROM incidents i WHERE {where})",
            "lo AS (SELECT COALESCE(MIN(id), 0) AS id, COALESCE(MAX(id), 0) AS hi FROM sel)"]
    columns, joins = [], []
    bounded = ("incident_id BETWEEN (SELECT id FROM lo) AND (SELECT hi FROM lo)")

    def first(alias: str, kind: str, extra: dict[str, str], also: str = "") -> None:
        bare = "".join(f", json_extract(data_json, '{path}') AS {name}"
                       for name, path in extra.items())
        ctes.append(f"{alias} AS (SELECT incident_id AS id, MIN(at_monotonic_ns) AS t{bare}"
                    f" FROM events WHERE kind = '{kind}' AND {bounded}{also}"
                    " GROUP BY incident_id)")
        columns.extend([f"{alias}.t AS {alias}_t"] + [f"{alias}.{n}" for n in extra])
        joins.append(f"LEFT JOIN {alias} ON {alias}.id = sel.id")

    for alias, (kind, extra) in _FIRST.items():
        first(alias, kind.value, extra)
    # The IC engaged: the first incident_commander role.
    first("ic", Kind.ROLE_ASSIGNED.value, {},
          " AND json_extract(data_json, '$.role') = 'incident_commander'")
    # The worst measured severity after the declaration's: 'SEV-1' sorts first.
    ctes.append("changed AS (SELECT incident_id AS id, MIN(json_extract(data_json,"
                " '$.measured_severity')) AS measured1 FROM events WHERE kind ="
                f" '{Kind.SEVERITY_CHANGED.value}' AND {bounded} GROUP BY incident_id)")
    columns.append("changed.measured1")
    joins.append("LEFT JOIN changed ON changed.id = sel.id")
    return (f"WITH {', '.join(ctes)} SELECT sel.*, {', '.join(columns)}"
            f" FROM sel {' '.join(joins)}")


def _span(a: int | None, b: int | None) -> float | None:
    return None if a is None or b is None else round((b - a) / 1e9, 3)


def _contained_by(r: sqlite3.Row) -> str | None:
    """``scoring.compute_metrics``'s rule, on the first moments."""
    mitigated = r["mitigated_t"]
    if mitigated is None:
        return None
    if r["rolled_back_t"] is not None and r["rolled_back_t"] <= mitigated:
        return "experiment rollback"
    if (r["rb_finished_t"] is not None and r["rb_finished_t"] <= mitigated + 5e9
            and r["rb_started_t"] is not None and r["rb_started_t"] <= mitigated):
        return f"runbook {r['runbook']}"
    return "responders"


def _worst(a: str | None, b: str | None) -> str | None:
    return min(a, b) if a and b else a or b


@dataclass(frozen=True)
class Targets:
    """What a scenario says about scoring its game days, and a fingerprint of it."""

    by_severity: dict[str, dict[str, float]]
    slo_success_ratio: float
    key: str


@lru_cache(maxsize=256)
def _targets(path: str, _mtime_ns: int) -> Targets | None:
    from gameday.scenario import load_scenario

    try:
        sc = load_scenario(Path(path), check_experiment=False)
    except Exception:  # a run directory from an older scenario format: no score
        return None
    by = {k: dict(v) for k, v in sc.targets.items()}
    text = json.dumps([by, sc.slo.success_ratio], sort_keys=True)
    return Targets(by, sc.slo.success_ratio, hashlib.sha1(text.encode()).hexdigest()[:12])


def targets_of(run_dir: str | None) -> Targets | None:
    """The targets of the scenario a run directory kept a copy of."""
    if not run_dir:
        return None
    path = Path(run_dir) / "scenario.yaml"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _targets(str(path), mtime)


def scenario_targets(db: sqlite3.Connection) -> dict[str, Targets | None]:
    """Each scenario's targets, from the run directory of its latest game day (one
    file read per scenario)."""
    rows = db.execute("SELECT scenario, MAX(id), run_dir FROM incidents WHERE scenario IS"
                      " NOT NULL AND run_dir IS NOT NULL GROUP BY scenario")
    return {r[0]: targets_of(r[2]) for r in rows}


def _scored(f: Fact, targets: Targets | None) -> Fact:
    """``f`` scored against ``targets`` (and its budget against their objective)."""
    if targets is None:
        return f._replace(score=None, budget=None, targets_key=None)
    budget = None
    if f.TTM is not None:
        allowed = (1 - targets.slo_success_ratio) * (f.requests or 0)
        budget = round(f.bad / allowed, 2) if allowed and f.bad is not None else None
    f = f._replace(budget=budget, targets_key=targets.key, score=None)
    if f.kind in GROUND_TRUTH and f.state in TERMINAL_STATES:
        f = f._replace(score=score(f.metrics, targets.by_severity).score)
    return f


def derive(db: sqlite3.Connection, where: str,
           targets: dict[str, Targets | None]) -> list[Fact]:
    out = []
    for r in db.execute(derive_sql(where)):
        mitigated = r["mitigated_t"] is not None
        f = Fact(
            id=r["id"], scenario=r["scenario"], service=r["service"], state=r["state"],
            severity_final=r["severity"], created_at=r["created_at"],
            kind=kind_of(r["kind"], r["stored_kind"], r["mode"]),
            team=r["team"], model=r["model"], TTD=_span(r["fault_t"], r["alert_t"]),
            TTA=_span(r["alert_t"], r["ack_t"]), TTE=_span(r["declared_t"], r["ic_t"]),
            TTFC=_span(r["declared_t"], r["comms_t"]),
            TTM=_span(r["fault_t"], r["mitigated_t"]),
            TTR=_span(r["fault_t"], r["resolved_t"]), severity_declared=r["declared"],
            severity_measured=_worst(r["measured0"], r["measured1"]), runbook=r["runbook"],
            runbook_status=r["runbook_status"], contained_by=_contained_by(r),
            escalated=r["escalated_t"] is not None, detection_missed=r["missed_t"] is not None,
            requests=r["requests"] if mitigated else None,
            bad=r["bad"] if mitigated else None, budget=None, score=None, targets_key=None)
        out.append(_scored(f, targets.get(f.scenario or "")))
    return out


# -- kept on the incident row --------------------------------------------------------------
def cached(db: sqlite3.Connection) -> bool:
    """Whether this store keeps facts on its incident rows (``CACHE_COLUMNS``)."""
    have = {r[1] for r in db.execute("PRAGMA table_info(incidents)")}
    return set(CACHE_COLUMNS) <= have


def _packed(f: Fact) -> str:
    """What the incident row keeps: the derived fields, then ``VERSION``."""
    return json.dumps(f[N_ROW:], separators=(",", ":"))


def refresh(store: Store, targets: dict[str, Targets | None]) -> int:
    """Derive again the incidents with events since the last refresh (or none kept);
    how many."""
    db = store.reader()
    high = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0]
    last = db.execute("SELECT MAX(facts_upto) FROM incidents").fetchone()[0]
    stale = {r[0] for r in db.execute("SELECT id FROM incidents WHERE facts_upto IS NULL OR"
                                      " facts NOT LIKE ?", (f"%,{VERSION}]",))}
    if last is not None:
        stale |= {r[0] for r in db.execute(
            "SELECT DISTINCT incident_id FROM events WHERE rowid > ?", (last,))}
    if not stale:
        return 0
    ordered = sorted(stale)
    found: list[Fact] = []
    for start in range(0, len(ordered), 5000):
        chunk = ordered[start:start + 5000]
        found += derive(db, f"i.id BETWEEN {chunk[0]} AND {chunk[-1]} AND i.id IN"
                            f" ({','.join(map(str, chunk))})", targets)
    with store.transaction() as tx:
        tx.executemany("UPDATE incidents SET facts = ?, facts_upto = ? WHERE id = ?",
                       [(_packed(f), high, f.id) for f in found])
    return len(found)


def load(store: Store, where: str, args: dict[str, Any],
         targets: dict[str, Targets | None]) -> list[Fact]:
    """The incidents matching ``where``: kept facts where the store keeps them (after a
    refresh), derived from the events otherwise."""
    db = store.reader()
    if not cached(db):
        return derive(db, where if not args else _inline(db, where, args), targets)
    refresh(store, targets)
    # One JSON document for every row, assembled by SQLite and parsed once: reading
    # 100,000 rows this way takes a fifth of the time of parsing each row's JSON.
    row = f"json_array({ROW})"
    text = db.execute(
        f"SELECT '[' || COALESCE(group_concat(x, ','), '') || ']' FROM (SELECT"
        f" rtrim({row}, ']') || ',' || COALESCE(substr(i.facts, 2), 'null]') AS x"
        f" FROM incidents i WHERE {where} ORDER BY i.id)", args).fetchone()[0]
    out: list[Fact] = []
    again: list[int] = []
    keys = {name: t.key if t else None for name, t in targets.items()}
    for values in json.loads(text):
        if values[-1] != VERSION:  # kept by another version of gameday, or not yet
            again.append(values[0])
            continue
        f = Fact._make(values)
        if f.targets_key != keys.get(f.scenario or ""):
            f = _scored(f, targets.get(f.scenario or ""))
        out.append(f)
    if again:
        out += derive(db, f"i.id IN ({','.join(map(str, again))})", targets)
        out.sort(key=lambda f: f.id)
    return out


def _inline(db: sqlite3.Connection, where: str, args: dict[str, Any]) -> str:
    """``where`` with its parameters as SQL literals (the CTE query takes no args)."""
    for name, value in sorted(args.items(), key=lambda kv: -len(kv[0])):
        literal = db.execute("SELECT quote(?)", (value,)).fetchone()[0]
        where = where.replace(f":{name}", literal)
    return where


def by_ids(store: Store, ids: Iterable[int], targets: dict[str, Targets | None]) -> list[Fact]:
    ids = sorted(set(ids))
    out: list[Fact] = []
    for start in range(0, len(ids), 900):
        chunk: Sequence[int] = ids[start:start + 900]
        out += load(store, f"i.id IN ({','.join(map(str, chunk))})", {}, targets)
    return out
