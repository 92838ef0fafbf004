"""Scheduled game days for people: the freeze, each schedule's next moment, and its
latest game days (status, score, a link to the incident and its review).

The safety lever is here too: any responder may freeze game days (stop the line), a
commander lifts the freeze; a commander may start a schedule's game day now, with its
guardrails, when this server runs the schedules (``gameday serve --scheduler``; on
Kubernetes they run as CronJobs instead). Each is a form on the page and a JSON call
(``POST /api/v1/freeze``, ``/api/v1/unfreeze``, ``/api/v1/schedules/NAME/run``), on
the audit log under the person who did it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gameday.core import clock
from gameday.core.errors import GamedayError, ValidationError
from gameday.schedules.schedule import NeverFires, from_row
from gameday.schedules.scheduler import Scheduler, set_freeze
from gameday.store.rows import ScheduleRow
from gameday.web.context import (
    allowed,
    caller,
    check_csrf,
    csrf,
    identity,
    move_request,
    page,
    read_form,
    shared,
)

HISTORY = 10


def _described(store: Any, row: ScheduleRow) -> dict[str, Any]:
    schedule = from_row(row)
    try:
        following = schedule.next_moment(clock.now())
        next_local = f"{following.astimezone(schedule.zone):%a %Y-%m-%d %H:%M %Z}"
    except NeverFires as exc:  # shown for what it is: one bad schedule hides no other
        next_local = f"never: {exc.why}"
    return {"name": schedule.name, "scenario": schedule.scenario, "when": schedule.when,
            "paused": schedule.paused, "blackouts": schedule.blackouts,
            "next_local": next_local,
            "runs": store.schedule_runs(schedule.name, limit=HISTORY)}


async def schedule_list(request: Request) -> Response:
    who = caller(request)
    state = shared(request)
    store = state.store
    person = identity(request)
    return page("schedules.html", who=who, frozen=store.freeze(),
                schedules=[_described(store, row) for row in store.schedules()],
                csrf=csrf(request), may_freeze=person.may("freeze"),
                may_unfreeze=person.may("unfreeze"),
                may_start=person.may("start") and state.scheduler is not None,
                runs_here=state.scheduler is not None)


def _scheduler(request: Request) -> Scheduler:
    found = shared(request).scheduler
    if found is None:
        raise GamedayError("this gameday serve does not run game days (--no-scheduler): "
                           "`gameday schedule run-now NAME` where they run, or on "
                           "Kubernetes `kubectl create job --from=cronjob/NAME ...`")
    return found


async def _form(request: Request, need: str) -> tuple[str, dict[str, str]]:
    who = allowed(request, need).name  # who first: nobody's body is parsed for nothing
    form = await read_form(request)
    check_csrf(request, form.get("csrf", ""))
    return who, form


async def freeze(request: Request) -> Response:
    """``POST /schedules/freeze`` (the page's button, with a reason)."""
    who, form = await _form(request, "freeze")
    set_freeze(shared(request).store, True, form.get("reason"), who)
    return RedirectResponse("/schedules", status_code=303)


async def unfreeze(request: Request) -> Response:
    who, _ = await _form(request, "unfreeze")
    set_freeze(shared(request).store, False, None, who)
    return RedirectResponse("/schedules", status_code=303)


async def run_now(request: Request) -> Response:
    """``POST /schedules/NAME/run``: the schedule's game day, now, with its guardrails
    (a ``skipped`` run with the reason when one says no)."""
    who, _ = await _form(request, "start")
    name = request.path_params["name"]
    await asyncio.to_thread(_scheduler(request).run_now, name, who)
    return RedirectResponse(f"/schedules#s-{name}", status_code=303)


async def api_freeze(request: Request) -> Response:
    """``POST /api/v1/freeze`` ``{"reason"?, "as"?}``: the freeze as it is now."""
    who, data = await move_request(request, need="freeze")
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationError("a line of text", field="reason")
    return JSONResponse({"frozen": set_freeze(shared(request).store, True, reason, who)})


async def api_unfreeze(request: Request) -> Response:
    who, _ = await move_request(request, need="unfreeze")
    return JSONResponse({"frozen": set_freeze(shared(request).store, False, None, who)})


async def api_run_now(request: Request) -> Response:
    """``POST /api/v1/schedules/NAME/run`` ``{"as"?}``: 202 with the scheduled run
    (``running``, or ``skipped`` and why)."""
    who, _ = await move_request(request, need="start")
    run = await asyncio.to_thread(_scheduler(request).run_now, request.path_params["name"],
                                  who)
    return JSONResponse({"run": run, "by": who}, status_code=202)
