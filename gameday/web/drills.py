"""The drill console: training drills run from a browser, live.

Pages (signed in): ``/drills`` lists drills and starts one (a scenario on the sandbox
or on a team's own cluster or service, or a spin of the Wheel of Misfortune, which
spins sandbox scenarios only); ``/drills/ID`` is the console: everyone sees the incident,
its roles, the drill clock, the SLIs as a chart that updates, stakeholder messages and
the timeline; each role gets its own controls (the incident commander changes
severity, escalates, hands over and resolves; the comms lead writes updates from the
templates, checked for what they must say; the scribe writes notes, checked for
blaming language as they type; a responder asks for hints and opens the linked
runbook's one-click page); the game master pauses, fires injects and ends the drill.
``/drills/ID/events`` streams the console's changes (server-sent events);
``/drills/ID/debrief`` is the debrief.

The JSON API does the same for scripts (bearer token, the person in ``as``), and the
console's buttons call it (session cookie and CSRF header):
``POST /api/v1/drills`` starts one, ``GET /api/v1/drills/ID`` is the snapshot the
stream sends, ``POST /api/v1/drills/ID/{join,pause,resume,inject,hint,end}``,
``GET /api/v1/drills/ID/debrief``. The moves on the drill's incident are
``/api/v1/incidents/ID/...`` (``web.moves``). Every call lands in ``drillmaster``,
as ``gameday drill ...`` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gameday.core.errors import GamedayError, ValidationError
from gameday.core.policy import ROLES
from gameday.core.states import DrillState
from gameday.drills.master import (
    DRILL_TARGETS,
    Drill,
    drill_scenarios,
    replay_elsewhere,
    spin,
    start_drill,
)
from gameday.game.scoring import compute_metrics
from gameday.incidents.moves import one_of, text
from gameday.people.auth import Forbidden
from gameday.scenarios.scenario import Scenario
from gameday.web.context import (
    WHOLE,
    caller,
    check_csrf,
    csrf,
    identity,
    move_request,
    page,
    presence,
    read_form,
    shared,
    whole,
)
from gameday.web.incidents import timeline_rows

DIFFICULTIES = ("easy", "normal", "hard")
POLL_S = 0.5      # the game day writes from its own process: the stream reads the store
PING_S = 15       # keeps proxies from closing a quiet stream


def _drill(request: Request) -> Drill:
    state = shared(request)
    return Drill.load(state.store, state.settings, request.path_params["id"])


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# -- starting one ---------------------------------------------------------------------------
def scenarios(request: Request) -> list[dict[str, Any]]:
    """The project's scenarios a drill can run from here: on the sandbox (nothing but
    this machine) or on a team's own cluster or service (its allowlist checked when the
    drill starts), each saying where it acts."""
    settings = shared(request).settings
    return [{"path": settings.relative(path), "name": sc.name, "title": sc.title,
             "target": sc.target, "where": _where(sc),
             "injects": len(sc.drill.injects) if sc.drill else 0}
            for path, sc in drill_scenarios(settings)]


def _where(sc: Scenario) -> str:
    """Where a drill acts, in a few words: the sandbox, a context's namespace, hosts."""
    if sc.cluster is not None:
        return f"{sc.cluster['context']}, namespace {sc.workload['namespace']}"
    if sc.target == "service":
        return f"the service at {sc.traffic_url or sc.sli.get('prometheus') or 'its hosts'}"
    return "the sandbox"


def _start(request: Request, who: str, data: dict[str, Any]) -> dict[str, Any]:
    state = shared(request)
    difficulty = one_of(data.get("difficulty") or "normal", DIFFICULTIES, "difficulty")
    if data.get("incident") is not None:
        return replay_elsewhere(state.settings, state.store, _incident_id(data["incident"]),
                                game_master=who, difficulty=difficulty,
                                target=one_of(data.get("target") or "sandbox", DRILL_TARGETS,
                                              "target"),
                                base_url=_base_url(request))
    oncall = None
    if data.get("wheel"):
        chosen, oncall = spin(state.settings.root / "scenarios",
                              history=state.store if data.get("history") else None)
    else:
        given = data.get("scenario")
        if not isinstance(given, str) or not given:
            raise ValidationError("give a scenario, or spin the wheel", field="scenario")
        known = {s["path"] for s in scenarios(request)}
        if given not in known:
            raise ValidationError(f"{given[:200]!r} is not one of the project's scenarios "
                                  "a drill runs on (sandbox, kubernetes, service)",
                                  field="scenario")
        chosen = state.settings.resolve(given)
    return start_drill(state.store, state.settings, chosen, game_master=who,
                       difficulty=difficulty, oncall=oncall, base_url=_base_url(request))


