"""The path of a team's alert to gameday: their Prometheus evaluates the rule and sends
what fires to their Alertmanager, which gameday asks (``alertmanager``).

``sends_alerts`` is the preflight of that path; ``where_it_stopped`` says, when the
alert did not reach gameday in time, where on that path it stopped. Both ask the
Prometheus the SLIs are read from, and only about a rule it evaluates itself (another
Prometheus or a ruler may evaluate it: then they say nothing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from gameday.core import clock
from gameday.core.errors import GamedayError
from gameday.scenarios.scenario import Scenario
from gameday.slis.prometheus import NotServed, alertmanagers, api
from gameday.targets.alertmanager import held

TRACE_WITHIN_S = 4.0  # every question of a trace, together


def _prometheus(sc: Scenario) -> str | None:
    """The team's Prometheus the SLIs are read from, if they are."""
    return sc.sli["prometheus"] if sc.sli.get("source") == "prometheus" else None


def _rule(prometheus: str, alert: str, timeout_s: float) -> dict[str, Any] | None:
    """The alerting rule ``alert`` as this Prometheus evaluates it (its health and last
    error among what it says); None when it does not evaluate it."""
    groups = (api(prometheus, "rules", timeout_s=timeout_s, type="alert") or {}).get(
        "groups") or []
    return next((r for g in groups for r in g.get("rules") or [] if r.get("name") == alert),
                None)


def sends_alerts(sc: Scenario) -> list[tuple[str, bool, str]]:
    """Preflight: when the team's Prometheus evaluates the scenario's alert, it sends
    alerts to an Alertmanager at all (``alertmanagers``: none just after it starts or
    reloads). A store that does not serve the question is not held against it."""
    prometheus, name = _prometheus(sc), sc.alert.name
    if prometheus is None or sc.alertmanager is None:
        return []
    check = "Prometheus sends alerts"
    try:
        if _rule(prometheus, name, TRACE_WITHIN_S) is None:
            return [(check, True, f"{name} is not a rule of {prometheus}: another "
                                  "Prometheus or ruler evaluates it (not checked here)")]
        sends = alertmanagers(prometheus)
    except NotServed as exc:
        return [(check, True, f"not checked: {exc}")]
    except GamedayError as exc:
        return [(check, False, str(exc))]
    if not sends:
        return [(check, False, f"{prometheus} evaluates {name} but sends alerts to no "
                               "Alertmanager (/api/v1/alertmanagers lists none: its alerting "
                               "configuration, or it started or reloaded in the last few "
                               "seconds)")]
    said = f"{prometheus} evaluates {name} and sends alerts to {', '.join(sends)}"
    ours = urlsplit(sc.alertmanager).netloc
    if not any(urlsplit(url).netloc == ours for url in sends):
        said += f" (not to {ours} by that name: the same Alertmanager under another?)"
    return [(check, True, said)]


def where_it_stopped(sc: Scenario, since_utc: datetime) -> dict[str, Any]:
    """Where the team's alert stopped on its way to gameday, after it did not reach their
    Alertmanager in time, as their Prometheus and Alertmanager tell it now:

    - ``rule_error``: Prometheus cannot evaluate the rule (its last error);
    - ``pending_after_s`` / ``firing_after_s``: when its ``ALERTS`` series first went
      pending and firing after ``since_utc``, ``pending_runs`` how many times it went
      pending (more than once: the expression did not hold). A matcher on a label the
      series does not carry (an external label, added as alerts are sent) is not held
      against it; ``labels_differ`` (``{label: [theirs, the scenario's]}``) when it was
      there only with other labels;
    - ``alertmanager``, once it fired: ``silenced`` (``silenced_by``: the silences),
      ``inhibited``, ``active`` (it arrived after the wait), ``other labels`` (held, with
      ``labels_differ``), ``absent``, or ``no answer``.

    Empty when they cannot tell: the SLIs do not come from Prometheus, it does not
    evaluate the rule or cannot answer. Every question together takes at most about
    TRACE_WITHIN_S."""
    prometheus, name = _prometheus(sc), sc.alert.name
    if prometheus is None or sc.alertmanager is None:
        return {}
    deadline = time.monotonic() + TRACE_WITHIN_S

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    matchers = dict(sc.alert.labels)
    start = since_utc.timestamp()
    end = max(clock.epoch(), start + 1.0)
    step = max(1.0, (end - start) / 1000)
    try:
        rule = _rule(prometheus, name, left())
        if rule is None:
            return {}
        series = (api(prometheus, "query_range", timeout_s=left(),
                      query=f"ALERTS{{alertname={json.dumps(name)}}}", start=f"{start:.3f}",
                      end=f"{end:.3f}", step=f"{step:.3f}") or {}).get("result") or []
    except GamedayError:
        return {}
    found: dict[str, Any] = {"prometheus": prometheus}
    if rule.get("health") == "err":
        found["rule_error"] = str(rule.get("lastError") or "")[:300]
    ours = [s for s in series if _agree(s.get("metric") or {}, matchers)]
    if not ours and series:
        found["labels_differ"] = _differ(series[0].get("metric") or {}, matchers)
        return found
    runs: dict[str, list[float]] = {}
    for one in ours:
        state = str((one.get("metric") or {}).get("alertstate"))
        times = [float(t) for t, _ in one.get("values") or []]
        # a run starts at the first point, and again after each gap in the series
        runs.setdefault(state, []).extend(
            t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 1.5 * step)
    for state, starts in runs.items():
        if state in ("pending", "firing") and starts:
            found[f"{state}_after_s"] = round(max(0.0, min(starts) - start), 1)
    if len(runs.get("pending", [])) > 1:
        found["pending_runs"] = len(runs["pending"])
    if "firing_after_s" in found:
        found.update(_in_alertmanager(sc.alertmanager, name, matchers, left))
    return found


def _agree(labels: dict[str, Any], matchers: dict[str, str]) -> bool:
    return all(labels.get(k, v) == v for k, v in matchers.items())


def _differ(labels: dict[str, Any], matchers: dict[str, str], *,
            missing: bool = False) -> dict[str, list[str | None]]:
    """The scenario's labels the alert carries with another value (``[theirs, ours]``);
    with ``missing``, and those it does not carry at all (``[None, ours]``): in
    Alertmanager, which matched none of them, a label left out is what differs."""
    return {k: [labels.get(k), v] for k, v in matchers.items()
            if labels.get(k, None if missing else v) != v}


def _in_alertmanager(alertmanager: str, name: str, matchers: dict[str, str],
                     left: Callable[[], float]) -> dict[str, Any]:
    """What Alertmanager holds of the alert that fired: why it is hidden, or that it is
    there with other labels, or not at all."""
    try:
        there = held(alertmanager, {"alertname": name, **matchers}, timeout_s=left())
        if not there:
            other = held(alertmanager, {"alertname": name}, timeout_s=left())
            if other:
                return {"alertmanager": "other labels",
                        "labels_differ": _differ(other[0].get("labels") or {}, matchers,
                                                 missing=True)}
            return {"alertmanager": "absent"}
    except GamedayError:
        return {"alertmanager": "no answer"}
    status = [a.get("status") or {} for a in there]
    silences = sorted({str(s) for one in status for s in one.get("silencedBy") or []})
    if silences:
        return {"alertmanager": "silenced", "silenced_by": silences}
    if any(one.get("inhibitedBy") for one in status):
        return {"alertmanager": "inhibited"}
    return {"alertmanager": "active"}
