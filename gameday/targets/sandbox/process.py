"""What every sandbox process shares: dying with its parent, serving on loopback,
and exposing Prometheus metrics."""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A replica's exit status when the port it was given is no longer free.
PORT_TAKEN = 98

PR_SET_PDEATHSIG = 1


def bind_to_parent(expected_ppid: int) -> None:
    """Ask the kernel to SIGTERM us when our parent dies, so no process outlives
    the sandbox even if the supervisor is killed with SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != expected_ppid:  # the parent died before prctl took effect
        os._exit(1)


def exit_on_sigterm(server: QuietServer) -> None:
    """SIGTERM ends ``server.serve`` at once, and so the process, with status 0."""
    def stop(signum: int, frame: object) -> None:
        server.stop_soon()

    signal.signal(signal.SIGTERM, stop)


class QuietServer(ThreadingHTTPServer):
    """A threaded HTTP server whose stop takes effect at once.

    ``serve_forever`` notices a shutdown only when its poll interval next runs out, and
    a sandbox stops a dozen servers: ``serve`` waits on the listening socket and on a
    wake-up socket together, so ``stop_soon`` ends it as soon as it is called."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    timeout = 0  # ``handle_request`` never waits: ``serve`` saw a connection waiting

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        # made before binding: on a port that is taken, the server is closed at once
        self._wake, self._waker = socket.socketpair()
        self._waker.setblocking(False)
        self._stopping = False
        self._lock = threading.RLock()  # re-entered by a signal handler on the serving thread
        self._idle = threading.Event()  # set while ``serve`` is not running
        self._idle.set()
        super().__init__(address, handler)

    def serve(self) -> None:
        """Handle requests until ``stop_soon`` or ``stop``."""
        with self._lock:
            if self._stopping:
                return
            self._idle.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake, selectors.EVENT_READ)
                while not self._stopping:
                    for key, _ in selector.select():
                        if key.fileobj is self and not self._stopping:
                            self.handle_request()
        finally:
            self._idle.set()

    def stop_soon(self) -> None:
        """Ask ``serve`` to return, without waiting for it (safe in a signal handler)."""
        with self._lock:
            self._stopping = True
            with contextlib.suppress(OSError):  # already woken, or already closed
                self._waker.send(b"\0")

    def stop(self) -> None:
        """Stop serving, wait until ``serve`` has returned, and close the sockets."""
        self.stop_soon()
        self._idle.wait()
        self.server_close()

    def server_close(self) -> None:
        super().server_close()
        self._wake.close()
        self._waker.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Request counters and a latency histogram in Prometheus text format."""

    def __init__(self, labels: dict[str, str], info: dict[str, str]):
        self._lock = threading.Lock()
        self._labels = labels
        self._info = info
        self._codes: dict[int, int] = {}
        self._buckets = [0] * len(BUCKETS)
        self._sum = 0.0
        self._count = 0

    def observe(self, code: int, seconds: float) -> None:
        with self._lock:
            self._codes[code] = self._codes.get(code, 0) + 1
            self._sum += seconds
            self._count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[i] += 1

    def render(self) -> bytes:
        base = ",".join(f'{k}="{v}"' for k, v in self._labels.items())
        info = ",".join(f'{k}="{v}"' for k, v in {**self._labels, **self._info}.items())
        lines = [
            "# HELP gameday_up Whether this sandbox process serves.",
            "# TYPE gameday_up gauge",
            f"gameday_up{{{base}}} 1",
            "# HELP gameday_release_info The release this process runs.",
            "# TYPE gameday_release_info gauge",
            f"gameday_release_info{{{info}}} 1",
            "# HELP gameday_requests_total Requests served, by status code.",
            "# TYPE gameday_requests_total counter",
        ]
        with self._lock:
            for code, n in sorted(self._codes.items()):
                lines.append(f'gameday_requests_total{{{base},code="{code}"}} {n}')
            lines += [
                "# HELP gameday_request_duration_seconds Request latency.",
                "# TYPE gameday_request_duration_seconds histogram",
            ]
            for bound, n in zip(BUCKETS, self._buckets, strict=True):
                lines.append(f'gameday_request_duration_seconds_bucket{{{base},le="{bound}"}} {n}')
            lines.append(
                f'gameday_request_duration_seconds_bucket{{{base},le="+Inf"}} {self._count}')
            lines.append(f"gameday_request_duration_seconds_sum{{{base}}} {self._sum:.6f}")
            lines.append(f"gameday_request_duration_seconds_count{{{base}}} {self._count}")
        return ("\n".join(lines) + "\n").encode()
