"""The JSON API: Alertmanager's webhook, incidents and runs for scripts and checks.

Every endpoint wants a bearer token (the webhook also takes an HMAC signature of the
body in ``X-Gameday-Signature``). Failures are answered by ``exceptions``.
"""

from __future__ import annotations

import asyncio
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gameday.core.errors import ValidationError
from gameday.incidents.incident import Incident
from gameday.runs.alerts import decode
from gameday.store import KINDS
from gameday.web.context import caller, read_body, shared, whole

EVENTS_PAGE = 1000       # events a page of ``/api/v1/incidents/ID/events`` holds unless asked
EVENTS_PAGE_MOST = 10_000


async def post_alerts(request: Request) -> Response:
    """``POST /api/v1/alerts``: 413 past the size limit, 400 not JSON, 422 not a valid
    notification (naming the field); else, once it is committed, what was opened,
    joined, started and coalesced. At most ``INTAKE_SLOTS`` requests are read and
    parsed at once; the rest wait their turn (bounded memory in a storm)."""
    state = shared(request)
    async with state.intake_slots:
        body = await read_body(request)
        who = caller(request, body, need="alerts")
        note = decode(body)
        result = await state.dispatcher.answer(note, who)
    return JSONResponse(result)


async def get_incident(request: Request) -> Response:
    """``GET /api/v1/incidents/ID``: exactly what ``gameday incident show ID --json`` prints."""
    caller(request)
    store, incident_id = shared(request).store, request.path_params["id"]

    def read() -> str:  # beside the event loop: a storm's timeline is long
        return json.dumps(Incident(store, incident_id).as_dict(), indent=2, default=str)

    return Response(await asyncio.to_thread(read), media_type="application/json")


async def get_incident_events(request: Request) -> Response:
    """``GET /api/v1/incidents/ID/events?after=SEQ&limit=N&kind=KIND``: a page of the
    incident's events in recording order (``Incident.events_page``), ``kind`` as often
    as wanted. For a script following an incident, and for a storm's incident, whose
    whole timeline (``GET /api/v1/incidents/ID``) runs to hundreds of thousands of
    events."""
    caller(request)
    store, incident_id = shared(request).store, request.path_params["id"]
    after = whole(request, "after", 0)
    limit = whole(request, "limit", EVENTS_PAGE, least=1, most=EVENTS_PAGE_MOST)
    kinds = request.query_params.getlist("kind") or None
    for kind in kinds or ():
        if kind not in KINDS:
            raise ValidationError(f"no event kind {kind[:60]!r}", field="kind")

    def read() -> str:
        return json.dumps(Incident(store, incident_id).events_page(after, limit, kinds),
                          default=str)

    return Response(await asyncio.to_thread(read), media_type="application/json")


async def get_run(request: Request) -> Response:
    """``GET /api/v1/runs/ID``: the run's row and its events so far (live from this
    process, else as recorded on the incident's timeline)."""
    caller(request)
    state = shared(request)
    run = state.store.run(request.path_params["id"])
    return JSONResponse(run | {"events": state.dispatcher.items(run)})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})
