"""Learning across game days: response times, severity accuracy, runbook freshness and
action items, read from the whole store at once (``gameday report``, the Insights
page, ``/metrics``).

Where it sits: the domain layer, beside ``scoring``. Each incident is one row of
``incident_facts`` (its scorecard's metrics, derived from its events by SQL aggregates
and kept in the store), read column by column as a ``Table``, so a game day's figures
here are its scorecard's; the timelines are never replayed one by one.
``bench/report_scale.py`` times the whole report over 100,000 incidents and 2,000,000
events.

**Kinds are never mixed.** Every figure is per kind (``KINDS``): a *game day* is an
incident a scenario opened (it knows when the fault began: TTD, TTM and TTR start at
``fault.injected``); a *drill* is a game day with people responding (``gameday
drill``; its incident's ``kind``); an *incident* was opened by an alert and only knows
when the alert fired, so its TTD, TTM and TTR are absent, not guessed.
``store.incidents.kind_sql`` and ``report.facts.kind_of`` are the one place that decides. A drill's
paused spans are not taken out here (its debrief does that).

**Medians and percentiles, never a bare mean** (Google's "Incident Metrics in SRE"):
every distribution is ``{n, p50, p90}``, exact. Percentiles interpolate linearly
between the closest ranks (numpy's default, ``statistics.quantiles(method=
"inclusive")``): the p50 of 1, 2, 3, 4 is 2.5 and its p90 is 3.7. How they are
computed fast (``spread``, with numpy): each row's group in every dimension and its
week are numbered once (``groups_of``); each metric's column is sorted once per kind,
and each grouping is a stable sort of that order by the group's number (a radix sort),
so every group's values come out sorted as one slice of one array (``group_runs``):
never a sort per group, never a Python loop over the rows.

**Weeks.** The trend has every ISO week from the window's start (``--since``, else the
first incident in scope) to now, with ``n`` 0 for a week without data: a gap shows.
**Verdicts.** Every game day records its verdict on its timeline (``gameday.verdict``);
the pass rate counts those (before that event, the verdict its schedule run kept).
Elsewhere: ``freshness``, ``trust`` (the ladder of automatic runs), ``actions``, ``alerts``.
"""

from __future__ import annotations

import gc
import json
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from operator import is_not, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from gameday.core import clock
from gameday.core.errors import ValidationError
from gameday.incidents.incident import DRILL, GAMEDAY, INCIDENT, KINDS
from gameday.report import facts as incident_facts
from gameday.report.actions import action_items
from gameday.report.alerts import proof
from gameday.report.facts import (
    GROUND_TRUTH,
    NO_VALUE,
    Fact,
    Table,
    group_order,
    iso_week,
)
from gameday.report.facts import METRICS as METRICS  # the report's, for its readers
from gameday.report.freshness import (
    DEFAULT_MAX_AGE_DAYS,
    Freshness,
    alert_links,
    freshness,
    stale_alerts,
)
from gameday.report.objectives import scenario_targets
from gameday.report.severity import severity_accuracy
from gameday.report.trust import Automation, ladder
from gameday.store import Connection, Store
from gameday.store.incidents import kind_sql

if TYPE_CHECKING:  # numpy itself is imported when a report is built
    import numpy as np
    from numpy.typing import NDArray

LABELS: dict[str, str] = {GAMEDAY: "game days", DRILL: "drills", INCIDENT: "incidents from alerts"}
DIMENSIONS = ("scenario", "service", "team", "severity")
VERDICTS = ("passed", "failed", "deviated", "interrupted")


# -- the window and the filters ----------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """Which incidents a report covers: opened at or after ``since`` (and before
    ``until``), of one service, team, scenario or kind when given."""

    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    team: str | None = None
    scenario: str | None = None
    kind: str | None = None
    max_age_days: float = DEFAULT_MAX_AGE_DAYS

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in asdict(self).items()}


AGE = re.compile(r"(\d+(?:\.\d+)?)([hdw])")
AGE_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # no incident was opened before


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``2w``, ``12h`` back from ``now``, or a date or time (UTC unless it
    says otherwise). A ``ValidationError`` of ``--since`` for anything else."""
    text = text.strip()
    m = AGE.fullmatch(text)
    try:
        if m:
            at = (now or clock.now()) - timedelta(seconds=float(m[1]) * AGE_UNITS[m[2]])
        else:
            at = datetime.fromisoformat(text)
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        at = None
    if at is None or at < EARLIEST:
        raise ValidationError(f"{text[:40]!r} is neither an age like 30d, 2w or 12h nor a "
                              "date like 2026-11-01 (from 1970 on)", field="--since")
    return at


