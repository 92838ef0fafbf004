"""What every target on a team's own system shares (a service, a cluster): its
Prometheus and Alertmanager on the allowlist, the preflight of those and of the
Toxiproxy proxies the experiment acts on, the SLIs read with the team's PromQL, and,
when their alert does not come, where it stopped."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.core import safety
from gameday.core.errors import GamedayError
from gameday.scenarios.scenario import Scenario
from gameday.slis.traffic import Traffic

if TYPE_CHECKING:
    from gameday.slis.samples import SliSource


def team_urls_allowed(sc: Scenario) -> None:
    """The team's Prometheus and Alertmanager, and the URL traffic goes to, must be on
    the allowlist ([safety] urls)."""
    file = str(sc.path)
    if sc.traffic_url is not None:
        safety.allowed("urls", sc.traffic_url, field="traffic.url", file=file)
    if sc.sli.get("source") == "prometheus":
        safety.allowed("urls", sc.sli["prometheus"], field="sli.prometheus", file=file)
    if sc.alertmanager is not None:
        safety.allowed("urls", sc.alertmanager, field="alertmanager", file=file)


def team_pieces(sc: Scenario, experiment: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Preflight: every query returns a series in the team's Prometheus, its
    Alertmanager answers (the alert not firing already), each Toxiproxy proxy the
    experiment acts on is there without toxics."""
    found = []
    if sc.sli.get("source") == "prometheus":
        from gameday.slis.prometheus import query

        for key, origin in zip(("success_ratio", "latency_p99_ms"), query_origins(sc),
                               strict=True):
            try:
                value = query(sc.sli["prometheus"], sc.sli[key], origin)
                found.append((f"Prometheus: {key}", True, f"{value!r} at "
                                                          f"{sc.sli['prometheus']}"))
            except GamedayError as exc:
                found.append((f"Prometheus: {key}", False, str(exc)))
    if sc.alertmanager is not None:
        from gameday.targets.alertmanager import active

        try:
            firing = active(sc.alertmanager, {"alertname": sc.alert.name})
            found.append(("Alertmanager", not firing, f"{sc.alertmanager}: {sc.alert.name} "
                          + ("is firing already" if firing else "is not firing")))
        except GamedayError as exc:
            found.append(("Alertmanager", False, str(exc)))
        found += _sends_alerts(sc)
    for api, proxy in _proxies(experiment):
        from gameday.targets.toxiproxy import toxics

        try:
            on = toxics(api, proxy)
            found.append((f"Toxiproxy proxy {proxy}", not on,
                          f"{api}: " + (f"toxics on it already: {on}" if on else "clean")))
        except GamedayError as exc:
            found.append((f"Toxiproxy proxy {proxy}", False, str(exc)))
    return found


def _prometheus(sc: Scenario) -> str | None:
    """The team's Prometheus the SLIs are read from, if they are."""
    return sc.sli["prometheus"] if sc.sli.get("source") == "prometheus" else None


def _evaluates(prometheus: str, alert: str) -> bool:
    """Whether ``alert`` is one of the alerting rules this Prometheus evaluates (else a
    ruler or another Prometheus does, and this one can say nothing about it)."""
    from gameday.slis.prometheus import api

    groups = (api(prometheus, "rules", type="alert") or {}).get("groups") or []
    return any(r.get("name") == alert for g in groups for r in g.get("rules") or [])


def _sends_alerts(sc: Scenario) -> list[tuple[str, bool, str]]:
    """Preflight: when the team's Prometheus evaluates the scenario's alert, it has an
    Alertmanager to send it to. It has none for a few seconds after it starts or
    reloads, and an alert that fires then reaches Alertmanager only after its
    ``resend_delay`` (1 min by default), too late for any game day."""
    from gameday.slis.prometheus import api

    prometheus, name = _prometheus(sc), sc.alert.name
    if prometheus is None:
        return []
    try:
        if not _evaluates(prometheus, name):
            return [("Prometheus: alert rule", True,
                     f"{name} is not a rule of {prometheus}: another Prometheus or ruler "
                     "evaluates it (not checked here)")]
        sends = [a.get("url", "?") for a in
                 (api(prometheus, "alertmanagers") or {}).get("activeAlertmanagers") or []]
    except GamedayError as exc:
        return [("Prometheus: alert rule", False, str(exc))]
    return [("Prometheus sends alerts", bool(sends),
             f"{prometheus} evaluates {name} and sends alerts to {', '.join(sends)}" if sends
             else f"{prometheus} evaluates {name} but sends alerts to no Alertmanager "
                  "(/api/v1/alertmanagers lists none: its alerting configuration, or it "
                  "started or reloaded in the last few seconds)")]


