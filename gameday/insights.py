"""Learning across game days: response times, severity accuracy, runbook freshness and
action items, read from the whole store at once (``gameday report``, the Insights
page, ``/metrics``).

Where it sits: the domain layer, beside ``scoring``. Each incident is one ``Fact``
(``incident_facts``: its scorecard's metrics, derived from its events by SQL
aggregates and kept on the incident row), so a game day's figures here are its
scorecard's; the timelines are never replayed one by one. The figures are computed
column by column (each metric sorted once, see ``partitioned``); ``bench/report_scale.py``
times the whole report over 100,000 incidents and 2,000,000 events.

**Kinds are never mixed.** Every figure is per kind (``KINDS``): a *game day* is an
incident a scenario opened (it knows when the fault began: TTD, TTM and TTR start at
``fault.injected``); a *drill* is a game day with people responding (``gameday
drill``; its incident's ``kind``); an *incident* was opened by an alert and only knows
when the alert fired, so its TTD, TTM and TTR are absent, not guessed.
``incident_facts.kind_sql`` and ``kind_of`` are the one place that decides. A drill's
paused spans are not taken out here (its debrief does that).

**Medians and percentiles, never a bare mean** (Google's "Incident Metrics in SRE"):
every distribution is ``{n, p50, p90}``. Percentiles interpolate linearly between
the closest ranks (numpy's default, ``statistics.quantiles(method="inclusive")``): the
p50 of 1, 2, 3, 4 is 2.5 and its p90 is 3.7.

**Runbook freshness.** A runbook is *verified* by a game day whose run of it succeeded
and contained the fault (the scorecard's ``contained_by`` names it); *stale* when that
was longer ago than the age allowed (``max_age_days``); *never verified* otherwise.
A failed run (any kind, not in check mode) after the last verification is flagged too.
Alerts that link a stale or never-verified runbook are listed: those are the runbooks
nobody should trust at 3am.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import compress
from operator import attrgetter, is_not, itemgetter
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import yaml

from gameday.errors import ValidationError
from gameday.incident_facts import (
    DRILL,
    GAMEDAY,
    GROUND_TRUTH,
    INCIDENT,
    KINDS,
    TTD_AT,
    Fact,
    by_ids,
    iso_week,
    kind_sql,
    load,
    scenario_targets,
)
from gameday.policy import downplayed, rank, worse
from gameday.store import Store

LABELS = {GAMEDAY: "game days", DRILL: "drills", INCIDENT: "incidents from alerts"}
METRICS = ("TTD", "TTA", "TTE", "TTFC", "TTM", "TTR")
DIMENSIONS = ("scenario", "service", "team", "severity")
DEFAULT_MAX_AGE_DAYS = 30
FAILED_RUNS = ("failed", "error", "timeout", "canceled")
NO_VALUE = "(none)"  # a group for incidents without a team, service or severity


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


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``2w``, ``12h`` back from ``now``, or a date or time (UTC unless it
    says otherwise). A ``ValidationError`` of ``--since`` for anything else."""
    text = text.strip()
    m = AGE.fullmatch(text)
    if m:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(m[1]) * AGE_UNITS[m[2]])
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is neither an age like 30d, 2w or 12h nor a date "
                              "like 2026-11-01", field="--since") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# -- percentiles -------------------------------------------------------------------------
def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, interpolating between closest ranks."""
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


_present = partial(is_not, None)  # filter() with it runs at C speed
_CREATED = attrgetter("created_at")
_DAY = itemgetter(slice(0, 10))


def distribution(values: Iterable[float | None]) -> dict[str, Any]:
    """``{n, p50, p90}`` of the values present (``None`` is a moment never reached)."""
    return _summary(sorted(cast("Iterable[float]", filter(_present, values))))


# -- one row per incident ----------------------------------------------------------------
def _where(scope: Scope) -> tuple[str, dict[str, Any]]:
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


def facts(store: Store, scope: Scope | None = None) -> list[Fact]:
    """Every incident in scope, with its scorecard's metrics (``incident_facts``)."""
    scope = scope or Scope()
    where, args = _where(scope)
    rows = load(store, where, args, scenario_targets(store.reader()))
    if scope.team or scope.kind:
        rows = [f for f in rows if (not scope.team or f.team == scope.team)
                and (not scope.kind or f.kind == scope.kind)]
    return rows


