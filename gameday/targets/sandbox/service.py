"""One replica of one shop service: a real HTTP process on 127.0.0.1.

It serves ``/healthz``, ``/metrics`` and its business path. Its release (from
``shop.yaml``, as the supervisor copied it to the state directory) decides how it
behaves; feature flags are re-read from ``flags.json`` in the state directory while it
runs; its dependencies are reached through their router ports listed in
``topology.json``.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import json
import os
import random
import sys
import time
from pathlib import Path

from gameday.targets.sandbox.process import (
    PORT_TAKEN,
    Handler,
    Metrics,
    QuietServer,
    bind_to_parent,
    exit_on_sigterm,
)
from gameday.targets.sandbox.shop import SHOP_COPY, load_shop

DEPENDENCY_TIMEOUT_S = 2.0


class Flags:
    """Feature flags for one service, re-read when ``flags.json`` changes."""

    def __init__(self, path: Path, service: str, defaults: dict[str, bool]):
        self._path, self._service, self._defaults = path, service, defaults
        self._mtime = -1.0
        self._values = dict(defaults)

    def get(self, name: str) -> bool:
        try:
            mtime = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return self._defaults.get(name, False)
        if mtime != self._mtime:
            self._mtime = mtime
            data = json.loads(self._path.read_text() or "{}")
            self._values = {**self._defaults, **data.get(self._service, {})}
        return bool(self._values.get(name, False))


def call(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEPENDENCY_TIMEOUT_S)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 599
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gameday-sandbox-service")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--replica", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    bind_to_parent(args.parent_pid)

    shop = load_shop(args.state_dir / SHOP_COPY)
    spec = shop.services[args.service]
    release = spec.release(args.release)
    topology = json.loads((args.state_dir / "topology.json").read_text())
    flags = Flags(args.state_dir / "flags.json", args.service, spec.flags)
    metrics = Metrics(
        {"service": args.service, "replica": str(args.replica)}, {"version": release.version}
    )
    rng = random.Random()

    class ServiceHandler(Handler):
        def do_GET(self) -> None:
            if self.path == "/healthz":  # which process answers: ports get reused
                return self.reply(200, json.dumps({"status": "ok",
                                                   "pid": os.getpid()}).encode())
            if self.path == "/metrics":
                return self.reply(200, metrics.render(), "text/plain; version=0.0.4")
            started = time.perf_counter()
            status, detail = self.serve()
            metrics.observe(status, time.perf_counter() - started)
            body = {"service": args.service, "replica": args.replica,
                    "version": release.version, "detail": detail}
            self.reply(status, json.dumps(body).encode())

        def serve(self) -> tuple[int, str]:
            for dep in spec.calls:
                if dep.flag and not flags.get(dep.flag):
                    continue
                status = call(topology["routers"][dep.service], dep.path)
                if status >= 500:
                    return 502, f"{dep.service} answered {status}"
            if release.error_ratio and rng.random() < release.error_ratio:
                return 500, release.note or "release fault"
            return 200, "ok"

    try:
        server = QuietServer(("127.0.0.1", args.port), ServiceHandler)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        # The port was free when the supervisor chose it; something took it since.
        print(f"127.0.0.1:{args.port} is taken", file=sys.stderr, flush=True)
        sys.exit(PORT_TAKEN)
    exit_on_sigterm(server)
    print(f"{args.service}-{args.replica} {release.version} pid {os.getpid()} "
          f"serving on 127.0.0.1:{args.port}", flush=True)
    server.serve()


if __name__ == "__main__":
    main()
