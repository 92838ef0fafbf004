"""The report for people: its charts (``charts``, server-drawn SVG) and the page the
Insights view of ``gameday serve`` and ``gameday report --html`` both render
(``templates/insights/figures.html``).

What needs someone first comes first (``attention``): runbooks alerts link to that no
game day has verified lately, runs that failed since, overdue action items, severity
run too low. Then the trends, one chart per question, each saying which kind of
incident it counts and, on every point, how many.
"""

from __future__ import annotations

from typing import Any

from gameday.core import charts
from gameday.core.render import templates
from gameday.incidents.incident import INCIDENT, KINDS
from gameday.report.facts import GROUND_TRUTH
from gameday.report.insights import LABELS, METRICS, Report

ACCURACY = (charts.Segment("accurate", "#009e73"), charts.Segment("run too low", "#d55e00"),
            charts.Segment("run too high", "#e69f00"), charts.Segment("unmeasured", "#bbbbbb"))


def _series(weeks: list[dict[str, Any]], metric: str, name: str) -> charts.Series:
    return charts.Series(name, [w["metrics"][metric]["p50"] for w in weeks],
                         [f"n={w['metrics'][metric]['n']}, p90 {w['metrics'][metric]['p90']}"
                          f" s" if w["metrics"][metric]["n"] else "n=0" for w in weeks])


def week_ticks(weeks: list[str]) -> list[str]:
    """``2026-W47`` under the axis as ``W47``, with the year where it starts or turns."""
    out, year = [], None
    for week in weeks:
        out.append(week if week[:4] != year else week[5:])
        year = week[:4]
    return out


def figures(report: Report) -> dict[str, str]:
    """The page's charts, by name, as inline SVG: ``trend_KIND`` and ``score_KIND`` per
    kind with ground truth, ``trend_incident``, ``severity``."""
    out = {}
    for kind in GROUND_TRUTH:
        weeks = report.trend[kind]
        label = LABELS[kind].capitalize()
        out[f"trend_{kind}"] = charts.line_chart(
            [w["week"] for w in weeks],
            [_series(weeks, "TTD", "detect (TTD)"), _series(weeks, "TTM", "mitigate (TTM)"),
             _series(weeks, "TTR", "resolve (TTR)")],
            unit=" s", title=f"{label}: median seconds from the fault, per week",
            ticks=week_ticks([w["week"] for w in weeks]))
        out[f"score_{kind}"] = charts.line_chart(
            [w["week"] for w in weeks],
            [charts.Series("median score", [w["score"]["p50"] for w in weeks],
                           [f"n={w['score']['n']}, p90 {w['score']['p90']}" for w in weeks])],
            title=f"{label}: median score per week", y_max=100,
            ticks=week_ticks([w["week"] for w in weeks]))
    alerts = report.trend[INCIDENT]
    out[f"trend_{INCIDENT}"] = charts.line_chart(
        [w["week"] for w in alerts],
        [_series(alerts, "TTA", "acknowledge (TTA)"), _series(alerts, "TTE", "IC engaged (TTE)"),
         _series(alerts, "TTFC", "first comms (TTFC)")],
        unit=" s", title="Incidents from alerts: median seconds from the alert, per week",
        ticks=week_ticks([w["week"] for w in alerts]))
    rows = [(f"{LABELS[kind]}: {team}", [a["accurate"], a["too_low"], a["too_high"],
                                         a["unmeasured"]])
            for kind in KINDS for team, a in report.severity[kind]["by_team"].items()]
    out["severity"] = charts.bar_rows(rows, ACCURACY,
                                      title="Severity run at vs measured, per team")
    return out


def attention(report: Report) -> list[dict[str, str]]:
    """What someone should act on, most urgent first: ``{level, text, href}``. Alerts
    whose runbook is stale or never verified are one line per status, not one per
    alert: the table below lists them all."""
    out: list[dict[str, str]] = []
    for f in report.runbooks:
        if f.failed_since_verified:
            out.append({"level": "bad", "href": f"/runs/{f.last_failed_run}",
                        "text": f"Runbook {f.runbook} failed (run #{f.last_failed_run}) "
                                "since a game day last verified it."})
    for status, what in (("stale", "not verified within {age:g} days"),
                         ("never verified", "never verified by a game day")):
        books = [f for f in report.runbooks if f.status == status and f.alerts]
        if books:
            alerts = sum(len(f.alerts) for f in books)
            names = ", ".join(f.runbook for f in books[:6]) + (
                f" and {len(books) - 6} more" if len(books) > 6 else "")
            out.append({"level": "warn", "href": "#runbooks",
                        "text": f"{alerts} alert{'s' if alerts > 1 else ''} link "
                                f"{len(books)} runbook{'s' if len(books) > 1 else ''} "
                                f"{what.format(age=report.scope.max_age_days)}: {names}."})
    for a in report.alerts:
        if a["status"] != "proven":
            out.append({"level": "bad" if a["status"] == "never fired" else "warn",
                        "href": "#alerts", "text": f"Alert {a['alert']} {a['status']} "
                        f"({a['fired']} of {a['game_days']} game days)."})
    for kind, a in report.actions.items():
        if a["overdue"]:
            who = ", ".join(f"{o} {n}" for o, n in a["overdue_by_owner"].items())
            out.append({"level": "warn", "href": "#actions",
                        "text": f"{a['overdue']} overdue action items from "
                                f"{LABELS[kind]} ({who})."})
    for kind, s in report.severity.items():
        low = s["overall"]["too_low"]
        if low:
            out.append({"level": "warn", "href": "#severity",
                        "text": f"{low} {LABELS[kind]} were run at a lower severity "
                                "than their measured impact."})
    return out


def context(report: Report, base: str = "") -> dict[str, Any]:
    """What ``insights/figures.html`` renders; its links to incidents, runs and runbooks
    start with ``base``: nothing on the server's own page, the server's address in a
    file read away from it."""
    return {"r": report.as_dict(), "charts": figures(report), "attention": attention(report),
            "metrics": METRICS, "labels": LABELS, "ground_truth": GROUND_TRUTH,
            "alert_metrics": ("TTA", "TTE", "TTFC"), "base": base}


def render_html(report: Report, base: str | None = None) -> str:
    """One self-contained HTML file (``gameday report --html``). Opened from a disk, a
    link like ``/incidents/4`` would lead nowhere: its links go to ``gameday serve`` at
    ``base``, the project's ``[serve] url`` unless given."""
    if base is None:
        from gameday.core.settings import current

        base = current().url
    return templates().get_template("insights/report.html").render(
        **context(report, base.rstrip("/")))
