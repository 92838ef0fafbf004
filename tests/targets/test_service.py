"""Game days against a team's own service: podinfo behind Toxiproxy, started by the test
as a team runs them; gameday gets only their addresses and the project's allowlist."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from serving import eventually
from teamstack import PROXY, TeamStack, _get, monitoring, needs_build

from gameday.store import Store
from gameday.store.base import Event
from gameday.targets.alertmanager import active
from gameday.targets.sandbox.alerting import missing_binaries

pytestmark = [pytest.mark.slow, needs_build]
GAMEDAY = [sys.executable, "-m", "gameday"]


SUCCESS_RATIO = ('sum(rate(http_requests_total{job="podinfo",status!~"5.."}[5s]))'
                 ' / sum(rate(http_requests_total{job="podinfo"}[5s]))')
LATENCY_P99_MS = ('1000 * histogram_quantile(0.99, sum by (le) '
                  '(rate(http_request_duration_seconds_bucket{job="podinfo"}[5s])))')


def team_rules(stack: TeamStack) -> str:
    """The team's own alert rules, as they would write them: a fast one that pages, and
    one whose ``for`` is too long to catch a game day."""
    def rule(name: str, hold: str) -> dict:
        return {"alert": name, "expr": f"{LATENCY_P99_MS} > 300", "for": hold,
                "labels": {"service": "podinfo", "proxy": PROXY, "severity": "page"},
                "annotations": {"summary": "podinfo is slow",
                                "runbook_url": "http://127.0.0.1:8080/runbooks/"
                                               f"remove-toxic?toxiproxy={stack.api}"}}

    return yaml.safe_dump({"groups": [{"name": "podinfo", "interval": "1s", "rules": [
        rule("PodinfoLatencyBurn", "1s"), rule("PodinfoLatencyBurnSlowly", "10m")]}]})


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = TeamStack(tmp_path_factory.mktemp("teamstack"))
    try:
        started.start()
        if not missing_binaries():  # their Prometheus and Alertmanager, where installed
            started.monitor(started.logs / "monitoring", team_rules(started))
        yield started
    finally:
        started.stop()


@pytest.fixture
def monitored(stack):
    if missing_binaries():
        pytest.skip(f"needs Debian's {', '.join(missing_binaries())} (make test installs them)")
    return stack


def watched_by_the_team(scenario: Path, stack: TeamStack, alert: str, **timeouts: str) -> None:
    """The scenario with the team's SLIs (their PromQL) and their alert (their
    Alertmanager) instead of gameday's own."""
    raw = yaml.safe_load(scenario.read_text())
    # their alert's name and labels: matchers for their Alertmanager, and what the
    # fallback detector's alert carries if theirs never fires
    raw["alert"]["name"], raw["alert"]["labels"] = alert, {"service": "podinfo",
                                                          "proxy": PROXY}
    raw["alerting"], raw["alertmanager"] = "alertmanager", stack.alertmanager
    raw["sli"] = {"source": "prometheus", "prometheus": stack.prometheus,
                  "success_ratio": SUCCESS_RATIO, "latency_p99_ms": LATENCY_P99_MS,
                  "interval": "1s"}
    raw["timeouts"].update(timeouts)
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))


OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: podinfo-availability
spec:
  service: podinfo
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  indicator:
    metadata: {name: podinfo-good-requests}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec: {query: 'http_requests_total{job="podinfo",status!~"5.."}'}
        total:
          metricSource:
            type: Prometheus
            spec: {query: 'http_requests_total{job="podinfo"}'}
  objectives: [{displayName: good requests, target: 0.99}]
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: podinfo-latency
spec:
  service: podinfo
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  indicator:
    metadata: {name: podinfo-p99-ms}
    spec:
      thresholdMetric:
        metricSource:
          type: Prometheus
          spec:
            query: LATENCY
  objectives: [{displayName: p99 under 300 ms, op: lt, value: 300}]
