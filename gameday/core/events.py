"""The timeline's vocabulary: every kind of event and the shape of its payload
(``sentences`` says how a person reads each).

Writers build an ``Entry`` with the constructor of its kind (``alert_fired(...)``,
``runbook_task(...)``) and hand it to ``Incident.record``; the store refuses a kind
that is not a ``Kind``. Readers (scoring, the review, the CLI, the web pages) compare
against ``Kind`` members and render with ``sentences.describe``: the terminal, the
review and the incident page say the same thing about the same event.
``in_time_order`` is the one ordering of a timeline: by when it happened, then by
sequence.

Payloads are plain JSON mappings in the store; every constructor writes all of its
keys (``None`` where a writer has nothing), so one kind has one shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class Kind(StrEnum):
    # ground truth: what the chaos experiment did
    FAULT_INJECTED = "fault.injected"
    FAULT_ROLLED_BACK = "fault.rolled_back"
    CHAOS_ACTION_FAILED = "chaos.action_failed"
    STEADY_STATE_CHECKED = "steady_state.checked"
    STEADY_STATE_REACHED = "steady_state.reached"
    # what the SLIs showed
    IMPACT_STARTED = "impact.started"
    MITIGATED = "mitigated"
    # alerts
    ALERT_FIRED = "alert.fired"
    ALERT_RECEIVED = "alert.received"
    ALERT_RESOLVED = "alert.resolved"
    # the incident and its people
    INCIDENT_DECLARED = "incident.declared"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
    INCIDENT_ESCALATED = "incident.escalated"
    INCIDENT_RESOLVED = "incident.resolved"
    MITIGATION_DECLARED = "incident.mitigation_declared"  # a call; ``mitigated`` is measured
    INCIDENT_REVIEWED = "incident.reviewed"
    INCIDENT_CANCELLED = "incident.cancelled"
    INCIDENT_ABORTED = "incident.aborted"
    PAGE_SENT = "page.sent"
    ROLE_ASSIGNED = "role.assigned"
    SEVERITY_CHANGED = "severity.changed"
    COMMS_POSTED = "comms.posted"
    NOTE_ADDED = "note.added"
    # runbooks
    RUNBOOK_QUEUED = "runbook.queued"
    APPROVAL_REQUESTED = "runbook.approval_requested"   # four eyes: a second person
    RUNBOOK_APPROVED = "runbook.approved"
    APPROVAL_EXPIRED = "runbook.approval_expired"
    RUNBOOK_STARTED = "runbook.started"
    RUNBOOK_TASK = "runbook.task"
    RUNBOOK_FINISHED = "runbook.finished"
    RUNBOOK_LATE = "runbook.late_result"   # a result after the run was ended elsewhere
    RUNBOOK_REJECTED = "runbook.rejected"
    RUNBOOK_COALESCED = "runbook.coalesced"
    RUNBOOK_MISSING = "runbook.missing"
    RUNBOOK_HELD = "runbook.held"         # automatic, but not proven: it waits for a click
    # the game day around the incident
    TARGET_READY = "target.ready"
    TARGET_STOPPED = "target.stopped"
    ALERTING_READY = "alerting.ready"
    DETECTION_MISSED = "detection.missed"
    DETECTION_TRACED = "detection.traced"  # where the team's alert stopped, as they tell it
    RECOVERY_MISSED = "recovery.missed"
    GAMEDAY_FAILED = "gameday.failed"
    GAMEDAY_INTERRUPTED = "gameday.interrupted"
    GAME_STOPPED = "game.stopped"
    GAMEDAY_SCHEDULED = "gameday.scheduled"
    GAMEDAY_FROZEN = "gameday.frozen"
    GAMEDAY_VERDICT = "gameday.verdict"
    RUN_CRASHED = "run.crashed"
    # a real alert while a rehearsal has a fault in the same service (``runs.intake``)
    REHEARSAL_LIVE = "rehearsal.live"  # on the real incident: which rehearsal may be its cause
    REAL_INCIDENT_BESIDE = "real_incident.beside"  # on the rehearsal: the real incident
    # training drills
    DRILL_STARTED = "drill.started"
    DRILL_JOINED = "drill.joined"
    DRILL_INJECT = "drill.inject"
    DRILL_HINT = "drill.hint"
    DRILL_FAULT = "drill.fault"
    DRILL_PAUSED = "drill.paused"
    DRILL_RESUMED = "drill.resumed"
    DRILL_ENDED = "drill.ended"
    DRILL_REPLAY = "drill.replay"
    K8S_EVENT = "k8s.event"
    # the incident's room in chat
    CHAT_ROOM_OPENED = "chat.room_opened"
    CHAT_UNAVAILABLE = "chat.unavailable"


@dataclass(frozen=True)
class Entry:
    """An event about to be recorded: its kind and its payload."""

    kind: Kind
    data: dict[str, Any]


class Recorded(Protocol):
    """A stored event (``store.Event``) as readers see it."""

    kind: str
    actor: str
    data: dict[str, Any]


# -- ground truth ---------------------------------------------------------------------
def _activity(name: str | None, status: str | None,
              provider: Mapping[str, Any] | None) -> dict[str, Any]:
    provider = provider or {}
    return {"activity": name, "status": status,
            "provider": {k: provider.get(k) for k in ("module", "func", "arguments")}}


def fault_injected(activity: str | None, status: str | None,
                   provider: Mapping[str, Any] | None, took_s: float) -> Entry:
    return Entry(Kind.FAULT_INJECTED, {**_activity(activity, status, provider),
                                       "took_s": took_s})


# A rollback's status once its fault is out: it ran, the fault went with its world (the
# sandbox, a cluster gameday deleted), or a person undid it by hand and said so (``gameday
# recover --by-hand``). Any other last status: the fault may be in.
TARGET_GONE = "target gone"
BY_HAND = "undone by hand"
UNDONE = ("succeeded", TARGET_GONE, BY_HAND)


def fault_rolled_back(activity: str | None, status: str | None,
                      provider: Mapping[str, Any] | None, took_s: float) -> Entry:
    return Entry(Kind.FAULT_ROLLED_BACK, {**_activity(activity, status, provider),
                                          "took_s": took_s})


def fault_undone_by_hand(activity: str, reason: str) -> Entry:
    """A rollback that never succeeded, its fault taken out by a person: what they did."""
    return Entry(Kind.FAULT_ROLLED_BACK, {**_activity(activity, BY_HAND, None),
                                          "took_s": 0.0, "reason": reason})


def chaos_action_failed(activity: str | None, status: str | None,
                        provider: Mapping[str, Any] | None, error: str) -> Entry:
    return Entry(Kind.CHAOS_ACTION_FAILED, {**_activity(activity, status, provider),
                                            "error": error[-500:]})


def steady_state_checked(phase: str, met: bool) -> Entry:
    return Entry(Kind.STEADY_STATE_CHECKED, {"phase": phase, "met": met})


def steady_state_reached(sli: Mapping[str, Any] | None) -> Entry:
    return Entry(Kind.STEADY_STATE_REACHED, {"sli": dict(sli) if sli else None})


def impact_started(status: int, latency_ms: float, unit: str = "request") -> Entry:
    """The first sample outside the objective: a request gameday sent, or a
    ``reading`` of the team's Prometheus."""
    return Entry(Kind.IMPACT_STARTED, {"status": status, "latency_ms": round(latency_ms, 1),
                                       "unit": unit})


