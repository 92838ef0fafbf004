"""How ``gameday serve`` answers a failure: once, here, for every view.

::

    NotFound            404
    GamedayError        409   a move the incident or drill is not in a state for
                        ("drill 3 is already paused")
    ValidationError     422   the API adds the ``field`` at fault
    alerts.Rejected     its own status: 413 too large, 400 not JSON
    Unauthorized        401 JSON for the API and event streams; pages go to /login?next=…
    Forbidden           403
    HTTPException       its own status (Starlette's: unknown path, wrong method, …)
    StoreUnavailable    503 with Retry-After: the database cannot be reached, or lost
                        the connection (PostgreSQL restarted, failed over); the next
                        request opens a new one
    sqlite3.OperationalError  503 with Retry-After: the store is busy or full; a
                        webhook sender retries, nothing was recorded

The API and the event streams get ``{"error": …}``; ``/metrics`` gets a line of plain
text (what Prometheus shows for a failed scrape); people get a page that says what
went wrong and where to go next.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from gameday.core.errors import GamedayError, NotFound, StoreUnavailable, ValidationError
from gameday.people.auth import Forbidden, Unauthorized
from gameday.runs.alerts import Rejected
from gameday.web.context import caller_or_none, for_machines, for_prometheus, page

Handler = Callable[[Request, Exception], Awaitable[Response]]
TITLES = {400: "Bad request", 401: "Sign in", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Not now", 413: "Too large", 422: "Not accepted",
          503: "Try again"}


def answer(request: Request, status: int, message: str, *,
           headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    if for_machines(request):
        return JSONResponse({"error": message, **extra}, status_code=status,
                            headers=dict(headers or {}))
    if for_prometheus(request):
        return PlainTextResponse(f"{message}\n", status_code=status, headers=dict(headers or {}))
    response = page("error.html", status=status, who=caller_or_none(request),
                    title=TITLES.get(status, f"Error {status}"), message=message)
    response.headers.update(headers or {})
    return response


async def not_found(request: Request, exc: Exception) -> Response:
    return answer(request, 404, str(exc))


async def conflict(request: Request, exc: Exception) -> Response:
    return answer(request, 409, str(exc))


async def invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return answer(request, 422, str(exc), field=exc.field)


async def rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Rejected)
    return answer(request, exc.status, str(exc))


async def unauthorized(request: Request, exc: Exception) -> Response:
    if for_machines(request):
        return JSONResponse({"error": "unauthorized"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    if for_prometheus(request):
        return PlainTextResponse("a bearer token is required\n", status_code=401,
                                 headers={"WWW-Authenticate": "Bearer"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


async def forbidden(request: Request, exc: Exception) -> Response:
    return answer(request, 403, str(exc) or "forbidden")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return answer(request, exc.status_code, exc.detail, headers=exc.headers)


async def store_unavailable(request: Request, exc: Exception) -> Response:
    # What the database said (its host, user, name) goes to the server's log, not to
    # whoever is asking.
    log.warning("gameday serve: %s %s: the store is unavailable: %s", request.method,
                request.url.path, exc)
    return answer(request, 503, "the store cannot take requests now; retry",
                  headers={"Retry-After": "5"})


log = logging.getLogger(__name__)

HANDLERS: dict[Any, Handler] = {
    sqlite3.OperationalError: store_unavailable, StoreUnavailable: store_unavailable,
    NotFound: not_found, ValidationError: invalid, GamedayError: conflict, Rejected: rejected,
    Unauthorized: unauthorized, Forbidden: forbidden, HTTPException: http_error,
}
