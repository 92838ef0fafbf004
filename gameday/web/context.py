"""What every view of ``gameday serve`` uses: the server's shared objects, who is
asking, the request body within its limit, and the page renderer.

``create_app`` puts the shared objects on ``app.state``; ``shared(request)`` reads
them back, typed. ``caller(request)`` is the one way a view learns who is asking: it
raises ``Unauthorized`` or ``Forbidden`` and the app's exception handlers answer
(401 JSON for machines, the sign-in page for people).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse

from gameday.core import clock
from gameday.core.audit import Audit
from gameday.core.errors import ValidationError
from gameday.core.policy import may
from gameday.core.render import templates
from gameday.core.settings import Settings
from gameday.core.text import unkept
from gameday.people.auth import SESSION_COOKIE, Auth, Forbidden, Identity, Unauthorized
from gameday.runs.alerts import MAX_BODY, Rejected
from gameday.runs.pool import Dispatcher
from gameday.store import Store

if TYPE_CHECKING:
    from gameday.chat.relay import Relay
    from gameday.schedules.scheduler import Scheduler


class Shared(Protocol):
    """What ``create_app`` puts on ``app.state``."""

    store: Store
    auth: Auth
    dispatcher: Dispatcher
    runbook_dir: Path | None
    intake_slots: asyncio.Semaphore
    settings: Settings
    four_eyes: str            # destructive | all | off: which runs wait for a second person
    approval_ttl: float
    scheduler: Scheduler | None  # runs scheduled game days in this process, if it does
    relay: Relay | None       # the incident rooms in chat, when the project names a chat


def shared(request: Request) -> Shared:
    return cast(Shared, request.app.state)


def for_machines(request: Request) -> bool:
    """The API and the event streams answer in JSON; everything else is a page."""
    path = request.url.path
    return path.startswith("/api/") or path.endswith("/events")


METRICS = "/metrics"


def for_prometheus(request: Request) -> bool:
    """``/metrics`` answers in Prometheus' text format, its failures in plain text."""
    return request.url.path == METRICS


WHAT = {"view": "see this", "run": "run runbooks or make moves",
        "run_destructive": "run a destructive runbook", "approve": "approve runs",
        "start": "start drills or game days", "admin": "manage people",
        "alerts": "post alerts", "freeze": "freeze game days",
        "unfreeze": "lift the freeze on game days"}


def identity(request: Request, body: bytes | None = None) -> Identity:
    """Who is asking. A page with an expired, revoked or foreign session cookie asks the
    person to sign in again."""
    client = request.client.host if request.client else None
    try:
        return shared(request).auth.identify(request.headers, request.cookies, body, client)
    except Forbidden:
        if for_machines(request) or request.headers.get("authorization"):
            raise
        raise Unauthorized() from None


def allowed(request: Request, need: str, body: bytes | None = None) -> Identity:
    """Who is asking, once it is clear they may do ``need`` (``policy.NEEDS``); a
    refusal is a 403 and an entry in the audit log."""
    who = identity(request, body)
    if not who.may(need):
        shared(request).store.audit(who.name, Audit.FORBIDDEN, {
            "need": need, "role": who.role, "path": request.url.path})
        raise Forbidden(f"{who.name} is a {who.role}: a {who.role} may not "
                        f"{WHAT.get(need, need)}")
    return who


def caller(request: Request, body: bytes | None = None, need: str = "view") -> str:
    """Who is asking (``token``, ``signed-webhook`` or a person's name), once it is
    clear they may do ``need``."""
    return allowed(request, need, body).name


WHOLE = re.compile(r"[0-9]{1,15}")
MOST = 10**15 - 1  # what ``WHOLE`` takes, well inside the store's 64-bit integers


def whole(request: Request, name: str, default: int, *, least: int = 0,
          most: int = MOST) -> int:
    """The query parameter ``name`` (``?after=12``) as a whole number from ``least`` to
    ``most``, ``default`` when it is not given; else a ValidationError naming it."""
    given = request.query_params.get(name)
    return default if given is None else _number(given, name, least, most)


def given_id(value: str, field: str) -> int | None:
    """An id a form or a query carries (``incident=12``): None when empty, else a whole
    number from 1 to ``MOST``, or a ValidationError naming ``field``."""
    return None if value == "" else _number(value, field, 1, MOST, what="an id")


def _number(given: str, field: str, least: int, most: int, what: str = "") -> int:
    if not WHOLE.fullmatch(given) or not least <= int(given) <= most:
        rule = f"a whole number from {least} to {most}"
        raise ValidationError(f"must be {f'{what} ({rule})' if what else rule}, not "
                              f"{given[:40]!r}", field=field)
    return int(given)


RECHECK_S = 2.0  # how often an open stream asks again who reads it


def presence(request: Request, every: float = RECHECK_S) -> Callable[[], bool]:
    """For a stream that stays open (``/runs/ID/events``, ``/drills/ID/events``): whether
    the person reading it still may (``caller``), asked again once ``every`` seconds
    have passed since the last time (True in between). A revoked person's stream ends
    at the next question, as their next request would be refused."""
    asked = time.monotonic()

    def present() -> bool:
        nonlocal asked
        if time.monotonic() - asked < every:
            return True
        asked = time.monotonic()
        try:
            caller(request)
        except (Unauthorized, Forbidden):
            return False
        return True

    return present


def caller_or_none(request: Request) -> str | None:
    try:
        return identity(request).name
    except (Unauthorized, Forbidden):
        return None


