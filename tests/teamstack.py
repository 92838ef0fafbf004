"""A team's own stack, for game days against a system gameday does not own.

``scripts/build-teamstack`` builds podinfo (a Go web service) and Toxiproxy from their
Go modules into ``.gameday/teamstack/bin``; where it has not run, ``needs_build`` skips.
``TeamStack`` starts them on loopback as a team would run them: a frontend podinfo whose
``/echo`` calls a backend podinfo through a Toxiproxy proxy (``podinfo-backend``), its
dependency path; ``monitor`` adds Debian's Prometheus scraping the frontend, with the
team's own rules, and Alertmanager. gameday gets only their addresses. ``unchanged``
says whether every process still runs with the configuration it was started with.

``monitoring`` is that Prometheus and Alertmanager on their own, scraping whatever
targets a test gives with the rules it gives (a team's cluster, ``kubestate``). Both
return only once Prometheus sends its alerts to that Alertmanager (``sends_alerts``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from serving import eventually

from gameday.slis.prometheus import alertmanagers
from gameday.targets.sandbox.supervisor import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("GAMEDAY_TEAMSTACK_BIN") or ROOT / ".gameday" / "teamstack" / "bin")
BUILT = all((BIN / b).exists() for b in ("podinfo", "toxiproxy-server"))
needs_build = pytest.mark.skipif(not BUILT, reason="podinfo and Toxiproxy not built "
                                                   "(scripts/build-teamstack)")
PROXY = "podinfo-backend"


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read() or b"null")


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except OSError:
        return False
    return True


def sends_alerts(prometheus: str) -> bool:
    """Whether Prometheus has an Alertmanager to send its alerts to: none for a few
    seconds after it starts and after every reload (``alertmanagers``), and an alert
    that fires then arrives a minute later, past any game day's detect timeout."""
    return bool(alertmanagers(prometheus))


