"""Signing in: a person gives their own token (``gameday user add``) once and gets a
session cookie (HMAC-signed, HttpOnly, SameSite=Strict) in their name, which the
timeline and the audit log record for what they do. While nobody has a token of their
own (a single-user setup), the server's shared token and a name do.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gameday.core.audit import Audit
from gameday.core.spec import PERSON
from gameday.people.auth import SESSION_COOKIE, SESSION_TTL_S
from gameday.web.context import page, read_form, shared

HOME = "/incidents"


def next_page(request: Request) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    target = request.query_params.get("next", HOME)
    ok = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if ok else HOME


async def login(request: Request) -> Response:
    nxt = next_page(request)
    state = shared(request)
    personal = state.auth.personal()
    if request.method == "GET":
        return page("login.html", who=None, next=nxt, error=None, personal=personal)
    form = await read_form(request)
    name = form.get("name", "").strip()
    who = state.auth.sign_in(form.get("token", ""), name)
    if who is None or not PERSON.fullmatch(who.name):
        state.store.audit(name or "?", Audit.LOGIN_FAILED, {})
        error = ("Wrong token: sign in with your own token (gameday user add gives one)."
                 if personal else
                 "Wrong token, or a name that is not lowercase letters/digits.")
        return page("login.html", status=403, who=None, next=nxt, error=error,
                    personal=personal)
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(SESSION_COOKIE,
                        state.auth.new_session(who.name, personal=who.via == "user-token"),
                        max_age=SESSION_TTL_S, httponly=True, samesite="strict")
    state.store.audit(who.name, Audit.LOGIN, {"via": who.via, "role": who.role})
    return response


async def root(request: Request) -> Response:
    return RedirectResponse(HOME, status_code=303)
