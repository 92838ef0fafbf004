"""A service's router: one loopback port in front of its replicas.

Round-robin over the replicas in rotation, no retries and no health checks, like a
plain L7 proxy: a dead replica answers 502, a frozen one 504 after the upstream
timeout. Injected latency (a toxic, as in toxiproxy) delays forwarding.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gameday.targets.sandbox.process import Handler, QuietServer

UPSTREAM_TIMEOUT_S = 1.5


@dataclass(frozen=True)
class Upstream:
    replica: int
    port: int


class Router:
    def __init__(self, service: str, port: int,
                 upstreams: Callable[[], list[Upstream]],
                 latency_ms: Callable[[int], int]):
        self.service = service
        self.port = port
        self._upstreams = upstreams
        self._latency_ms = latency_ms
        self._counter = itertools.count()
        self._server: QuietServer | None = None

    def pick(self) -> Upstream | None:
        pool = self._upstreams()
        if not pool:
            return None
        return pool[next(self._counter) % len(pool)]

    def start(self) -> None:
        router = self

        class RouterHandler(Handler):
            def do_GET(self) -> None:
                upstream = router.pick()
                if upstream is None:
                    return self.reply(503, b'{"error": "no replica in rotation"}')
                delay = router._latency_ms(upstream.replica)
                if delay:
                    time.sleep(delay / 1000)
                status, body = forward(upstream.port, self.path)
                self.reply(status, body)

        self._server = QuietServer(("127.0.0.1", self.port), RouterHandler)
        self.port = int(self._server.server_address[1])  # the kernel's pick, for port 0
        threading.Thread(target=self._server.serve, name=f"router-{self.service}",
                         daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.stop()


def forward(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=UPSTREAM_TIMEOUT_S)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    except TimeoutError:
        return 504, b'{"error": "upstream timed out"}'
    except (OSError, http.client.HTTPException) as exc:
        return 502, f'{{"error": "upstream: {type(exc).__name__}"}}'.encode()
    finally:
        conn.close()