DRAIN_BODY = 64 << 20  # past the limit, up to this much is read and dropped (below),
DRAIN_S = 5.0          # for at most this long: a slow sender is cut off then


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refused (413) as soon as it passes ``limit``: never kept whole.

    A client that sends its body without waiting for an answer (urllib, most libraries)
    and is answered while it still sends would see its connection reset, not the 413:
    so what is left of such a body is read and dropped first (up to ``DRAIN_BODY``; past
    that, or past ``DRAIN_S``, the connection is cut). A client that asked ``Expect:
    100-continue`` (curl) has sent nothing yet and is answered at once."""
    too_large = Rejected(413, f"payload larger than {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        if request.headers.get("expect", "").lower() != "100-continue" \
                and int(declared) <= DRAIN_BODY:
            await _drop_body(request, 0)
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drop_body(request, size)
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _drop_body(request: Request, size: int) -> None:
    """Read the rest of the body without keeping it, up to ``DRAIN_BODY`` in all and
    for at most ``DRAIN_S``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            while size <= DRAIN_BODY:
                message = await request.receive()
                if message["type"] != "http.request":
                    return  # the client went away
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


CSRF_HEADER = "x-csrf-token"
PROXY_CSRF_S = 12 * 3600  # a proxied person's CSRF token changes this often


def csrf(request: Request) -> str:
    """The CSRF token the page's forms and scripts send back: derived from the session
    cookie, or, for a person a trusted proxy vouches for, from their name and the
    current 12-hour period."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    auth = shared(request).auth
    if cookie:
        return auth.csrf_token(cookie)
    who = caller_or_none(request)
    period = int(clock.epoch() // PROXY_CSRF_S)
    return auth.csrf_token(f"proxy|{who}|{period}") if who else ""


def check_csrf(request: Request, given: str) -> None:
    expected = csrf(request)
    if not expected or not hmac.compare_digest(given, expected):
        raise Forbidden("CSRF check failed: reload the page")


async def read_json(request: Request) -> dict[str, Any]:
    """A small JSON object body: 413 past the limit, 400 not JSON (or nested past
    reason), 422 not an object."""
    body = await read_body(request)
    try:
        data = json.loads((body or b"{}").decode("utf-8"))  # UTF-8 only (RFC 8259)
    except (ValueError, RecursionError):
        raise Rejected(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object", field="body")
    unfit = unkept(data)
    if unfit:
        raise ValidationError(unfit[1], field=unfit[0])
    return data


# Moves that need a person to answer for them, never the shared token in someone's name.
PERSONAL = ("run_destructive", "approve")


async def move_request(request: Request, need: str = "run") -> tuple[str, dict[str, Any]]:
    """Who makes a move, and its JSON body. A person's own token or a proxy's header is
    that person; a signed-in person is who their session says, and their page proves it
    sent the request (the CSRF token in ``X-CSRF-Token``). A script with the shared
    token names the person in ``as``: once people have their own identities, that must
    be one of them, and asking for or approving a destructive run takes their own."""
    who = allowed(request, need)  # who first: nobody's body is parsed for nothing
    data = await read_json(request)
    auth = shared(request).auth
    if who.via == "token":
        from gameday.incidents.moves import person

        name = person(data.get("as"), "as")
        if auth.personal():
            refused = {"need": need, "role": "admin", "path": request.url.path,
                       "via": "token", "as": name}
            if need in PERSONAL:
                shared(request).store.audit("token", Audit.FORBIDDEN, {
                    **refused, "why": "a move a person makes with their own token"})
                raise Forbidden(f"to {WHAT[need]}, use your own token (gameday user add), "
                                "not the shared one")
            user = auth.store.user(name) if auth.store is not None else None
            if user is None:
                shared(request).store.audit("token", Audit.FORBIDDEN, {
                    **refused, "why": f"{name} is not a gameday user"})
                raise Forbidden(f"{name} is not a gameday user (gameday user add)")
            if not may(str(user["role"]), need):  # in someone's name, with their rights
                shared(request).store.audit(name, Audit.FORBIDDEN, {
                    "need": need, "role": user["role"], "path": request.url.path,
                    "via": "token"})
                raise Forbidden(f"{name} is a {user['role']}: a {user['role']} may not "
                                f"{WHAT.get(need, need)}")
        return name, data
    if who.via in ("session", "proxy"):  # a browser: its page proves it sent this
        check_csrf(request, request.headers.get(CSRF_HEADER, ""))
    if data.get("as") not in (None, who.name):
        raise Forbidden(f"signed in as {who.name}: you cannot act as someone else")
    return who.name, data


async def read_form(request: Request) -> dict[str, str]:
    """The page forms are small and urlencoded: parse them without a multipart library."""
    body = await read_body(request)
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    unfit = unkept(form)
    if unfit:
        raise ValidationError(unfit[1], field=unfit[0])
    return form


# Pages run things (a runbook's Run, a move) from forms with a CSRF token: never inside
# another site's frame (clickjacking), never kept by a cache.
PAGE = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
        "Cache-Control": "no-store"}


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``web/NAME``; every page extends ``web/base.html`` and gets ``who``."""
    html = templates().get_template(f"web/{name}").render(**context)
    # Text kept before its checks (a lone surrogate from an older gameday, or from a
    # command line's undecodable bytes) shows as a replacement mark, never as a 500.
    return HTMLResponse(html.encode("utf-8", "replace"), status_code=status, headers=PAGE)
