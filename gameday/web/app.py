"""The ASGI app behind ``gameday serve`` (Starlette): ``create_app(...)``.

API (bearer token or, for webhooks, an HMAC signature; ``api``):
``POST /api/v1/alerts``, ``GET /api/v1/incidents/ID``, ``GET /api/v1/runs/ID``,
``GET /metrics`` (Prometheus text).
Pages (session cookie after ``/login``; ``signin``, ``incidents``, ``runbooks``):
``/incidents``, ``/incidents/ID``, ``/incidents/ID/review``, ``/schedules``, ``/insights``,
``/runbooks/NAME?...``
with Run and check-mode buttons, ``/runs/ID`` with its output, live from
``/runs/ID/events`` (server-sent events).

The views are plain functions; what they share (store, auth, dispatcher, runbook
directories) lives on ``app.state`` (``context.shared``), and failures are answered
once, by the handlers in ``exceptions``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route

from gameday.auth import Auth
from gameday.intake import COALESCE_WINDOW_S
from gameday.store import Store
from gameday.web import api, incidents, insights, runbooks, schedules, signin
from gameday.web.dispatch import Dispatcher
from gameday.web.exceptions import HANDLERS

ROUTES = [
    Route("/", signin.root),
    Route("/healthz", api.healthz),
    Route("/login", signin.login, methods=["GET", "POST"]),
    # API
    Route("/api/v1/alerts", api.post_alerts, methods=["POST"]),
    Route("/api/v1/incidents/{id:int}", api.get_incident),
    Route("/api/v1/runs/{id:int}", api.get_run),
    # pages
    Route("/incidents", incidents.incident_list),
    Route("/incidents/{id:int}", incidents.incident_page),
    Route("/incidents/{id:int}/review", incidents.review),
    Route("/schedules", schedules.schedule_list),
    Route("/insights", insights.insights_page),
    Route("/metrics", insights.metrics),
    Route("/runbooks/{name}", runbooks.runbook_page),
    Route("/runbooks/{name}/run", runbooks.run_runbook, methods=["POST"]),
    Route("/runs/{id:int}", runbooks.run_page),
    Route("/runs/{id:int}/events", runbooks.run_events),
]


INTAKE_SLOTS = 64  # webhook requests read and parsed at once; the rest wait


def create_app(*, token: str, store: Store, data_dir: Path, runbook_dir: Path | None = None,
               max_concurrent: int = 2, env: dict[str, str] | None = None,
               coalesce_window: float = COALESCE_WINDOW_S) -> Starlette:
    auth = Auth(token)  # refuses a short token before any worker starts
    dispatcher = Dispatcher(store, runbook_dir=runbook_dir, data_dir=data_dir,
                            max_concurrent=max_concurrent, env=env,
                            coalesce_window=coalesce_window)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(dispatcher.shutdown)  # let running playbooks finish

    app = Starlette(routes=ROUTES, exception_handlers=HANDLERS, lifespan=lifespan)
    app.state.store = store
    app.state.auth = auth
    app.state.dispatcher = dispatcher
    app.state.intake_slots = asyncio.Semaphore(INTAKE_SLOTS)
    app.state.runbook_dir = runbook_dir
    return app