def mitigated(confirmed_after_s: float, requests: int, bad_requests: int,
              failed_requests: int, unit: str = "request") -> Entry:
    """Back inside the objective; ``requests`` samples (requests, Prometheus
    ``reading``s, a Deployment's ``replica`` slots) since impact began, ``bad_requests``
    of them outside it."""
    return Entry(Kind.MITIGATED, {"confirmed_after_s": confirmed_after_s,
                                  "requests": requests, "bad_requests": bad_requests,
                                  "failed_requests": failed_requests, "unit": unit})


# -- alerts ---------------------------------------------------------------------------
def alert_fired(alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str],
                *, sli: Mapping[str, Any] | None = None,
                objective: Mapping[str, Any] | None = None, starts_at: str | None = None,
                fingerprint: str | None = None, fallback: bool = False) -> Entry:
    """The same shape whoever fired it: the built-in detector (with the SLI and the
    objective it breached) or Alertmanager (with the instance's ``startsAt`` and
    fingerprint). ``fallback``: the team's alert never fired, and gameday's own SLO burn
    detector opened the incident in its place."""
    return Entry(Kind.ALERT_FIRED, {
        "alertname": alertname, "labels": dict(labels), "annotations": dict(annotations),
        "sli": dict(sli) if sli else None, "objective": dict(objective) if objective else None,
        "starts_at": starts_at, "fingerprint": fingerprint, "fallback": fallback})