def where_it_stopped(sc: Scenario, since_utc: datetime) -> dict[str, Any]:
    """Where the team's alert stopped on its way to gameday, after it did not reach its
    Alertmanager in time, as far as their Prometheus (the SLIs' one) and Alertmanager
    can tell: when the rule went pending and when firing after ``since_utc`` (its
    ``ALERTS`` series; a matcher on a label the series does not carry, an external
    label, is not held against it), and, when it fired, what Alertmanager holds of it
    (``silenced`` with the silences' ids, ``inhibited``, ``active`` if it arrived late,
    or ``absent``: it never got there). Empty when they cannot tell: the SLIs do not
    come from Prometheus, another Prometheus evaluates the rule, a piece cannot
    answer."""
    from gameday.slis.prometheus import api
    from gameday.targets.alertmanager import held

    prometheus, name = _prometheus(sc), sc.alert.name
    if prometheus is None or sc.alertmanager is None:
        return {}
    matchers = dict(sc.alert.labels)
    start = since_utc.timestamp()
    end = max(time.time(), start + 1.0)
    try:
        if not _evaluates(prometheus, name):
            return {}
        series = (api(prometheus, "query_range", query=f"ALERTS{{alertname={json.dumps(name)}}}",
                      start=f"{start:.3f}", end=f"{end:.3f}",
                      step=f"{max(1.0, (end - start) / 1000):.3f}") or {}).get("result") or []
    except GamedayError:
        return {}
    first: dict[str, float] = {}
    for one in series:
        labels, values = one.get("metric") or {}, one.get("values") or []
        if values and all(labels.get(k, v) == v for k, v in matchers.items()):
            state = str(labels.get("alertstate"))
            first[state] = min(first.get(state, math.inf), float(values[0][0]) - start)
    found: dict[str, Any] = {"prometheus": prometheus}
    for state in ("pending", "firing"):
        if state in first:
            found[f"{state}_after_s"] = round(max(0.0, first[state]), 1)
    if "firing" not in first:
        return found
    try:
        there = held(sc.alertmanager, {"alertname": name, **matchers})
    except GamedayError:
        return found
    status = [a.get("status") or {} for a in there]
    silences = sorted({s for one in status for s in one.get("silencedBy") or []})
    if silences:
        found.update(alertmanager="silenced", silenced_by=silences)
    elif any(one.get("inhibitedBy") for one in status):
        found["alertmanager"] = "inhibited"
    else:
        found["alertmanager"] = "active" if there else "absent"
    return found


def query_origins(sc: Scenario) -> tuple[tuple[str, str], tuple[str, str]]:
    """Where the success ratio and latency queries were written: the scenario's ``sli``
    or the team's OpenSLO file."""
    own = str(sc.path)
    imported = sc.sli.get("openslo")
    if not imported:
        return (own, "sli.success_ratio"), (own, "sli.latency_p99_ms")
    slo = (imported["file"], f"SLO {imported['slo']}")
    return slo, (slo if "latency" in imported["queries"] else (own, "sli.latency_p99_ms"))


def prometheus_sli(sc: Scenario, samples_path: Path) -> SliSource:
    """The SLIs read with the team's queries; synthetic traffic to the URL the team
    gives (if any) runs beside them as load."""
    from gameday.slis.prometheus import PrometheusSli, Queries

    sli = sc.sli
    load = (Traffic(sc.traffic_url, sc.traffic_rate, sc.traffic_timeout_s, None)
            if sc.traffic_url else None)
    return PrometheusSli(Queries(sli["prometheus"], sli["success_ratio"],
                                 sli["latency_p99_ms"], sli["interval"],
                                 query_origins(sc)),
                         objective_ratio=sc.slo.success_ratio, samples_path=samples_path,
                         load=load, first_within_s=sc.timeouts.steady)


def _proxies(experiment: dict[str, Any]) -> list[tuple[str, str]]:
    """The (Toxiproxy API, proxy) pairs the experiment's activities act on."""
    pairs = []
    for section in ("method", "rollbacks"):
        for activity in experiment.get(section) or []:
            provider = activity.get("provider") if isinstance(activity, dict) else None
            if isinstance(provider, dict) and \
                    provider.get("module") == "gameday.activities.toxiproxy":
                arguments = provider.get("arguments") or {}
                pair = (str(arguments.get("api") or "http://127.0.0.1:8474"),
                        str(arguments.get("proxy")))
                if pair not in pairs:
                    pairs.append(pair)
    return pairs
