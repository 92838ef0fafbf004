"""Scheduled game days for people: the freeze, each schedule's next moment, and its
latest game days (status, score, a link to the incident and its review)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gameday.schedule import from_row
from gameday.web.context import caller, page, shared

HISTORY = 10


def _described(store: Any, row: dict[str, Any]) -> dict[str, Any]:
    schedule = from_row(row)
    following = schedule.next_moment(datetime.now(UTC))
    return {"name": schedule.name, "scenario": schedule.scenario, "when": schedule.when,
            "paused": schedule.paused, "blackouts": schedule.blackouts,
            "next_local": f"{following.astimezone(schedule.zone):%a %Y-%m-%d %H:%M %Z}",
            "runs": store.schedule_runs(schedule.name, limit=HISTORY)}


async def schedule_list(request: Request) -> Response:
    who = caller(request)
    store = shared(request).store
    return page("schedules.html", who=who, frozen=store.freeze(),
                schedules=[_described(store, row) for row in store.schedules()])