def alert_received(alertname: str, labels: Mapping[str, str]) -> Entry:
    """A notification that arrived after the game day's alert had already fired."""
    return Entry(Kind.ALERT_RECEIVED, {"alertname": alertname, "labels": dict(labels)})


def alert_resolved(alertname: str, labels: Mapping[str, str], *,
                   fingerprint: str | None = None, ends_at: str | None = None) -> Entry:
    return Entry(Kind.ALERT_RESOLVED, {"alertname": alertname, "labels": dict(labels),
                                       "fingerprint": fingerprint, "ends_at": ends_at})


# -- the incident and its people ------------------------------------------------------
def incident_declared(severity: str, alert: str, *, measured: Mapping[str, Any] | None = None,
                      measured_severity: str | None = None, model: str | None = None,
                      mode: str | None = None) -> Entry:
    return Entry(Kind.INCIDENT_DECLARED, {
        "severity": severity, "alert": alert, "measured": dict(measured) if measured else None,
        "measured_severity": measured_severity, "model": model, "mode": mode})


def incident_acknowledged(via: str) -> Entry:
    return Entry(Kind.INCIDENT_ACKNOWLEDGED, {"via": via})


def incident_escalated(reason: str, runbook: str | None) -> Entry:
    return Entry(Kind.INCIDENT_ESCALATED, {"reason": reason, "runbook": runbook})


def incident_resolved(how: str) -> Entry:
    return Entry(Kind.INCIDENT_RESOLVED, {"how": how})


def mitigation_declared(how: str) -> Entry:
    """The incident commander says the impact is contained; the detector's ``mitigated``
    (SLIs back inside the objective) is what the scores compare it with."""
    return Entry(Kind.MITIGATION_DECLARED, {"how": how})


def incident_cancelled(reason: str) -> Entry:
    return Entry(Kind.INCIDENT_CANCELLED, {"reason": reason})


def incident_aborted(reason: str) -> Entry:
    return Entry(Kind.INCIDENT_ABORTED, {"reason": reason})


def page_sent(person: str, role: str, reason: str) -> Entry:
    return Entry(Kind.PAGE_SENT, {"person": person, "role": role, "reason": reason})


def role_assigned(role: str, person: str, *, via: str | None = None,
                  paged_seq: int | None = None, reason: str | None = None) -> Entry:
    return Entry(Kind.ROLE_ASSIGNED, {"role": role, "person": person, "via": via,
                                      "paged_seq": paged_seq, "reason": reason})


def severity_changed(severity: str, previous: str | None, reason: str, *,
                     measured_severity: str | None = None) -> Entry:
    return Entry(Kind.SEVERITY_CHANGED, {"severity": severity, "previous": previous,
                                         "reason": reason,
                                         "measured_severity": measured_severity})


