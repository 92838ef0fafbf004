"""One game day, top to bottom: ``run_gameday``.

target up → traffic and SLIs → detector → steady state → Chaos Toolkit experiment
(the gameday control holds the fault while ``response.Response`` runs the incident) →
rollbacks → recovery observed → incident resolved → target down, whatever happened
→ score and review from the stored events.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gameday import chaos, traffic
from gameday.comms import describe_impact
from gameday.detection import Detector
from gameday.errors import GamedayError, NotFound, SandboxError
from gameday.incident import Incident
from gameday.response import Response, wait
from gameday.scenario import Scenario
from gameday.store import Event, Store, utc_now
from gameday.targets import make_target

Say = Callable[[str], None]
DEFAULT_RUNS = Path(".gameday") / "runs"


class Terminated(SystemExit):
    """SIGTERM outside the experiment: unwind through every ``finally``."""

    def __init__(self) -> None:
        super().__init__(143)


def terminate_gracefully() -> None:
    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass(frozen=True)
class GameResult:
    run_dir: Path
    incident_id: int
    status: str
    experiment_status: str | None
    interrupted: bool


def runs_root() -> Path:
    return Path(os.environ.get("GAMEDAY_RUNS") or DEFAULT_RUNS)


def new_run_dir(root: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = root / f"{stamp}-{re.sub(r'[^a-z0-9-]', '-', name)}"
    run_dir.mkdir(parents=True)
    return run_dir.resolve()


class GameHooks:
    """What the gameday control calls while chaoslib runs the experiment."""

    def __init__(self, incident: Incident, detector: Detector, response: Response):
        self.incident, self.detector, self.response = incident, detector, response
        self.current = "before"
        self.injected = False
        self.started_ns: int | None = None
        self.started_utc: str | None = None

    def phase(self, name: str) -> None:
        self.current = name

    def activity_starting(self, context: dict[str, Any]) -> None:
        """Faults and rollbacks are dated when their action starts: a rolling deploy
        hurts, and a rolling rollback heals, before the action returns."""
        if context.get("type") == "action":
            self.started_ns, self.started_utc = time.monotonic_ns(), utc_now()
            if self.current == "method" and not self.injected:
                self.detector.arm(self.started_ns)

    def activity(self, context: dict[str, Any], state: dict[str, Any]) -> None:
        if context.get("type") != "action":
            return
        data = {"activity": context.get("name"), "status": state.get("status"),
                "provider": {k: context.get("provider", {}).get(k)
                             for k in ("module", "func", "arguments")}}
        if self.current == "method":
            if state.get("status") == "succeeded":
                took = round((time.monotonic_ns() - self.started_ns) / 1e9, 3)
                self.incident.record("fault.injected", "chaos", {**data, "took_s": took},
                                     at_ns=self.started_ns, at_utc=self.started_utc)
                self.injected = True
            else:
                self.incident.record("chaos.action_failed", "chaos",
                                     {**data, "error": str(state.get("exception", ""))[-500:]})
        elif self.current == "rollbacks":
            took = round((time.monotonic_ns() - self.started_ns) / 1e9, 3)
            self.incident.record("fault.rolled_back", "chaos", {**data, "took_s": took},
                                 at_ns=self.started_ns, at_utc=self.started_utc)

    def hypothesis(self, state: dict[str, Any]) -> None:
        self.incident.record("steady_state.checked", "chaos", {
            "phase": "before" if self.current == "before" else "after",
            "met": bool(state.get("steady_state_met"))})

    def hold(self) -> None:
        if self.injected:
            self.response.run()


def wait_steady(detector: Detector, sc: Scenario, rate: float) -> None:
    """Until the window holds enough samples (half of what ``rate`` fills it with) and
    the SLIs are inside the objective."""
    needed = max(5, int(rate * sc.slo.window_s * 0.5))
    deadline = time.monotonic() + sc.timeouts.steady
    while time.monotonic() < deadline:
        sli = detector.current()
        if sli is not None and sli.total >= needed and detector.healthy():
            return
        time.sleep(sc.evaluation_interval_s)
    sli = detector.current()
    raise SandboxError(f"the target did not reach its steady state within "
                       f"{sc.timeouts.steady:g}s (last window: "
                       f"{describe_impact(sli.as_dict() if sli else None)})")


def run_gameday(sc: Scenario, store: Store, *, say: Say,
                on_event: Callable[[Event], None] | None = None,
                root: Path | None = None, alerting: str | None = None) -> GameResult:
    alerting = alerting or sc.alerting
    if alerting == "prometheus" and sc.target != "sandbox":
        raise GamedayError("--alerting prometheus works with the sandbox target only")
    experiment = chaos.load_experiment(sc.experiment)  # validated before anything starts
    run_dir = new_run_dir(root or runs_root(), sc.name)
    shutil.copy(sc.path, run_dir / "scenario.yaml")
    (run_dir / "experiment.json").write_text(json.dumps(experiment, indent=2))
    incident = Incident.open(store, sc.title, service=sc.service, scenario=sc.name,
                             run_dir=str(run_dir))
    incident.listener = on_event
    (run_dir / "run.json").write_text(json.dumps(
        {"scenario": sc.name, "incident_id": incident.id, "db": str(store.path.resolve()),
         "started_at": datetime.now(UTC).isoformat()}, indent=2))
    say(f"run directory {run_dir}")

    target = make_target(sc, run_dir)
    generator: traffic.SampleLog | None = None
    detector: Detector | None = None
    receiver = stack = watch = None
    journal: dict[str, Any] = {}
    interrupted = False
    try:
        ready = target.up()
        env = {**target.env, "GAMEDAY_DB": str(store.path.resolve())}
        os.environ.update(target.env)  # for the chaos activities running in this process
        incident.record("target.ready", "gameday", {"target": target.name, **ready})
        generator = target.sampler(run_dir / "samples.jsonl")
        generator.start()
        traffic.LIVE = generator
        detector = Detector(
            generator, sc.slo, sc.alert, interval_s=sc.evaluation_interval_s,
            recovery_window_s=sc.recovery_window_s, sli_path=run_dir / "sli.jsonl",
            report=lambda kind, at_ns, at_utc, data: incident.record(
                kind, "detector", data, at_ns=at_ns, at_utc=at_utc),
            emit_alerts=alerting == "builtin")
        detector.start()
        response = Response(sc, incident, detector, run_dir, env, say)
        name, labels, annotations = response.alert
        response.alert = (name, {**labels, **target.labels()}, annotations)
        if alerting == "prometheus":
            receiver, stack = start_real_alerting(run_dir, target.state(), incident, response,
                                                  detector)
        wait_steady(detector, sc, generator.rate)
        incident.record("steady_state.reached", "gameday", {"sli": detector.current().as_dict()})
        watch = target.watch(run_dir, lambda kind, data: incident.record(
            kind, "kubernetes", data))
        journal = chaos.run(experiment, run_dir, GameHooks(incident, detector, response))
        interrupted = journal.get("status") == "interrupted"
        if not interrupted:
            finish(incident, detector, response, sc, say)
    except (KeyboardInterrupt, Terminated):
        interrupted = True
    except GamedayError as exc:  # the target never got going: say so on the record
        incident.record("gameday.failed", "gameday", {"error": str(exc)})
        if incident.state == "pending":
            incident.record("incident.cancelled", "gameday", {"reason": "game day failed"})
        raise
    finally:
        if stack:  # first, so a stopping shop pages nobody
            stack.stop()
        if receiver:
            receiver.stop()
        if detector:
            detector.stop()
        if watch:
            watch.stop()
        if generator:
            traffic.LIVE = None
            generator.stop()
        target.down()
        if interrupted:
            incident.record("gameday.interrupted", "gameday",
                            {"experiment": journal.get("status")})
            if incident.state in ("pending", "declared", "acknowledged"):
                incident.record("incident.cancelled", "gameday", {"reason": "interrupted"})
        incident.record("target.stopped", "gameday", {"target": target.name})
    return GameResult(run_dir, incident.id, incident.state, journal.get("status"), interrupted)


def start_real_alerting(run_dir: Path, state: dict[str, Any], incident: Incident,
                        response: Response, detector: Detector):
    """Prometheus scrapes the shop, Alertmanager posts to a receiver in this process:
    the game day's alert is the one Alertmanager delivers."""
    from gameday.alerting import start_alerting
    from gameday.web.receiver import AlertReceiver

    def firing(alert) -> None:
        if response.fired.is_set() or detector.state.armed_ns is None:
            incident.record("alert.received", "alertmanager",
                            {"alertname": alert.name, "labels": alert.labels})
            return
        incident.record("alert.fired", "alertmanager", {
            "alertname": alert.name, "labels": alert.labels, "annotations": alert.annotations,
            "startsAt": alert.starts_at, "fingerprint": alert.fingerprint,
            "sli": (detector.current() or detector.traffic.sli(1.0)).as_dict()})
        response.external_alert(alert.name, alert.labels, alert.annotations)

    def resolved(alert) -> None:
        incident.record("alert.resolved", "alertmanager",
                        {"alertname": alert.name, "labels": alert.labels})

    receiver = AlertReceiver(firing, resolved)
    receiver.start()
    try:
        stack = start_alerting(run_dir / "alerting", state, webhook_url=receiver.webhook_url,
                               token=receiver.token, gameday_url=receiver.base_url)
    except BaseException:
        receiver.stop()
        raise
    deadline = time.monotonic() + 30
    expected = sum(len(s["replicas"]) for s in state["services"].values())
    while stack.targets_up() < expected:
        if time.monotonic() > deadline:
            stack.stop()
            receiver.stop()
            raise GamedayError("Prometheus did not scrape every sandbox replica within 30s")
        time.sleep(0.2)
    incident.record("alerting.ready", "gameday", {"prometheus": stack.prometheus_url})
    return receiver, stack


