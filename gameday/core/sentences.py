"""The timeline in words: one sentence per event, the same in the terminal, the review
and the web pages (``describe``), from the kinds and payloads ``events`` defines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gameday.core.events import Kind, Recorded
from gameday.core.states import IncidentKind

SAMPLES = {"request": "requests", "reading": "Prometheus readings",
           "replica": "replica samples"}  # what an SLI source's samples are, in words


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"


def describe(kind: str, actor: str, data: Mapping[str, Any]) -> str:
    """One line a person reads: the same in the terminal, the review and the web."""
    for lines in (_incident_line, _runbook_line, _game_line):
        line = lines(kind, actor, data)
        if line is not None:
            return line
    return ", ".join(f"{k}={v}" for k, v in data.items()
                     if isinstance(v, str | int | float | bool))[:120]


def _incident_line(kind: str, actor: str, d: Mapping[str, Any]) -> str | None:
    """The fault, the alert and what people do about it."""
    match kind:
        case Kind.FAULT_INJECTED | Kind.FAULT_ROLLED_BACK | Kind.CHAOS_ACTION_FAILED:
            how = f": {d['reason']}" if d.get("reason") else ""  # a person's, by hand
            return f"{d.get('activity')} ({d.get('status')}){how}"
        case Kind.IMPACT_STARTED:
            if d.get("unit") == "reading":
                return ("first Prometheus reading outside the objective: "
                        + ("success ratio below it" if d.get("status") != 200 else
                           f"p99 {d.get('latency_ms')} ms"))
            return f"first bad request: status {d.get('status')}, {d.get('latency_ms')} ms"
        case Kind.ALERT_FIRED:
            sli = d.get("sli") or {}
            if not sli:
                return f"{d.get('alertname')} from {actor}"
            by = " (in its place: gameday's SLO burn detector)" if d.get("fallback") else ""
            return (f"{d.get('alertname')}{by}: success {_ratio(sli.get('success_ratio'))}, "
                    f"p99 {sli.get('p99_ms') or 0:.0f} ms")
        case Kind.ALERT_RECEIVED | Kind.ALERT_RESOLVED:
            return f"{d.get('alertname')}"
        case Kind.INCIDENT_DECLARED:
            if d.get("model"):
                return f"{d['severity']} ({d.get('model')} model, {d.get('mode')} response)"
            return f"{d['severity']} on {d.get('alert')}"
        case Kind.INCIDENT_ACKNOWLEDGED:
            return f"by {actor}" + (f" via {d['via']}" if d.get("via") else "")
        case Kind.INCIDENT_ESCALATED | Kind.INCIDENT_CANCELLED | Kind.INCIDENT_ABORTED:
            return str(d.get("reason"))
        case Kind.INCIDENT_RESOLVED:
            return f"by {actor}: {d.get('how')}" if d.get("how") else f"by {actor}"
        case Kind.MITIGATION_DECLARED:
            return (f"{actor} declares the impact contained"
                    + (f": {d.get('how')}" if d.get("how") else ""))
        case Kind.PAGE_SENT:
            return f"{d['person']} as {d['role'].replace('_', ' ')}: {d['reason']}"
        case Kind.ROLE_ASSIGNED:
            text = f"{d['role'].replace('_', ' ')}: {d['person']}"
            return text + (f" ({d['reason']})" if d.get("reason") else "")
        case Kind.SEVERITY_CHANGED:
            return f"{d.get('previous')} -> {d['severity']}: {d.get('reason')}"
        case Kind.COMMS_POSTED:
            return f"{d['audience']} update by {actor}"
        case Kind.NOTE_ADDED:
            return f"{actor}: {d.get('text')}"
        case _:
            return None


def _runbook_line(kind: str, actor: str, d: Mapping[str, Any]) -> str | None:
    """A runbook run, from its queueing to its end."""
    match kind:
        case Kind.RUNBOOK_QUEUED:
            return f"{d['runbook']} (run {d.get('run_id')})"
        case Kind.APPROVAL_REQUESTED:
            return (f"{d['runbook']} (run {d.get('run_id')}) waits for a second person's "
                    f"approval until {str(d.get('expires_at'))[11:19]} UTC")
        case Kind.RUNBOOK_APPROVED:
            return (f"{d['runbook']} (run {d.get('run_id')}) approved by {actor}, asked by "
                    f"{d.get('requested_by')}")
        case Kind.APPROVAL_EXPIRED:
            return (f"{d['runbook']} (run {d.get('run_id')}): nobody approved it by "
                    f"{str(d.get('expires_at'))[11:19]} UTC; it will not run")
        case Kind.RUNBOOK_STARTED:
            params = " ".join(f"{k}={v}" for k, v in (d.get("params") or {}).items())
            return f"{d['runbook']} {params}".strip() + (" (check mode)" if d.get("check") else "")
        case Kind.RUNBOOK_TASK:
            return f"{d['status']:8} {d.get('task')}"
        case Kind.RUNBOOK_FINISHED:
            text = f"{d['runbook']}: {d['status']} (rc {d.get('rc')})"
            return text + (f": {d['error']}" if d.get("error") else "")
        case Kind.RUNBOOK_LATE:
            return (f"{d['runbook']} (run {d.get('run_id')}): {d['status']} (rc {d.get('rc')})"
                    f" arrived after the run had ended {d.get('ended_as')}; kept, not an end")
        case Kind.RUNBOOK_REJECTED:
            return f"{d.get('runbook') or 'runbook'} refused: {d.get('error')}"
        case Kind.RUNBOOK_COALESCED:
            return (f"{d.get('alert')} joined run {d.get('run_id')} of {d['runbook']} "
                    f"({d.get('because')})")
        case Kind.RUNBOOK_MISSING:
            return f"no runbook linked to {d.get('alert')}"
        case Kind.RUNBOOK_HELD:
            return (f"{d['runbook']} not run by itself: {d.get('why')}; it waits for one "
                    "click")
        case _:
            return None


def _game_line(kind: str, actor: str, d: Mapping[str, Any]) -> str | None:
    """The game day, the drill and the target around the incident."""
    match kind:
        case Kind.MITIGATED:
            unit = SAMPLES.get(str(d.get("unit")), "requests")
            return (f"SLIs inside the objective; {d.get('bad_requests')} of "
                    f"{d.get('requests')} {unit} missed it")
        case Kind.STEADY_STATE_CHECKED:
            return f"{d['phase']}: {'met' if d['met'] else 'NOT met'}"
        case Kind.STEADY_STATE_REACHED:
            sli = d.get("sli") or {}
            return (f"success {_ratio(sli.get('success_ratio'))}, "
                    f"p99 {sli.get('p99_ms') or 0:.0f} ms")
        case Kind.RUN_CRASHED:
            faults = ", ".join(d.get("faults") or []) or "none"
            return (f"process {d.get('pid')} on {d.get('host')} gone, silent "
                    f"{d.get('silent_s')} s; faults to undo: {faults}")
        case Kind.DRILL_STARTED:
            return (f"drill {d.get('drill_id')} run by {d.get('game_master')} "
                    f"({d.get('difficulty')})")
        case Kind.DRILL_JOINED:
            return f"{d.get('person')} joins as {d.get('role')}"
        case Kind.DRILL_INJECT:
            return f"{d.get('sender')}: {d.get('message')}"
        case Kind.DRILL_FAULT:
            return (f"second fault for {d.get('inject')}: {d.get('activity')} "
                    f"({d.get('status')})")
        case Kind.DRILL_HINT:
            return f"hint ({d.get('stage')}, -{d.get('cost')}): {d.get('text')}"
        case Kind.DRILL_PAUSED:
            return "the drill clock stops"
        case Kind.DRILL_RESUMED:
            return "the drill clock runs again"
        case Kind.DRILL_ENDED:
            return str(d.get("reason") or "the drill ends")
        case Kind.DRILL_REPLAY:
            return (f"rehearses incident #{d.get('incident')} ({d.get('alert')}): "
                    f"{d.get('fault')}, because {d.get('why')}")
        case Kind.GAMEDAY_SCHEDULED:
            return f"by schedule {d['schedule']} (due {str(d.get('due_at'))[:19]})"
        case Kind.GAMEDAY_FROZEN:
            return f"stopped by the freeze ({d.get('who')}: {d.get('reason') or 'no reason'})"
        case Kind.GAMEDAY_VERDICT:
            why = "; ".join(f"{name}: {text}" for name, text in (d.get("why") or {}).items())
            return f"{d.get('status')} (exit {d.get('exit_code')})" + (f": {why}" if why else "")
        case Kind.TARGET_STOPPED if d.get("reason"):  # by a person's hands
            return f"{d.get('target')} target stopped by hand: {d['reason']}"
        case Kind.GAMEDAY_INTERRUPTED:
            return f"by {d.get('signal') or 'a signal'}; experiment {d.get('experiment')}"
        case Kind.GAME_STOPPED:
            return f"stop condition: {d.get('reason')}; rolling the fault back"
        case Kind.DETECTION_MISSED:
            return f"no {d.get('alert')} alert within {d.get('waited_s')} s"
        case Kind.DETECTION_TRACED:
            return f"{d.get('alert')}: {where_it_stopped(d)}"
        case Kind.REHEARSAL_LIVE:
            what = "game day" if d.get("kind") == IncidentKind.GAMEDAY else "drill"
            return (f"{what} #{d.get('incident')} ({d.get('scenario')}) has a fault in "
                    f"{d.get('service')} ({d.get('target')}) right now: this alert may be "
                    "the rehearsal's; the response goes on as for any real alert")
        case Kind.REAL_INCIDENT_BESIDE:
            return (f"real incident #{d.get('incident')} opened for {d.get('service')} from "
                    f"{d.get('alert')} while this ran: the team's own paging saw it")
        case Kind.RECOVERY_MISSED:
            return f"the SLIs did not recover within {d.get('waited_s')} s"
        case Kind.K8S_EVENT:
            return f"{d.get('type')} {d.get('reason')} {d.get('object')}: {d.get('message')}"
        case Kind.CHAT_ROOM_OPENED:
            return f"room {d.get('name')} opened in {d.get('chat')}"
        case Kind.CHAT_UNAVAILABLE:
            return f"{d.get('chat')} did not answer (tried again): {d.get('error')}"
        case _:
            return None


def where_it_stopped(traced: Mapping[str, Any]) -> str:
    """A ``detection.traced`` in words: where the team's alert stopped on its way
    (``gameday.targets.alert_path.where_it_stopped`` says what each field means)."""
    pending, firing = traced.get("pending_after_s"), traced.get("firing_after_s")
    if traced.get("rule_error"):
        return f"the team's Prometheus could not evaluate it: {traced['rule_error']}"
    differ = "; ".join(f"{k}: {'none' if theirs is None else repr(theirs)} there, {ours!r} "
                       "in the scenario"
                       for k, (theirs, ours) in (traced.get("labels_differ") or {}).items())
    if firing is None:
        if differ:
            return ("the team's Prometheus had it only with other labels than the scenario's "
                    f"alert.labels ({differ})")
        if pending is not None and (traced.get("pending_runs") or 1) > 1:
            return (f"it went pending in the team's Prometheus {traced['pending_runs']} times from "
                    f"{pending:g} s after the fault began, its expression never holding for "
                    "the rule's for: duration")
        if pending is not None:
            return (f"it was pending in the team's Prometheus from {pending:g} s after the fault "
                    "began; the rule's for: duration kept it from firing within the detect "
                    "timeout")
        return ("its expression was never true in the team's Prometheus after the fault began "
                "(no ALERTS series for it)")
    said = f"the team's Prometheus had it firing {firing:g} s after the fault began"
    match traced.get("alertmanager"):
        case "silenced":
            return (f"{said}; the team's Alertmanager held it silenced "
                    f"(silence {', '.join(traced.get('silenced_by') or [])})")
        case "inhibited":
            return f"{said}; the team's Alertmanager held it inhibited by another alert"
        case "active":
            late = traced.get("arrived_after_s")
            return (f"{said}; it reached the team's Alertmanager only after the wait ended"
                    + (f", {late:g} s after the fault began" if late is not None else ""))
        case "other labels":
            return (f"{said}; the team's Alertmanager held it with other labels than the "
                    f"scenario's alert.labels ({differ})")
        case "absent":
            return (f"{said}, but it had not reached the team's Alertmanager when the wait ended "
                    "(where that Prometheus sends alerts: its /api/v1/alertmanagers)")
        case "no answer":
            return f"{said}; the team's Alertmanager did not answer when asked what it held"
    return said


def describe_event(event: Recorded | Mapping[str, Any]) -> str:
    if isinstance(event, Mapping):
        return describe(event["kind"], event["actor"], event["data"])
    return describe(event.kind, event.actor, event.data)
