"""The blameless review, written from the stored events (and the SLI samples for the
chart): ``review.md``, ``review.html`` and ``sli-chart.svg`` in the run directory.

Contributing factors name systems and processes, never a person. Action items come
from the findings, with an owner from the roster and a due date by severity, and are
tracked in the store. Free text (notes, comms, the scenario's description) goes
through a blame-language check whose warnings are printed in the review.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gameday.activities import faults
from gameday.core import charts, clock
from gameday.core.errors import NotFound, ValidationError
from gameday.core.events import Kind, in_time_order
from gameday.core.policy import due_days
from gameday.core.render import templates
from gameday.core.sentences import describe_event, where_it_stopped
from gameday.core.states import RunStatus
from gameday.core.text import LARGEST
from gameday.game.scoring import Metrics, Scorecard, first
from gameday.incidents.language import blame_warnings
from gameday.scenarios.scenario import Scenario
from gameday.slis.samples import sli_windows
from gameday.store import Store
from gameday.store.rows import ActionRow

MARKERS = ((Kind.FAULT_INJECTED, "fault", "#d62728"), (Kind.ALERT_FIRED, "alert", "#ff7f0e"),
           (Kind.INCIDENT_ACKNOWLEDGED, "ack", "#9467bd"),
           (Kind.RUNBOOK_STARTED, "runbook start", "#17becf"),
           (Kind.RUNBOOK_FINISHED, "runbook end", "#1f77b4"),
           (Kind.MITIGATED, "mitigated", "#2ca02c"),
           (Kind.FAULT_ROLLED_BACK, "rollback", "#8c564b"))


@dataclass(frozen=True)
class Finding:
    key: str
    factor: str
    action: str
    owner_role: str  # "team" (owning team's on-call) or "ic" (incident process)


def findings(events: list[dict[str, Any]], card: Scorecard) -> list[Finding]:
    out: list[Finding] = []
    for e in events:
        if e["kind"] == Kind.FAULT_INJECTED:
            provider = e["data"].get("provider") or {}
            func = str(provider.get("func") or "")
            declared = faults.lookup(f"{provider.get('module')}:{func}") if func else None
            if declared and declared.factor and declared.action \
                    and all(f.key != func for f in out):
                out.append(Finding(func, declared.factor, declared.action, "team"))
    m = card.metrics
    if m.detection_missed:
        out.append(_missed(events))
    if m.runbook and m.contained_by != f"runbook {m.runbook}":
        outcome = ("succeeded" if m.runbook_status == RunStatus.SUCCESSFUL
                   else f"ended {m.runbook_status}")
        out.append(Finding(
            "runbook-link",
            f"The alert linked runbook {m.runbook}, which does not contain this failure "
            f"mode: it {outcome} without bringing the SLIs back.",
            "Link the alert to a runbook that contains this failure mode, and exercise it",
            "team"))
    if m.runbook is None and not m.detection_missed:
        out.append(Finding("no-runbook", "No runbook was linked from the alert.",
                           "Write a command-level runbook and link it from the alert", "team"))
    for d in card.deductions:
        if d.metric in ("TTA", "TTE", "TTFC"):
            out.append(Finding(f"target-{d.metric}", f"Response target missed: {d.reason}.",
                               f"Review paging and the on-call process for {d.metric}", "ic"))
    if m.escalated:
        out.append(Finding("escalation", "Containment ran past its time box and the "
                                         "incident had to escalate.",
                           "Add a decision point to the runbook: escalate or roll back", "ic"))
    return out


def _missed(events: list[dict[str, Any]]) -> Finding:
    """The alert that did not fire, how long it was waited for and how long the SLIs
    were outside the objective meanwhile (``detection.missed``)."""
    data = next(e["data"] for e in events if e["kind"] == Kind.DETECTION_MISSED)
    factor = (f"Alert {data.get('alert')} did not fire within {data.get('waited_s', 0):g}s; "
              f"the SLIs were outside the objective for {data.get('outside_s', 0):g} "
              "seconds.")
    if data.get("fallback"):
        factor += " gameday's SLO burn detector opened the incident in its place."
    traced = _traced(events)
    if traced is None:
        return Finding("detection", factor, _make_it_fire(data.get("alert")), "team")
    return Finding("detection", f"{factor} Where it stopped: {where_it_stopped(traced)}.",
                   _unblock(data.get("alert"), traced), "team")


def _traced(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where the team's alert stopped (``detection.traced``), with what happened after
    it was asked: an instance their Alertmanager reported later arrived late."""
    traced = first(events, Kind.DETECTION_TRACED)
    if traced is None:
        return None
    data = dict(traced["data"])
    injected = first(events, Kind.FAULT_INJECTED)
    late = next((e for e in events if e["kind"] == Kind.ALERT_RECEIVED
                 and e["actor"] == "alertmanager" and e["seq"] > traced["seq"]), None)
    if late is not None and data.get("alertmanager") in ("absent", "no answer", None) \
            and data.get("firing_after_s") is not None:
        data["alertmanager"] = "active"
        if injected is not None:
            data["arrived_after_s"] = round(
                (late["at_monotonic_ns"] - injected["at_monotonic_ns"]) / 1e9, 1)
    return data