def comms_posted(audience: str, text: str, final: bool,
                 missing: list[str] | None = None) -> Entry:
    """``missing``: what an update written by a person leaves out (``comms.REQUIRED``)."""
    data: dict[str, Any] = {"audience": audience, "text": text, "final": final}
    if missing:
        data["missing"] = list(missing)
    return Entry(Kind.COMMS_POSTED, data)


def note_added(text: str) -> Entry:
    return Entry(Kind.NOTE_ADDED, {"text": text})


# -- runbooks ---------------------------------------------------------------------------
def runbook_queued(runbook: str, run_id: int) -> Entry:
    return Entry(Kind.RUNBOOK_QUEUED, {"runbook": runbook, "run_id": run_id})


def approval_requested(runbook: str, run_id: int, expires_at: str) -> Entry:
    """A destructive run waits for a second person's approval until ``expires_at``."""
    return Entry(Kind.APPROVAL_REQUESTED, {"runbook": runbook, "run_id": run_id,
                                           "expires_at": expires_at})


def runbook_approved(runbook: str, run_id: int, requested_by: str) -> Entry:
    return Entry(Kind.RUNBOOK_APPROVED, {"runbook": runbook, "run_id": run_id,
                                         "requested_by": requested_by})


def approval_expired(runbook: str, run_id: int, expires_at: str | None) -> Entry:
    return Entry(Kind.APPROVAL_EXPIRED, {"runbook": runbook, "run_id": run_id,
                                         "expires_at": expires_at})


def runbook_started(runbook: str, params: Mapping[str, Any], check: bool, artifacts: str,
                    run_id: int | None = None, version: str | None = None) -> Entry:
    """``version``: the playbook's (``Runbook.version``), which a proof holds for."""
    return Entry(Kind.RUNBOOK_STARTED, {"runbook": runbook, "params": dict(params),
                                        "check": check, "artifacts": artifacts,
                                        "run_id": run_id, "version": version})


def runbook_task(runbook: str, task: str | None, status: str, *, rc: int | None = None,
                 cmd: str | None = None, stdout: str | None = None, stderr: str | None = None,
                 ignored: bool | None = None, run_id: int | None = None) -> Entry:
    return Entry(Kind.RUNBOOK_TASK, {"runbook": runbook, "task": task, "status": status,
                                     "rc": rc, "cmd": cmd, "stdout": stdout,
                                     "stderr": stderr, "ignored": ignored, "run_id": run_id})


def runbook_finished(runbook: str, status: str, rc: int | None, *,
                     tasks: Mapping[str, int] | None = None, check: bool = False,
                     artifacts: str | None = None, error: str | None = None,
                     run_id: int | None = None) -> Entry:
    return Entry(Kind.RUNBOOK_FINISHED, {"runbook": runbook, "status": status, "rc": rc,
                                         "tasks": dict(tasks) if tasks else None,
                                         "check": check, "artifacts": artifacts,
                                         "error": error, "run_id": run_id})


def runbook_late_result(finished: Entry, ended: str | None) -> Entry:
    """What a ``runbook_finished`` says, arriving after the run had ended (``ended``:
    its status then): kept on the record, never a second end."""
    return Entry(Kind.RUNBOOK_LATE, {**finished.data, "ended_as": ended})


def runbook_rejected(runbook: str | None, error: str) -> Entry:
    return Entry(Kind.RUNBOOK_REJECTED, {"runbook": runbook, "error": error})


def runbook_coalesced(runbook: str, run_id: int, alert: str, *, fingerprint: str,
                      because: str) -> Entry:
    """An alert that would start a run already queued, running, or just successful
    with the same parameters: it joins that run instead (``because`` says which)."""
    return Entry(Kind.RUNBOOK_COALESCED, {"runbook": runbook, "run_id": run_id,
                                          "alert": alert, "fingerprint": fingerprint,
                                          "because": because})


