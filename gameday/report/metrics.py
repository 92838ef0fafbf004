"""What ``gameday serve`` tells Prometheus at ``/metrics``: the report's figures as
metrics (``prometheus-client``, imported only when scraped).

Everything is read from the store at scrape time, so every replica of ``gameday
serve`` on one store says the same thing and nothing is lost on restart. Every series
about incidents, alerts or runs has a ``kind`` (``incident``, ``gameday``, ``drill``):
a rehearsal's alerts (a game day's own Alertmanager) and runs are never counted with
the real ones an on-call watches.

============================================  ==========================================
gameday_incidents{kind}                       incidents in the store, per kind
gameday_response_seconds{kind,metric,service} histogram of TTD/TTA/TTE/TTFC/TTM/TTR
gameday_score{kind,scenario}                  the scenario's latest score (game day, drill)
gameday_score_median{kind,scenario}           and its median over the window
gameday_escalations{kind,scenario}            game days that had to escalate
gameday_severity_run_too_low{kind,team}       run at a lower severity than measured
gameday_runbook_verified{runbook}             1 if a game day ever verified it
gameday_runbook_last_verified_timestamp_seconds{runbook}
gameday_runbook_max_age_seconds{runbook}      verified longer ago than this is stale
gameday_runbook_failed_since_verified{runbook}
gameday_action_items_open{kind} / _overdue{kind,team} / completion_ratio{kind}
gameday_alerts_received_total{kind}           alert instances taken (redeliveries not)
gameday_runbook_runs{kind,status}             runs queued, running (and every ending)
============================================  ==========================================
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from gameday.incidents.incident import INCIDENT, KINDS
from gameday.report.facts import GROUND_TRUTH
from gameday.report.insights import METRICS, Report, ordered
from gameday.store.incidents import kind_sql

# Seconds: sandbox game days answer in seconds, real incidents in minutes to hours.
BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _histograms(r: Report) -> Any:
    """From each kind's values per service, already sorted by the report: a bucket's
    count is a bisection."""
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily("gameday_response_seconds",
                                   "Response times: TTD, TTA, TTE, TTFC, TTM, TTR",
                                   labels=["kind", "metric", "service"])
    groups: dict[tuple[str, str, str], list[float]] = {}
    for kind, spread in r.spreads.items():
        for service, by_metric in spread.groups["service"].items():
            for metric in METRICS:
                if metric in by_metric and len(by_metric[metric]):
                    groups[(kind, metric, service)] = ordered(by_metric[metric])
    for labels, values in sorted(groups.items()):
        buckets = [(str(float(b)), bisect_right(values, b)) for b in BUCKETS]
        buckets.append(("+Inf", len(values)))
        family.add_metric(list(labels), buckets, sum(values))
    return family


def _latest_scores(r: Report) -> dict[tuple[str, str], float]:
    """Each (kind, scenario)'s latest score: the table is in id order, read from the end."""
    t = r.table
    latest: dict[tuple[str, str], float] = {}
    for row in range(len(t) - 1, -1, -1):
        value = t.score[row]
        if value is not None:
            f = t.fact(row)
            if f.kind in GROUND_TRUTH and f.scenario:
                latest.setdefault((f.kind, f.scenario), value)
    return dict(sorted(latest.items()))


