"""Signing in: a person gives their own token (``gameday user add``) once and gets a
session cookie (HMAC-signed, HttpOnly, SameSite=Strict) in their name, which the
timeline and the audit log record for what they do. While nobody has a token of their
own (a single-user setup), the server's shared token and a name do.

Only this server's own sign-in page signs a browser in: a page elsewhere that posts
someone's token to ``/login`` (login CSRF) would sign the browser in as that someone,
and what its owner then did would be recorded in another name.
"""

from __future__ import annotations

from urllib.parse import urlsplit

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


def from_elsewhere(request: Request, ours: str | None) -> bool:
    """Whether a browser sent this from another site's or another server's page. Its
    ``Sec-Fetch-Site`` says so (``same-site`` too: another port on this host is another
    server), where it sends one: to HTTPS and to loopback. Otherwise (plain HTTP to a
    name or an address on the network, an old browser) a form's POST carries ``Origin``:
    this server as the request reached it (``Host``), or as people reach it (``ours``,
    ``GAMEDAY_URL`` where set: behind a proxy that rewrites ``Host``). A client that
    sends neither is not a browser a page could drive."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    given = urlsplit(origin.lower())
    if given.netloc and given.netloc == request.headers.get("host", "").lower():
        return False
    if ours is None:
        return True
    public = urlsplit(ours.lower())
    return (given.scheme, given.netloc) != (public.scheme, public.netloc)


async def login(request: Request) -> Response:
    nxt = next_page(request)
    state = shared(request)
    personal = state.auth.personal()
    if request.method == "GET":
        return page("login.html", who=None, next=nxt, error=None, personal=personal)
    form = await read_form(request)
    if from_elsewhere(request, state.settings.url if state.settings.url_given else None):
        state.store.audit("?", Audit.LOGIN_FAILED, {
            "why": "sent from another site's page",
            "origin": request.headers.get("origin", "")[:200]})
        return page("login.html", status=403, who=None, next=nxt, personal=personal,
                    error="That sign-in was sent from another site's page, so it was "
                          "refused: sign in here.")
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