def finish(incident: Incident, detector: Detector, response: Response, sc: Scenario,
           say: Say) -> None:
    """After the rollbacks: see the SLIs recover, then resolve."""
    if incident.state == "pending":
        incident.record("incident.cancelled", "gameday", {"reason": "never declared"})
        return
    if not wait(detector.mitigated, sc.timeouts.recover, tick=None):
        incident.record("recovery.missed", "gameday", {"waited_s": sc.timeouts.recover})
        say(f"the SLIs did not recover within {sc.timeouts.recover:g}s after the rollbacks")
        return
    ic = incident.roles().get("incident_commander", "gameday")
    incident.resolve(ic, how="SLIs inside the objective for the recovery window")
    response.post_updates(final=True)




def conclude(result: GameResult, store: Store) -> dict[str, Any]:
    """Score the run from its stored events and write its review: the run's summary."""
    return rescore(result.run_dir, store) | {
        "status": result.status, "experiment": result.experiment_status,
        "interrupted": result.interrupted}


def rescore(run_dir: Path, store: Store) -> dict[str, Any]:
    """Recompute the scorecard and the review of a run directory from the store."""
    from gameday.review import write_review
    from gameday.scenario import load_scenario
    from gameday.scoring import compute_metrics, score

    run_dir = Path(run_dir).resolve()
    info_path = run_dir / "run.json"
    if not info_path.exists():
        raise NotFound(f"{run_dir} is not a game day's run directory (no run.json)")
    info = json.loads(info_path.read_text())
    sc = load_scenario(run_dir / "scenario.yaml", check_experiment=False)
    incident_id = info["incident_id"]
    metrics = compute_metrics(store.events(incident_id), sc.slo.success_ratio)
    card = score(metrics, sc.targets)
    write_review(store, incident_id, sc, card, run_dir)
    return {"run_dir": str(run_dir), "incident_id": incident_id, "score": card.score,
            "metrics": metrics.as_dict(), "deductions": card.as_dict()["deductions"],
            "review": str(run_dir / "review.md")}