def _make_it_fire(alert: object) -> str:
    return (f"Make {alert} fire for this failure mode (its expression or its for: duration), "
            "or add an SLO burn alert that does")


def _unblock(alert: object, traced: dict[str, Any]) -> str:
    """What to change, by where the team's alert stopped (``detection.traced``)."""
    if traced.get("rule_error"):
        return f"Fix {alert}'s rule: the team's Prometheus cannot evaluate it"
    if traced.get("labels_differ") and traced.get("alertmanager") in (None, "other labels"):
        return (f"Give the scenario's alert.labels the labels {alert} carries (or the rule "
                "the labels the runbook needs)")
    if traced.get("firing_after_s") is None:
        if (traced.get("pending_runs") or 1) > 1:
            return (f"Make {alert}'s expression hold through this failure mode (a longer "
                    "rate window, a lower threshold), or add an SLO burn alert that does")
        if traced.get("pending_after_s") is not None:
            return (f"Shorten {alert}'s for: duration so that it fires for this failure "
                    "mode, or add an SLO burn alert that does")
        return _make_it_fire(alert)
    match traced.get("alertmanager"):
        case "silenced":
            return (f"Review the silence that hid {alert} "
                    f"({', '.join(traced.get('silenced_by') or [])}): it hides real pages too; "
                    "give silences an end and an owner")
        case "inhibited":
            return f"Check the inhibit rule that suppressed {alert} during this failure mode"
        case "absent":
            return ("Check where the Prometheus that evaluates it sends alerts (its "
                    "alerting configuration, /api/v1/alertmanagers) and what drops them on "
                    "the way")
        case "no answer":
            return (f"Find out why the team's Alertmanager did not answer, then run the game day "
                    f"again to see whether {alert} reaches it")
    return (f"Make {alert} reach Alertmanager sooner (its for: duration, its rule group's "
            "interval, Prometheus's evaluation interval)")


def track_actions(store: Store, incident_id: int, found: list[Finding], sc: Scenario,
                  severity: str, resolved_at: datetime) -> list[ActionRow]:
    due = (resolved_at + timedelta(days=due_days(severity))).date().isoformat()
    for f in found:
        owner = sc.team.oncall[0] if f.owner_role == "team" else sc.team.ic_rotation[0]
        store.upsert_action(incident_id, f.key, f.action, owner, due)
    return store.actions(incident_id=incident_id)


RATIO, LATENCY, OBJECTIVE, GRID = "#1f77b4", "#ff7f0e", "#2ca02c", "#e3e3e3"
WIDTH, LEFT, RIGHT, PLOT_HEIGHT = 860, 56, 64, 240
LANE = 14  # one line of the moments' names above the plot


