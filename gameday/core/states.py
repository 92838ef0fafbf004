"""Where things stand, and what they are: the vocabularies the store keeps as text.

Each is a ``StrEnum`` whose members are the very strings in the store's rows (a row's
``"running"`` equals ``RunStatus.RUNNING``), with the sets that group them beside it.
Code names a member, never the bare string (``tests/architecture/test_architecture.py`` checks):

- ``IncidentState``: an incident's place in its life (``incident.TRANSITIONS``);
- ``IncidentKind``: a real incident, or a rehearsal (a game day, a drill);
- ``RunStatus``: a runbook run's (ansible-runner's results, and gameday's own before and
  around them: awaiting approval, queued, expired);
- ``DrillState``: a training drill's;
- ``Outcome`` and ``ScheduleRunStatus``: how a game day came out (its verdict), and how a scheduled
  one did (a verdict, or why there was none).
"""

from __future__ import annotations

from enum import StrEnum


class IncidentState(StrEnum):
    PENDING = "pending"
    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    REVIEWED = "reviewed"
    CANCELLED = "cancelled"  # a game day stopped before its incident was resolved
    ABORTED = "aborted"      # a game day that crashed, ended by ``gameday recover``


INCIDENT_ENDED = frozenset({IncidentState.RESOLVED, IncidentState.REVIEWED,
                            IncidentState.CANCELLED, IncidentState.ABORTED})


class IncidentKind(StrEnum):
    INCIDENT = "incident"  # a real one: opened by an alert, or by hand
    GAMEDAY = "gameday"
    DRILL = "drill"


KIND_LABELS: dict[str, str] = {IncidentKind.INCIDENT: "real incident",
                               IncidentKind.GAMEDAY: "game day", IncidentKind.DRILL: "drill"}


class RunStatus(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # four eyes: a second person approves it
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    ERROR = "error"
    EXPIRED = "expired"  # nobody approved it in time


RUN_UNFINISHED = frozenset({RunStatus.AWAITING_APPROVAL, RunStatus.QUEUED, RunStatus.RUNNING})


class DrillState(StrEnum):
    RUNNING = "running"
    ENDED = "ended"
    FAILED = "failed"  # its game day could not run, or crashed


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    DEVIATED = "deviated"        # the steady state did not come back
    INTERRUPTED = "interrupted"  # a signal, or the freeze
    STOPPED = "stopped"          # a stop condition rolled the fault back at once


class ScheduleRunStatus(StrEnum):
    CLAIMED = "claimed"  # this moment is taken; its game day has not opened yet
    RUNNING = "running"
    PASSED = Outcome.PASSED.value
    FAILED = Outcome.FAILED.value
    DEVIATED = Outcome.DEVIATED.value
    INTERRUPTED = Outcome.INTERRUPTED.value
    STOPPED = Outcome.STOPPED.value
    SKIPPED = "skipped"  # a guardrail said no, nothing was injected
    ERROR = "error"      # it began, and could not finish
    CRASHED = "crashed"  # its process ended without recording its end


SCHEDULE_RUN_UNFINISHED = frozenset({ScheduleRunStatus.CLAIMED, ScheduleRunStatus.RUNNING})
