"""The one clock gameday asks for "now": who is on call this week, when a schedule is
due, what "the last 30 days" means, whether a runbook is fresh or an action overdue,
when a lease or a session runs out, and the wall-clock stamp of every timeline event.

Everything that needs the date or the time of day calls ``now()`` (or ``epoch()``);
functions that decide by date also take ``now``/``at`` as a parameter, so a caller can
ask about any moment. Tests pin this clock (time-machine) and run the date-sensitive
ones at several moments in one run: an even and an odd ISO week, the turn of a year,
a daylight-saving change in a zone other than UTC. Durations are measured elsewhere, on
the monotonic clock, and never from these values.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    """This moment, timezone-aware, in UTC."""
    return datetime.now(UTC)


def epoch() -> float:
    """This moment as seconds since the Unix epoch (leases, heartbeats, sessions)."""
    return time.time()


def epoch_ns() -> int:
    """``epoch()`` in nanoseconds: how an incident's monotonic clock is reached from
    another host (see ``store.clock_ns``)."""
    return time.time_ns()


def iso(at_epoch_ns: int) -> str:
    """A moment given in nanoseconds since the Unix epoch, as a timeline stamps it."""
    return datetime.fromtimestamp(at_epoch_ns / 1e9, UTC).isoformat(timespec="microseconds")


def shown_utc(at: str | datetime) -> str:
    """A stored moment (ISO 8601; the store writes UTC) as people read it, saying its
    zone: ``2026-11-23 22:30:39 UTC``; a moment without a zone is taken as UTC."""
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return f"{moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