def chart_svg(run_dir: Path, events: list[dict[str, Any]], slo_ratio: float,
              slo_p99: float) -> str:
    """The SLIs over time with markers for the response's moments, as inline SVG: time
    in round seconds from the timeline's first event (the review's ``t``), the success
    ratio on the left axis, p99 latency on the right, a legend above, and the moments'
    names in lanes between the legend and the plot, none covering another."""
    rows = [r for r in sli_windows(run_dir, limit=None, finished=True)[0] if r.get("total")]
    if not rows:
        return charts.empty(WIDTH, "no SLI samples recorded")
    t0 = min([rows[0]["at_ns"], *(e["at_monotonic_ns"] for e in events[:1])])
    moments = [(e["at_monotonic_ns"], label, color) for kind, label, color in MARKERS
               if (e := first(events, kind)) is not None]
    ticks = charts.time_ticks(max(
        (max([rows[-1]["at_ns"], *(at for at, _, _ in moments)]) - t0) / 1e9, 1.0))
    # a Prometheus reading with no number (NaN) leaves a gap in its line
    ratios = [r for r in rows if r.get("success_ratio") is not None]
    latencies = [r for r in rows if r.get("p99_ms") is not None]
    top_ms = 4 * charts.nice_max(max([*(r["p99_ms"] for r in latencies), slo_p99 * 2]) / 4)

    def x(ns: int) -> float:
        return float(LEFT + (ns - t0) / 1e9 / ticks[-1] * (WIDTH - LEFT - RIGHT))

    flags = charts.flags([charts.Mark(x(at), label, color) for at, label, color in moments],
                         width=WIDTH, font_size=11)
    lanes = max((flag.lane + 1 for flag in flags), default=0)
    wider = max([0, *(math.ceil(flag.right) + 2 - WIDTH for flag in flags)])  # a long name
    f = charts.Frame(WIDTH + wider, 30 + LANE * lanes + PLOT_HEIGHT + 28, left=LEFT,
                     right=RIGHT + wider, top=30 + LANE * lanes, bottom=28)

    def y(share: float) -> float:
        return f.top + (1 - share) * f.inner_height

    return "\n".join([
        charts.svg_open(f.width, f.height, label="Success ratio and p99 latency over the "
                                                 "game day, with the response's moments"),
        f.box(), *_chart_axes(f, ticks, top_ms),
        charts.line(f.left, f.width - f.right, y(slo_ratio), y(slo_ratio), OBJECTIVE,
                    dash="4 3"),
        charts.polyline([(x(r["at_ns"]), y(r["success_ratio"])) for r in ratios], RATIO,
                        width=2),
        charts.polyline([(x(r["at_ns"]), y(r["p99_ms"] / top_ms)) for r in latencies],
                        LATENCY, width=1.5, dash="2 2"),
        *_chart_legend(slo_ratio), *_chart_flags(f, flags), "</svg>"])


def _chart_axes(f: charts.Frame, ticks: list[float], top_ms: float) -> list[str]:
    """Gridlines with the success ratio's quarters on the left, the latency's on the
    right, and the seconds under the plot."""
    parts = []
    for k in range(5):
        at = f.top + (4 - k) / 4 * f.inner_height
        parts += [charts.line(f.left, f.width - f.right, at, at, GRID),
                  charts.text(f.left - 6, at + 4, f"{25 * k}%", fill=RATIO, anchor="end"),
                  charts.text(f.width - f.right + 6, at + 4, f"{top_ms * k / 4:g} ms",
                              fill=LATENCY)]
    for t in ticks:
        at = f.left + t / ticks[-1] * f.inner_width
        parts += [charts.line(at, at, f.top, f.height - f.bottom, GRID),
                  charts.text(at, f.height - f.bottom + 18, f"{t:g} s", fill="#444",
                              anchor="middle")]
    return parts


def _chart_legend(slo_ratio: float) -> list[str]:
    parts, at = [], float(LEFT)
    for name, color, dash, width in (
            ("success ratio (left)", RATIO, None, 2.0),
            ("p99 latency (right)", LATENCY, "2 2", 1.5),
            (f"objective: {slo_ratio * 100:.4g}% succeed", OBJECTIVE, "4 3", None)):
        parts += [charts.line(at, at + 18, 12, 12, color, width=width, dash=dash),
                  charts.text(at + 23, 16, name, fill="#222")]
        at += 23 + charts.text_width(name, 11) + 18
    return parts


def _chart_flags(f: charts.Frame, flags: list[charts.Flag]) -> list[str]:
    """Each moment's line from the bottom of the plot up to its name."""
    parts = []
    for flag in flags:
        baseline = f.top - 12 - LANE * flag.lane
        for m in flag.marks:
            parts.append(charts.line(m.x, m.x, f.height - f.bottom, baseline - 4, m.color,
                                     width=1.5))
        words: list[tuple[str, str]] = []
        for m in flag.marks:
            words += [(", ", "#444"), (m.label, m.color)]
        parts.append(charts.spans(flag.left, baseline, words[1:]))
    return parts


