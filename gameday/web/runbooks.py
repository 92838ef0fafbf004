"""One-click runbooks and their runs.

``/runbooks/NAME?param=value&incident=ID`` shows the commands and the parameters an
alert filled in, with Run and check-mode buttons (CSRF-protected, destructive ones
need a tick), and whether a game day has verified the runbook lately
(``freshness.runbook_freshness``: "verified by game day N, D days ago", or a warning).
``/runs/ID`` shows a run's output as the terminal prints it: each event's sentence,
then the task's stdout (``|``) and stderr (``!``), then how it finished. A run going
on in this process streams live from ``/runs/ID/events`` (server-sent events); any
other run (a game day's, or one from before a restart) is replayed from the events
recorded on its incident.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from gameday.core.audit import Audit
from gameday.core.errors import NotFound, ValidationError
from gameday.core.settings import Settings
from gameday.core.states import RUN_UNFINISHED, RunStatus
from gameday.incidents.incident import kind_of_row
from gameday.people.auth import Forbidden
from gameday.report.freshness import runbook_freshness
from gameday.report.trust import Trust, standing
from gameday.runbooks.runbook import Dirs, Runbook, find, runbook_files, validate_params
from gameday.runs.pool import Dispatcher
from gameday.runs.run import approval_window, not_as_asked
from gameday.store import Store
from gameday.store.rows import RunRow
from gameday.web.context import (
    caller,
    check_csrf,
    csrf,
    given_id,
    identity,
    move_request,
    page,
    presence,
    read_form,
    shared,
)

POLL_S = 0.2


def named(request: Request) -> Runbook:
    """The runbook the path names. An unknown one is a 404 that lists the runbooks this
    server knows, never the directories on its disk it read them from."""
    name, dirs = request.path_params["name"], shared(request).runbook_dir
    try:
        return find(name, dirs)
    except NotFound:
        known = ", ".join(path.stem for path in runbook_files(dirs)) or "none"
        raise NotFound(f"no runbook {name[:80]!r} (known: {known})") from None


# -- the one-click page -------------------------------------------------------------------
async def runbook_page(request: Request) -> Response:
    """``/runbooks/NAME?param=value&incident=ID``: the page an alert links to."""
    who = caller(request)
    raw = {k: v for k, v in request.query_params.items() if k != "incident"}
    return await one_click(request, who, named(request), raw,
                           request.query_params.get("incident", ""))


async def one_click(request: Request, who: str, rb: Runbook, raw: dict[str, str],
                    incident: str, error: str | None = None, status: int = 200) -> Response:
    """The one-click page of ``rb`` with the values ``raw`` in its form: the alert's,
    or what a person typed before Run said no (``error``), kept for them to correct."""
    state = shared(request)
    params, filled = {}, True
    try:
        params = validate_params(rb, raw)
    except ValidationError as exc:
        error, filled = error or str(exc), False  # the commands keep their placeholders
    inc = None
    try:
        incident_id = given_id(incident, "incident")
        if incident_id is not None:
            row = state.store.incident(incident_id)
            inc = {**row, "kind": kind_of_row(row)}
    except ValidationError as exc:
        error = str(exc)
    except NotFound:
        error = f"no incident {incident_id}"
    fresh = await asyncio.to_thread(
        lambda: runbook_freshness(state.store, rb.name))
    trust, restore = await asyncio.to_thread(lambda: _trust(state.store, state.settings, rb))
    return page("runbook.html", status=status, who=who, rb=rb, commands=rb.commands(params),
                raw=raw, params=params, error=error, inc=inc, fresh=fresh, filled=filled,
                trust=trust, restore=restore, policy=state.settings.automation,
                csrf=csrf(request))


def _trust(store: Store, settings: Settings, rb: Runbook) -> tuple[Trust, str]:
    """The runbook's trust, and what would restore it (``trust.standing``)."""
    return standing(store, settings, [rb])[rb.name]