def runbook_held(runbook: str, why: str, link: str) -> Entry:
    """An automatic runbook the trust policy does not let run by itself: its run waits
    for someone to click ``link`` (``gameday.report.trust``)."""
    return Entry(Kind.RUNBOOK_HELD, {"runbook": runbook, "why": why, "link": link})


def runbook_missing(alert: str) -> Entry:
    return Entry(Kind.RUNBOOK_MISSING, {"alert": alert})


def with_run_id(entry: Entry, run_id: int) -> Entry:
    """The same runbook event, tagged with the run it belongs to."""
    return Entry(entry.kind, {**entry.data, "run_id": run_id})


# -- the game day ---------------------------------------------------------------------------
def target_ready(target: str, **details: Any) -> Entry:
    return Entry(Kind.TARGET_READY, {"target": target, **details})


def rehearsal_live(incident: int, kind: str, scenario: str | None, service: str,
                   target: str) -> Entry:
    """A real incident opened while a game day or drill (``incident``) was at work on
    the same ``service`` of the team's own ``target``: its alert may be the rehearsal's."""
    return Entry(Kind.REHEARSAL_LIVE, {"incident": incident, "kind": kind,
                                       "scenario": scenario, "service": service,
                                       "target": target})


def real_incident_beside(incident: int, alert: str, service: str) -> Entry:
    """On the rehearsal: the real incident ``incident`` opened for its service meanwhile."""
    return Entry(Kind.REAL_INCIDENT_BESIDE, {"incident": incident, "alert": alert,
                                             "service": service})


def target_stopped(target: str, by_hand: str | None = None) -> Entry:
    """The target gameday brought up is down (``by_hand``: a person stopped it, and how)."""
    return Entry(Kind.TARGET_STOPPED, {"target": target, **(
        {"status": BY_HAND, "reason": by_hand} if by_hand else {})})


def alerting_ready(prometheus: str) -> Entry:
    return Entry(Kind.ALERTING_READY, {"prometheus": prometheus})


def detection_missed(waited_s: float, alert: str, *, outside_s: float = 0.0,
                     fallback: bool = False) -> Entry:
    return Entry(Kind.DETECTION_MISSED, {"waited_s": waited_s, "alert": alert,
                                         "outside_s": round(outside_s, 2),
                                         "fallback": fallback})


def detection_traced(alert: str, found: dict[str, Any]) -> Entry:
    """Where ``alert`` stopped on its way (``gameday.targets.alert_path.where_it_stopped``)."""
    return Entry(Kind.DETECTION_TRACED, {"alert": alert, **found})


def recovery_missed(waited_s: float) -> Entry:
    return Entry(Kind.RECOVERY_MISSED, {"waited_s": waited_s})


def gameday_failed(error: str) -> Entry:
    return Entry(Kind.GAMEDAY_FAILED, {"error": error})


def gameday_interrupted(experiment: str | None, signal: str | None = None) -> Entry:
    return Entry(Kind.GAMEDAY_INTERRUPTED, {"experiment": experiment, "signal": signal})


def game_stopped(reason: str) -> Entry:
    return Entry(Kind.GAME_STOPPED, {"reason": reason})


def gameday_scheduled(schedule: str, scheduled_run: int, due_at: str) -> Entry:
    """The game day was started by a schedule (``gameday schedule``)."""
    return Entry(Kind.GAMEDAY_SCHEDULED, {"schedule": schedule, "scheduled_run": scheduled_run,
                                          "due_at": due_at})


def gameday_verdict(status: str, exit_code: int, failed: Mapping[str, str],
                    skipped: Sequence[str] = ()) -> Entry:
    """A finished game day judged on its scenario's own checks (``verdict.record``):
    ``failed`` is each failed check's name and why, ``skipped`` the checks an
    interruption left unrun."""
    return Entry(Kind.GAMEDAY_VERDICT, {"status": status, "exit_code": exit_code,
                                        "failed": list(failed), "why": dict(failed),
                                        "skipped": list(skipped)})