def measured_by(sc: Scenario) -> dict[str, Any]:
    """How the SLIs were measured, in the review's words: what one sample is, where it
    came from, and the team's queries when they were read from Prometheus."""
    sli = sc.sli
    if sli.get("source") == "prometheus":
        return {"unit": "Prometheus readings",
                "how": f"read from Prometheus at {sli['prometheus']} every "
                       f"{sli['interval']:g}s with the team's queries",
                "queries": {"success ratio": sli["success_ratio"],
                            "p99 latency (ms)": sli["latency_p99_ms"]}}
    if sc.target == "kwok" or (sc.target == "kubernetes" and sc.traffic_url is None):
        return {"unit": "replica samples", "queries": {},
                "how": f"the available replicas of {sc.workload.get('deployment')}, read "
                       "from the API server"}
    where = f" to {sc.traffic_url}" if sc.traffic_url else ""
    return {"unit": "requests", "how": f"{sc.traffic_rate:g} synthetic requests a second"
                                       f"{where}, measured by gameday", "queries": {}}


def run_info(run_dir: Path) -> dict[str, Any]:
    """What a run directory's ``run.json`` says (the game day wrote it when it started:
    its scenario, its incident, the store, when), checked: NotFound when there is none,
    a ValidationError naming the file (and the field) when it is not what a game day
    writes, so ``gameday score`` and ``gameday review`` say so (exit 2)."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        raise NotFound(f"{run_dir} is not a game day's run directory (no run.json)")
    info = _json_file(path)
    if not isinstance(info, dict):
        raise ValidationError("must be a JSON object, as a game day writes it",
                              file=str(path))
    incident_id = info.get("incident_id")
    if isinstance(incident_id, bool) or not isinstance(incident_id, int) \
            or not 1 <= incident_id <= LARGEST:
        raise ValidationError(f"must be the id of the game day's incident, not "
                              f"{str(incident_id)[:40]!r}", file=str(path),
                              field="incident_id")
    return info


def _json_file(path: Path) -> Any:
    """A run directory's JSON file, or a ValidationError naming it."""
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ValidationError(f"cannot be read: {exc.strerror or exc}",
                              file=str(path)) from None
    except ValueError as exc:  # not JSON, not UTF-8
        raise ValidationError(f"is not JSON ({exc})", file=str(path)) from None


def write_review(store: Store, incident_id: int, sc: Scenario, card: Scorecard,
                 run_dir: Path) -> dict[str, Any]:
    """Render the review from the store; returns the facts it was rendered from. The
    run directory's files are read before anything is written."""
    journal_path = run_dir / "journal.json"
    journal = _json_file(journal_path) if journal_path.exists() else {}
    if not isinstance(journal, dict):
        raise ValidationError("must be a JSON object (Chaos Toolkit's journal)",
                              file=str(journal_path))
    incident = store.incident(incident_id)
    events = in_time_order(store.events(incident_id))
    t0 = events[0]["at_monotonic_ns"] if events else 0
    resolved = first(events, Kind.INCIDENT_RESOLVED)
    resolved_at = datetime.fromisoformat(resolved["at_utc"]) if resolved else clock.now()
    found = findings(events, card)
    actions = track_actions(store, incident_id, found, sc,
                            card.metrics.severity_final or "SEV-4", resolved_at)
    free_text = {"scenario description": sc.description}
    for e in events:
        if e["kind"] == Kind.NOTE_ADDED:
            free_text[f"note by {e['actor']} (#{e['seq']})"] = e["data"].get("text", "")
        elif e["kind"] == Kind.COMMS_POSTED:
            free_text[f"{e['data']['audience']} update (#{e['seq']})"] = e["data"]["text"]
    roles: dict[str, str] = {}
    for e in events:
        if e["kind"] == Kind.ROLE_ASSIGNED:
            roles[e["data"]["role"]] = e["data"]["person"]
    chart = chart_svg(run_dir, events, sc.slo.success_ratio, sc.slo.latency_p99_ms)
    (run_dir / "sli-chart.svg").write_text(chart)
    m = card.metrics
    facts = {
        "incident": incident, "scenario": sc, "card": card, "m": m, "roles": roles,
        "timeline": [{**e, "t": (e["at_monotonic_ns"] - t0) / 1e9,
                      "what": describe_event(e)} for e in events],
        "findings": found, "actions": actions, "blame": blame_warnings(free_text),
        "went_well": went_well(card), "was_hard": was_hard(card), "lucky": lucky(events),
        "journal_status": journal.get("status"), "deviated": journal.get("deviated"),
        "run_dir": run_dir, "chart": chart, "generated_at": clock.now().isoformat(),
        "kubernetes": kubernetes_facts(run_dir, events, t0), "measured": measured_by(sc),
        "detection": detection(events, sc, m),
        "runbook_artifacts": sorted(str(p.relative_to(run_dir)) for p in
                                    (run_dir / "runbooks").glob("*/artifacts/*/status")),
    }
    env = templates()
    (run_dir / "review.md").write_text(env.get_template("review.md.j2").render(**facts))
    (run_dir / "review.html").write_text(env.get_template("review.html.j2").render(**facts))
    (run_dir / "scorecard.json").write_text(json.dumps(card.as_dict(), indent=2))
    return facts