# -- percentiles -------------------------------------------------------------------------
def percentile(ordered: Ranked, q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, interpolating between closest ranks."""
    if not len(ordered):
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    a, b = float(ordered[low]), float(ordered[min(low + 1, len(ordered) - 1)])
    return a + (b - a) * (pos - low)


Ranked: TypeAlias = "Sequence[float] | NDArray[np.float64]"  # sorted values
_present = partial(is_not, None)  # filter() with it runs at C speed
_DAY = itemgetter(slice(0, 10))  # the date of an ISO time


def _summary(ordered: Ranked) -> dict[str, Any]:
    """``{n, p50, p90}`` of sorted values (a ``Sorted`` reads only the ranks needed)."""
    if not len(ordered):
        return {"n": 0, "p50": None, "p90": None}
    return {"n": len(ordered), "p50": round(percentile(ordered, 0.5), 3),
            "p90": round(percentile(ordered, 0.9), 3)}


def distribution(values: Iterable[float | None]) -> dict[str, Any]:
    """``{n, p50, p90}`` of the values present (``None`` is a moment never reached)."""
    return _summary(sorted(cast("Iterable[float]", filter(_present, values))))


# -- the incidents in scope --------------------------------------------------------------
def _where(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The SQL part of the scope, over ``incidents i``; the team (an alert's label) and
    a drill told by its declaration are facets, kept apart in ``_keep``."""
    where: list[str] = ["1 = 1"]
    args: dict[str, Any] = {}
    if scope.since:
        where.append("i.created_at >= :since")
        args["since"] = scope.since.astimezone(UTC).isoformat()
    if scope.until:
        where.append("i.created_at < :until")
        args["until"] = scope.until.astimezone(UTC).isoformat()
    for column in ("service", "scenario"):
        if getattr(scope, column):
            where.append(f"i.{column} = :{column}")
            args[column] = getattr(scope, column)
    if scope.kind:  # an older drill is a game day here; ``kind_of`` tells them apart
        where.append(f"{kind_sql()} IN (:kind, :or_kind)")
        args["kind"] = scope.kind
        args["or_kind"] = GAMEDAY if scope.kind == DRILL else scope.kind
    return " AND ".join(where), args


def _keep(scope: Scope, f: Any) -> bool:
    return (not scope.team or f.team == scope.team) and (not scope.kind or f.kind == scope.kind)


def facts(store: Store, scope: Scope | None = None) -> list[Fact]:
    """Every incident in scope, one ``Fact`` each (``incident_facts``)."""
    scope = scope or Scope()
    where, args = _where(scope)
    rows = incident_facts.load(store, where, args, scenario_targets(store.reader()))
    return [f for f in rows if _keep(scope, f)]


def table(store: Store, scope: Scope | None = None) -> Table:
    """Every incident in scope, column by column (``incident_facts.Table``)."""
    scope = scope or Scope()
    where, args = _where(scope)
    t = incident_facts.table(store, where, args, scenario_targets(store.reader()))
    if scope.team or scope.kind:
        t = t.select(t.rows(_keep(scope, f) for f in t.facets))
    return t


def group(f: Fact, dimension: str) -> str:
    return getattr(f, "severity_final" if dimension == "severity" else dimension) or NO_VALUE


def _ordered(groups: dict[str, Any]) -> dict[str, Any]:
    return {name: groups[name] for name in sorted(groups, key=group_order)}


# -- weeks -------------------------------------------------------------------------------
def _monday(week: str) -> date:
    return date.fromisocalendar(int(week[:4]), int(week[6:]), 1)


def week_axis(first: str | None, last: str | None) -> list[str]:
    """Every ISO week from ``first`` to ``last`` (``2026-W47``), empty ones too."""
    if first is None or last is None:
        return []
    day, end = _monday(first), _monday(last)
    out = []
    while day <= end:
        out.append(iso_week(day.isoformat()))
        day += timedelta(days=7)
    return out


def _axis(t: Table, scope: Scope, now: datetime) -> list[str]:
    """The trend's weeks: from the window's start (or the first incident) to now (or
    the window's end), never short of the data."""
    if not len(t) and scope.since is None:
        return []
    first, latest = t.opened() if len(t) else (None, None)
    days = [d for d in (first[:10] if first else None,
                        scope.since.astimezone(UTC).date().isoformat() if scope.since
                        else None) if d]
    end = (scope.until or now).astimezone(UTC).date().isoformat()
    last = max([end, latest[:10]] if latest else [end])
    return week_axis(iso_week(min(days)), iso_week(last))


# -- spreads: exact order statistics per group ---------------------------------------------
Values: TypeAlias = "NDArray[np.float64]"  # one group's values of one column, sorted


def ordered(values: Values) -> list[float]:
    """Every value of a group, sorted, as a list."""
    return cast("list[float]", values.tolist())


@dataclass(frozen=True)
class Spread:
    """One kind's values per group, sorted: ``overall[column]``,
    ``groups[dimension][group][column]`` and ``weeks[week][column]``; ``n`` counts the
    incidents of each group, whether or not they have a value."""

    overall: dict[str, Values]
    groups: dict[str, dict[str, dict[str, Values]]]
    n: dict[str, dict[str, int]]
    weeks: dict[str, dict[str, Values]]
    week_n: dict[str, int]
    week_escalated: dict[str, int]


def _cell(f: incident_facts.Facets) -> tuple[str, str, str, str]:
    return (f.scenario or NO_VALUE, f.service or NO_VALUE, f.team or NO_VALUE,
            f.severity_final or NO_VALUE)


@dataclass(frozen=True)
class Groups:
    """The table's rows by group, found once for every kind and column: each row's group
    in each dimension of ``DIMENSIONS`` and its week (``key``), and the groups' names."""

    names: dict[str, list[str]]
    key: dict[str, NDArray[np.intp]]
    escalated: NDArray[np.intp]  # per row


def groups_of(t: Table, weeks: list[str], week_at: Sequence[int]) -> Groups:
    """``Groups`` of ``t``: each facets code's group in each dimension, then each row's
    through its code (``week_at``: each row's place in ``weeks``)."""
    import numpy as np

    code = np.asarray(t.code, dtype=np.intp)
    cells = [_cell(f) for f in t.facets]
    names: dict[str, list[str]] = {"week": weeks}
    key: dict[str, NDArray[np.intp]] = {"week": np.asarray(week_at, dtype=np.intp)}
    for i, dimension in enumerate(DIMENSIONS):
        found: dict[str, int] = {}
        of_code = np.array([found.setdefault(c[i], len(found)) for c in cells], dtype=np.intp)
        names[dimension], key[dimension] = list(found), of_code[code]
    escalated = np.array([int(f.escalated) for f in t.facets], dtype=np.intp)[code]
    return Groups(names, key, escalated)


def group_runs(values: Values, key: NDArray[np.intp], size: int
           ) -> tuple[Values, list[tuple[int, int, int]]]:
    """``values`` (sorted) ordered by ``key`` and, within a key, still by value (a
    stable sort by key: a radix sort for small keys), with where each key's run starts
    and ends: every group's values sorted, from one sort of the column."""
    import numpy as np

    by_key = np.argsort(key.astype(np.int32 if size >= 2 ** 15 else np.int16), kind="stable")
    ends = np.cumsum(np.bincount(key, minlength=size)).tolist()
    return values[by_key], [(g, start, end) for g, (start, end)
                            in enumerate(zip([0, *ends[:-1]], ends, strict=True))]


def spread(rows: Sequence[int], groups: Groups,
           columns: dict[str, tuple[NDArray[np.float64], Sequence[str]]]) -> Spread:
    """Over ``rows`` (of the table ``groups`` was found for): each column (name -> (a
    value per row, NaN for none; the dimensions it is wanted by)) sorted overall, per
    group of those of ``DIMENSIONS`` and per week. Each column is sorted once; each
    grouping is a stable sort of that order by the group's number."""
    import numpy as np

    at = np.asarray(rows, dtype=np.intp)
    key = {name: k[at] for name, k in groups.key.items()}
    counts = {name: np.bincount(k, minlength=len(groups.names[name])).tolist()
              for name, k in key.items()}
    n = {d: {groups.names[d][g]: c for g, c in enumerate(counts[d]) if c} for d in DIMENSIONS}
    weeks = groups.names["week"]
    escalated = np.bincount(key["week"], weights=groups.escalated[at],
                            minlength=len(weeks)).tolist()
    overall: dict[str, Values] = {}
    by_group: dict[str, dict[str, dict[str, Values]]] = {
        d: {name: {} for name in n[d]} for d in DIMENSIONS}
    by_week: dict[str, dict[str, Values]] = {
        weeks[w]: {} for w, c in enumerate(counts["week"]) if c}
    for name, (column, dimensions) in columns.items():
        values = column[at]
        present = ~np.isnan(values)
        kept = values[present]
        if not len(kept):  # no value at all (an alert's TTD): no groups, no weeks
            overall[name] = kept
            continue
        by_value = np.argsort(kept, kind="stable")
        everything = overall[name] = kept[by_value]
        for dimension in (*dimensions, "week"):
            runs, spans = group_runs(everything, key[dimension][present][by_value],
                                 len(groups.names[dimension]))
            for g, start, end in spans:
                if counts[dimension][g]:
                    into = by_week if dimension == "week" else by_group[dimension]
                    into[groups.names[dimension][g]][name] = runs[start:end]
    return Spread(overall=overall, groups=by_group, n=n, weeks=by_week,
                  week_n={weeks[w]: c for w, c in enumerate(counts["week"]) if c},
                  week_escalated={weeks[w]: int(escalated[w])
                                  for w, c in enumerate(counts["week"]) if c})


# -- response times ----------------------------------------------------------------------
def _metrics(values: Mapping[str, Ranked]) -> dict[str, Any]:
    return {m: _summary(values.get(m, [])) for m in METRICS}


def response_times(t: Table, weeks: list[str]
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Spread]]:
    """Per kind: TTx ``{n, p50, p90}`` overall and per scenario, service, team and
    severity (the final one); per ISO week of ``weeks`` (oldest first, empty weeks
    too) with the score's and the escalations; and each kind's ``Spread``."""
    import numpy as np

    response: dict[str, Any] = {}
    trend: dict[str, Any] = {}
    spreads: dict[str, Spread] = {}
    columns: dict[str, tuple[NDArray[np.float64], Sequence[str]]] = {
        m: (np.array(t.times[m], dtype=np.float64), DIMENSIONS) for m in METRICS}
    columns["score"] = (np.array(t.score, dtype=np.float64), ("scenario",))  # None: NaN
    week_of = {week: at for at, week in enumerate(weeks)}
    days = list(map(_DAY, t.created))
    day_week = {day: week_of[iso_week(day)] for day in set(days)}
    groups = groups_of(t, weeks, list(map(day_week.__getitem__, days)))
    for kind in KINDS:
        rows = t.rows(f.kind == kind for f in t.facets)
        s = spreads[kind] = spread(rows, groups, columns)
        response[kind] = {"overall": {"n": len(rows), "metrics": _metrics(s.overall)},
                          **{f"by_{d}": _ordered({name: {"n": s.n[d][name],
                                                         "metrics": _metrics(values)}
                                                  for name, values in s.groups[d].items()})
                             for d in DIMENSIONS}}
        trend[kind] = [{"week": week, "n": s.week_n.get(week, 0),
                        "metrics": _metrics(s.weeks.get(week, {})),
                        "score": _summary(s.weeks.get(week, {}).get("score", [])),
                        "escalated": s.week_escalated.get(week, 0)}
                       for week in weeks] if rows else []
    return response, trend, spreads


