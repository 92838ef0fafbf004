"""Moves on an incident over HTTP, for the drill console and for scripts: the same
calls as ``gameday incident ...`` (``gameday.incidents.moves``).

``POST /api/v1/incidents/ID/MOVE`` with a JSON body:

=========  ==============================================  ========================
ack        ``{}``                                         answer your page
assign     ``{"role", "person"}``                          give a role, hand over
severity   ``{"severity", "reason"}``                      the IC judges the impact
escalate   ``{"reason"}``
mitigated  ``{"how"?}``                                    the IC's call; the SLIs judge it
resolve    ``{"how"?}``
comms      ``{"audience", "text"?}``                       no text: the template
note       ``{"text"}``                                    warns of blaming language
=========  ==============================================  ========================

Drafts and checks change nothing: ``GET /api/v1/incidents/ID/comms/AUDIENCE`` is the
template filled in now with what the audience's updates must say;
``POST /api/v1/checks/update`` ``{"audience", "text"}`` and ``POST /api/v1/checks/note``
``{"text"}`` say what is missing and which words blame a person, as people type.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gameday.incidents import moves
from gameday.incidents.comms import REQUIRED
from gameday.incidents.incident import Incident
from gameday.web.context import caller, move_request, read_json, shared

MOVES = ("ack", "assign", "severity", "escalate", "mitigated", "resolve", "comms", "note")


async def incident_move(request: Request) -> Response:
    who, data = await move_request(request)
    move = moves.one_of(request.path_params["move"], MOVES, "move")
    store = shared(request).store
    inc = Incident(store, store.incident(request.path_params["id"])["id"])  # 404 first
    answer: dict[str, Any] = {"ok": True, "move": move, "by": who}
    match move:
        case "ack":
            answer["events"] = [e.kind for e in moves.acknowledge(inc, who, via="web")]
        case "assign":
            answer["events"] = [e.kind for e in moves.assign(inc, data.get("role"),
                                                             data.get("person"), who)]
        case "severity":
            moves.set_severity(inc, data.get("severity"), who, data.get("reason"))
        case "escalate":
            moves.escalate(inc, who, data.get("reason"))
        case "mitigated":
            moves.declare_mitigated(inc, who, data.get("how") or "")
        case "resolve":
            moves.resolve(inc, who, data.get("how") or "")
        case "comms":
            body = data.get("text")
            _, answer["missing"] = moves.post_update(inc, data.get("audience"), who,
                                                     None if body is None else body)
        case "note":
            _, answer["warnings"] = moves.add_note(inc, who, data.get("text"))
    return JSONResponse(answer)


async def draft_update(request: Request) -> Response:
    caller(request)
    inc = Incident(shared(request).store, request.path_params["id"])
    audience = request.path_params["audience"]
    return JSONResponse({"audience": audience, "text": moves.draft_update(inc, audience),
                         "required": list(REQUIRED.get(audience, ()))})


async def _json(request: Request) -> dict[str, Any]:
    caller(request)
    return await read_json(request)


async def check_update(request: Request) -> Response:
    data = await _json(request)
    body = moves.text(data.get("text"), "text", limit=moves.MAX_TEXT, required=False)
    return JSONResponse({"missing": moves.check_update(data.get("audience"), body)})


async def check_note(request: Request) -> Response:
    data = await _json(request)
    body = moves.text(data.get("text"), "text", limit=moves.MAX_TEXT, required=False)
    return JSONResponse({"warnings": moves.check_note(body)})