"""


def with_their_openslo(scenario: Path) -> None:
    """The scenario's objectives and queries from the team's OpenSLO file instead."""
    slos = scenario.parent.parent / "slos"
    slos.mkdir(exist_ok=True)
    (slos / "podinfo.yaml").write_text(OPENSLO.replace("LATENCY", repr(LATENCY_P99_MS)))
    raw = yaml.safe_load(scenario.read_text())
    raw["slo"] = {"openslo": "../slos/podinfo.yaml", "window": raw["slo"]["window"]}
    for key in ("success_ratio", "latency_p99_ms"):
        raw["sli"].pop(key)
    raw["sli"]["rate_window"] = "5s"
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))


def experiment(stack: TeamStack, *, proxy: str = PROXY, rollback: bool = True) -> dict:
    def toxic(func: str, **arguments: object) -> dict:
        return {"type": "python", "module": "gameday.activities.toxiproxy", "func": func,
                "arguments": {"api": stack.api, "proxy": proxy, **arguments}}

    doc = {"version": "1.0.0", "title": "podinfo answers 400 ms late",
           "description": "A latency toxic on the proxy in front of podinfo.",
           "method": [{"type": "action", "name": "slow-podinfo",
                       "provider": toxic("add_toxic", type="latency",
                                         attributes={"latency": 400})}]}
    if rollback:
        doc["rollbacks"] = [{"type": "action", "name": "podinfo-fast-again",
                             "provider": toxic("remove_toxic", type="latency")}]
    return doc


RUNBOOK = [{
    "name": "Remove a Toxiproxy toxic", "hosts": "localhost", "connection": "local",
    "gather_facts": False,
    "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
             "gameday_runbook": {
                 "summary": "Take the latency toxic off the proxy in front of the service.",
                 "alerts": ["PodinfoSlow"], "auto": True, "destructive": False,
                 "parameters": {
                     "proxy": {"type": "string", "required": True, "label": "proxy",
                               "pattern": "^[a-z][a-z0-9-]{0,30}$"},
                     "toxiproxy": {"type": "string", "required": True,
                                   "pattern": "^http://127[.]0[.]0[.]1:[0-9]+$"}}}},
    "tasks": [{"name": "Delete the toxic", "ansible.builtin.uri": {
        "url": "{{ toxiproxy }}/proxies/{{ proxy }}/toxics/gameday-latency",
        "method": "DELETE", "status_code": [204, 404]}}]}]


def write_project(root: Path, stack: TeamStack, *, safety: str | None = None,
                  url: str | None = None, doc: dict | None = None) -> Path:
    """A project for podinfo: the allowlist, the experiment, the runbook, the scenario."""
    for d in ("experiments", "runbooks", "scenarios"):
        (root / d).mkdir(parents=True, exist_ok=True)
    if safety is None:
        safety = textwrap.dedent(f"""\
            [safety]
            urls = ["{stack.entrypoint}", "{stack.prometheus}", "{stack.alertmanager}"]
            toxiproxy = ["{stack.api}"]
            proxies = ["{PROXY}"]
            """)
    (root / "gameday.toml").write_text('[project]\nname = "podinfo-team"\n\n' + safety)
    (root / "experiments" / "podinfo-slow.yaml").write_text(
        yaml.safe_dump(doc or experiment(stack), sort_keys=False))
    (root / "runbooks" / "remove-toxic.yml").write_text(yaml.safe_dump(RUNBOOK,
                                                                       sort_keys=False))
    scenario = {
        "name": "podinfo-slow", "title": "podinfo answers 400 ms late",
        "target": "service", "experiment": "../experiments/podinfo-slow.yaml",
        "service": "podinfo",
        "team": {"name": "podinfo-team", "model": "hybrid", "oncall": ["ana"],
                 "ic_rotation": ["chidi"]},
        "traffic": {"url": url or stack.entrypoint, "rate": 20, "timeout": "3s"},
        "slo": {"success_ratio": 0.99, "latency_p99_ms": 300, "window": "2s"},
        "alert": {"name": "PodinfoSlow", "for": "500ms",
                  "labels": {"service": "podinfo", "proxy": PROXY},
                  "annotations": {"summary": "podinfo p99 latency is over 300 ms",
                                  "runbook_url": "http://127.0.0.1:8080/runbooks/"
                                                 f"remove-toxic?toxiproxy={stack.api}"}},
        "response": {"mode": "auto"}, "recovery_window": "2s",
        "timeouts": {"steady": "15s", "detect": "15s", "mitigate": "20s",
                     "recover": "20s"},
        "targets": {"SEV-2": {"ack": "5s", "engage_ic": "5s", "first_comms": "5s",
                              "mitigate": "15s", "update_every": "10s"},
                    "SEV-3": {"ack": "10s", "mitigate": "30s"}}}
    path = root / "scenarios" / "podinfo-slow.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def gameday(root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    return subprocess.run([*GAMEDAY, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_a_game_day_on_a_teams_own_service_is_contained_by_its_runbook(tmp_path, stack):
    scenario = write_project(tmp_path, stack)
    checked = gameday(tmp_path, "validate", str(scenario))
    assert checked.returncode == 0, checked.stderr
    done = gameday(tmp_path, "run", str(scenario), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "resolved" and result["verdict"]["status"] == "passed"
    assert result["metrics"]["runbook"] == "remove-toxic"
    assert result["metrics"]["runbook_status"] == "successful"
    assert result["metrics"]["contained_by"] == "runbook remove-toxic"
    assert stack.toxics() == []          # contained by the runbook, then rolled back
    assert stack.unchanged()             # gameday started, stopped and reconfigured nothing
    store = Store(tmp_path / ".gameday" / "gameday.db")
    events = store.events(result["incident_id"])
    ready = next(e for e in events if e.kind == "target.ready")
    assert ready.data["target"] == "service" and ready.data["entrypoint"] == stack.entrypoint
    injected = next(e for e in events if e.kind == "fault.injected")
    assert injected.data["provider"]["func"] == "add_toxic"


@pytest.mark.parametrize("change,field", [
    ("proxy", "method[0].provider.arguments.proxy"),
    ("api", "method[0].provider.arguments.api"),
    ("url", "traffic.url"),
    ("no-safety", "traffic.url"),
])
def test_what_the_allowlist_does_not_name_is_refused_before_anything_runs(
        tmp_path, stack, change, field):
    doc = experiment(stack, proxy="payments-db") if change == "proxy" else None
    if change == "api":  # the fault's and its rollback's (one that differs is refused too)
        doc = experiment(stack)
        for activity in (doc["method"][0], doc["rollbacks"][0]):
            activity["provider"]["arguments"]["api"] = "http://127.0.0.1:1"
    url = "http://127.0.0.1:1/" if change == "url" else None
    safety = "" if change == "no-safety" else None
    scenario = write_project(tmp_path, stack, safety=safety, url=url, doc=doc)
    for command in (["validate", str(scenario)], ["run", str(scenario), "--json"]):
        refused = gameday(tmp_path, *command)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert field in refused.stderr and "Traceback" not in refused.stderr
        assert ("allowlist" in refused.stderr), refused.stderr
    assert stack.toxics() == [] and stack.unchanged()


def test_a_fault_without_its_rollback_is_refused(tmp_path, stack):
    scenario = write_project(tmp_path, stack, doc=experiment(stack, rollback=False))
    refused = gameday(tmp_path, "run", str(scenario), "--json")
    assert refused.returncode == 2 and "method[0]" in refused.stderr
    assert "gameday.activities.toxiproxy.remove_toxic" in refused.stderr
    assert stack.toxics() == []


def test_a_rollback_that_would_remove_another_toxic_is_refused(tmp_path, stack):
    """The fault names its toxic; the rollback, by type, would remove gameday-latency,
    hear Toxiproxy's "toxic not found" and report success: refused, nothing injected."""
    doc = experiment(stack)
    doc["method"][0]["provider"]["arguments"]["name"] = "slow-podinfo"
    scenario = write_project(tmp_path, stack, doc=doc)
    for command in (["validate", str(scenario)], ["run", str(scenario), "--json"]):
        refused = gameday(tmp_path, *command)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr[-3000:])
        assert "podinfo-slow.yaml: rollbacks[0].provider.arguments.name:" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert stack.toxics() == [] and stack.unchanged()


