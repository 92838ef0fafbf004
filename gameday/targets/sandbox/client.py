"""Talking to a running sandbox, and starting or stopping one.

A sandbox lives in a state directory: ``supervisor.json`` (pid, control port, token;
mode 0600), ``state.json`` (every process, port, release and flag), ``logs/``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gameday.core.errors import NotFound, SandboxError

START_TIMEOUT_S = 30.0

# Supervisors started by this process, reaped by stop_sandbox.
_started: dict[Path, subprocess.Popen[bytes]] = {}


class SandboxClient:
    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        info = self.state_dir / "supervisor.json"
        if not info.exists():
            raise SandboxError(f"no sandbox is running in {self.state_dir} "
                               "(start one with `gameday sandbox up`)")
        data = json.loads(info.read_text())
        self.pid, self.port, self._token = data["pid"], data["port"], data["token"]

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/state")

    @property
    def entrypoint(self) -> str:
        return str(self.state()["entrypoint"])

    def operate(self, op: str, **args: Any) -> dict[str, Any]:
        return self._call("POST", f"/{op}", args)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=json.dumps(body or {}),
                         headers={"Authorization": f"Bearer {self._token}",
                                  "Content-Type": "application/json"})
            response = conn.getresponse()
            data: dict[str, Any] = json.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException) as exc:
            raise SandboxError(f"the sandbox in {self.state_dir} does not answer: {exc}") from exc
        finally:
            conn.close()
        if response.status == 404:
            raise NotFound(data.get("error", "not found"))
        if response.status >= 400:
            raise SandboxError(data.get("error", f"HTTP {response.status}"))
        return data


def start_sandbox(state_dir: Path, *, detach: bool = False) -> SandboxClient:
    """Start a supervisor and wait until every replica serves.

    Attached (the default, used by game days) it dies with this process however the
    process ends; detached it lives until ``stop_sandbox``.
    """
    state_dir = Path(state_dir).resolve()
    if (state_dir / "supervisor.json").exists() and _alive(state_dir):
        raise SandboxError(f"a sandbox is already running in {state_dir}")
    for stale in ("supervisor.json", "state.json"):
        (state_dir / stale).unlink(missing_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "gameday.targets.sandbox.supervisor",
           "--state-dir", str(state_dir)]
    if not detach:
        cmd += ["--parent-pid", str(os.getpid())]
    (state_dir / "logs").mkdir(exist_ok=True)
    ready, told = os.pipe()  # the supervisor says "ready" on it, or exits and closes it
    try:
        with open(state_dir / "logs" / "supervisor.log", "ab") as log:
            # A new session: Ctrl-C in the terminal reaches gameday, which rolls back first.
            proc = subprocess.Popen([*cmd, "--ready-fd", str(told)], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=(told,))
    finally:
        os.close(told)
    _started[state_dir] = proc
    try:
        said = _hear(ready, START_TIMEOUT_S)
    finally:
        os.close(ready)
    if said is None:
        proc.kill()
        proc.wait()
        raise SandboxError(f"the sandbox did not start within {START_TIMEOUT_S:.0f}s")
    if not said.startswith(b"ready"):
        _started.pop(state_dir, None)
        raise SandboxError(f"the sandbox failed to start; see {state_dir}/logs/supervisor.log")
    return SandboxClient(state_dir)


def _hear(fd: int, timeout: float) -> bytes | None:
    """What the supervisor says on its readiness pipe: ``ready`` once every replica
    serves, nothing if it exited first; ``None`` if it said nothing within ``timeout``.
    Waiting on the pipe, start-up ends the moment the sandbox is ready."""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        if not selector.select(timeout):
            return None
    return os.read(fd, 64)


def stop_sandbox(state_dir: Path) -> list[int]:
    """Stop the sandbox in ``state_dir``; returns the pids that had to be killed.

    Works after a crash too: every pid named in ``state.json`` whose command line
    still names this state directory is killed.
    """
    state_dir = Path(state_dir).resolve()
    try:
        client = SandboxClient(state_dir)
        client.operate("shutdown")
        _wait_gone(client.pid, 10, _started.get(state_dir))
    except (SandboxError, NotFound):
        pass
    killed = []
    for pid in _recorded_pids(state_dir):
        if _belongs(pid, state_dir):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    (state_dir / "supervisor.json").unlink(missing_ok=True)
    proc = _started.pop(state_dir, None)
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return killed


def sandbox_processes(state_dir: Path) -> list[int]:
    """Live processes that belong to the sandbox in ``state_dir`` (for checks and tests)."""
    state_dir = Path(state_dir).resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _belongs(int(entry.name), state_dir):
            found.append(int(entry.name))
    return found


def _recorded_pids(state_dir: Path) -> list[int]:
    pids = []
    for name in ("supervisor.json", "state.json"):
        path = state_dir / name
        if path.exists():
            data = json.loads(path.read_text() or "{}")
            pids.append(data.get("pid"))
            for svc in data.get("services", {}).values():
                pids += [r.get("pid") for r in svc["replicas"]]
    return [p for p in pids if p]


def _belongs(pid: int, state_dir: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return b"--state-dir" in cmdline and str(state_dir).encode() in cmdline


def _alive(state_dir: Path) -> bool:
    data = json.loads((state_dir / "supervisor.json").read_text() or "{}")
    return bool(data.get("pid")) and _belongs(data["pid"], state_dir)


def _wait_gone(pid: int, timeout: float,
               started: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``pid`` has exited. A supervisor this process started is waited for as its
    parent (the kernel says when it exits); any other is looked for every 50 ms."""
    if started is not None and started.pid == pid:
        with contextlib.suppress(subprocess.TimeoutExpired):
            started.wait(timeout)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").exists() and \
                Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.05)
