"""The audit log's vocabulary: what the append-only audit log records (who did what;
the timeline is ``events``)."""

from __future__ import annotations

from enum import StrEnum


class Audit(StrEnum):
    """What the append-only audit log records (who did what, not the timeline)."""

    LOGIN = "login"
    LOGIN_FAILED = "login.failed"
    ALERTS_RECEIVED = "alerts.received"
    RUNBOOK_RUN = "runbook.run"
    RUNBOOK_RESULT = "runbook.result"
    RUNBOOK_REJECTED = "runbook.rejected"
    RUNBOOK_HELD = "runbook.held"     # the trust policy kept an automatic run for a click
    SCHEDULE_CHANGED = "schedule.changed"
    FREEZE = "freeze"
    GAMEDAY_STARTED = "gameday.started"
    UNDONE_BY_HAND = "gameday.undone_by_hand"  # what a game day left, taken out by a person
    USER_ADDED = "user.added"
    USER_REVOKED = "user.revoked"
    USER_ROTATED = "user.rotated"
    USER_ROLE_CHANGED = "user.role_changed"
    FORBIDDEN = "forbidden"
    CHAT_REFUSED = "chat.refused"     # a chat account gameday does not know, or may not
    CHAT_LINKED = "chat.linked"       # a chat account linked to a person
    APPROVAL_REQUESTED = "approval.requested"
    APPROVED = "approval.granted"
    APPROVAL_EXPIRED = "approval.expired"
