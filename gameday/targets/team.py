"""What every target on a team's own system shares (a service, a cluster): its
Prometheus and Alertmanager on the allowlist, the preflight of those and of the
Toxiproxy proxies the experiment acts on (``alert_path``: the path of their alert), and
the SLIs read with the team's PromQL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.core import safety
from gameday.core.errors import GamedayError
from gameday.scenarios.scenario import Scenario
from gameday.slis.traffic import Traffic
from gameday.targets.alert_path import sends_alerts

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
        found += sends_alerts(sc)
    for api, proxy in _proxies(experiment):
        from gameday.targets.toxiproxy import toxics

        try:
            on = toxics(api, proxy)
            found.append((f"Toxiproxy proxy {proxy}", not on,
                          f"{api}: " + (f"toxics on it already: {on}" if on else "clean")))
        except GamedayError as exc:
            found.append((f"Toxiproxy proxy {proxy}", False, str(exc)))
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