def group(f: Fact, dimension: str) -> str:
    return getattr(f, "severity_final" if dimension == "severity" else dimension) or NO_VALUE


# -- response times ----------------------------------------------------------------------
def _summary(ordered: Sequence[float]) -> dict[str, Any]:
    if not ordered:
        return {"n": 0, "p50": None, "p90": None}
    return {"n": len(ordered), "p50": round(percentile(ordered, 0.5), 3),
            "p90": round(percentile(ordered, 0.9), 3)}


def partitioned(rows: list[Fact], dimensions: Sequence[str]) -> dict[str, dict[str, Any]]:
    """TTx ``{n, p50, p90}`` overall (``""``) and per group of each dimension:
    ``{dimension: {group: {"n", "metrics"}}}``. Each metric is sorted once; walking that
    order hands every group its values already sorted (100,000 incidents in a tenth of
    the time sorting each group would take)."""
    names: dict[str, list[str]] = {}
    codes: dict[str, list[int]] = {}
    for dimension in dimensions:  # column by column, in C (map, dict.fromkeys)
        if dimension == "week":
            column: list[Any] = list(map(iso_week, map(_DAY, map(_CREATED, rows))))
        else:
            field = "severity_final" if dimension == "severity" else dimension
            column = list(map(attrgetter(field), rows))
        index = {value: code for code, value in enumerate(dict.fromkeys(column))}
        codes[dimension] = list(map(index.__getitem__, column))
        names[dimension] = [value or NO_VALUE for value in index]
    out: dict[str, dict[str, Any]] = {"": {"": {"n": len(rows), "metrics": {}}}}
    for dimension in dimensions:
        sizes = [0] * len(names[dimension])
        for code in codes[dimension]:
            sizes[code] += 1
        out[dimension] = {name: {"n": sizes[c], "metrics": {}}
                          for c, name in enumerate(names[dimension])}
    columns = [list(map(itemgetter(at), rows))
               for at in range(TTD_AT, TTD_AT + len(METRICS))]
    for metric, column in zip(METRICS, columns, strict=True):
        present = list(compress(range(len(column)), map(_present, column)))
        order = sorted(present, key=column.__getitem__)
        values = list(map(column.__getitem__, order))
        out[""][""]["metrics"][metric] = _summary(values)
        for dimension in dimensions:
            buckets: list[list[float]] = [[] for _ in names[dimension]]
            put = [b.append for b in buckets]
            for code, value in zip(map(codes[dimension].__getitem__, order), values,
                                   strict=True):
                put[code](value)
            for c, name in enumerate(names[dimension]):
                out[dimension][name]["metrics"][metric] = _summary(buckets[c])
    return out


def _ordered(groups: dict[str, Any]) -> dict[str, Any]:
    return {name: groups[name] for name in sorted(groups, key=_group_order)}


