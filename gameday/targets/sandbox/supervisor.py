"""The sandbox supervisor: owns every shop process and routes traffic to them.

It starts each replica as its own process, keeps one router port per service, and
serves a small control API on 127.0.0.1 (token in ``supervisor.json``, mode 0600)
for the operations chaos actions and runbooks need: signal, restart, deploy,
rollback, scale, flag, drain, latency. It never restarts a dead replica by itself:
recovering is the responders' job. Every change is written to ``state.json``, so a
crash leaves enough on disk to clean up (see ``client.stop_sandbox``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from gameday.core.errors import GamedayError, NotFound, SandboxError
from gameday.targets.sandbox.process import PORT_TAKEN, Handler, QuietServer, bind_to_parent
from gameday.targets.sandbox.router import Router, Upstream
from gameday.targets.sandbox.shop import SHOP_COPY, Shop, as_json, load_shop

READY_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


@dataclass
class Replica:
    service: str
    index: int
    port: int
    release: str
    proc: subprocess.Popen[bytes] | None = None
    status: str = "starting"
    drained: bool = False

    def view(self) -> dict[str, Any]:
        return {"index": self.index, "port": self.port, "release": self.release,
                "pid": self.proc.pid if self.proc else None,
                "status": self.status, "drained": self.drained}


@dataclass
class Service:
    name: str
    router_port: int
    release: str
    history: list[str]
    flags: dict[str, bool]
    replicas: list[Replica] = field(default_factory=list)
    latency_ms: int = 0
    latency_replica: int | None = None


class Supervisor:
    def __init__(self, state_dir: Path, shop: Shop):
        self.state_dir = state_dir
        self.shop = shop
        self.lock = threading.RLock()
        self.services: dict[str, Service] = {}
        self.token = secrets.token_urlsafe(24)
        self.routers: list[Router] = []
        # Linux delivers PDEATHSIG when the *thread* that forked a child exits, so every
        # replica is spawned from this one long-lived thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")
        self.stopping = threading.Event()
        (state_dir / "logs").mkdir(parents=True, exist_ok=True)

    # -- start and stop -------------------------------------------------------------
    def start(self) -> None:
        for name, spec in self.shop.services.items():
            # Releases with a built-in fault are only ever deployed by a game day.
            good = [r.version for r in spec.releases if not r.error_ratio]
            self.services[name] = Service(
                name=name, router_port=0, release=good[-1], history=list(good),
                flags=dict(spec.flags))
        for svc in self.services.values():
            # the router binds a port the kernel picks and keeps it: never one chosen
            # here and lost to another process before the bind
            router = Router(svc.name, 0, upstreams=partial(self._rotation, svc),
                            latency_ms=partial(self._latency, svc))
            router.start()
            svc.router_port = router.port
            self.routers.append(router)
        write_json(self.state_dir / "topology.json",
                   {"routers": {n: s.router_port for n, s in self.services.items()}})
        write_json(self.state_dir / "flags.json", {n: s.flags for n, s in self.services.items()})
        write_json(self.state_dir / SHOP_COPY, as_json(self.shop))
        for svc in self.services.values():
            for i in range(self.shop.services[svc.name].replicas):
                svc.replicas.append(Replica(svc.name, i + 1, free_port(), svc.release))
        everyone = [r for s in self.services.values() for r in s.replicas]
        for replica in everyone:
            self._spawn(replica)
        for replica in everyone:
            self._wait_ready(replica)
        threading.Thread(target=self._watch, name="watch", daemon=True).start()
        self.save()

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            procs = [r.proc for s in self.services.values() for r in s.replicas if r.proc]
        terminate(*procs)
        for router in self.routers:
            router.stop()
        self._spawner.shutdown(wait=False)

    # -- operations (control API) ---------------------------------------------------
    def signal(self, service: str, replica: int, signame: str) -> dict[str, Any]:
        sig = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP,
               "CONT": signal.SIGCONT}.get(signame.upper().removeprefix("SIG"))
        if sig is None:
            raise SandboxError(f"unsupported signal {signame!r} (KILL, TERM, STOP, CONT)")
        with self.lock:
            rep = self._replica(service, replica)
            if rep.proc is None or rep.proc.poll() is not None:
                if sig == signal.SIGCONT:
                    return rep.view()  # nothing frozen any more: a restart replaced it
                raise SandboxError(f"{service}-{replica} is not running")
            os.kill(rep.proc.pid, sig)
            if sig == signal.SIGSTOP:
                rep.status = "frozen"
            elif sig == signal.SIGCONT:
                rep.status = "running"
            else:
                rep.proc.wait(timeout=10)
                rep.status = f"exited({rep.proc.returncode})"
            self.save()
            return rep.view()

    def restart(self, service: str, replica: int | None = None,
                only_failed: bool = False) -> dict[str, Any]:
        svc = self._service(service)
        targets = [self._replica(service, replica)] if replica else list(svc.replicas)
        if only_failed:
            targets = [r for r in targets if r.status != "running"]
        for rep in targets:  # one at a time, like a rolling restart
            with self.lock:
                if rep.proc and rep.proc.poll() is None:
                    terminate(rep.proc)
                rep.release = svc.release
                rep.status = "starting"
                self._spawn(rep)
            self._wait_ready(rep)
            self.save()
        return {**self.service_view(service), "restarted": [r.index for r in targets]}

    def deploy(self, service: str, version: str) -> dict[str, Any]:
        svc = self._service(service)
        self.shop.service(service).release(version)  # raises for an unknown release
        with self.lock:
            if svc.release == version:
                return self.service_view(service)
            svc.release = version
            svc.history.append(version)
        return self.restart(service)

    def rollback(self, service: str, to: str | None = None) -> dict[str, Any]:
        svc = self._service(service)
        with self.lock:
            if to is None:
                previous = [v for v in svc.history[:-1] if v != svc.release]
                if not previous:
                    raise SandboxError(f"{service} has no earlier release to roll back to")
                to = previous[-1]
            self.shop.service(service).release(to)
            svc.release = to
            svc.history.append(to)
        return self.restart(service)

    def scale(self, service: str, replicas: int) -> dict[str, Any]:
        if not 0 <= replicas <= 10:
            raise SandboxError("replicas must be between 0 and 10")
        svc = self._service(service)
        with self.lock:
            while len(svc.replicas) > replicas:
                rep = svc.replicas.pop()
                if rep.proc:
                    terminate(rep.proc)
            added = []
            while len(svc.replicas) < replicas:
                rep = Replica(service, len(svc.replicas) + 1, free_port(), svc.release)
                svc.replicas.append(rep)
                self._spawn(rep)
                added.append(rep)
        for rep in added:
            self._wait_ready(rep)
        self.save()
        return self.service_view(service)

    def flag(self, service: str, name: str, value: bool) -> dict[str, Any]:
        svc = self._service(service)
        if name not in self.shop.service(service).flags:
            known = ", ".join(self.shop.service(service).flags) or "none"
            raise NotFound(f"{service} has no flag {name!r} (known: {known})")
        with self.lock:
            svc.flags[name] = value
            write_json(self.state_dir / "flags.json",
                       {n: s.flags for n, s in self.services.items()})
            self.save()
        return self.service_view(service)

    def drain(self, service: str, replica: int, drained: bool = True) -> dict[str, Any]:
        with self.lock:
            rep = self._replica(service, replica)
            rep.drained = drained
            self.save()
            return rep.view()

    def latency(self, service: str, ms: int, replica: int | None = None) -> dict[str, Any]:
        svc = self._service(service)
        if not 0 <= ms <= 30_000:
            raise SandboxError("latency must be between 0 and 30000 ms")
        with self.lock:
            svc.latency_ms, svc.latency_replica = ms, replica
            self.save()
        return self.service_view(service)

    # -- internals ------------------------------------------------------------------
    def service_view(self, service: str) -> dict[str, Any]:
        view: dict[str, Any] = self.view()["services"][service]
        return view

    def view(self) -> dict[str, Any]:
        with self.lock:
            services = {
                s.name: {"router_port": s.router_port, "release": s.release,
                         "history": list(s.history), "flags": dict(s.flags),
                         "latency_ms": s.latency_ms, "latency_replica": s.latency_replica,
                         "replicas": [r.view() for r in s.replicas]}
                for s in self.services.values()}
        entry = self.services[self.shop.entrypoint].router_port
        return {"pid": os.getpid(), "state_dir": str(self.state_dir),
                "entrypoint": f"http://127.0.0.1:{entry}{self.shop.path}",
                "services": services}

    def save(self) -> None:
        write_json(self.state_dir / "state.json", self.view())

    def _service(self, name: str) -> Service:
        self.shop.service(name)
        return self.services[name]

    def _replica(self, service: str, index: int) -> Replica:
        for rep in self._service(service).replicas:
            if rep.index == index:
                return rep
        raise NotFound(f"{service} has no replica {index}")

    def _rotation(self, svc: Service) -> list[Upstream]:
        return [Upstream(r.index, r.port) for r in svc.replicas if not r.drained]

    def _latency(self, svc: Service, replica: int) -> int:
        if svc.latency_replica in (None, replica):
            return svc.latency_ms
        return 0

    def _spawn(self, rep: Replica) -> None:
        self._spawner.submit(self._popen, rep).result()

    def _popen(self, rep: Replica) -> None:
        with open(self.state_dir / "logs" / f"{rep.service}-{rep.index}.log", "ab") as log:
            rep.proc = subprocess.Popen(
                [sys.executable, "-m", "gameday.targets.sandbox.service",
                 "--state-dir", str(self.state_dir), "--service", rep.service,
                 "--replica", str(rep.index), "--port", str(rep.port),
                 "--release", rep.release, "--parent-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self, rep: Replica) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        retries = 5
        while time.monotonic() < deadline:
            if rep.proc and rep.proc.poll() is not None:
                if rep.proc.returncode == PORT_TAKEN and retries:
                    retries -= 1  # taken between choosing and binding: choose again
                    with self.lock:
                        rep.port = free_port()
                        self._spawn(rep)
                    self.save()
                    continue
                raise SandboxError(f"{rep.service}-{rep.index} exited while starting; "
                                   f"see {self.state_dir}/logs/{rep.service}-{rep.index}.log")
            if rep.proc and healthy(rep.port, rep.proc.pid):
                rep.status = "running"
                return
            time.sleep(0.02)
        raise SandboxError(f"{rep.service}-{rep.index} did not become ready in {READY_TIMEOUT_S}s")

    def _watch(self) -> None:
        while not self.stopping.wait(0.1):
            changed = False
            with self.lock:
                for svc in self.services.values():
                    for rep in svc.replicas:
                        if rep.proc and rep.status in ("running", "frozen") \
                                and rep.proc.poll() is not None:
                            rep.status = f"exited({rep.proc.returncode})"
                            changed = True
                if changed:
                    self.save()


def healthy(port: int, pid: int) -> bool:
    """Whether replica process ``pid`` answers on ``port``: another replica that took the
    port meanwhile (one restarted on the port this one had) does not count."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        conn.request("GET", "/healthz")
        answer = conn.getresponse()
        return answer.status == 200 and json.loads(answer.read()).get("pid") == pid
    except (OSError, http.client.HTTPException, ValueError, AttributeError):
        return False
    finally:
        conn.close()


