"""The ASGI app behind ``gameday serve`` (Starlette): ``create_app(...)``.

API (bearer token or, for webhooks, an HMAC signature; ``api``):
``POST /api/v1/alerts``, ``GET /api/v1/incidents/ID`` and its events a page at a time
(``/events``), ``GET /api/v1/runs/ID``, ``GET /metrics`` (Prometheus text); the moves
people make in an incident and a drill (``moves``, ``drills``).
Pages (session cookie after ``/login``; ``signin``, ``incidents``, ``runbooks``):
``/incidents``, ``/incidents/ID``, ``/incidents/ID/review``, ``/schedules``, ``/insights``,
``/drills`` and the drill console ``/drills/ID`` (live from ``/drills/ID/events``),
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
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gameday.chat.base import Chat
from gameday.chat.config import load as chat_config
from gameday.chat.relay import Relay
from gameday.core.settings import Settings
from gameday.core.settings import current as current_settings
from gameday.people.auth import Auth
from gameday.report.trust import hold_for
from gameday.runs.intake import COALESCE_WINDOW_S
from gameday.runs.pool import Dispatcher
from gameday.store import Store
from gameday.web import api, chat, drills, incidents, insights, moves, runbooks, schedules, signin
from gameday.web.context import METRICS
from gameday.web.exceptions import HANDLERS
from gameday.web.writer import Spec, Writer

if TYPE_CHECKING:
    from gameday.schedules.scheduler import Scheduler


class IdConvertor(Convertor[int]):
    """A row's id in a path: at most 18 digits, so it always fits the store's integers
    (a longer one is an unknown path, 404, never an overflow)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())
ALERTS = "/api/v1/alerts"  # the webhook: the one path ``App`` answers before Starlette does

ROUTES = [
    Route("/", signin.root),
    Route("/healthz", api.healthz),
    Route("/login", signin.login, methods=["GET", "POST"]),
    # API
    Route(ALERTS, api.post_alerts, methods=["POST"]),  # (``App`` takes POSTs first)
    Route("/api/v1/incidents/{id:id}", api.get_incident),
    Route("/api/v1/incidents/{id:id}/events", api.get_incident_events),
    Route("/api/v1/runs/{id:id}", api.get_run),
    Route("/api/v1/runbooks/{name}/run", runbooks.api_run, methods=["POST"]),
    Route("/api/v1/runs/{id:id}/approve", runbooks.api_approve, methods=["POST"]),
    Route("/api/v1/incidents/{id:id}/comms/{audience}", moves.draft_update),
    Route("/api/v1/incidents/{id:id}/{move}", moves.incident_move, methods=["POST"]),
    Route("/api/v1/checks/update", moves.check_update, methods=["POST"]),
    Route("/api/v1/checks/note", moves.check_note, methods=["POST"]),
    Route("/api/v1/drills", drills.api_start, methods=["POST"]),
    Route("/api/v1/freeze", schedules.api_freeze, methods=["POST"]),
    Route("/api/v1/unfreeze", schedules.api_unfreeze, methods=["POST"]),
    Route("/api/v1/schedules/{name}/run", schedules.api_run_now, methods=["POST"]),
    Route("/api/v1/drills/{id:id}", drills.api_state),
    Route("/api/v1/drills/{id:id}/debrief", drills.api_debrief),
    Route("/api/v1/drills/{id:id}/{move}", drills.api_move, methods=["POST"]),
    # what Slack pushes: slash commands and buttons (signed by Slack, not a token)
    Route("/api/v1/chat/slack/commands", chat.slack_commands, methods=["POST"]),
    Route("/api/v1/chat/slack/actions", chat.slack_actions, methods=["POST"]),
    # pages
    Route("/incidents", incidents.incident_list),
    Route("/incidents/{id:id}", incidents.incident_page),
    Route("/incidents/{id:id}/review", incidents.review),
    Route("/schedules", schedules.schedule_list),
    Route("/schedules/freeze", schedules.freeze, methods=["POST"]),
    Route("/schedules/unfreeze", schedules.unfreeze, methods=["POST"]),
    Route("/schedules/{name}/run", schedules.run_now, methods=["POST"]),
    Route("/drills", drills.drill_list, methods=["GET", "POST"]),
    Route("/drills/{id:id}", drills.console),
    Route("/drills/{id:id}/events", drills.drill_events),
    Route("/drills/{id:id}/debrief", drills.debrief_page),
    Route("/insights", insights.insights_page),
    Route(METRICS, insights.metrics),
    Route("/runbooks/{name}", runbooks.runbook_page),
    Route("/runbooks/{name}/run", runbooks.run_runbook, methods=["POST"]),
    Route("/runs/{id:id}", runbooks.run_page),
    Route("/runs/{id:id}/events", runbooks.run_events),
    Route("/runs/{id:id}/approve", runbooks.approve, methods=["POST"]),
]