def families(r: Report, counts: dict[str, Any]) -> Iterator[Any]:
    """The metric families of one report and the store's counters."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def gauge(name: str, doc: str, labels: list[str],
              values: list[tuple[list[str], float]]) -> Any:
        family = GaugeMetricFamily(name, doc, labels=labels)
        for label_values, value in values:
            family.add_metric(label_values, value)
        return family

    yield gauge("gameday_incidents", "Incidents in the window, per kind", ["kind"],
                [([k], r.counts[k]) for k in KINDS])
    yield _histograms(r)
    latest = _latest_scores(r)
    escalated: Counter[tuple[str, str]] = Counter()
    for code, n in r.table.per_code.items():
        f = r.table.facets[code]
        if f.kind in GROUND_TRUTH and f.scenario:
            escalated[(f.kind, f.scenario)] += n if f.escalated else 0
    yield gauge("gameday_score", "The scenario's latest score (0-100)",
                ["kind", "scenario"], [(list(k), v) for k, v in latest.items()])
    yield gauge("gameday_score_median", "Median score over the window",
                ["kind", "scenario"], [([k, name], d["p50"]) for k in GROUND_TRUTH
                                       for name, d in
                                       r.outcomes[k]["score_by_scenario"].items()
                                       if d["n"]])
    yield gauge("gameday_escalations", "Game days (and drills) that escalated",
                ["kind", "scenario"], [(list(k), v) for k, v in sorted(escalated.items())])
    yield gauge("gameday_severity_run_too_low",
                "Incidents run at a lower severity than their measured impact",
                ["kind", "team"], [([k, team], a["too_low"]) for k in KINDS
                                   for team, a in r.severity[k]["by_team"].items()])
    max_age = r.scope.max_age_days * 86400
    fresh = r.runbooks
    yield gauge("gameday_runbook_verified", "1 if a game day has verified the runbook",
                ["runbook"], [([f.runbook], 1.0 if f.verified_at else 0.0) for f in fresh])
    yield gauge("gameday_runbook_last_verified_timestamp_seconds",
                "When a game day last verified the runbook (Unix time)", ["runbook"],
                [([f.runbook], datetime.fromisoformat(f.verified_at).timestamp())
                 for f in fresh if f.verified_at])
    yield gauge("gameday_runbook_max_age_seconds",
                "A runbook verified longer ago than this is stale", ["runbook"],
                [([f.runbook], max_age) for f in fresh])
    yield gauge("gameday_runbook_failed_since_verified",
                "1 if a run of the runbook failed since a game day verified it",
                ["runbook"], [([f.runbook], float(f.failed_since_verified)) for f in fresh])
    a = r.actions
    yield gauge("gameday_action_items_open", "Open action items", ["kind"],
                [([k], a[k]["open"]) for k in KINDS])
    yield gauge("gameday_action_items_overdue", "Open action items past their due date",
                ["kind", "team"], [([k, t], n) for k in KINDS
                                   for t, n in a[k]["overdue_by_team"].items()])
    yield gauge("gameday_action_items_completion_ratio", "Done / all action items",
                ["kind"], [([k], a[k]["completion_rate"]) for k in KINDS
                           if a[k]["completion_rate"] is not None])
    received = CounterMetricFamily("gameday_alerts_received",
                                   "Alert instances received (redeliveries not counted), "
                                   "per kind of incident they went to", labels=["kind"])
    for kind, n in sorted(counts["alerts_received"].items()):
        received.add_metric([kind], n)
    yield received
    yield gauge("gameday_runbook_runs", "Runbook runs by kind and status (queued and "
                "running now)", ["kind", "status"],
                [([kind, status], n) for (kind, status), n in
                 sorted(counts["runs_by_status"].items())])


def counters(db: Any) -> dict[str, Any]:
    """The store's own counts, per kind: alert instances taken (the kind of the incident
    each went to; one in none yet was taken by ``gameday serve``'s intake, which opens
    only real incidents), runs by status (the kind each run keeps)."""
    received = {k: 0 for k in KINDS}
    for kind, n in db.tuples(f"SELECT {kind_sql()}, COUNT(*)"
                             " FROM alert_instances a LEFT JOIN incidents i"
                             " ON i.id = a.incident_id GROUP BY 1"):
        received[kind] = n
    by_status = {(k, s): 0 for k in KINDS for s in ("queued", "running")}
    for kind, status, n in db.tuples(f"SELECT COALESCE(kind, '{INCIDENT}'), status, COUNT(*)"
                                     " FROM runbook_runs GROUP BY 1, 2"):
        by_status[(kind, status)] = n
    return {"alerts_received": received, "runs_by_status": by_status}


def exposition(report: Report, db: Any) -> bytes:
    """The Prometheus text format for one report."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.registry import Collector

    counts = counters(db)

    class ReportCollector(Collector):
        def collect(self) -> Iterator[Any]:
            yield from families(report, counts)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector())
    return generate_latest(registry)