def approval(request: Request, rb: Runbook, check: bool) -> float | None:
    """Four eyes: how long a run of ``rb`` waits for a second person, or None when it
    starts at once. Asking for a destructive run takes a commander; once people have
    their own identities, a destructive run (any run, with ``--four-eyes all``; never a
    check-mode one that changes nothing: ``Runbook.changes_nothing``, so not one of a
    runbook with tasks that run for real in check mode) needs someone else to approve
    it, and is asked for with the asker's own token: the shared token in a colleague's
    name would let one person be both."""
    state = shared(request)
    harmless = rb.changes_nothing(check)
    destructive = rb.destructive and not harmless
    if destructive:
        caller(request, need="run_destructive")
    if not state.auth.personal():
        return None
    within = approval_window(rb.destructive, harmless, state.four_eyes, state.approval_ttl)
    if (destructive or within is not None) and identity(request).via == "token":
        what = "is destructive" if destructive else "waits for a second person"
        state.store.audit("token", Audit.FORBIDDEN, {
            "need": "run_destructive" if destructive else "run", "role": "admin",
            "path": request.url.path, "via": "token", "runbook": rb.name})
        raise Forbidden(f"a run of {rb.name} {what}: ask for it with your own token "
                        "(gameday user add), not the shared one")
    return within


async def run_runbook(request: Request) -> Response:
    who = caller(request, need="run")
    state = shared(request)
    form = await read_form(request)
    check_csrf(request, form.get("csrf", ""))
    rb = named(request)
    raw = {k[2:]: v for k, v in form.items() if k.startswith("p.")}
    if rb.destructive and form.get("confirm") != "yes":  # the page again, as typed
        return await one_click(request, who, rb, raw, form.get("incident", ""), status=400,
                               error="This runbook is destructive: tick the confirmation.")
    try:
        params = validate_params(rb, raw)
    except ValidationError as exc:
        return await one_click(request, who, rb, raw, form.get("incident", ""),
                               error=str(exc), status=422)
    incident_id = given_id(form.get("incident", ""), "incident")
    if incident_id is not None:
        state.store.incident(incident_id)  # 404 for one that does not exist
    if form.get("mode", "run") not in ("run", "check"):
        raise ValidationError(f"must be run or check, not {form['mode'][:40]!r}",
                              field="mode")
    check = form.get("mode") == "check"
    within = approval(request, rb, check)
    run_id = await asyncio.to_thread(  # the store decides when it starts: off the loop
        state.dispatcher.start, rb, params, incident_id, who, check=check,
        approve_within=within)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


async def approve(request: Request) -> Response:
    """``POST /runs/ID/approve`` (the run page's button): a second person approves."""
    who = caller(request, need="approve")
    form = await read_form(request)
    check_csrf(request, form.get("csrf", ""))
    await asyncio.to_thread(shared(request).dispatcher.approve,
                            request.path_params["id"], who)
    return RedirectResponse(f"/runs/{request.path_params['id']}", status_code=303)


async def api_approve(request: Request) -> Response:
    """``POST /api/v1/runs/ID/approve`` ``{"as"?}``: the same for scripts."""
    who, _ = await move_request(request, need="approve")
    await asyncio.to_thread(shared(request).dispatcher.approve,
                            request.path_params["id"], who)
    return JSONResponse({"run_id": request.path_params["id"], "approved_by": who})


async def api_run(request: Request) -> Response:
    """``POST /api/v1/runbooks/NAME/run`` ``{"params": {...}, "incident": ID?,
    "check": bool?, "as": NAME}``: what the one-click page's Run does, for scripts (a
    destructive runbook wants ``"confirm": true``). Answers 202 with the run's id; its
    progress is ``GET /api/v1/runs/ID``."""
    who, data = await move_request(request, need="run")
    state = shared(request)
    rb = named(request)
    raw = data.get("params") or {}
    if not isinstance(raw, dict) or not all(isinstance(v, str | int | float | bool)
                                            for v in raw.values()):
        raise ValidationError("an object of parameter values", field="params")
    if rb.destructive and data.get("confirm") is not True:
        raise ValidationError("this runbook is destructive: send \"confirm\": true",
                              field="confirm")
    params = validate_params(rb, {str(k): str(v) for k, v in raw.items()})
    incident_id = data.get("incident")
    if incident_id is not None:
        if not isinstance(incident_id, int) or isinstance(incident_id, bool) \
                or not 0 < incident_id < 2**63:
            raise ValidationError("an incident id", field="incident")
        state.store.incident(incident_id)  # 404 for one that does not exist
    check = data.get("check", False)
    if not isinstance(check, bool):
        raise ValidationError(f"must be true or false, not {str(check)[:40]!r}",
                              field="check")
    within = approval(request, rb, check)
    run_id = await asyncio.to_thread(state.dispatcher.start, rb, params, incident_id, who,
                                     check=check, approve_within=within)
    run = state.store.run(run_id)
    return JSONResponse({"run_id": run_id, "runbook": rb.name, "by": who,
                         "status": run["status"], "approve_by": run["approve_by"]},
                        status_code=202)