def gameday_frozen(who: str, reason: str | None) -> Entry:
    """The freeze (``gameday freeze on``) stopped the game day: its faults are rolled
    back as on Ctrl-C."""
    return Entry(Kind.GAMEDAY_FROZEN, {"who": who, "reason": reason})


def drill_started(drill_id: int, game_master: str, difficulty: str,
                  oncall: str | None) -> Entry:
    return Entry(Kind.DRILL_STARTED, {"drill_id": drill_id, "game_master": game_master,
                                      "difficulty": difficulty, "oncall": oncall})


def drill_joined(person: str, role: str) -> Entry:
    return Entry(Kind.DRILL_JOINED, {"person": person, "role": role})


def drill_inject(name: str, sender: str, message: str, *, by_hand: bool = False) -> Entry:
    """Something happens to the responders: a stakeholder asks, a signal misleads."""
    return Entry(Kind.DRILL_INJECT, {"name": name, "sender": sender, "message": message,
                                     "by_hand": by_hand})


def drill_fault(inject: str, activity: str | None, status: str,
                provider: Mapping[str, Any] | None) -> Entry:
    """An inject's second fault, injected by the drill's game day (its rollback runs with
    the experiment's)."""
    return Entry(Kind.DRILL_FAULT, {"inject": inject, "activity": activity, "status": status,
                                    "provider": dict(provider or {})})


def drill_hint(stage: str, text: str, cost: int) -> Entry:
    return Entry(Kind.DRILL_HINT, {"stage": stage, "text": text, "cost": cost})


def drill_paused() -> Entry:
    return Entry(Kind.DRILL_PAUSED, {})


def drill_resumed() -> Entry:
    return Entry(Kind.DRILL_RESUMED, {})


def drill_ended(reason: str) -> Entry:
    return Entry(Kind.DRILL_ENDED, {"reason": reason})


def drill_replay(incident: int, alert: str, fault: str, why: str,
                 injects: Sequence[str]) -> Entry:
    """The drill rehearses real incident ``incident``: its alert, the fault chosen from
    the registry to produce the same symptom and why, and the injects made from what
    people asked on its timeline."""
    return Entry(Kind.DRILL_REPLAY, {"incident": incident, "alert": alert, "fault": fault,
                                     "why": why, "injects": list(injects)})


def run_crashed(pid: int, host: str, silent_s: float, faults: list[str]) -> Entry:
    """Found by ``gameday recover``: the game day's process is gone and its lease ran
    out; ``faults`` were (or may have been) injected."""
    return Entry(Kind.RUN_CRASHED, {"pid": pid, "host": host, "silent_s": silent_s,
                                    "faults": faults})


def k8s_event(type_: str | None, reason: str | None, obj: str | None, message: str | None,
              *, count: int | None = None, source: str | None = None,
              at: str | None = None) -> Entry:
    return Entry(Kind.K8S_EVENT, {"type": type_, "reason": reason, "object": obj,
                                  "message": message, "count": count, "source": source,
                                  "at": at})


def chat_room_opened(chat: str, room: str, name: str) -> Entry:
    return Entry(Kind.CHAT_ROOM_OPENED, {"chat": chat, "room": room, "name": name})


def chat_unavailable(chat: str, error: str) -> Entry:
    """The chat did not answer: the incident goes on; the relay tries again."""
    return Entry(Kind.CHAT_UNAVAILABLE, {"chat": chat, "error": error[:300]})


# -- reading --------------------------------------------------------------------------------
def in_time_order(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Events as dicts, ordered by when they happened, ties broken by sequence. Events
    can be recorded after events that happened later (impact is dated by the request
    that showed it), so recording order is not time order."""
    rows: list[dict[str, Any]] = [dict(e) if isinstance(e, Mapping) else e.as_dict()
                                  for e in events]
    return sorted(rows, key=lambda e: (e["at_monotonic_ns"], e["seq"]))