def _incident_id(value: Any) -> int:
    """The real incident to replay, as a form or a JSON body gives it."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and WHOLE.fullmatch(value) and int(value) > 0:
        return int(value)
    raise ValidationError("the id of a real incident, a whole number", field="incident")


async def drill_list(request: Request) -> Response:
    """``GET /drills``: every drill and the form to start one; ``POST`` starts it (the
    signed-in person is the game master) and goes to its console."""
    who = caller(request)
    state = shared(request)
    error = None
    if request.method == "POST":
        caller(request, need="start")
        form = await read_form(request)
        check_csrf(request, form.get("csrf", ""))
        try:
            started = await asyncio.to_thread(_start, request, who, {
                "scenario": form.get("scenario"), "difficulty": form.get("difficulty"),
                "wheel": form.get("wheel") == "yes", "history": form.get("history") == "yes",
                "incident": form.get("incident"), "target": form.get("target")})
            return RedirectResponse(f"/drills/{started['drill_id']}", status_code=303)
        except GamedayError as exc:
            error = str(exc)
    return page("drills.html", who=who, drills=state.store.drills(),
                scenarios=await asyncio.to_thread(scenarios, request), error=error,
                csrf=csrf(request))


async def api_start(request: Request) -> Response:
    """``POST /api/v1/drills`` ``{"scenario": "scenarios/x.yaml" | "wheel": true,
    "history": bool | "incident": ID, "target": ..., "difficulty": ..., "as":
    GAME_MASTER}``: what ``gameday drill start --json`` prints."""
    who, data = await move_request(request, need="start")
    started = await asyncio.to_thread(_start, request, who, data)
    return JSONResponse(started, status_code=201)


# -- the console ----------------------------------------------------------------------------
async def console(request: Request) -> Response:
    who = caller(request)
    state = shared(request)
    row = state.store.drill(request.path_params["id"])
    if not row["incident_id"]:
        return page("error.html", status=409, who=who, title="Not started",
                    message=f"Drill {row['id']} has not started ({row['state']}).")
    drill = _drill(request)
    return page("drill.html", who=who, drill=row, roles=ROLES, master=who == row["game_master"],
                replay=drill.sc.replay,
                injects=[i.name for i in drill.spec.injects],
                csrf=csrf(request),
                first=json.loads(json.dumps(drill.snapshot(), default=str)))


async def follow(drill: Drill, after_seq: int, offset: int,
                 present: Callable[[], bool] = lambda: True) -> AsyncIterator[dict[str, str]]:
    """The snapshot whenever something changed: new events, new SLI samples, the drill
    state; the clock ticks in the page between messages. Ends once the drill is over
    and said so, or once ``present`` (``context.presence``) says the person reading may
    no longer (revoked, their session ended)."""
    head = None
    while True:
        if not present():
            return
        snap = await asyncio.to_thread(drill.snapshot, after_seq=after_seq, sli_offset=offset)
        now = json.dumps({k: v for k, v in snap.items() if k not in ("clock", "events", "sli",
                                                                     "next_sli_offset")},
                         default=str, sort_keys=True)
        if snap["events"] or snap["sli"] or now != head:
            yield {"data": json.dumps(snap, default=str)}
        after_seq, offset, head = snap["last_seq"], snap["next_sli_offset"], now
        if snap["over"] and snap["drill"]["state"] != DrillState.RUNNING:
            yield {"event": "over", "data": "{}"}
            return
        await asyncio.sleep(POLL_S)


async def drill_events(request: Request) -> Response:
    """``/drills/ID/events?after=SEQ&sli=OFFSET``: server-sent events of the console."""
    caller(request)
    drill = _drill(request)  # 404 before the stream starts
    after, offset = whole(request, "after", 0), whole(request, "sli", 0)
    return EventSourceResponse(follow(drill, after, offset, presence(request)), ping=PING_S,
                               headers={"Cache-Control": "no-store"})


async def api_state(request: Request) -> Response:
    caller(request)
    return JSONResponse(await asyncio.to_thread(_drill(request).snapshot), status_code=200)


MOVES = ("join", "pause", "resume", "inject", "hint", "end")


async def api_move(request: Request) -> Response:
    """``POST /api/v1/drills/ID/MOVE``: join ``{"role"}``, pause, resume, inject
    ``{"name"}`` or ``{"from", "message"}``, hint ``{"stage"?}``, end. Only the game
    master pauses, resumes, fires injects and ends the drill."""
    who, data = await move_request(request)
    move = one_of(request.path_params["move"], MOVES, "move")
    drill = _drill(request)
    caller_is = identity(request)
    stand_in = caller_is.via != "token" and caller_is.may("admin")  # an admin, as themselves
    if move in ("pause", "resume", "inject", "end") and who != drill.row["game_master"] \
            and not stand_in:
        raise Forbidden(f"only the game master ({drill.row['game_master']}) or an admin can "
                        f"{move} the drill")
    result: Any = None
    match move:
        case "join":
            drill.join(who, one_of(data.get("role"), ROLES, "role"))
        case "pause":
            drill.pause(who)
        case "resume":
            drill.resume(who)
        case "inject":
            name = data.get("name") or None
            result = drill.inject(who, name=text(name, "name", limit=64) if name else None,
                                  sender=data.get("from"), message=data.get("message"))
        case "hint":
            stage = data.get("stage") or None
            result = drill.hint(who, text(stage, "stage", limit=40) if stage else None)
        case "end":
            drill.end(who)
    return JSONResponse({"ok": True, "move": move, "by": who, "result": result})


# -- the debrief ----------------------------------------------------------------------------
def _measure(timeline: Sequence[Any]) -> Mapping[str, Any]:
    """The scorecard's metrics, for a replay's real incident and its drill alike."""
    return compute_metrics(timeline).as_dict()


async def debrief_page(request: Request) -> Response:
    who = caller(request)
    data = await asyncio.to_thread(_drill(request).debrief, _measure)
    review = data.get("review")
    return page("debrief.html", who=who, d=data, timeline=timeline_rows(data["timeline"]),
                has_review=bool(review and Path(review).with_suffix(".html").is_file()))


async def api_debrief(request: Request) -> Response:
    caller(request)
    data = await asyncio.to_thread(_drill(request).debrief, _measure)
    return JSONResponse(json.loads(json.dumps(data, default=str)))