# -- a run's output -----------------------------------------------------------------------
def output_lines(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(css class, line)`` for a run's events, as the terminal prints them; the
    page's script writes the same lines for events that arrive live."""
    lines = []
    for item in items:
        label = item["kind"].removeprefix("runbook.")
        status = item.get("status")
        lines.append((f"s-{status}" if status else "", f"{label:9}{item['text']}"))
        lines += [("out", f"  | {line}") for line in (item.get("stdout") or "").splitlines()]
        lines += [("err", f"  ! {line}") for line in (item.get("stderr") or "").splitlines()]
    return lines


def ending(run: RunRow) -> dict[str, Any]:
    return {"status": run["status"], "rc": run["rc"]}


def finished(run: RunRow, dispatcher: Dispatcher) -> bool:
    stream = dispatcher.streams.get(run["id"])
    return run["status"] not in RUN_UNFINISHED and (stream is None or stream.done.is_set())


async def run_page(request: Request) -> Response:
    """The whole output at once for a finished run; a live one fills in from the
    event stream."""
    who = caller(request)
    state = shared(request)
    state.dispatcher.expire_approvals()
    run = state.store.run(request.path_params["id"])
    done = finished(run, state.dispatcher)
    waiting = run["status"] == RunStatus.AWAITING_APPROVAL
    why, as_asked = waits_because(run, state.runbook_dir) if waiting else ("", False)
    can_approve = waiting and as_asked and who != run["started_by"] and \
        identity(request).may("approve")
    lines = output_lines(state.dispatcher.items(run)) if done else []
    return page("run.html", who=who, run=run, done=done, lines=lines, ending=ending(run),
                waiting=waiting, why=why, as_asked=as_asked, can_approve=can_approve,
                csrf=csrf(request))


def waits_because(run: RunRow, dirs: Dirs) -> tuple[str, bool]:
    """Why a waiting run waits for a second person, as its page says it, and whether
    it can still be approved: not once its runbook changed since it was asked for
    (``Dispatcher.approve`` refuses it then), or is gone."""
    try:
        book = find(run["runbook"], dirs)
    except (NotFound, ValidationError):
        return f"Runbook {run['runbook']} is gone or no longer reads: ask again", False
    changed = not_as_asked(run, book)
    if changed is not None:
        return (f"{changed[0].upper()}{changed[1:]}: this run can no longer be approved; "
                "ask again for it as it is now"), False
    why = "this runbook is destructive" if book.destructive else (
        "this runbook is not destructive, but every run here waits for a second person "
        "(gameday serve --four-eyes all)")
    if run["check_mode"] and not book.dry_run_changes_nothing:
        why += (", and its check mode is not dry: " + "; ".join(book.dry_run_acts[:3]) +
                (" and more" if len(book.dry_run_acts) > 3 else "") +
                " run for real even in check mode")
    return why, True


def sse(item: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(item, default=str)}\n\n"


async def follow(store: Store, dispatcher: Dispatcher, run_id: int,
                 present: Callable[[], bool] = lambda: True) -> AsyncIterator[str]:
    """Every event of the run, then ``done`` with how it ended. Live runs are read from
    their stream; others from the store, until their row says they finished. It ends
    once ``present`` (``context.presence``) says the person reading may no longer."""
    sent = 0
    while True:
        if not present():
            return
        run = store.run(run_id)
        stream = dispatcher.streams.get(run_id)
        items = stream.since(sent) if stream else dispatcher.items(run)[sent:]
        for item in items:
            yield sse(item)
        sent += len(items)
        if finished(run, dispatcher):  # the row was read first: all its items are sent
            yield sse(ending(run), "done")
            return
        await asyncio.sleep(POLL_S if stream else 1.0)


async def run_events(request: Request) -> Response:
    caller(request)
    state = shared(request)
    run = state.store.run(request.path_params["id"])  # 404 before the stream starts
    return StreamingResponse(follow(state.store, state.dispatcher, run["id"],
                                    presence(request)),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})
