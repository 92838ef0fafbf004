"""The ASGI app behind ``gameday serve`` (Starlette): ``create_app(...)``.

API (bearer token or, for webhooks, an HMAC signature): ``POST /api/v1/alerts``,
``GET /api/v1/incidents/ID``, ``GET /api/v1/runs/ID``. Pages (session cookie after
``/login``): ``/incidents``, ``/incidents/ID``, ``/runbooks/NAME?...`` with Run and
check-mode buttons, ``/runs/ID`` with live output from ``/runs/ID/events`` (SSE).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from gameday.errors import GamedayError, NotFound, ValidationError
from gameday.incident import Incident
from gameday.runbook import find, validate_params
from gameday.store import Store
from gameday.web.alerts import parse
from gameday.web.auth import SESSION_COOKIE, SESSION_TTL_S, Auth, Forbidden, Unauthorized
from gameday.web.dispatch import Dispatcher

MAX_BODY = 1 << 20
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def _templates():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("gameday", "templates/web"),
                       autoescape=select_autoescape(["html"]))


async def read_form(request: Request) -> dict[str, str]:
    """The page forms are small and urlencoded: parse them without a multipart library."""
    body = await request.body()
    if len(body) > MAX_BODY:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def create_app(*, token: str, store: Store, data_dir: Path, runbook_dir: Path | None = None,
               max_concurrent: int = 2, env: dict[str, str] | None = None) -> Starlette:
    auth = Auth(token)
    dispatcher = Dispatcher(store, runbook_dir=runbook_dir, data_dir=data_dir,
                            max_concurrent=max_concurrent, env=env)
    pages = _templates()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(pages.get_template(name).render(**context), status_code=status)

    def api_identity(request: Request, body: bytes | None = None) -> str:
        return auth.identify(request.headers, request.cookies, body)

    def page_identity(request: Request) -> str | None:
        try:
            return auth.identify(request.headers, request.cookies)
        except (Unauthorized, Forbidden):
            return None

    def to_login(request: Request) -> RedirectResponse:
        from urllib.parse import quote

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    def denied(exc: Exception) -> JSONResponse:
        if isinstance(exc, Forbidden):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        return JSONResponse({"error": "unauthorized"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    # -- API --------------------------------------------------------------------------
    async def post_alerts(request: Request) -> Response:
        body = await request.body()
        try:
            who = api_identity(request, body)
        except (Unauthorized, Forbidden) as exc:
            return denied(exc)
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        try:
            note = parse(json.loads(body or b"null"))
        except json.JSONDecodeError as exc:
            return JSONResponse({"error": f"not JSON: {exc}"}, status_code=400)
        except ValidationError as exc:
            return JSONResponse({"error": str(exc), "field": exc.field}, status_code=422)
        result = await asyncio.to_thread(dispatcher.handle, note)
        store.audit(who, "alerts.received", {"groupKey": note.group_key,
                                             "status": note.status, "result": result})
        return JSONResponse(result)

    async def get_incident_api(request: Request) -> Response:
        try:
            api_identity(request)
        except (Unauthorized, Forbidden) as exc:
            return denied(exc)
        try:
            data = Incident(store, int(request.path_params["id"])).as_dict()
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return Response(json.dumps(data, indent=2, default=str), media_type="application/json")

    async def get_run_api(request: Request) -> Response:
        try:
            api_identity(request)
        except (Unauthorized, Forbidden) as exc:
            return denied(exc)
        try:
            run = store.run(int(request.path_params["id"]))
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        stream = dispatcher.streams.get(run["id"])
        return JSONResponse(run | {"events": stream.since(0) if stream else []})

    # -- sign-in ----------------------------------------------------------------------
    async def login(request: Request) -> Response:
        nxt = request.query_params.get("next", "/incidents")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/incidents"
        if request.method == "GET":
            return page("login.html", next=nxt, error=None)
        form = await read_form(request)
        name = str(form.get("name", "")).strip()
        if not auth.check_token(str(form.get("token", ""))) or not NAME.match(name):
            store.audit(name or "?", "login.failed", {})
            return page("login.html", status=403, next=nxt,
                        error="Wrong token, or a name that is not lowercase letters/digits.")
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie(SESSION_COOKIE, auth.new_session(name), max_age=SESSION_TTL_S,
                            httponly=True, samesite="strict")
        store.audit(name, "login", {})
        return response

    # -- pages ------------------------------------------------------------------------
    async def incidents(request: Request) -> Response:
        if not (who := page_identity(request)):
            return to_login(request)
        return page("incidents.html", who=who, incidents=store.incidents()[::-1])

    async def incident(request: Request) -> Response:
        if not (who := page_identity(request)):
            return to_login(request)
        try:
            data = Incident(store, int(request.path_params["id"])).as_dict()
        except NotFound as exc:
            return PlainTextResponse(str(exc), status_code=404)
        review = Path(data["run_dir"]) / "review.html" if data.get("run_dir") else None
        return page("incident.html", who=who, inc=data, runs=store.runs(incident_id=data["id"]),
                    review=review if review and review.exists() else None)

    async def runbook_page(request: Request) -> Response:
        if not (who := page_identity(request)):
            return to_login(request)
        try:
            rb = find(request.path_params["name"], runbook_dir)
        except GamedayError as exc:
            return PlainTextResponse(str(exc), status_code=404)
        raw = {k: v for k, v in request.query_params.items() if k != "incident"}
        error, params = None, {}
        try:
            params = validate_params(rb, raw)
        except ValidationError as exc:
            error = str(exc)
        incident_id = request.query_params.get("incident")
        inc = None
        if incident_id and incident_id.isdigit():
            try:
                inc = store.incident(int(incident_id))
            except NotFound:
                error = f"no incident {incident_id}"
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return page("runbook.html", who=who, rb=rb, commands=rb.commands(), raw=raw,
                    params=params, error=error, inc=inc,
                    csrf=auth.csrf_token(cookie) if cookie else "")

    async def run_runbook_form(request: Request) -> Response:
        if not (who := page_identity(request)):
            return to_login(request)
        form = await read_form(request)
        cookie = request.cookies.get(SESSION_COOKIE)
        if not auth.check_csrf(cookie, str(form.get("csrf", ""))):
            return PlainTextResponse("CSRF check failed: reload the page", status_code=403)
        try:
            rb = find(request.path_params["name"], runbook_dir)
        except GamedayError as exc:
            return PlainTextResponse(str(exc), status_code=404)
        if rb.destructive and form.get("confirm") != "yes":
            return PlainTextResponse("this runbook is destructive: tick the confirmation",
                                     status_code=400)
        raw = {k[2:]: str(v) for k, v in form.items() if k.startswith("p.")}
        try:
            params = validate_params(rb, raw)
        except ValidationError as exc:
            return PlainTextResponse(str(exc), status_code=422)
        incident_id = str(form.get("incident", ""))
        inc = int(incident_id) if incident_id.isdigit() else None
        run_id = dispatcher.start(rb, params, inc, who, check=form.get("mode") == "check")
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    async def run_page(request: Request) -> Response:
        if not (who := page_identity(request)):
            return to_login(request)
        try:
            run = store.run(int(request.path_params["id"]))
        except NotFound as exc:
            return PlainTextResponse(str(exc), status_code=404)
        return page("run.html", who=who, run=run)

    async def run_events(request: Request) -> Response:
        if not page_identity(request):
            return PlainTextResponse("unauthorized", status_code=401)
        run_id = int(request.path_params["id"])
        stream = dispatcher.streams.get(run_id)

        async def events():
            if stream is None:
                run = store.run(run_id)
                yield f"event: done\ndata: {json.dumps({'status': run['status']})}\n\n"
                return
            sent = 0
            while True:
                for item in stream.since(sent):
                    sent += 1
                    yield f"data: {json.dumps(item, default=str)}\n\n"
                if stream.done.is_set() and not stream.since(sent):
                    run = store.run(run_id)
                    yield f"event: done\ndata: {json.dumps({'status': run['status']})}\n\n"
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await asyncio.to_thread(dispatcher.shutdown)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def root(request: Request) -> Response:
        return RedirectResponse("/incidents", status_code=303)

    app = Starlette(routes=[
        Route("/", root), Route("/healthz", healthz),
        Route("/api/v1/alerts", post_alerts, methods=["POST"]),
        Route("/api/v1/incidents/{id:int}", get_incident_api),
        Route("/api/v1/runs/{id:int}", get_run_api),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/incidents", incidents), Route("/incidents/{id:int}", incident),
        Route("/runbooks/{name}", runbook_page),
        Route("/runbooks/{name}/run", run_runbook_form, methods=["POST"]),
        Route("/runs/{id:int}", run_page), Route("/runs/{id:int}/events", run_events),
    ], lifespan=lifespan)
    app.state.dispatcher = dispatcher
    return app