def response_times(rows: list[Fact]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per kind: TTx ``{n, p50, p90}`` overall and per scenario, service, team and
    severity (the final one); and per ISO week (oldest first) with, for game days and
    drills, the score's and the escalations."""
    response: dict[str, Any] = {}
    trend: dict[str, Any] = {}
    for kind in KINDS:
        mine = [f for f in rows if f.kind == kind]
        parts = partitioned(mine, (*DIMENSIONS, "week"))
        response[kind] = {"overall": parts[""][""],
                          **{f"by_{d}": _ordered(parts[d]) for d in DIMENSIONS}}
        weeks: dict[str, list[Fact]] = defaultdict(list)
        if kind in GROUND_TRUTH:
            for f in mine:
                weeks[iso_week(f.created_at[:10])].append(f)
        trend[kind] = [{"week": week, **parts["week"][week],
                        "score": distribution(f.score for f in weeks.get(week, ())),
                        "escalated": sum(f.escalated for f in weeks.get(week, ()))}
                       for week in sorted(parts["week"])]
    return response, trend


def _group_order(name: str) -> tuple[int, str]:
    return (1, name) if name == NO_VALUE else (0, name)


# -- game days ---------------------------------------------------------------------------
def outcomes(rows: list[Fact], kind: str, verdicts: dict[str, int]) -> dict[str, Any]:
    """For game days or drills: scores, containment, escalations; verdicts where one
    was recorded."""
    days = [f for f in rows if f.kind == kind]
    contained: Counter[str] = Counter()
    for how, n in Counter(f.contained_by for f in days).items():
        how = how or "not contained"
        contained["runbook" if how.startswith("runbook ") else how] += n
    scores: dict[str, list[int | None]] = defaultdict(list)
    for name, value in zip([f.scenario for f in days], [f.score for f in days], strict=True):
        scores[name or NO_VALUE].append(value)
    escalated = [f for f in days if f.escalated]
    recorded = sum(verdicts.values())
    return {
        "n": len(days),
        "score": distribution(f.score for f in days),
        "score_by_scenario": {name: distribution(group)
                              for name, group in sorted(scores.items())},
        "contained_by": dict(sorted(contained.items())),
        "escalations": {"n": len(escalated), "of": len(days),
                        "latest": [{"incident_id": f.id, "scenario": f.scenario,
                                    "runbook": f.runbook, "at": f.created_at}
                                   for f in escalated[::-1][:10]],
                        "by_scenario": _escalations(escalated)},
        "detection_missed": sum(1 for f in days if f.detection_missed),
        # Verdicts are recorded for scheduled game days (``schedule_runs``).
        "verdicts": {"recorded": recorded, "counts": verdicts,
                     "pass_rate": round(verdicts.get("passed", 0) / recorded, 3)
                     if recorded else None},
    }


def _escalations(escalated: list[Fact]) -> list[dict[str, Any]]:
    """Escalated game days by scenario and runbook, most first: how often, the latest."""
    seen: dict[tuple[str | None, str | None], list[Fact]] = defaultdict(list)
    for f in escalated:
        seen[(f.scenario, f.runbook)].append(f)
    return [{"scenario": sc, "runbook": rb, "n": len(group), "latest": group[-1].id}
            for (sc, rb), group in sorted(seen.items(), key=lambda kv: -len(kv[1]))]


def _verdicts(db: sqlite3.Connection, ids: set[int]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in db.execute("SELECT incident_id, status FROM schedule_runs WHERE incident_id"
                        " IS NOT NULL AND status IN ('passed', 'failed', 'deviated',"
                        " 'interrupted')"):
        if r["incident_id"] in ids:
            counts[r["status"]] += 1
    return dict(sorted(counts.items()))


# -- severity accuracy -------------------------------------------------------------------
def _accuracy(combos: Iterable[tuple[tuple[str | None, str | None, str | None], int]]
              ) -> dict[str, Any]:
    """Run at (the final severity, as the scorecard judges it) against measured, over
    ``((final, measured, declared), count)``."""
    out: dict[str, Any] = {"n": 0, "accurate": 0, "too_low": 0, "too_high": 0,
                           "unmeasured": 0, "declared_too_low": 0}
    for (final, measured, declared), count in combos:
        if final is None:
            continue
        out["n"] += count
        if measured is None:
            out["unmeasured"] += count
        elif downplayed(final, measured):
            out["too_low"] += count
        elif worse(final, measured):
            out["too_high"] += count
        else:
            out["accurate"] += count
        if downplayed(declared, measured):
            out["declared_too_low"] += count
    measured_n = out["n"] - out["unmeasured"]
    out["too_low_share"] = round(out["too_low"] / measured_n, 3) if measured_n else None
    return out


def severity_accuracy(rows: list[Fact]) -> dict[str, Any]:
    """Per kind: declared vs measured severity as a matrix (declared -> measured ->
    count), and the share run too low (downplayed) overall, per team and per response
    model. ``declared`` is the severity the incident was run at (its final one);
    ``declared_too_low`` counts the first declaration. Counted once per distinct
    combination (a few hundred), not per incident."""
    combos = Counter((f.kind, f.team, f.model, f.severity_final, f.severity_measured,
                      f.severity_declared) for f in rows)
    out: dict[str, Any] = {}
    for kind in KINDS:
        mine = [(c[1:], n) for c, n in combos.items() if c[0] == kind]
        matrix: dict[str, dict[str, int]] = {}
        for (_, _, final, measured, _), count in mine:
            if final is not None:
                row = matrix.setdefault(final, {})
                row[measured or "unmeasured"] = row.get(measured or "unmeasured", 0) + count
        by: dict[str, dict[str, Any]] = {}
        for dimension, at in (("team", 0), ("model", 1)):
            groups: dict[str, list[Any]] = defaultdict(list)
            for c, count in mine:
                groups[c[at] or NO_VALUE].append((c[2:], count))
            by[f"by_{dimension}"] = {k: _accuracy(groups[k])
                                     for k in sorted(groups, key=_group_order)}
        out[kind] = {"overall": _accuracy((c[2:], n) for c, n in mine),
                     "matrix": {s: dict(sorted(matrix[s].items())) for s in
                                sorted(matrix, key=rank)}, **by}
    return out


# -- runbook freshness -------------------------------------------------------------------
@dataclass(frozen=True)
class Freshness:
    """A runbook's record: last verified (incident, when), last failed run, and a
    game day where it ran fine but did not contain the fault (a wrong link)."""

    runbook: str
    status: str  # verified | stale | never verified
    verified_by: int | None = None
    verified_at: str | None = None
    verified_days_ago: float | None = None
    verifications: int = 0
    last_failed_run: int | None = None
    last_failed_at: str | None = None
    failed_since_verified: bool = False
    ran_without_containing: int | None = None
    known: bool = True  # found among the runbooks on disk
    alerts: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alerts": list(self.alerts), "ago": self.ago}

    @property
    def ago(self) -> str | None:
        """How long ago it was verified, as a person says it."""
        return None if self.verified_days_ago is None else f"{_days(self.verified_days_ago)} ago"

    @property
    def sentence(self) -> str:
        """What the one-click page says about it."""
        if self.status == "never verified":
            return "Never verified by a game day: no game day has run it and seen it " \
                   "contain the fault."
        days = self.verified_days_ago or 0.0
        text = f"Verified by game day #{self.verified_by}, {_days(days)} ago"
        if self.status == "stale":
            text += " (stale: older than the age allowed)"
        if self.failed_since_verified:
            text += f"; a run failed since (run #{self.last_failed_run})"
        return text + "."


def _days(days: float) -> str:
    if days < 1:
        hours = days * 24
        return "less than an hour" if hours < 1 else f"{hours:.0f} h"
    return f"{days:.0f} day" + ("" if round(days) == 1 else "s")


def _age_days(at: str, now: datetime) -> float:
    return round((now - datetime.fromisoformat(at)).total_seconds() / 86400, 2)


def freshness(db: sqlite3.Connection, rows: list[Fact], known: Sequence[str],
              alerts: dict[str, list[str]], *, max_age_days: float = DEFAULT_MAX_AGE_DAYS,
              now: datetime | None = None) -> list[Freshness]:
    """Every runbook on disk (``known``) or on the record. ``alerts``: runbook -> the
    alerts that link to it. A verification is dated by the game day's opening."""
    now = now or datetime.now(UTC)
    verified: dict[str, list[Fact]] = defaultdict(list)
    wrong: dict[str, Fact] = {}
    for f in rows:
        m = f
        if f.kind not in GROUND_TRUTH or not m.runbook or m.runbook_status != "successful":
            continue
        if m.contained_by == f"runbook {m.runbook}":
            verified[m.runbook].append(f)
        else:
            wrong[m.runbook] = f
    failed: dict[str, sqlite3.Row] = {}
    marks = ", ".join("?" for _ in FAILED_RUNS)
    for r in db.execute(f"SELECT runbook, MAX(id) AS id, finished_at FROM runbook_runs WHERE"
                        f" check_mode = 0 AND status IN ({marks}) GROUP BY runbook",
                        FAILED_RUNS):
        failed[r["runbook"]] = r
    names = sorted({*known, *verified, *wrong, *failed})
    out = []
    for name in names:
        proof = verified.get(name, [])
        last = max(proof, key=lambda f: (f.created_at, f.id)) if proof else None
        bad = failed.get(name)
        age = _age_days(last.created_at, now) if last else None
        status = ("never verified" if last is None else
                  "stale" if age is not None and age > max_age_days else "verified")
        out.append(Freshness(
            runbook=name, status=status, verified_by=last.id if last else None,
            verified_at=last.created_at if last else None, verified_days_ago=age,
            verifications=len(proof),
            last_failed_run=bad["id"] if bad else None,
            last_failed_at=bad["finished_at"] if bad else None,
            failed_since_verified=bool(bad and (last is None or (bad["finished_at"] or "")
                                                > last.created_at)),
            ran_without_containing=wrong[name].id if name in wrong else None,
            known=name in known, alerts=tuple(sorted(alerts.get(name, ())))))
    return out


def runbook_of_url(url: str) -> str | None:
    """The runbook a ``runbook_url`` names (``…/runbooks/NAME?...``), templated or not."""
    try:
        segments = [s for s in urlsplit(url).path.split("/") if s]
    except ValueError:
        return None
    return segments[-1] if len(segments) >= 2 and segments[-2] == "runbooks" else None


def alert_links(rule_files: Iterable[Path], runbooks: Iterable[Any]) -> dict[str, list[str]]:
    """runbook -> the alerts linking to it: Prometheus rules' ``runbook_url``, and the
    alerts a runbook's own metadata lists."""
    out: dict[str, set[str]] = defaultdict(set)
    for path in rule_files:
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for group in doc.get("groups") or []:
            for rule in group.get("rules") or []:
                url = (rule.get("annotations") or {}).get("runbook_url")
                name = runbook_of_url(url) if rule.get("alert") and url else None
                if name:
                    out[name].add(rule["alert"])
    for rb in runbooks:
        for alert in rb.alerts:
            out[rb.name].add(alert)
    return {k: sorted(v) for k, v in out.items()}


def stale_alerts(fresh: list[Freshness]) -> list[dict[str, Any]]:
    """Alerts whose runbook nobody has seen work lately: stale or never verified."""
    return [{"alert": alert, "runbook": f.runbook, "status": f.status,
             "verified_days_ago": f.verified_days_ago}
            for f in fresh if f.status != "verified" for alert in f.alerts]


# -- action items ------------------------------------------------------------------------
def action_items(db: sqlite3.Connection, rows: list[Fact], *,
                 now: datetime | None = None) -> dict[str, Any]:
    """Completion rate, overdue items (open, due before today) per owner and per team,
    the oldest open item's age, for the action items of the incidents in scope (per
    kind)."""
    now = now or datetime.now(UTC)
    today = now.date().isoformat()
    who = {f.id: (f.kind, f.team or NO_VALUE) for f in rows}
    total: Counter[str] = Counter()
    done: Counter[str] = Counter()
    still_open: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    oldest: dict[str, str] = {}
    by_team: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    for incident_id, n, n_done, n_late, first_open in db.execute(
            "SELECT incident_id, COUNT(*), SUM(status = 'done'), SUM(status = 'open' AND"
            " due < ?), MIN(CASE WHEN status = 'open' THEN created_at END) FROM action_items"
            " GROUP BY incident_id", (today,)):
        found = who.get(incident_id)
        if found is None:
            continue
        kind = found[0]
        total[kind] += n
        done[kind] += n_done
        if n_late:
            overdue[kind] += n_late
            by_team[kind][found[1]] += n_late
        if first_open is not None:
            still_open[kind] += n - n_done
            if kind not in oldest or first_open < oldest[kind]:
                oldest[kind] = first_open
    by_owner: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    open_by_owner: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    for incident_id, owner, n, n_late in db.execute(
            "SELECT incident_id, owner, COUNT(*), SUM(due < ?) FROM action_items WHERE"
            " status = 'open' GROUP BY incident_id, owner", (today,)):
        found = who.get(incident_id)
        if found is not None:
            open_by_owner[found[0]][owner] += n
            if n_late:
                by_owner[found[0]][owner] += n_late
    return {kind: {
        "total": total[kind], "done": done[kind], "open": still_open[kind],
        "overdue": overdue[kind],
        "completion_rate": round(done[kind] / total[kind], 3) if total[kind] else None,
        "oldest_open_days": max(0.0, _age_days(oldest[kind], now)) if kind in oldest
        else None,
        "overdue_by_owner": dict(sorted(by_owner[kind].items())),
        "overdue_by_team": dict(sorted(by_team[kind].items())),
        "open_by_owner": dict(sorted(open_by_owner[kind].items())),
    } for kind in KINDS}


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
    facts: list[Fact] = field(default_factory=list, repr=False)  # one per incident

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
                "stale_alerts": self.stale_alerts, "actions": self.actions}


def build(store: Store, scope: Scope | None = None, *,
          runbooks: Sequence[Any] = (), rule_files: Sequence[Path] = (),
          now: datetime | None = None,
          timer: Callable[[str], None] | None = None) -> Report:
    """The whole report. ``runbooks`` (``runbook.discover()``) and ``rule_files`` say
    which runbooks exist and which alerts link to them; ``timer(stage)`` is called
    after each stage (the bench uses it)."""
    now = now or datetime.now(UTC)
    scope = scope or Scope()
    tick = timer or (lambda stage: None)
    rows = facts(store, scope)
    tick("facts")
    db = store.reader()
    counts = {k: sum(1 for f in rows if f.kind == k) for k in KINDS}
    response, trend = response_times(rows)
    links = alert_links(rule_files, runbooks)
    fresh = freshness(db, rows, [rb.name for rb in runbooks], links,
                      max_age_days=scope.max_age_days, now=now)
    report = Report(
        scope=scope, generated_at=now.isoformat(timespec="seconds"), counts=counts,
        response=response, trend=trend,
        outcomes={k: outcomes(rows, k, _verdicts(db, {f.id for f in rows if f.kind == k}))
                  for k in GROUND_TRUTH},
        severity=severity_accuracy(rows), runbooks=fresh, stale_alerts=stale_alerts(fresh),
        actions=action_items(db, rows, now=now), facts=rows)
    tick("figures")
    return report


def runbook_freshness(store: Store, name: str, *,
                      max_age_days: float = DEFAULT_MAX_AGE_DAYS,
                      now: datetime | None = None) -> Freshness:
    """One runbook's freshness (the one-click page), from the game days that ran it
    (``runbook_runs``, by its index) rather than the whole store."""
    db = store.reader()
    ids = [r[0] for r in db.execute(
        "SELECT DISTINCT incident_id FROM runbook_runs WHERE runbook = ? AND"
        " incident_id IS NOT NULL", (name,))]
    rows = [f for f in by_ids(store, ids, scenario_targets(db)) if f.kind in GROUND_TRUTH]
    (found,) = [f for f in freshness(db, rows, [name], {}, max_age_days=max_age_days,
                                     now=now) if f.runbook == name]
    return found


def connection(store: Store) -> sqlite3.Connection:
    """The store's connection for this thread: the report reads with its own SQL
    (aggregates the store has no method for)."""
    return store.reader()


def dumps(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str)