class App(Starlette):
    """The app, with one shortcut: ``POST /api/v1/alerts``, the path an alert storm
    takes, goes straight to its view (``api.post_alerts``) and, should it fail, to the
    handler ``exceptions`` names for that failure, without Starlette's middleware and
    routing in between (about a fifth of the server's CPU per webhook in a storm). What
    the view does and how each failure is answered are the same either way; anything
    without a handler is answered 500 by the server, as Starlette would."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ALERTS or scope["method"] != "POST":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        request = Request(scope, receive)
        try:
            response = await api.post_alerts(request)
        except Exception as exc:
            handler = next((HANDLERS[cls] for cls in type(exc).__mro__ if cls in HANDLERS),
                           None)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


INTAKE_SLOTS = 64  # webhook requests read and parsed at once; the rest wait
APPROVAL_TTL_S = 15 * 60  # how long a destructive run waits for a second person
SWEEP_EVERY_S = 2.0
log = logging.getLogger(__name__)


def create_app(*, token: str, store: Store, data_dir: Path, runbook_dir: Path | None = None,
               max_concurrent: int = 2, env: dict[str, str] | None = None,
               coalesce_window: float = COALESCE_WINDOW_S,
               settings: Settings | None = None, four_eyes: str = "destructive",
               approval_ttl: float = APPROVAL_TTL_S, user_header: str | None = None,
               trusted_proxies: tuple[str, ...] = (),
               scheduler: Scheduler | None = None, chat: Chat | None = None,
               intake_process: bool = False) -> Starlette:
    """The app; with ``intake_process``, alerts are recorded by a process of its own
    (``writer``: another core in a storm), else by a thread of this one."""
    # refuses a short token, or a trusted header without its proxies, before any worker
    auth = Auth(token, store, user_header=user_header, trusted_proxies=trusted_proxies)
    settings = settings or current_settings()
    writer = Writer(Spec(store.url, runbook_dir, coalesce_window, dict(env or {}), settings)) \
        if intake_process else None
    dispatcher = Dispatcher(store, runbook_dir=runbook_dir, data_dir=data_dir,
                            max_concurrent=max_concurrent, env=env,
                            coalesce_window=coalesce_window,
                            hold=hold_for(store, settings.automation), writer=writer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def expire() -> None:  # approvals, heartbeats, orphaned runs, free slots
            while True:
                try:
                    await asyncio.to_thread(dispatcher.sweep)
                except Exception as exc:  # the store away for a moment: next time
                    log.warning("gameday serve: the sweep failed (%s: %s); next in %.0f s",
                                type(exc).__name__, exc, SWEEP_EVERY_S)
                await asyncio.sleep(SWEEP_EVERY_S)

        sweeper = asyncio.create_task(expire())
        if relay is not None:
            relay.start()
        yield
        sweeper.cancel()
        if relay is not None:
            await asyncio.to_thread(relay.stop)
        # SIGTERM too: the scheduler's game days stop and its claims go, while running
        # playbooks finish
        await asyncio.gather(asyncio.to_thread(scheduler.stop) if scheduler else asyncio.sleep(0),
                             asyncio.to_thread(dispatcher.shutdown))

    relay = _relay(store, chat, dispatcher, settings, approval_ttl, four_eyes, runbook_dir)
    app = App(routes=ROUTES, exception_handlers=HANDLERS, lifespan=lifespan)
    app.state.store = store
    app.state.auth = auth
    app.state.dispatcher = dispatcher
    app.state.intake_slots = asyncio.Semaphore(INTAKE_SLOTS)
    app.state.runbook_dir = runbook_dir
    app.state.settings = settings
    app.state.relay = relay  # the incident rooms in chat (None: the project names none)
    app.state.four_eyes = four_eyes
    app.state.approval_ttl = approval_ttl
    app.state.scheduler = scheduler  # runs scheduled game days here (serve --scheduler)
    return app


def _relay(store: Store, chat: Chat | None, dispatcher: Dispatcher, settings: Settings,
           approval_ttl: float, four_eyes: str, runbook_dir: Path | None) -> Relay | None:
    """The incident rooms, when the project names a chat: commands from a room run
    their runbooks through this server's dispatcher, as the one-click page does."""
    config = chat_config(settings)
    if chat is None or config is None:
        return None
    from gameday.store.leases import owner

    return Relay(store, chat, config, owner=owner(), base_url=settings.url, room_kwargs={
        "start_run": dispatcher.start, "approve_run": dispatcher.approve,
        "approval_ttl": approval_ttl, "four_eyes": four_eyes, "runbook_dir": runbook_dir})