def terminate(*procs: subprocess.Popen[bytes]) -> None:
    """Stop replicas for good, frozen or not: all of them told at once, then waited
    for, so stopping the shop takes as long as its slowest replica, not their sum."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


OPERATIONS = {
    "signal": lambda s, a: s.signal(a["service"], int(a["replica"]), a["signal"]),
    "restart": lambda s, a: s.restart(a["service"], a.get("replica"),
                                     bool(a.get("only_failed"))),
    "deploy": lambda s, a: s.deploy(a["service"], a["version"]),
    "rollback": lambda s, a: s.rollback(a["service"], a.get("to")),
    "scale": lambda s, a: s.scale(a["service"], int(a["replicas"])),
    "flag": lambda s, a: s.flag(a["service"], a["name"], bool(a["value"])),
    "drain": lambda s, a: s.drain(a["service"], int(a["replica"]), bool(a.get("drained", True))),
    "latency": lambda s, a: s.latency(a["service"], int(a["ms"]), a.get("replica")),
}


def serve_control(sup: Supervisor) -> QuietServer:
    class ControlHandler(Handler):
        def authorized(self) -> bool:
            given = self.headers.get("Authorization", "")
            return secrets.compare_digest(given.encode(), f"Bearer {sup.token}".encode())

        def do_GET(self) -> None:
            if not self.authorized():
                return self.reply(401, b'{"error": "unauthorized"}')
            if self.path == "/state":
                return self.reply(200, json.dumps(sup.view()).encode())
            self.reply(404, b'{"error": "not found"}')

        def do_POST(self) -> None:
            if not self.authorized():
                return self.reply(401, b'{"error": "unauthorized"}')
            op = self.path.strip("/")
            length = int(self.headers.get("Content-Length") or 0)
            try:
                args = json.loads(self.rfile.read(length) or b"{}")
                if op == "shutdown":
                    self.reply(200, b'{"status": "stopping"}')
                    server.stop_soon()
                    return
                if op not in OPERATIONS:
                    return self.reply(404, json.dumps({"error": f"no operation {op}"}).encode())
                result = OPERATIONS[op](sup, args)
                self.reply(200, json.dumps(result).encode())
            except NotFound as exc:
                self.reply(404, json.dumps({"error": str(exc)}).encode())
            except (GamedayError, KeyError, ValueError, TypeError) as exc:
                self.reply(400, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())

    server = QuietServer(("127.0.0.1", 0), ControlHandler)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gameday-sandbox-supervisor")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--parent-pid", type=int, help="die with this process (omit to detach)")
    parser.add_argument("--ready-fd", type=int, help="write 'ready' to it once every replica "
                                                     "serves, then close it")
    args = parser.parse_args(argv)
    if args.parent_pid:
        bind_to_parent(args.parent_pid)
    state_dir = args.state_dir.resolve()
    sup = Supervisor(state_dir, load_shop())
    server = serve_control(sup)

    def stop(signum: int, frame: object) -> None:
        server.stop_soon()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        sup.start()
        write_json(state_dir / "supervisor.json",
                   {"pid": os.getpid(), "port": server.server_address[1], "token": sup.token},
                   mode=0o600)
        print(f"sandbox supervisor pid {os.getpid()} ready", flush=True)
        if args.ready_fd is not None:
            # nobody listening any more (the starter died): detached, the sandbox runs on;
            # attached, it dies with its parent anyway
            with contextlib.suppress(OSError):
                os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)
        server.serve()
    except GamedayError as exc:
        print(f"sandbox failed to start: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        sup.shutdown()
        (state_dir / "supervisor.json").unlink(missing_ok=True)
        state = state_dir / "state.json"
        if state.exists():
            data = json.loads(state.read_text())
            data["stopped"] = True
            write_json(state, data)


if __name__ == "__main__":
    main()