def kubernetes_facts(run_dir: Path, events: list[dict[str, Any]], t0: int) -> dict[str, Any]:
    """Replica counts where they changed, and the events Kubernetes reported."""
    from gameday.targets.kube import replica_changes

    rows = [{**r, "t": (r["at_ns"] - t0) / 1e9} for r in replica_changes(run_dir / "k8s.jsonl")]
    k8s_events = [{**e["data"], "t": (e["at_monotonic_ns"] - t0) / 1e9}
                  for e in events if e["kind"] == Kind.K8S_EVENT]
    return {"replicas": rows, "events": k8s_events} if rows or k8s_events else {}


def detection(events: list[dict[str, Any]], sc: Scenario, m: Metrics) -> str:
    """How the fault was detected, in one sentence: whose alert fired, and when; or that
    it did not, and what opened the incident instead."""
    fired, missed = first(events, Kind.ALERT_FIRED), first(events, Kind.DETECTION_MISSED)
    name = sc.alert.name
    if missed is not None:
        said = (f"{missed['data'].get('alert')} did not fire within "
                f"{missed['data'].get('waited_s', 0):g} s; the SLIs were outside the "
                f"objective for {missed['data'].get('outside_s', 0):g} s of it.")
        traced = _traced(events)
        if traced is not None:
            said += f" Where it stopped: {where_it_stopped(traced)}."
        if fired is not None and m.TTD is not None:
            said += (f" gameday's SLO burn detector opened the incident in its place, "
                     f"{m.TTD:.2f} s after the fault began (TTD).")
        return said
    if fired is None or m.TTD is None:
        return f"No alert fired within {sc.timeouts.detect:g} s."
    if fired["actor"] == "alertmanager":
        return (f"{fired['data'].get('alertname') or name} fired {m.TTD:.2f} s after the fault "
                "began (TTD): the moment Alertmanager first reported it active.")
    return (f"The SLO burn alert fired {m.TTD:.2f} s after the fault began (TTD), on {name} "
            f"(success ratio below {sc.slo.success_ratio} or p99 above "
            f"{sc.slo.latency_p99_ms:g} ms over {sc.slo.window_s:g} s, held for "
            f"{sc.alert.for_s:g} s).")


def went_well(card: Scorecard) -> list[str]:
    m, out = card.metrics, []
    if m.TTD is not None and not m.detection_missed:
        out.append(f"The alert fired {m.TTD:.2f} s after the fault began.")
    if m.contained_by and m.contained_by.startswith("runbook"):
        out.append(f"The linked runbook contained the fault ({m.contained_by}).")
    if m.TTFC is not None and "TTFC" not in {d.metric for d in card.deductions}:
        out.append("The first status update went out within its target.")
    return out


def was_hard(card: Scorecard) -> list[str]:
    return [d.reason[0].upper() + d.reason[1:] + "." for d in card.deductions]


def lucky(events: list[dict[str, Any]]) -> list[str]:
    out = []
    declared = first(events, Kind.INCIDENT_DECLARED)
    measured = (declared["data"].get("measured") or {}) if declared else {}
    if (measured.get("success_ratio") or 0) >= 0.5:
        out.append("Most requests still succeeded: the entry point never went fully down.")
    if first(events, Kind.FAULT_ROLLED_BACK) and not first(events, Kind.RECOVERY_MISSED):
        out.append("The experiment's rollback was there as a safety net.")
    return out
