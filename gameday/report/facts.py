"""One row per incident for the report (``insights``): who and what, and the figures
its scorecard reads (``scoring.Metrics``), derived from the stored events by SQL
aggregates and kept in the store's ``incident_facts`` table.

**Derived in SQL.** One aggregate per event kind over the ``events_by_kind`` index
gives every incident's first moment of that kind (the scorecard reads first moments,
in time order) and what the scorecard takes from that event's payload (SQLite's
min/max rule for bare columns; ``DISTINCT ON`` on PostgreSQL). ``_contained_by`` is
the scorecard's rule on those moments; ``tests/report/test_insights.py`` holds every derived
row equal to ``scoring.compute_metrics`` over the same timeline, on both databases.
A game day's verdict is its last ``gameday.verdict`` event (``verdict.record``),
``interrupted`` for one cut short.

**Kept in ``incident_facts``.** Events are append-only and every one raises its
incident's ``last_seq`` in the same transaction (a trigger), so ``refresh`` re-derives
exactly the incidents whose ``last_seq`` is past the one their row was derived up to
(``upto``, read in the deriving statement), the incidents it has no row for, and rows
another ``VERSION`` wrote. Commit order does not matter, so this holds on PostgreSQL
too, where concurrent writers commit out of id order. A report over 100,000
incidents reads their fact rows, not their 2,000,000 events. The times are columns;
everything else that says what the incident was (kind, scenario, team, severities,
runbook, containment, verdict, the alert it waited for: ``Facets``) is one JSON array,
the same text for incidents alike, kept once in ``report_facets`` and named by its
number (``facets_id``), so the report reads a number a row and decodes a few hundred
distinct facets instead of a hundred thousand rows (``table``). A game day's score is kept with the
fingerprint of the targets it was scored against and scored again, and kept again,
when its scenario's targets change.

Two ways to read them: ``table`` (column by column, what the report computes with)
and ``load`` (one ``Fact`` per incident, for the few readers that want rows).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from itertools import compress, islice
from operator import itemgetter, le
from typing import Any, NamedTuple

from gameday.core.events import Kind
from gameday.game.scoring import Metrics, score
from gameday.incidents.incident import DRILL, GAMEDAY, TERMINAL_STATES
from gameday.report.moments import (
    FIRST,
    NUMBERS,
    REAL_RUNS_ONLY,
    alert_word_sql,
    not_a_dry_run,
)
from gameday.report.objectives import AnyTargets, Targets
from gameday.store import Connection, Row, Store, json_value
from gameday.store.incidents import kind_sql

NO_VALUE = "(none)"  # a group for incidents without a team, service or severity


def group_order(name: str) -> tuple[int, str]:
    """Groups by name, the one for incidents without a value last."""
    return (1, name) if name == NO_VALUE else (0, name)
GROUND_TRUTH = (GAMEDAY, DRILL)  # a fault was injected: timed from it, scored
VERSION = 7  # of the derivation; a row kept by another is derived again
METRICS = ("TTD", "TTA", "TTE", "TTFC", "TTM", "TTR")


def kind_of(row_kind: str, stored: str | None, mode: str | None) -> str:
    """The stored kind; for an older row, a game day declared in ``drill`` mode (people
    responding) is a drill."""
    if stored is None and row_kind == GAMEDAY and mode == DRILL:
        return DRILL
    return row_kind


class Facets(NamedTuple):
    """What an incident was and how it went, apart from its times: many incidents
    share one (``incident_facts.facets``)."""

    kind: str
    scenario: str | None
    service: str | None
    severity_final: str | None
    team: str | None
    model: str | None
    severity_declared: str | None
    severity_measured: str | None
    runbook: str | None
    runbook_status: str | None
    contained_by: str | None
    escalated: bool
    detection_missed: bool
    verdict: str | None  # passed | failed | deviated | interrupted, from the timeline
    verdict_failed: tuple[str, ...]  # the checks that failed
    targets_key: str | None
    alert: str | None  # the alert a game day or drill waited for (``alert_word_sql``)
    alert_fired: bool  # and whether its first word on it was the alert firing


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
    verdict: str | None
    verdict_failed: tuple[str, ...]
    requests: int | None
    bad: int | None
    budget: float | None
    score: int | None
    targets_key: str | None
    alert: str | None
    alert_fired: bool

    @property
    def week(self) -> str:
        """The ISO week it was opened in (``2026-W47``)."""
        return iso_week(self.created_at[:10])

    @property
    def facets(self) -> Facets:
        return Facets(*(getattr(self, name) for name in Facets._fields))

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


@lru_cache(maxsize=4096)
def iso_week(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


# -- from the events, in SQL ---------------------------------------------------------------
def derive_sql(where: str, *, dense: bool = True, postgres: bool = False) -> str:
    """Every incident matching ``where`` (over ``incidents i``) with its first moments.
    Each kind's aggregate reads ``events_by_kind``: one range, from the lowest incident
    selected to the highest, when they are ``dense`` (most ids in between selected);
    one probe per incident selected otherwise (a few incidents far apart).

    What a moment takes from its event's payload comes from that event: SQLite's
    bare columns beside MIN/MAX; PostgreSQL's ``DISTINCT ON``, ordered the same way
    (``seq`` breaks a tie, as the scorecard reads the timeline in order)."""
    ctes = [f"sel AS (SELECT {ROW}, i.kind AS stored_kind, {kind_sql()} AS kind,"
            f" i.last_seq AS upto FROM incidents i WHERE {where})",
            "lo AS (SELECT COALESCE(MIN(id), 0) AS id, COALESCE(MAX(id), 0) AS hi FROM sel)"]
    columns, joins = [], []
    bounded = ("incident_id BETWEEN (SELECT id FROM lo) AND (SELECT hi FROM lo)" if dense
               else "incident_id IN (SELECT id FROM sel)")

    def extract(path: str, name: str | None = None) -> str:
        return json_value(path, postgres=postgres, cast=NUMBERS.get(name or ""))

    def moment(alias: str, kind: str, extra: dict[str, str], also: str = "",
               which: str = "MIN") -> None:
        taken = "".join(f", {extract(path, name)} AS {name}" for name, path in extra.items())
        if postgres:
            order = "" if which == "MIN" else " DESC"
            ctes.append(f"{alias} AS (SELECT DISTINCT ON (incident_id) incident_id AS id,"
                        f" at_monotonic_ns AS t{taken} FROM events WHERE kind = '{kind}'"
                        f" AND {bounded}{also} ORDER BY incident_id, at_monotonic_ns{order},"
                        f" seq{order})")
        else:
            ctes.append(f"{alias} AS (SELECT incident_id AS id, {which}(at_monotonic_ns) AS t"
                        f"{taken} FROM events WHERE kind = '{kind}' AND {bounded}{also}"
                        " GROUP BY incident_id)")
        columns.extend([f"{alias}.t AS {alias}_t"] + [f"{alias}.{n}" for n in extra])
        joins.append(f"LEFT JOIN {alias} ON {alias}.id = sel.id")

    for alias, (kind, extra) in FIRST.items():
        moment(alias, kind.value, extra, f" AND {not_a_dry_run(postgres=postgres)}"
               if alias in REAL_RUNS_ONLY else "")
    # The IC engaged: the first incident_commander role.
    moment("ic", Kind.ROLE_ASSIGNED.value, {},
           f" AND {extract('$.role')} = 'incident_commander'")
    # The verdict: the last one recorded; an interrupted game day records none.
    moment("verdict", Kind.GAMEDAY_VERDICT.value,
           {"verdict": "$.status", "verdict_failed": "$.failed"}, which="MAX")
    moment("interrupted", Kind.GAMEDAY_INTERRUPTED.value, {})
    # The worst measured severity after the declaration's: 'SEV-1' sorts first.
    ctes.append(f"changed AS (SELECT incident_id AS id, MIN({extract('$.measured_severity')})"
                f" AS measured1 FROM events WHERE kind = '{Kind.SEVERITY_CHANGED.value}'"
                f" AND {bounded} GROUP BY incident_id)")
    columns.append("changed.measured1")
    joins.append("LEFT JOIN changed ON changed.id = sel.id")
    ctes.append(f"word AS ({alert_word_sql(bounded, postgres=postgres)})")
    columns.extend(["word.alert AS word_alert", "word.fired AS word_fired"])
    joins.append("LEFT JOIN word ON word.id = sel.id")
    return (f"WITH {', '.join(ctes)} SELECT sel.*, {', '.join(columns)}"
            f" FROM sel {' '.join(joins)}")


def _span(a: int | None, b: int | None) -> float | None:
    return None if a is None or b is None else round((b - a) / 1e9, 3)


def _contained_by(r: Row) -> str | None:
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


def _key(targets: AnyTargets, scenario: str | None) -> str | None:
    found = targets.get(scenario or "")
    return found.key if found else None


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


def _failed_checks(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


def derive(db: Connection, where: str, targets: AnyTargets, *,
           dense: bool = True) -> list[tuple[Fact, int]]:
    """Each incident matching ``where``, and the last ``seq`` it was derived up to."""
    out = []
    for r in db.execute(derive_sql(where, dense=dense, postgres=db.postgres)):
        mitigated = r["mitigated_t"] is not None
        kind = kind_of(r["kind"], r["stored_kind"], r["mode"])
        alert = r["word_alert"] if kind in GROUND_TRUTH else None
        f = Fact(
            id=r["id"], scenario=r["scenario"], service=r["service"], state=r["state"],
            severity_final=r["severity"], created_at=r["created_at"],
            kind=kind, team=r["team"], model=r["model"], TTD=_span(r["fault_t"], r["alert_t"]),
            TTA=_span(r["alert_t"], r["ack_t"]), TTE=_span(r["declared_t"], r["ic_t"]),
            TTFC=_span(r["declared_t"], r["comms_t"]),
            TTM=_span(r["fault_t"], r["mitigated_t"]),
            TTR=_span(r["fault_t"], r["resolved_t"]), severity_declared=r["declared"],
            severity_measured=_worst(r["measured0"], r["measured1"]), runbook=r["runbook"],
            runbook_status=r["runbook_status"], contained_by=_contained_by(r),
            escalated=r["escalated_t"] is not None, detection_missed=r["missed_t"] is not None,
            verdict=r["verdict"] or ("interrupted" if r["interrupted_t"] is not None
                                     else None),
            verdict_failed=_failed_checks(r["verdict_failed"]),
            requests=r["requests"] if mitigated else None,
            bad=r["bad"] if mitigated else None, budget=None, score=None, targets_key=None,
            alert=alert, alert_fired=bool(alert and r["word_fired"]))
        out.append((_scored(f, targets.get(f.scenario or "")), r["upto"]))
    return out


# -- kept in incident_facts ----------------------------------------------------------------
COLUMNS = ("ttd", "tta", "tte", "ttfc", "ttm", "ttr", "requests", "bad", "budget", "score")


def packed(f: Facets) -> str:
    """The ``facets`` text: the same for incidents alike (compact, key order fixed)."""
    return json.dumps(f, separators=(",", ":"))


def unpacked(text: str) -> Facets:
    values = json.loads(text)
    values[Facets._fields.index("verdict_failed")] = tuple(
        values[Facets._fields.index("verdict_failed")])
    return Facets._make(values)


def _numbered(tx: Connection, texts: Iterable[str]) -> dict[str, int]:
    """Each facets text's number in ``report_facets`` (one row a distinct text), added
    when new, in text order (two writers adding the same texts lock them in the same
    order)."""
    wanted = sorted(set(texts))
    tx.executemany("INSERT INTO report_facets (facets) VALUES (?)"
                   " ON CONFLICT (facets) DO NOTHING", [(text,) for text in wanted])
    numbers: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        numbers.update(tx.tuples("SELECT facets, id FROM report_facets WHERE facets IN"
                                 f" ({', '.join('?' for _ in chunk)})", chunk))
    return numbers


def _texts(db: Connection, numbers: Iterable[int]) -> dict[int, str]:
    """The facets text of each number."""
    wanted = sorted(set(numbers))
    texts: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        texts.update(db.tuples("SELECT id, facets FROM report_facets WHERE id IN"
                               f" ({', '.join(map(str, chunk))})"))
    return texts


def _kept(f: Fact, upto: int, facets_id: int) -> tuple[Any, ...]:
    return (f.id, upto, VERSION, facets_id, f.TTD, f.TTA, f.TTE, f.TTFC, f.TTM, f.TTR,
            f.requests, f.bad, f.budget, f.score)


_KEPT = ("upto", "version", "facets_id", *COLUMNS)


def _keep(store: Store, found: Sequence[tuple[Fact, int]]) -> None:
    """Keep derived rows, in id order (two processes refreshing at once take the rows'
    locks in the same order), never over a row derived from more events."""
    marks = ", ".join("?" for _ in range(1 + len(_KEPT)))
    texts = [packed(f.facets) for f, _ in found]
    with store.transaction() as tx:
        numbers = _numbered(tx, texts)
        tx.executemany(f"INSERT INTO incident_facts (incident_id, {', '.join(_KEPT)}) VALUES"
                       f" ({marks}) ON CONFLICT (incident_id) DO UPDATE SET"
                       f" {', '.join(f'{c} = excluded.{c}' for c in _KEPT)}"
                       " WHERE incident_facts.upto <= excluded.upto"
                       " OR incident_facts.version <> excluded.version",
                       sorted((_kept(f, upto, numbers[text])
                               for (f, upto), text in zip(found, texts, strict=True)),
                              key=itemgetter(0)))


_LEFT_JOIN = "FROM incidents i LEFT JOIN incident_facts f ON f.incident_id = i.id"
# A kept row is stale: none yet, events since it was derived, or another version's.
_STALE = f"(f.incident_id IS NULL OR f.upto < i.last_seq OR f.version <> {VERSION:d})"


def refresh(store: Store, targets: AnyTargets, where: str = "1 = 1",
            args: Mapping[str, Any] | None = None) -> int:
    """Derive again the incidents (matching ``where``, over ``incidents i``) with
    events since they were derived (their ``last_seq`` is past the row's ``upto``),
    those without a row and those another version kept; how many."""
    db = store.reader()
    stale = sorted(r[0] for r in db.tuples(
        f"SELECT i.id {_LEFT_JOIN} WHERE ({where}) AND {_STALE}", dict(args or {})))
    if not stale:
        return 0
    found: list[tuple[Fact, int]] = []
    for start in range(0, len(stale), 5000):
        chunk = stale[start:start + 5000]
        found += derive(db, f"i.id BETWEEN {chunk[0]} AND {chunk[-1]} AND i.id IN"
                            f" ({','.join(map(str, chunk))})", targets,
                        dense=chunk[-1] - chunk[0] < 2 * len(chunk))
    _keep(store, found)
    return len(found)


def _rescore(store: Store, ids: Iterable[int], targets: AnyTargets) -> None:
    """Score again, and keep, the game days whose scenario's targets changed."""
    db = store.reader()
    ids = sorted(set(ids))
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        rows = [_scored(f, targets.get(f.scenario or "")) for f in _read(
            db, f"i.id IN ({','.join(map(str, chunk))})", {})]
        with store.transaction() as tx:
            numbers = _numbered(tx, (packed(f.facets) for f in rows))
            for f in rows:
                tx.execute("UPDATE incident_facts SET facets_id = ?, budget = ?, score = ?"
                           " WHERE incident_id = ?",
                           (numbers[packed(f.facets)], f.budget, f.score, f.id))


_JOIN = ("FROM incidents i JOIN incident_facts f ON f.incident_id = i.id"
         " JOIN report_facets rf ON rf.id = f.facets_id")


def _read(db: Connection, where: str, args: dict[str, Any]) -> list[Fact]:
    out = []
    for r in db.execute(f"SELECT {ROW}, rf.facets, {', '.join(f'f.{c}' for c in COLUMNS)}"
                        f" {_JOIN} WHERE {where} ORDER BY i.id", args):
        facets = unpacked(r[6])
        ttd, tta, tte, ttfc, ttm, ttr, requests, bad, budget, value = r[7:]
        out.append(Fact(
            id=r[0], scenario=r[1], service=r[2], state=r[3], severity_final=r[4],
            created_at=r[5], kind=facets.kind, team=facets.team, model=facets.model,
            TTD=ttd, TTA=tta, TTE=tte, TTFC=ttfc, TTM=ttm, TTR=ttr,
            severity_declared=facets.severity_declared,
            severity_measured=facets.severity_measured, runbook=facets.runbook,
            runbook_status=facets.runbook_status, contained_by=facets.contained_by,
            escalated=facets.escalated, detection_missed=facets.detection_missed,
            verdict=facets.verdict, verdict_failed=facets.verdict_failed,
            requests=requests, bad=bad, budget=budget, score=value,
            targets_key=facets.targets_key, alert=facets.alert,
            alert_fired=facets.alert_fired))
    return out


def load(store: Store, where: str, args: dict[str, Any],
         targets: AnyTargets) -> list[Fact]:
    """The incidents matching ``where`` (over ``incidents i``), one ``Fact`` each, in id
    order (after a refresh)."""
    refresh(store, targets, where, args)
    db = store.reader()
    rows = _read(db, where, args)
    stale = [f.id for f in rows if f.targets_key != _key(targets, f.scenario)]
    if stale:
        _rescore(store, stale, targets)
        rows = _read(db, where, args)
    return rows


# -- column by column ----------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """The incidents in scope, column by column, in id order: row ``r`` is
    ``ids[r]``, opened at ``created[r]``, with facets ``facets[code[r]]`` and
    ``times[metric][r]`` (``None``: a moment never reached)."""

    ids: list[int]
    created: list[str]
    code: list[int]
    facets: list[Facets]
    times: dict[str, list[float | None]]
    score: list[int | None]
    codes: dict[str, int]  # the facets text -> its code
    chronological: bool = False  # opened in id order (as the store writes them)

    def __len__(self) -> int:
        return len(self.ids)

    def opened(self) -> tuple[str, str]:
        """When the first and the last of them were opened (not empty): the ends of
        ``created`` when it is chronological."""
        if self.chronological:
            return self.created[0], self.created[-1]
        return min(self.created), max(self.created)

    @cached_property
    def per_code(self) -> Counter[int]:
        """How many rows have each facets code, in the order codes first appear: what
        most figures count by (read, never changed)."""
        return Counter(self.code)

    @cached_property
    def latest_id(self) -> dict[int, int]:
        """Each facets code's latest incident (rows are in id order)."""
        return dict(zip(self.code, self.ids, strict=True))

    def latest_rows(self, keep: Iterable[bool], n: int) -> list[int]:
        """The last ``n`` rows whose facets ``keep`` says yes to, latest first."""
        wanted = list(keep)
        return list(islice(compress(range(len(self.ids) - 1, -1, -1),
                                    map(wanted.__getitem__, reversed(self.code))), n))

    def rows(self, keep: Iterable[bool]) -> list[int]:
        """The rows whose facets ``keep`` says yes to (one answer per code)."""
        wanted = list(keep)
        return list(compress(range(len(self.ids)), map(wanted.__getitem__, self.code)))

    def fact(self, r: int) -> Facets:
        return self.facets[self.code[r]]

    def select(self, rows: Sequence[int]) -> Table:
        """Only ``rows`` (in the order given)."""
        def pick(column: Sequence[Any]) -> list[Any]:
            return list(map(column.__getitem__, rows))

        return Table(ids=pick(self.ids), created=pick(self.created), code=pick(self.code),
                     facets=self.facets, times={m: pick(v) for m, v in self.times.items()},
                     score=pick(self.score), codes=self.codes,
                     chronological=self.chronological and list(rows) == sorted(rows))


_TABLE = ("i.id", "i.created_at", "f.facets_id", "f.ttd", "f.tta", "f.tte", "f.ttfc", "f.ttm",
          "f.ttr", "f.score", _STALE)


def _columns(store: Store, where: str, args: dict[str, Any]) -> list[list[Any]]:
    """``_TABLE``'s columns over the incidents matching ``where``, in id order."""
    rows = store.reader().tuples(f"SELECT {', '.join(_TABLE)} {_LEFT_JOIN} WHERE {where}"
                                 " ORDER BY i.id", args)
    return list(map(list, zip(*rows, strict=True))) if rows else [[] for _ in _TABLE]


def _kept_only(columns: list[list[Any]]) -> list[list[Any]]:
    """The rows with a kept row (an incident opened since the refresh has none yet)."""
    if None not in columns[2]:
        return columns
    keep = [text is not None for text in columns[2]]
    return [list(compress(column, keep)) for column in columns]


def table(store: Store, where: str, args: dict[str, Any],
          targets: AnyTargets) -> Table:
    """The incidents matching ``where`` (over ``incidents i``) as a ``Table``: one
    query, read column by column, each distinct facets text decoded once. The same
    query says which kept rows are stale (``_STALE``, what ``refresh`` asks): only then
    are they derived again and read again."""
    columns = _columns(store, where, args)
    if any(columns[-1]):  # a row without facts is stale too
        refresh(store, targets, where, args)
        columns = _kept_only(_columns(store, where, args))
    ids, created, numbers = columns[:3]
    numbered = {number: n for n, number in enumerate(dict.fromkeys(numbers))}
    text_of = _texts(store.reader(), numbered)
    codes = {text_of[number]: n for number, n in numbered.items()}
    facets = [unpacked(text) for text in codes]
    code = list(map(numbered.__getitem__, numbers))
    stale = [f.targets_key != _key(targets, f.scenario) for f in facets]
    if any(stale):
        _rescore(store, compress(ids, map(stale.__getitem__, code)), targets)
        return table(store, where, args, targets)
    return Table(ids=ids, created=created, code=code,
                 facets=facets, times=dict(zip(METRICS, columns[3:9], strict=True)),
                 score=columns[9], codes=codes,
                 chronological=all(map(le, created, islice(created, 1, None))))


Spans = list[tuple[int, int, int]]  # (key, start, end) in an ordering of rows


def ordered_spans(rows: list[int], key: list[int]) -> tuple[list[int], Spans]:
    """``rows`` ordered by ``key`` (stable: in id order within a key), and where each
    key's rows start and end in that order."""
    ordered = sorted(rows, key=key.__getitem__)
    sizes = Counter(map(key.__getitem__, rows))
    spans, at = [], 0
    for k in sorted(sizes):
        spans.append((k, at, at + sizes[k]))
        at += sizes[k]
    return ordered, spans
