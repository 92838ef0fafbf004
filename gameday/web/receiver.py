"""An in-process Alertmanager receiver for one game day (``--alerting prometheus``).

It listens on a free loopback port with a per-run token, checks and parses each
notification, and hands the first firing instance of each alert to the game day;
redeliveries are dropped, resolved notifications recorded.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable

from gameday.errors import GamedayError, ValidationError
from gameday.web.alerts import AlertInstance, parse
from gameday.web.auth import Auth, Forbidden, Unauthorized


class AlertReceiver:
    def __init__(self, on_firing: Callable[[AlertInstance], None],
                 on_resolved: Callable[[AlertInstance], None]):
        self.token = secrets.token_urlsafe(24)
        self._auth = Auth(self.token)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._on_firing, self._on_resolved = on_firing, on_resolved
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/api/v1/alerts"

    def _app(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def alerts(request):
            body = await request.body()
            try:
                self._auth.identify(request.headers, request.cookies, body)
            except (Unauthorized, Forbidden):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            try:
                note = parse(json.loads(body))
            except (ValueError, ValidationError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
            for alert in note.alerts:
                with self._lock:
                    first = alert.key not in self._seen
                    self._seen.add(alert.key)
                if alert.status == "resolved":
                    self._on_resolved(alert)
                elif first:
                    self._on_firing(alert)
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
