"""An in-process Alertmanager receiver for one game day (``--alerting prometheus``).

It listens on a free loopback port with a per-run token and takes notifications the
way ``gameday serve`` does (``alerts.decode``, ``auth.Auth``): the same limits, the
same answers. Each alert instance is claimed in the store, so a redelivery is a
duplicate there too; the first firing instance goes to the game day, resolved
notifications are recorded.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gameday.core.errors import GamedayError, ValidationError
from gameday.people.auth import Auth, Forbidden, Unauthorized
from gameday.runs.alerts import AlertInstance, Rejected, decode
from gameday.store import Store

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response


class AlertReceiver:
    def __init__(self, store: Store, incident_id: int,
                 on_firing: Callable[[AlertInstance], None],
                 on_resolved: Callable[[AlertInstance], None]):
        self.token = secrets.token_urlsafe(24)
        self._auth = Auth(self.token)
        self._store, self._incident_id = store, incident_id
        self._on_firing, self._on_resolved = on_firing, on_resolved
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/api/v1/alerts"

    def take(self, alert: AlertInstance) -> None:
        if alert.status == "resolved":
            self._on_resolved(alert)
            return
        if self._store.claim_alert(alert.key, alertname=alert.name, group_key=alert.group_key,
                                   fingerprint=alert.fingerprint):
            self._store.bind_alert(alert.key, self._incident_id)
            self._on_firing(alert)

    def _app(self) -> Starlette:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def alerts(request: Request) -> Response:
            body = await request.body()
            try:
                self._auth.identify(request.headers, request.cookies, body)
                note = decode(body)
            except (Unauthorized, Forbidden):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            except Rejected as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except ValidationError as exc:
                return JSONResponse({"error": str(exc), "field": exc.field}, status_code=422)
            for alert in note.alerts:
                self.take(alert)
            return JSONResponse({"received": len(note.alerts)})

        return Starlette(routes=[Route("/api/v1/alerts", alerts, methods=["POST"])])

    def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the game day owns signals
        self._thread = threading.Thread(target=self._server.run, name="alert-receiver",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise GamedayError("the alert receiver did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=5)