def _popen(logs: Path, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    """``argv`` started as ``name``, its output in ``logs/NAME.log``."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Monitoring:
    """A team's Prometheus and the Alertmanager it sends its alerts to, on loopback."""

    directory: Path
    prometheus_port: int
    alertmanager_port: int
    procs: dict[str, subprocess.Popen[bytes]]
    argv: dict[str, list[str]]

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def stop(self) -> None:
        _stop(list(self.procs.values()))


def monitoring(directory: Path, jobs: Mapping[str, Sequence[str]], rules: str, *,
               logs: Path | None = None, alerting: bool = True) -> Monitoring:
    """Debian's Prometheus scraping each job's targets (``HOST:PORT``, ``/metrics``)
    every second with the team's ``rules`` (a rules file's YAML), and Alertmanager
    receiving its alerts (group_wait 0); both ready when this returns. Their
    configuration and data under ``directory``, their output in ``logs`` (default:
    ``directory``). ``alerting=False``: Prometheus alone, its alerts sent nowhere (a
    mistake in its configuration)."""
    directory.mkdir(parents=True, exist_ok=True)
    prometheus_port, alertmanager_port = free_port(), free_port()
    (directory / "team.rules.yml").write_text(rules)
    (directory / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "scrape_timeout": "900ms"},
        "rule_files": [str(directory / "*.rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"127.0.0.1:{alertmanager_port}"] if alerting else []}]}]},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}
                           for job, targets in jobs.items()]}))
    (directory / "alertmanager.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "team", "group_wait": "0s", "group_interval": "1s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "team"}]}))
    argv = {
        "alertmanager": [
            "prometheus-alertmanager", f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address="],
        "prometheus": [
            "prometheus", f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}"]}
    if not alerting:
        del argv["alertmanager"]
    started = Monitoring(directory, prometheus_port, alertmanager_port, {}, argv)
    try:
        for name, command in argv.items():
            started.procs[name] = _popen(logs or directory, name, command)
        eventually(lambda: _answers(f"{started.prometheus}/-/ready"), 30, "Prometheus ready")
        if alerting:
            eventually(lambda: _answers(f"{started.alertmanager}/-/ready"), 30,
                       "Alertmanager ready")
            eventually(lambda: sends_alerts(started.prometheus), 30,
                       "Prometheus to send its alerts to Alertmanager")
    except BaseException:
        started.stop()
        raise
    return started


@dataclass
class TeamStack:
    """podinfo behind a Toxiproxy proxy, each its own process, on loopback."""

    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)
    podinfo_port: int = 0       # the backend
    frontend_port: int = 0
    metrics_port: int = 0       # the frontend's /metrics
    api_port: int = 0
    proxy_port: int = 0
    prometheus_port: int = 0
    alertmanager_port: int = 0

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def entrypoint(self) -> str:
        return f"http://127.0.0.1:{self.frontend_port}/echo"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def _start(self, name: str, argv: list[str]) -> None:
        self.procs[name] = _popen(self.logs, name, argv)
        self.argv[name] = argv

    def _podinfo(self, name: str, port: int, metrics: int, *more: str) -> None:
        self._start(name, [str(BIN / "podinfo"), "--host", "127.0.0.1", "--port", str(port),
                           "--port-metrics", str(metrics), "--level", "warn", *more])
        eventually(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 30,
                   f"{name} to answer")

    def start(self) -> TeamStack:
        self.podinfo_port, self.api_port, self.proxy_port = free_port(), free_port(), free_port()
        self.frontend_port, self.metrics_port = free_port(), free_port()
        self._podinfo("backend", self.podinfo_port, free_port())
        self._start("toxiproxy", [str(BIN / "toxiproxy-server"), "-host", "127.0.0.1",
                                  "-port", str(self.api_port)])
        eventually(lambda: _answers(f"{self.api}/version"), 30, "Toxiproxy to answer")
        body = json.dumps({"name": PROXY, "listen": f"127.0.0.1:{self.proxy_port}",
                           "upstream": f"127.0.0.1:{self.podinfo_port}"}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"{self.api}/proxies", data=body, method="POST",
            headers={"Content-Type": "application/json"}), timeout=5).close()
        self._podinfo("frontend", self.frontend_port, self.metrics_port, "--backend-url",
                      f"http://127.0.0.1:{self.proxy_port}/echo")
        eventually(lambda: _answers(self.entrypoint), 30, "the frontend's /echo")
        return self

    def monitor(self, directory: Path, rules: str) -> TeamStack:
        """Prometheus scraping the frontend every second with the team's ``rules`` (a
        rules file's YAML), and Alertmanager receiving its alerts."""
        found = monitoring(directory, {"podinfo": [f"127.0.0.1:{self.metrics_port}"]},
                           rules, logs=self.logs)
        self.prometheus_port, self.alertmanager_port = (found.prometheus_port,
                                                        found.alertmanager_port)
        self.procs |= found.procs
        self.argv |= found.argv
        return self

    def add_rules(self, rules: str) -> None:
        """More of the team's rules (a rules file's YAML), loaded as a team reloads its
        Prometheus: SIGHUP."""
        directory = Path(self.argv["prometheus"][1].split("=", 1)[1]).parent
        (directory / f"more-{len(list(directory.glob('more-*')))}.rules.yml").write_text(rules)
        names = {r["alert"] for g in yaml.safe_load(rules)["groups"] for r in g["rules"]}
        self.procs["prometheus"].send_signal(signal.SIGHUP)

        def loaded() -> bool:
            found = _get(f"{self.prometheus}/api/v1/rules")
            groups = found["data"]["groups"] if isinstance(found, dict) else []
            return names <= {r["name"] for g in groups for r in g["rules"]}

        eventually(loaded, 30, f"Prometheus to load {sorted(names)}")
        # the notifier was reset before the rules were loaded, in the same reload
        eventually(lambda: sends_alerts(self.prometheus), 30,
                   "Prometheus to send its alerts to Alertmanager again")

    def toxics(self) -> list[dict[str, object]]:
        found = _get(f"{self.api}/proxies/{PROXY}/toxics")
        assert isinstance(found, list)
        return found

    def state(self, name: str) -> str:
        """The process's state letter in /proc (R, S, ... or T when stopped)."""
        stat = Path(f"/proc/{self.procs[name].pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]

    def unchanged(self) -> bool:
        """Every process still runs (not frozen by a signal), with the arguments it was
        started with, and the proxy still sends the entry point to podinfo."""
        for name, proc in self.procs.items():
            if proc.poll() is not None or self.state(name) in ("T", "t"):
                return False
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[:-1]
            if [c.decode() for c in cmdline] != self.argv[name]:
                return False
        proxy = _get(f"{self.api}/proxies/{PROXY}")
        return isinstance(proxy, dict) and proxy.get("enabled") is True and \
            proxy.get("upstream") == f"127.0.0.1:{self.podinfo_port}"

    def stop(self) -> None:
        _stop(list(self.procs.values()))
