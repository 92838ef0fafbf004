"""Signing in: a person gives the server's token and their name once and gets a
session cookie (HMAC-signed, HttpOnly, SameSite=Strict); their name is what the
timeline and the audit log record for what they run.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gameday.auth import SESSION_COOKIE, SESSION_TTL_S
from gameday.events import Audit
from gameday.web.context import page, read_form, shared

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
HOME = "/incidents"


def next_page(request: Request) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    target = request.query_params.get("next", HOME)
    ok = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if ok else HOME


async def login(request: Request) -> Response:
    nxt = next_page(request)
    if request.method == "GET":
        return page("login.html", who=None, next=nxt, error=None)
    form = await read_form(request)
    state = shared(request)
    name = form.get("name", "").strip()
    if not state.auth.check_token(form.get("token", "")) or not NAME.fullmatch(name):
        state.store.audit(name or "?", Audit.LOGIN_FAILED, {})
        return page("login.html", status=403, who=None, next=nxt,
                    error="Wrong token, or a name that is not lowercase letters/digits.")
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(SESSION_COOKIE, state.auth.new_session(name), max_age=SESSION_TTL_S,
                        httponly=True, samesite="strict")
    state.store.audit(name, Audit.LOGIN, {})
    return response


async def root(request: Request) -> Response:
    return RedirectResponse(HOME, status_code=303)
