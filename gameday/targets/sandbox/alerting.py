"""Real Prometheus and Alertmanager for the sandbox, on loopback.

Starts Debian's ``prometheus`` and ``prometheus-alertmanager`` with explicit storage
paths under a directory of our own: Prometheus scrapes every sandbox replica's
``/metrics`` each second and evaluates ``rule_files`` (the project's
``alerting/*.rules.yml`` and the built-in sandbox rules); Alertmanager sends
notifications (group_wait 0) to a ``gameday serve`` webhook with a bearer token.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gameday.core.errors import GamedayError
from gameday.runbooks.routing import rule_files
from gameday.targets.sandbox.supervisor import free_port

BINARIES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}


def _ready(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@dataclass
class AlertingStack:
    directory: Path
    prometheus_port: int
    alertmanager_port: int
    procs: list[subprocess.Popen[bytes]]

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def query(self, path: str) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.prometheus_port, timeout=5)
        try:
            conn.request("GET", path)
            answer: dict[str, Any] = json.loads(conn.getresponse().read())
            return answer
        finally:
            conn.close()

    def targets_up(self) -> int:
        data = self.query("/api/v1/targets?state=active")
        return sum(1 for t in data["data"]["activeTargets"] if t["health"] == "up")

    def sends_alerts(self) -> bool:
        """Whether Prometheus has found its Alertmanager (``alertmanagers``: not until its
        first discovery sync, up to 5 s after it starts)."""
        from gameday.slis.prometheus import alertmanagers

        return bool(alertmanagers(self.prometheus_url))


def missing_binaries() -> list[str]:
    return [b for b in BINARIES.values() if shutil.which(b) is None]


def sandbox_targets(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"targets": [f"127.0.0.1:{r['port']}"],
             "labels": {"service": name, "replica": str(r["index"])}}
            for name, svc in state["services"].items() for r in svc["replicas"]]


def start_alerting(directory: Path, sandbox_state: dict[str, Any], *, webhook_url: str, token: str,
                   gameday_url: str, rules_dirs: Sequence[Path] | None = None) -> AlertingStack:
    missing = missing_binaries()
    if missing:
        raise GamedayError(f"missing {', '.join(missing)}: install Debian's prometheus and "
                           "prometheus-alertmanager (scripts/system-deps does)")
    directory.mkdir(parents=True, exist_ok=True)
    prom_port, am_port = free_port(), free_port()
    targets = directory / "targets.json"
    targets.write_text(json.dumps(sandbox_targets(sandbox_state)))
    rules = [str(p) for p in rule_files(rules_dirs)]
    (directory / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "scrape_timeout": "900ms", "external_labels": {"gameday_url": gameday_url}},
        "rule_files": rules,
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "gameday-sandbox",
                            "file_sd_configs": [{"files": [str(targets)],
                                                 "refresh_interval": "1s"}]}]}))
    am_config = directory / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump({
        "route": {"receiver": "gameday", "group_by": ["alertname", "service"],
                  "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "gameday", "webhook_configs": [{
            "url": webhook_url, "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": token}}}]}]}))
    am_config.chmod(0o600)  # it holds the token
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    procs = []
    with open(logs / "alertmanager.log", "ab") as am_log, \
            open(logs / "prometheus.log", "ab") as prom_log:
        procs.append(subprocess.Popen(
            [BINARIES["alertmanager"], f"--config.file={am_config}",
             f"--storage.path={directory / 'alertmanager-data'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
            stdin=subprocess.DEVNULL, stdout=am_log, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            [BINARIES["prometheus"], f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'prometheus-data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdin=subprocess.DEVNULL, stdout=prom_log, stderr=subprocess.STDOUT))
    stack = AlertingStack(directory, prom_port, am_port, procs)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            stack.stop()
            raise GamedayError(f"prometheus or alertmanager exited; see {logs}")
        if _ready(prom_port, "/-/ready") and _ready(am_port, "/-/ready"):
            return stack
        time.sleep(0.1)
    stack.stop()
    raise GamedayError("prometheus and alertmanager did not become ready within 30s")
