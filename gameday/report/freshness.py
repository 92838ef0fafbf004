"""Runbook freshness: when a game day last proved each runbook works, and the alerts
that link one nobody should trust at 3am.

A runbook is *verified* by a game day whose run of it succeeded and contained the fault
(the scorecard's ``contained_by`` names it); *stale* when that was longer ago than the
age allowed (``max_age_days``); *never verified* otherwise. A failed run (any kind, not
in check mode) after the last verification is flagged too. Alerts that link a stale or
never-verified runbook are listed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import compress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gameday.core import clock
from gameday.core.states import RunStatus
from gameday.report.facts import GROUND_TRUTH, Table, ordered_spans, table
from gameday.report.objectives import scenario_targets
from gameday.store import Connection, Row, Store

DEFAULT_MAX_AGE_DAYS = 30
FAILED_RUNS = ("failed", "error", "timeout", "canceled")


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
    ran_without_containing_at: str | None = None  # when that game day opened
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


def age_days(at: str, now: datetime) -> float:
    return round((now - datetime.fromisoformat(at)).total_seconds() / 86400, 2)


def _rows_by(t: Table, key: Sequence[str | None]) -> dict[str, list[int]]:
    """The rows of each key (``key``: one per facets code, ``None`` to leave it out),
    in id order."""
    names = sorted({k for k in key if k is not None})
    number = {name: n for n, name in enumerate(names)}
    at = [-1 if k is None else number[k] for k in key]
    ordered, spans = ordered_spans(t.rows(k is not None for k in key),
                            list(map(at.__getitem__, t.code)))
    return {names[n]: ordered[start:end] for n, start, end in spans}


def freshness(db: Connection, t: Table, known: Sequence[str],
              alerts: dict[str, list[str]], *, max_age_days: float = DEFAULT_MAX_AGE_DAYS,
              now: datetime | None = None) -> list[Freshness]:
    """Every runbook on disk (``known``) or on the record. ``alerts``: runbook -> the
    alerts that link to it. A verification is dated by the game day's opening."""
    now = now or clock.now()
    ran = [f.kind in GROUND_TRUTH and bool(f.runbook) and f.runbook_status == RunStatus.SUCCESSFUL
           for f in t.facets]
    proved = [ok and f.contained_by == f"runbook {f.runbook}"
              for ok, f in zip(ran, t.facets, strict=True)]
    created, ids = t.created, t.ids
    verified: dict[str, tuple[str, int]] = {}  # runbook -> the latest (opened, incident)
    count: dict[str, int] = {}
    for name, rows in _rows_by(t, [f.runbook if p else None
                                   for f, p in zip(t.facets, proved, strict=True)]).items():
        count[name] = len(rows)
        if t.chronological:  # opened in id order: the latest is the last
            verified[name] = (created[rows[-1]], ids[rows[-1]])
        else:
            latest = max(map(created.__getitem__, rows))
            verified[name] = (latest, max(compress(
                map(ids.__getitem__, rows), map(latest.__eq__, map(created.__getitem__, rows)))))
    # The latest game day each ran in without containing the fault (a wrong link).
    wrong_rows = {name: rows[-1] for name, rows in _rows_by(
        t, [f.runbook if ok and not p else None
            for f, ok, p in zip(t.facets, ran, proved, strict=True)]).items()}
    failed: dict[str, Row] = {}
    marks = ", ".join("?" for _ in FAILED_RUNS)
    for r in db.execute(f"SELECT runbook, id, finished_at FROM runbook_runs WHERE id IN"
                        f" (SELECT MAX(id) FROM runbook_runs WHERE check_mode = 0 AND"
                        f" status IN ({marks}) GROUP BY runbook)", FAILED_RUNS):
        failed[r["runbook"]] = r
    out = []
    for name in sorted({*known, *verified, *wrong_rows, *failed}):
        last = verified.get(name)
        bad = failed.get(name)
        age = age_days(last[0], now) if last else None
        status = ("never verified" if last is None else
                  "stale" if age is not None and age > max_age_days else "verified")
        out.append(Freshness(
            runbook=name, status=status, verified_by=last[1] if last else None,
            verified_at=last[0] if last else None, verified_days_ago=age,
            verifications=count.get(name, 0),
            last_failed_run=bad["id"] if bad else None,
            last_failed_at=bad["finished_at"] if bad else None,
            failed_since_verified=bool(bad and (last is None or (bad["finished_at"] or "")
                                                > last[0])),
            ran_without_containing=ids[wrong_rows[name]] if name in wrong_rows else None,
            ran_without_containing_at=created[wrong_rows[name]] if name in wrong_rows
            else None,
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


def runbook_freshness(store: Store, name: str, *,
                      max_age_days: float = DEFAULT_MAX_AGE_DAYS,
                      now: datetime | None = None) -> Freshness:
    """One runbook's freshness (the one-click page), from the game days that ran it
    (``runbook_runs``, by its index) rather than the whole store."""
    db = store.reader()
    t = table(store, "i.id IN (SELECT incident_id FROM runbook_runs WHERE"
                                    " runbook = :runbook)", {"runbook": name},
                             scenario_targets(db))
    (found,) = [f for f in freshness(db, t, [name], {}, max_age_days=max_age_days, now=now)
                if f.runbook == name]
    return found