# -- game days ---------------------------------------------------------------------------
def outcomes(t: Table, kind: str, scores: Spread, scheduled: dict[int, str]
             ) -> dict[str, Any]:
    """For game days or drills: scores, containment, escalations, and the verdicts:
    each game day's own (``gameday.verdict``), else its schedule run's (``scheduled``:
    incident id -> status)."""
    per_code = t.per_code
    mine = {c: n for c, n in per_code.items() if t.facets[c].kind == kind}
    contained: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    failed_checks: Counter[str] = Counter()
    for c, n in mine.items():
        f = t.facets[c]
        how = f.contained_by or "not contained"
        contained["runbook" if how.startswith("runbook ") else how] += n
        if f.verdict:
            verdicts[f.verdict] += n
            for check in f.verdict_failed:
                failed_checks[check] += n
    ids = t.ids
    for incident_id, status in scheduled.items():
        at = bisect_left(ids, incident_id)
        if at < len(ids) and ids[at] == incident_id:
            f = t.fact(at)
            if f.kind == kind and f.verdict is None:
                verdicts[status] += 1
    escalated = [f.kind == kind and f.escalated for f in t.facets]
    recorded = sum(verdicts.values())
    return {
        "n": sum(mine.values()),
        "score": _summary(scores.overall.get("score", [])),
        "score_by_scenario": {name: _summary(values.get("score", [])) for name, values in
                              sorted(scores.groups["scenario"].items())},
        "contained_by": dict(sorted(contained.items())),
        "escalations": {"n": sum(n for c, n in mine.items() if escalated[c]),
                        "of": sum(mine.values()),
                        "latest": [{"incident_id": ids[r], "scenario": t.fact(r).scenario,
                                    "runbook": t.fact(r).runbook, "at": t.created[r]}
                                   for r in t.latest_rows(escalated, 10)],
                        "by_scenario": _escalations(t, escalated)},
        "detection_missed": sum(n for c, n in mine.items() if t.facets[c].detection_missed),
        "verdicts": {"recorded": recorded, "counts": dict(sorted(verdicts.items())),
                     "pass_rate": round(verdicts["passed"] / recorded, 3) if recorded
                     else None,
                     "failed_checks": dict(failed_checks.most_common())},
    }


