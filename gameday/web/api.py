"""The JSON API: Alertmanager's webhook, incidents and runs for scripts and checks.

Every endpoint wants a bearer token (the webhook also takes an HMAC signature of the
body in ``X-Gameday-Signature``). Failures are answered by ``exceptions``.
"""

from __future__ import annotations

import asyncio
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gameday.incidents.incident import Incident
from gameday.runs.alerts import decode
from gameday.web.context import caller, read_body, shared


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


async def get_run(request: Request) -> Response:
    """``GET /api/v1/runs/ID``: the run's row and its events so far (live from this
    process, else as recorded on the incident's timeline)."""
    caller(request)
    state = shared(request)
    run = state.store.run(request.path_params["id"])
    return JSONResponse(run | {"events": state.dispatcher.items(run)})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})
