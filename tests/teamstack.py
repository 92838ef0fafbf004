"""A team's own stack, for game days against a system gameday does not own.

``scripts/build-teamstack`` builds podinfo (a Go web service) and Toxiproxy from their
Go modules into ``.gameday/teamstack/bin``; where it has not run, ``needs_build`` skips.
``TeamStack`` starts them on loopback as a team would run them: podinfo, and Toxiproxy
with a proxy (``podinfo``) in front of it, which is the service's entry point. gameday
gets only their addresses. ``unchanged`` says whether every process still runs with the
configuration it was started with.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from serving import eventually

from gameday.targets.sandbox.supervisor import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("GAMEDAY_TEAMSTACK_BIN") or ROOT / ".gameday" / "teamstack" / "bin")
BUILT = all((BIN / b).exists() for b in ("podinfo", "toxiproxy-server"))
needs_build = pytest.mark.skipif(not BUILT, reason="podinfo and Toxiproxy not built "
                                                   "(scripts/build-teamstack)")
PROXY = "podinfo"


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read() or b"null")


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except OSError:
        return False
    return True


@dataclass
class TeamStack:
    """podinfo behind a Toxiproxy proxy, each its own process, on loopback."""

    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)
    podinfo_port: int = 0
    api_port: int = 0
    entry_port: int = 0

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def entrypoint(self) -> str:
        return f"http://127.0.0.1:{self.entry_port}/"

    def _start(self, name: str, argv: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)
        self.argv[name] = argv

    def start(self) -> TeamStack:
        self.podinfo_port, self.api_port, self.entry_port = free_port(), free_port(), free_port()
        self._start("podinfo", [str(BIN / "podinfo"), "--host", "127.0.0.1",
                                "--port", str(self.podinfo_port),
                                "--port-metrics", str(free_port()), "--level", "warn"])
        self._start("toxiproxy", [str(BIN / "toxiproxy-server"), "-host", "127.0.0.1",
                                  "-port", str(self.api_port)])
        eventually(lambda: _answers(f"http://127.0.0.1:{self.podinfo_port}/healthz"), 30,
                   "podinfo to answer")
        eventually(lambda: _answers(f"{self.api}/version"), 30, "Toxiproxy to answer")
        body = json.dumps({"name": PROXY, "listen": f"127.0.0.1:{self.entry_port}",
                           "upstream": f"127.0.0.1:{self.podinfo_port}"}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"{self.api}/proxies", data=body, method="POST",
            headers={"Content-Type": "application/json"}), timeout=5).close()
        eventually(lambda: _answers(self.entrypoint), 30, "podinfo through the proxy")
        return self

    def toxics(self) -> list[dict[str, object]]:
        found = _get(f"{self.api}/proxies/{PROXY}/toxics")
        assert isinstance(found, list)
        return found

    def unchanged(self) -> bool:
        """Every process still runs, with the arguments it was started with, and the
        proxy still sends the entry point to podinfo."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return False
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[:-1]
            if [c.decode() for c in cmdline] != self.argv[name]:
                return False
        proxy = _get(f"{self.api}/proxies/{PROXY}")
        return isinstance(proxy, dict) and proxy.get("enabled") is True and \
            proxy.get("upstream") == f"127.0.0.1:{self.podinfo_port}"

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