def _escalations(t: Table, escalated: list[bool]) -> list[dict[str, Any]]:
    """Escalated game days (``escalated``: per facets code) by scenario and runbook,
    most first (ties: the first escalated first): how often, the latest."""
    seen: dict[tuple[str | None, str | None], list[int]] = {}
    for code, n in t.per_code.items():  # codes in the order they first appear
        if escalated[code]:
            f = t.facets[code]
            found = seen.setdefault((f.scenario, f.runbook), [0, 0])
            found[0] += n
            found[1] = max(found[1], t.latest_id[code])
    return [{"scenario": sc, "runbook": rb, "n": n, "latest": latest}
            for (sc, rb), (n, latest) in sorted(seen.items(), key=lambda kv: -kv[1][0])]


def _scheduled_verdicts(db: Connection) -> dict[int, str]:
    """Each scheduled game day's verdict as its schedule run kept it."""
    marks = ", ".join("?" for _ in VERDICTS)
    return {r[0]: r[1] for r in db.execute(
        f"SELECT incident_id, status FROM schedule_runs WHERE incident_id IS NOT NULL AND"
        f" status IN ({marks}) ORDER BY id", VERDICTS)}


# -- the report --------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    scope: Scope
    generated_at: str
    counts: dict[str, int]
    response: dict[str, Any]
    trend: dict[str, Any]
    outcomes: dict[str, Any]
    severity: dict[str, Any]
    runbooks: list[Freshness]
    stale_alerts: list[dict[str, Any]]
    actions: dict[str, Any]
    alerts: list[dict[str, Any]]  # which alerts game days proved (``alerts.proof``)
    trust: dict[str, Any]  # the trust ladder of automatic runs (``trust.ladder``)
    # the incidents in scope and each kind's sorted values per group (``/metrics``)
    table: Table = field(repr=False, compare=False)
    spreads: dict[str, Spread] = field(default_factory=dict, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope.as_dict(), "generated_at": self.generated_at,
                "kinds": {GAMEDAY: "opened by a scenario: timed from the injected fault",
                          DRILL: "a game day in drill mode: people respond to a real "
                                 "fault, timed from it",
                          INCIDENT: "opened by an alert: no ground truth, so no TTD, "
                                    "TTM or TTR"},
                "counts": self.counts, "response": self.response, "trend": self.trend,
                "outcomes": self.outcomes, "severity": self.severity,
                "runbooks": [f.as_dict() for f in self.runbooks],
                "stale_alerts": self.stale_alerts, "actions": self.actions,
                "alerts": self.alerts, "trust": self.trust}


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused, then as it was: a report over 100,000
    incidents makes a few million objects in cycle-free rows, lists and arrays, and
    the collector walked all of them twice a report (0.14 s of 0.85 s), freeing
    nothing that reference counting does not. Another thread's report that paused it
    first leaves it to that one to resume."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def build(store: Store, scope: Scope | None = None, *,
          runbooks: Sequence[Any] = (), rule_files: Sequence[Path] = (),
          policy: Automation | None = None, now: datetime | None = None,
          timer: Callable[[str], None] | None = None) -> Report:
    """The whole report. ``runbooks`` (``runbook.discover()``) and ``rule_files`` say
    which runbooks exist and which alerts link to them; ``timer(stage)`` is called
    after each stage (the bench uses it)."""
    with _no_cycle_collection():
        return _build(store, scope, runbooks=runbooks, rule_files=rule_files,
                      policy=policy, now=now, timer=timer)