def test_a_crashed_game_day_leaves_no_toxic_after_recover(tmp_path, stack):
    """SIGKILL mid-fault: nothing rolls back until ``gameday recover``, which does, and
    leaves the team's service running as it was."""
    scenario = write_project(tmp_path, stack)
    raw = yaml.safe_load(scenario.read_text())
    raw["response"] = {"mode": "none"}          # nobody contains it: the fault stays
    raw["timeouts"]["mitigate"] = "60s"
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    run = subprocess.Popen([*GAMEDAY, "run", str(scenario)], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        eventually(lambda: stack.toxics(), 60, "the latency toxic")
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    assert [t["name"] for t in stack.toxics()] == ["gameday-latency"]
    store = Store(tmp_path / ".gameday" / "gameday.db")
    eventually(lambda: store.running_leases(), 5, "the crashed game day's lease")
    recovered = gameday(tmp_path, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert stack.toxics() == [] and stack.unchanged()


def test_their_alert_detects_it_and_their_runbook_contains_it(tmp_path, monitored):
    """SLIs read with the team's PromQL, taken from their OpenSLO file; TTD measured to
    the moment their Alertmanager reports their alert active; their alert's runbook_url
    routes their runbook."""
    stack = monitored
    scenario = write_project(tmp_path, stack)
    watched_by_the_team(scenario, stack, "PodinfoLatencyBurn", detect="30s",
                        mitigate="40s", recover="40s")
    with_their_openslo(scenario)
    done = gameday(tmp_path, "run", str(scenario), "--json")
    assert done.returncode in (0, 1) and done.stdout, done.stderr[-3000:]  # targets may miss
    result = json.loads(done.stdout)
    assert result["status"] == "resolved", result
    assert result["metrics"]["runbook_status"] == "successful"
    assert result["metrics"]["contained_by"] == "runbook remove-toxic"
    events = Store(tmp_path / ".gameday" / "gameday.db").events(result["incident_id"])
    fired = next(e for e in events if e.kind == "alert.fired")
    assert fired.actor == "alertmanager" and fired.data["alertname"] == "PodinfoLatencyBurn"
    assert fired.data["labels"]["severity"] == "page"           # their rule's labels
    assert f"toxiproxy={stack.api}" in fired.data["annotations"]["runbook_url"]
    injected = next(e for e in events if e.kind == "fault.injected")
    ttd = (fired.at_monotonic_ns - injected.at_monotonic_ns) / 1e9
    assert result["metrics"]["TTD"] == pytest.approx(ttd, abs=0.01)
    review = Path(result["review"]).read_text()
    assert ('sum(rate(http_requests_total{job="podinfo",status!~"5.."}[5s])) / '
            'sum(rate(http_requests_total{job="podinfo"}[5s]))') in review
    assert "first Prometheus reading outside the objective" in review
    assert stack.toxics() == [] and stack.unchanged()


def test_an_alert_too_slow_to_fire_is_the_finding(tmp_path, monitored):
    stack = monitored
    scenario = write_project(tmp_path, stack)
    watched_by_the_team(scenario, stack, "PodinfoLatencyBurnSlowly", detect="8s")
    done = gameday(tmp_path, "run", str(scenario), "--json")
    assert done.returncode == 1 and done.stdout, done.stderr[-3000:]
    result = json.loads(done.stdout)
    events = Store(tmp_path / ".gameday" / "gameday.db").events(result["incident_id"])
    missed = next(e for e in events if e.kind == "detection.missed")
    assert missed.data["alert"] == "PodinfoLatencyBurnSlowly" and missed.data["fallback"]
    # their alert never fired: gameday's own burn detector opened the incident, TTD is
    # measured to it, and the response went on (their runbook contained it)
    fallback = next(e for e in events if e.kind == "alert.fired")
    assert fallback.actor == "gameday" and fallback.data["fallback"]
    assert fallback.at_monotonic_ns >= missed.at_monotonic_ns
    injected = next(e for e in events if e.kind == "fault.injected")
    assert result["metrics"]["TTD"] == pytest.approx(
        (fallback.at_monotonic_ns - injected.at_monotonic_ns) / 1e9, abs=0.01)
    assert result["metrics"]["TTD"] >= 8
    assert result["status"] == "resolved" and result["verdict"]["status"] == "failed"
    assert result["metrics"]["contained_by"] == "runbook remove-toxic"
    review = Path(result["review"]).read_text()
    outside = missed.data["outside_s"]
    assert 0 < outside <= 8
    assert (f"Alert PodinfoLatencyBurnSlowly did not fire within 8s; the SLIs were outside "
            f"the objective for {outside:g} seconds") in review
    assert "Prometheus readings during the impact" in review and LATENCY_P99_MS in review
    # where it stopped, as their Prometheus tells it: pending, held by its for: 10m
    traced = next(e for e in events if e.kind == "detection.traced")
    assert "firing_after_s" not in traced.data and 0 <= traced.data["pending_after_s"] <= 8
    assert (f"Where it stopped: it was pending in the team's Prometheus from "
            f"{traced.data['pending_after_s']:g} s after the fault began") in review
    assert "Shorten PodinfoLatencyBurnSlowly's for: duration" in review
    report = gameday(tmp_path, "report", "--json")
    proof = {a["alert"]: a for a in json.loads(report.stdout)["alerts"]}
    assert proof["PodinfoLatencyBurnSlowly"]["status"] == "never fired"
    assert stack.toxics() == [] and stack.unchanged()


def _api(method: str, url: str, body: dict | None = None) -> object:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode()
                                     if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read() or b"null")


def missed_and_traced(root: Path, scenario: Path) -> tuple[dict, Event, str]:
    """A game day whose alert never reaches gameday: its result, the trace of where the
    alert stopped, and the review."""
    done = gameday(root, "run", str(scenario), "--json")
    assert done.returncode == 1 and done.stdout, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "resolved" and result["verdict"]["status"] == "failed"
    events = Store(root / ".gameday" / "gameday.db").events(result["incident_id"])
    assert next(e for e in events if e.kind == "alert.fired").actor == "gameday"  # fallback
    traced = next(e for e in events if e.kind == "detection.traced")
    return result, traced, Path(result["review"]).read_text()


def test_a_silence_that_hides_their_page_is_where_it_stopped(tmp_path, monitored):
    """Their rule fires, but a silence someone left in their Alertmanager hides it: the
    review says so, with the silence's id, and what to do about it."""
    stack = monitored
    now = datetime.now(UTC)
    silence = _api("POST", f"{stack.alertmanager}/api/v2/silences", {
        "matchers": [{"name": "alertname", "value": "PodinfoLatencyBurn", "isRegex": False,
                      "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat(),
        "createdBy": "podinfo-team", "comment": "maintenance that ended long ago"})
    silence_id = silence["silenceID"]  # type: ignore[index]
    try:
        scenario = write_project(tmp_path, stack)
        watched_by_the_team(scenario, stack, "PodinfoLatencyBurn", detect="8s")
        _, traced, review = missed_and_traced(tmp_path, scenario)
    finally:
        _api("DELETE", f"{stack.alertmanager}/api/v2/silence/{silence_id}")
    assert traced.data["alertmanager"] == "silenced", traced.data
    assert traced.data["silenced_by"] == [silence_id]
    assert 0 <= traced.data["firing_after_s"] <= 8, traced.data
    assert (f"the team's Prometheus had it firing {traced.data['firing_after_s']:g} s after "
            f"the fault began; the team's Alertmanager held it silenced (silence {silence_id})"
            ) in review
    assert f"Review the silence that hid PodinfoLatencyBurn ({silence_id})" in review
    assert stack.toxics() == [] and stack.unchanged()


def test_a_prometheus_that_sends_its_alerts_nowhere_is_named(tmp_path, monitored):
    """Their SLIs and their rule in a Prometheus whose alerting configuration names no
    Alertmanager: --preflight says so; a game day finds the rule firing and never in
    their Alertmanager."""
    stack = monitored
    # their rules under names the stack's own Prometheus (which does send) does not have
    lonely = monitoring(tmp_path / "lonely", {"podinfo": [f"127.0.0.1:{stack.metrics_port}"]},
                        team_rules(stack).replace("PodinfoLatencyBurn", "PodinfoLatencyUnsent"),
                        alerting=False)
    try:
        scenario = write_project(tmp_path, stack, safety=textwrap.dedent(f"""\
            [safety]
            urls = ["{stack.entrypoint}", "{lonely.prometheus}", "{stack.alertmanager}"]
            toxiproxy = ["{stack.api}"]
            proxies = ["{PROXY}"]
            """))
        watched_by_the_team(scenario, stack, "PodinfoLatencyUnsent", detect="8s")
        raw = yaml.safe_load(scenario.read_text())
        raw["sli"]["prometheus"] = lonely.prometheus
        scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
        ready = gameday(tmp_path, "run", str(scenario), "--preflight", "--json")
        assert ready.returncode == 1, ready.stdout + ready.stderr[-2000:]
        sends = next(c for c in json.loads(ready.stdout) if c["name"] == "Prometheus sends alerts")
        assert not sends["ok"] and sends["detail"].startswith(
            f"{lonely.prometheus} evaluates PodinfoLatencyUnsent but sends alerts to no "
            "Alertmanager"), sends
        _, traced, review = missed_and_traced(tmp_path, scenario)
    finally:
        lonely.stop()
    assert traced.data.get("alertmanager") == "absent", traced.data
    assert 0 <= traced.data["firing_after_s"] <= 8
    assert "but it had not reached the team's Alertmanager when the wait ended" in review
    assert "Check where the Prometheus that evaluates it sends alerts" in review
    assert stack.toxics() == [] and stack.unchanged()


def stopped_game_day(root: Path, stack: TeamStack, stop_when: dict, **more: object) -> list:
    """A game day nobody contains, with ``stop_when``: it must end aborted by the stop
    (exit 5); its timeline."""
    scenario = write_project(root, stack)
    raw = yaml.safe_load(scenario.read_text())
    raw["response"] = {"mode": "none"}
    raw["timeouts"]["mitigate"] = "60s"
    raw.update(more, stop_when=stop_when)
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = gameday(root, "run", str(scenario), "--json")
    assert done.returncode == 5 and done.stdout, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["verdict"]["status"] == "stopped" and result["status"] == "aborted"
    return Store(root / ".gameday" / "gameday.db").events(result["incident_id"])


def test_a_stop_condition_rolls_the_fault_back_at_once(tmp_path, stack):
    """Nobody contains it, the SLIs go past the floor: the fault is rolled back at once,
    the game day ends aborted with the reason, exit 5, the service as it was."""
    events = stopped_game_day(tmp_path, stack, {"latency_p99_ms_above": 350, "for": "1s"})
    stopped = next(e for e in events if e.kind == "game.stopped")
    assert "p99 latency" in stopped.data["reason"] and "above 350 ms" in stopped.data["reason"]
    rolled = next(e for e in events if e.kind == "fault.rolled_back")
    assert rolled.at_monotonic_ns >= stopped.at_monotonic_ns
    # at once: the rollback starts within one evaluation interval of the stop
    assert (rolled.at_monotonic_ns - stopped.at_monotonic_ns) / 1e9 <= 0.5
    assert not any(e.kind == "gameday.interrupted" for e in events)  # not a signal
    assert stack.toxics() == [] and stack.unchanged()


def test_their_page_firing_stops_the_game_day(tmp_path, monitored):
    """``stop_when.alerts``: the team's paging alert fires in their Alertmanager while
    nobody contains the fault (gameday's own detector opened the incident): the fault is
    rolled back at once and the game day ends aborted, exit 5."""
    stack = monitored
    events = stopped_game_day(tmp_path, stack, {"alerts": ["PodinfoLatencyBurn"]},
                              alertmanager=stack.alertmanager)
    stopped = next(e for e in events if e.kind == "game.stopped")
    assert stopped.data["reason"] == "the team's alert PodinfoLatencyBurn is firing (a real page)"
    injected = next(e for e in events if e.kind == "fault.injected")
    rolled = next(e for e in events if e.kind == "fault.rolled_back")
    assert injected.at_monotonic_ns < stopped.at_monotonic_ns <= rolled.at_monotonic_ns
    assert (rolled.at_monotonic_ns - stopped.at_monotonic_ns) / 1e9 <= 0.5
    assert stack.toxics() == [] and stack.unchanged()
    # their page resolves by itself once the latency is gone: later tests start quiet
    eventually(lambda: not active(stack.alertmanager, {"alertname": "PodinfoLatencyBurn"}),
               90, "PodinfoLatencyBurn resolved")


def test_a_fresh_project_for_a_service_runs_as_the_docs_say(tmp_path, monitored):
    """docs/own-service.md, "Start from nothing": gameday init --for service with the
    stack's addresses, the alert rule it writes loaded into the team's Prometheus, then
    validate and run."""
    stack = monitored
    made = gameday(tmp_path, "init", "shop", "--for", "service", "--service", "podinfo",
                   "--url", stack.entrypoint, "--prometheus", stack.prometheus,
                   "--alertmanager", stack.alertmanager, "--toxiproxy", stack.api,
                   "--proxy", PROXY)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    stack.add_rules((project / "alerting" / "service.rules.yml").read_text())
    checked = gameday(project, "validate", "scenarios/")
    assert checked.returncode == 0, checked.stderr
    done = gameday(project, "run", "scenarios/dependency-latency.yaml", "--json")
    assert done.returncode in (0, 1) and done.stdout, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "resolved", result
    assert result["metrics"]["contained_by"] == "runbook remove-toxic"
    events = Store(project / ".gameday" / "gameday.db").events(result["incident_id"])
    fired = next(e for e in events if e.kind == "alert.fired")
    assert (fired.actor, fired.data["alertname"]) == ("alertmanager", "ServiceLatencyBurn"), (
        "what their Prometheus and Alertmanager held: " + json.dumps({  # in full, not cut
            "rule": [r for g in _get(f"{stack.prometheus}/api/v1/rules")["data"]["groups"]  # type: ignore[index]
                     for r in g["rules"] if r["name"] == "ServiceLatencyBurn"],
            "sends to": _get(f"{stack.prometheus}/api/v1/alertmanagers"),
            "alerts": _get(f"{stack.alertmanager}/api/v2/alerts"),
            "timeline": [(e.kind, e.data) for e in events][:8]}, default=str, indent=1))
    assert stack.toxics() == [] and stack.unchanged()


def test_preflight_checks_the_teams_own_pieces_and_says_which_failed(tmp_path, monitored):
    """--preflight asks their Prometheus (each query returns a series), their
    Alertmanager and each Toxiproxy proxy, injects nothing, and names what failed."""
    stack = monitored
    scenario = write_project(tmp_path, stack)
    watched_by_the_team(scenario, stack, "PodinfoLatencyBurn")
    ready = gameday(tmp_path, "run", str(scenario), "--preflight", "--json")
    assert ready.returncode == 0, ready.stdout + ready.stderr[-2000:]
    checks = {c["name"]: c for c in json.loads(ready.stdout)}
    for name in ("Prometheus: success_ratio", "Prometheus: latency_p99_ms", "Alertmanager",
                 "Prometheus sends alerts", f"Toxiproxy proxy {PROXY}",
                 "SLIs inside the objective"):
        assert checks[name]["ok"], checks[name]
    assert checks["Prometheus sends alerts"]["detail"] == (
        f"{stack.prometheus} evaluates PodinfoLatencyBurn and sends alerts to "
        f"http://127.0.0.1:{stack.alertmanager_port}/api/v2/alerts")
    doc = experiment(stack)
    for activity in (*doc["method"], *doc["rollbacks"]):
        activity["provider"]["arguments"]["proxy"] = "payments-db"  # allowed, not there
    scenario = write_project(tmp_path, stack, doc=doc, safety=textwrap.dedent(f"""\
        [safety]
        urls = ["{stack.entrypoint}", "{stack.prometheus}", "{stack.alertmanager}"]
        toxiproxy = ["{stack.api}"]
        proxies = ["payments-db"]
        """))
    watched_by_the_team(scenario, stack, "PodinfoLatencyBurn")
    failed = gameday(tmp_path, "run", str(scenario), "--preflight", "--json")
    assert failed.returncode == 1, failed.stdout + failed.stderr[-2000:]
    missing = next(c for c in json.loads(failed.stdout)
                   if c["name"] == "Toxiproxy proxy payments-db")
    assert not missing["ok"] and "404" in missing["detail"]
    assert stack.toxics() == [] and stack.unchanged()


@pytest.mark.parametrize("change,code,words", [
    ("invalid", 2, "podinfo-slow.yaml: sli.success_ratio: Prometheus at"),
    ("no-series", 1, "returns no series"),
    ("no-prometheus", 1, "unreachable"),
    ("no-alertmanager", 1, "Alertmanager at http://127.0.0.1:9/ unreachable"),
])
def test_a_query_or_piece_that_cannot_answer_is_named_and_nothing_is_injected(
        tmp_path, monitored, change, code, words):
    """A query their Prometheus refuses is the file's mistake (exit 2, naming the file
    and field); a query with no series or a piece that does not answer fails preflight
    and the game day (exit 1, saying where); never a traceback, never a fault."""
    stack = monitored
    scenario = write_project(tmp_path, stack)
    watched_by_the_team(scenario, stack, "PodinfoLatencyBurn", steady="4s")
    raw = yaml.safe_load(scenario.read_text())
    if change == "invalid":
        raw["sli"]["success_ratio"] = "sum(rate(http_requests_total[5s]"
    elif change == "no-series":
        raw["sli"]["success_ratio"] = 'sum(rate(podinfo_no_such_metric_total[5s]))'
    elif change == "no-prometheus":
        raw["sli"]["prometheus"] = "http://127.0.0.1:9"
    else:
        raw["alertmanager"] = "http://127.0.0.1:9/"
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "gameday.toml").write_text((tmp_path / "gameday.toml").read_text().replace(
        "urls = [", 'urls = ["http://127.0.0.1:9", '))
    for command in (["run", str(scenario), "--preflight"], ["run", str(scenario), "--json"]):
        failed = gameday(tmp_path, *command, timeout=120)
        said = failed.stdout + failed.stderr
        assert failed.returncode == code, (command, said[-3000:])
        assert words in said and "Traceback" not in said, said[-3000:]
    assert stack.toxics() == [] and stack.unchanged()


def backend_pattern(stack: TeamStack) -> str:
    """The backend podinfo's command line, as ``pkill -f`` matches it (and nothing else)."""
    return f"podinfo --host 127[.]0[.]0[.]1 --port {stack.podinfo_port}( |$)"


def on_hosts(root: Path, scenario: Path, stack: TeamStack, *, runbook_hosts: str = "backend",
             allowed: tuple[str, ...] = ("backend-host",)) -> None:
    """The same project with the team's inventory (two hosts, both this machine), a fault
    that freezes the backend podinfo on its host through Ansible, and their runbook that
    thaws it, linked from the alert."""
    python = sys.executable
    (root / "inventory.ini").write_text(textwrap.dedent(f"""\
        [backend]
        backend-host ansible_connection=local ansible_python_interpreter={python}
        [db]
        db-host ansible_connection=local ansible_python_interpreter={python}
        """))
    toml = root / "gameday.toml"
    toml.write_text(toml.read_text() + f"hosts = {json.dumps(list(allowed))}\n")

    def signal(func: str) -> dict:
        return {"type": "python", "module": "gameday.activities.hosts", "func": func,
                "arguments": {"hosts": ["backend-host"], "process": backend_pattern(stack)}}

    (root / "experiments" / "podinfo-slow.yaml").write_text(yaml.safe_dump({
        "version": "1.0.0", "title": "the backend podinfo freezes",
        "description": "SIGSTOP to the backend's process on its host.",
        "method": [{"type": "action", "name": "freeze-backend",
                    "provider": signal("pause_process")}],
        "rollbacks": [{"type": "action", "name": "thaw-backend",
                       "provider": signal("resume_process")}]}, sort_keys=False))
    (root / "runbooks" / "thaw-backend.yml").write_text(yaml.safe_dump([{
        "name": "Thaw a frozen podinfo backend", "hosts": runbook_hosts,
        "gather_facts": False,
        "vars": {"gameday_runbook": {
            "summary": "Send SIGCONT to the backend podinfo on its host.",
            "alerts": ["PodinfoSlow"], "auto": True, "destructive": False,
            "parameters": {"port": {"type": "string", "required": True,
                                    "pattern": "^[0-9]{2,5}$"}}}},
        "tasks": [{"name": "Thaw it", "register": "thawed",
                   "failed_when": "thawed.rc not in [0, 1]",
                   "ansible.builtin.command": {"argv": [
                       "pkill", "--signal", "CONT", "-f", "--",
                       "podinfo --host 127[.]0[.]0[.]1 --port {{ port }}( |$)"]}}]}],
        sort_keys=False))
    raw = yaml.safe_load(scenario.read_text())
    raw["inventory"] = "../inventory.ini"
    raw["alert"]["labels"]["port"] = str(stack.podinfo_port)
    raw["alert"]["annotations"]["runbook_url"] = "http://127.0.0.1:8080/runbooks/thaw-backend"
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_a_process_frozen_on_their_host_is_thawed_by_their_runbook(tmp_path, stack):
    """A process fault through Ansible on the team's inventory: SIGSTOP to the backend
    podinfo on ``backend-host``; their runbook (a play on the ``backend`` group) sends
    SIGCONT; the game day ends resolved and the backend runs as before."""
    scenario = write_project(tmp_path, stack)
    on_hosts(tmp_path, scenario, stack)
    checked = gameday(tmp_path, "validate", str(scenario))
    assert checked.returncode == 0, checked.stderr
    ready = gameday(tmp_path, "run", str(scenario), "--preflight", "--json")
    checks = {c["name"]: c for c in json.loads(ready.stdout)}
    assert checks["Host backend-host"]["ok"], checks       # Ansible reaches it
    assert stack.state("backend") not in ("T", "t")          # and nothing was done to it
    done = gameday(tmp_path, "run", str(scenario), "--json")
    assert done.returncode in (0, 1) and done.stdout, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "resolved", result
    assert result["metrics"]["contained_by"] == "runbook thaw-backend"
    events = Store(tmp_path / ".gameday" / "gameday.db").events(result["incident_id"])
    injected = next(e for e in events if e.kind == "fault.injected")
    assert injected.data["provider"]["func"] == "pause_process"
    assert stack.state("backend") not in ("T", "t") and stack.unchanged()


@pytest.mark.parametrize("runbook_hosts", ["all", "db", "backend:db"])
def test_a_runbook_reaching_a_host_outside_the_allowlist_is_refused(
        tmp_path, stack, runbook_hosts):
    scenario = write_project(tmp_path, stack)
    on_hosts(tmp_path, scenario, stack, runbook_hosts=runbook_hosts)
    for command in (["validate", str(scenario)], ["run", str(scenario), "--json"]):
        refused = gameday(tmp_path, *command)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert "thaw-backend.yml: [0].hosts" in refused.stderr, refused.stderr
        assert "db-host" in refused.stderr and "Traceback" not in refused.stderr
    assert stack.state("backend") not in ("T", "t") and stack.unchanged()


def test_a_host_fault_outside_the_allowlist_or_inventory_is_refused(tmp_path, stack):
    scenario = write_project(tmp_path, stack)
    on_hosts(tmp_path, scenario, stack, allowed=("db-host",))
    refused = gameday(tmp_path, "validate", str(scenario))
    assert refused.returncode == 2
    assert "method[0].provider.arguments.hosts[0]" in refused.stderr
    assert "allowlist" in refused.stderr, refused.stderr
    doc = yaml.safe_load((tmp_path / "experiments" / "podinfo-slow.yaml").read_text())
    for activity in (*doc["method"], *doc["rollbacks"]):
        activity["provider"]["arguments"]["hosts"] = ["web-9"]
    (tmp_path / "experiments" / "podinfo-slow.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "gameday.toml").write_text((tmp_path / "gameday.toml").read_text().replace(
        'hosts = ["db-host"]', 'hosts = ["web-9", "backend-host"]'))
    refused = gameday(tmp_path, "run", str(scenario), "--json")
    assert refused.returncode == 2, refused.stderr
    assert "'web-9' is not a host of the inventory" in refused.stderr
    assert stack.state("backend") not in ("T", "t") and stack.unchanged()


def wait_for(store: Store, incident_id: int, kind: str, timeout: float = 60) -> object:
    return eventually(lambda: next((e for e in store.events(incident_id) if e.kind == kind),
                                   None), timeout, kind)


def test_a_drill_on_their_service(tmp_path, stack):
    """``gameday drill start`` on the team's service: people acknowledge, one runs their
    runbook from the CLI, the incident commander resolves; the debrief scores them."""
    scenario = write_project(tmp_path, stack)
    raw = yaml.safe_load(scenario.read_text())
    raw["timeouts"]["mitigate"] = "90s"
    raw["drill"] = {"resolve_within": "30s"}
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    started = gameday(tmp_path, "drill", "start", str(scenario), "--json")
    assert started.returncode == 0, started.stderr
    drill = json.loads(started.stdout)
    drill_id, incident_id = str(drill["drill_id"]), drill["incident_id"]
    store = Store(tmp_path / ".gameday" / "gameday.db")
    try:
        gameday(tmp_path, "drill", "join", drill_id, "--as", "chidi", "--role",
                "incident_commander")
        wait_for(store, incident_id, "page.sent")
        eventually(lambda: stack.toxics(), 30, "the latency toxic")
        acked = gameday(tmp_path, "incident", "ack", str(incident_id), "--as", "ana")
        assert acked.returncode == 0, acked.stderr
        ran = gameday(tmp_path, "runbook", "run", "remove-toxic", "-e", f"proxy={PROXY}",
                      "-e", f"toxiproxy={stack.api}", "--incident", str(incident_id),
                      "--as", "ana")
        assert ran.returncode == 0, ran.stderr
        wait_for(store, incident_id, "mitigated")
        resolved = gameday(tmp_path, "incident", "resolve", str(incident_id), "--as", "chidi")
        assert resolved.returncode == 0, resolved.stderr
        wait_for(store, incident_id, "target.stopped", timeout=120)
    finally:
        gameday(tmp_path, "drill", "end", drill_id, "--as", "game-master")
    debrief = json.loads(gameday(tmp_path, "drill", "debrief", drill_id, "--json").stdout)
    assert debrief["incident_state"] == "resolved"
    cards = {c["person"]: c for c in debrief["scorecards"]}
    assert {"ana", "chidi"} <= set(cards)
    ran_by = {e["data"]["runbook"]: e["actor"] for e in debrief["timeline"]
              if e["kind"] == "runbook.started"}
    assert ran_by == {"remove-toxic": "ana"}
    assert store.incident(incident_id)["kind"] == "drill"
    assert stack.toxics() == [] and stack.unchanged()


def test_a_scheduled_game_day_on_their_service(tmp_path, stack):
    """A schedule of the service's game day, run now with its guardrails: it runs, is
    recorded as the schedule's run, and leaves the service as it was."""
    scenario = write_project(tmp_path, stack)
    added = gameday(tmp_path, "schedule", "add", "podinfo-weekly",
                    str(scenario.relative_to(tmp_path)), "--cron", "0 10 * * 2")
    assert added.returncode == 0, added.stderr
    ran = gameday(tmp_path, "schedule", "run-now", "podinfo-weekly")
    assert ran.returncode == 0, ran.stdout + ran.stderr[-3000:]
    store = Store(tmp_path / ".gameday" / "gameday.db")
    run = store.schedule_runs("podinfo-weekly")[0]
    assert run["status"] == "passed", run
    incident = store.incident(run["incident_id"])
    assert incident["kind"] == "gameday" and incident["state"] == "resolved"
    assert stack.toxics() == [] and stack.unchanged()


def test_no_game_day_starts_on_their_service_during_a_real_incident(tmp_path, stack):
    """A real alert for podinfo opened an incident: game days on podinfo wait (exit 4,
    naming it), preflight says so, a schedule's run is skipped; nothing is injected."""
    from gameday.runs.alerts import parse
    from gameday.runs.intake import Delivery, Intake

    scenario = write_project(tmp_path, stack)
    store = Store(tmp_path / ".gameday" / "gameday.db")
    note = parse({"version": "4", "status": "firing", "groupKey": "g", "truncatedAlerts": 0,
                  "alerts": [{"status": "firing", "fingerprint": "f",
                              "startsAt": "2026-11-22T10:00:00Z",
                              "labels": {"alertname": "PodinfoErrors", "service": "podinfo"},
                              "annotations": {"summary": "podinfo is failing for real"}}]})
    Intake(store).handle([Delivery(note, "token")])
    refused = gameday(tmp_path, "run", str(scenario), "--json")
    assert refused.returncode == 4, refused.stdout + refused.stderr[-2000:]
    assert "a real incident is open for podinfo" in refused.stderr
    assert "podinfo is failing for real" in refused.stderr and "Traceback" not in refused.stderr
    checked = gameday(tmp_path, "run", str(scenario), "--preflight", "--json")
    assert checked.returncode == 1
    real = next(c for c in json.loads(checked.stdout) if c["name"] == "no real incident")
    assert not real["ok"] and "podinfo is failing for real" in real["detail"]
    gameday(tmp_path, "schedule", "add", "podinfo-weekly",
            str(scenario.relative_to(tmp_path)), "--cron", "0 10 * * 2")
    gameday(tmp_path, "schedule", "run-now", "podinfo-weekly")
    run = store.schedule_runs("podinfo-weekly")[0]
    assert run["status"] == "skipped" and "real incident" in run["reason"]
    assert [i["kind"] for i in store.incidents()] == ["incident"]  # no game day opened
    assert stack.toxics() == [] and stack.unchanged()


def test_a_crashed_game_day_leaves_no_frozen_process_after_recover(tmp_path, stack):
    """SIGKILL while the backend is frozen on its host: ``gameday recover`` thaws it
    through Ansible with the inventory the game day's lease kept."""
    scenario = write_project(tmp_path, stack)
    on_hosts(tmp_path, scenario, stack)
    raw = yaml.safe_load(scenario.read_text())
    raw["response"] = {"mode": "none"}
    raw["timeouts"]["mitigate"] = "60s"
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    run = subprocess.Popen([*GAMEDAY, "run", str(scenario)], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        eventually(lambda: stack.state("backend") in ("T", "t"), 60, "the frozen backend")
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    assert stack.state("backend") in ("T", "t")
    recovered = gameday(tmp_path, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert stack.state("backend") not in ("T", "t") and stack.unchanged()