def _build(store: Store, scope: Scope | None, *, runbooks: Sequence[Any],
           rule_files: Sequence[Path], policy: Automation | None, now: datetime | None,
           timer: Callable[[str], None] | None) -> Report:
    now = now or clock.now()
    scope = scope or Scope()
    tick = timer or (lambda stage: None)
    t = table(store, scope)
    tick("facts")
    db = store.reader()
    per_code = t.per_code
    counts: dict[str, int] = {k: sum(n for c, n in per_code.items() if t.facets[c].kind == k)
                              for k in KINDS}
    response, trend, spreads = response_times(t, _axis(t, scope, now))
    tick("percentiles")
    fresh = freshness(db, _proofs(store, t, scope), [rb.name for rb in runbooks],
                      alert_links(rule_files, runbooks), max_age_days=scope.max_age_days,
                      now=now)
    scheduled = _scheduled_verdicts(db)
    report = Report(
        scope=scope, generated_at=now.isoformat(timespec="seconds"), counts=counts,
        response=response, trend=trend,
        outcomes={k: outcomes(t, k, spreads[k], scheduled) for k in GROUND_TRUTH},
        severity=severity_accuracy(t), runbooks=fresh, stale_alerts=stale_alerts(fresh),
        actions=action_items(db, t, now=now), alerts=proof(db, t), table=t, spreads=spreads,
        trust=ladder(db, fresh, runbooks, policy or Automation(), t))
    tick("figures")
    return report


# The incidents that can prove a runbook: game days and drills that ran one.
RAN_A_RUNBOOK = (f"{kind_sql()} IN ('{GAMEDAY}', '{DRILL}')"
                 " AND i.id IN (SELECT incident_id FROM runbook_runs)")


def _proofs(store: Store, t: Table, scope: Scope) -> Table:
    """The incidents runbook freshness and the trust ladder are read from: every game
    day and drill that ran a runbook, whatever the report's window and filters (``t``
    when it has them all), since they say what the intake does now: a runbook a game
    day proved ten days ago runs by itself today, whether or not a report of the last
    week, of real incidents or of another service shows that game day."""
    if scope == Scope(max_age_days=scope.max_age_days):
        return t
    return incident_facts.table(store, RAN_A_RUNBOOK, {}, scenario_targets(store.reader()))


def connection(store: Store) -> Connection:
    """The store's connection for this thread: the report reads with its own SQL
    (aggregates the store has no method for)."""
    return store.reader()


def dumps(report: Report) -> str:
    with _no_cycle_collection():  # as while it was built
        return json.dumps(report.as_dict(), indent=2, default=str)
