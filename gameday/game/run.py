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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gameday.core import clock, events, settings
from gameday.core.errors import (
    FaultMayBeIn,
    Frozen,
    GamedayError,
    NotFound,
    RealIncidentOpen,
    SandboxError,
    ValidationError,
)
from gameday.core.events import Entry, Kind
from gameday.core.states import IncidentState
from gameday.game import chaos, interrupts
from gameday.game.alert_sources import AlertSource, alert_source
from gameday.game.detection import Detector, outside
from gameday.game.reach import linked_runbook_within_hosts, within_cluster
from gameday.game.responders import Response, wait
from gameday.game.stops import StopWatch
from gameday.incidents.comms import describe_impact
from gameday.incidents.incident import (
    TERMINAL_STATES,
    Incident,
    real_incident_open,
)
from gameday.scenarios.drill import DrillSpec
from gameday.scenarios.scenario import OWN, Scenario, as_run
from gameday.slis import samples
from gameday.store import Event, Store, utc_now
from gameday.store.leases import Lease, holding
from gameday.store.rows import FreezeRow
from gameday.targets.base import TARGETS, Target, Watch, make_target

Say = Callable[[str], None]


@dataclass(frozen=True)
class GameResult:
    run_dir: Path
    incident_id: int
    status: str
    experiment_status: str | None
    interrupted: bool
    stopped: str | None = None  # why a stop condition stopped it


def runs_root() -> Path:
    return settings.current().runs_dir


def new_run_dir(root: Path, name: str) -> Path:
    stamp = clock.now().strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = root / f"{stamp}-{re.sub(r'[^a-z0-9-]', '-', name)}"
    run_dir.mkdir(parents=True)
    return run_dir.resolve()


class GameHooks:
    """What the gameday control calls while chaoslib runs the experiment."""

    def __init__(self, incident: Incident, detector: Detector, response: Response,
                 before_fault: Callable[[str], None] = lambda name: None,
                 stops: StopWatch | None = None):
        self.incident, self.detector, self.response = incident, detector, response
        self.before_fault, self.stops = before_fault, stops
        self.current = "before"
        self.injected = False
        self.started_ns: int | None = None
        self.started_utc: str | None = None

    def phase(self, name: str) -> None:
        self.current = name
        if self.stops is not None and name == "rollbacks":
            self.stops.active = False  # the rollback is under way: nothing left to stop

    def activity_starting(self, context: dict[str, Any]) -> None:
        """Faults and rollbacks are dated when their action starts: a rolling deploy
        hurts, and a rolling rollback heals, before the action returns."""
        if context.get("type") == "action":
            if self.current == "method":  # what undoes it is on record before it starts
                self.before_fault(str(context.get("name")))
            self.started_ns, self.started_utc = time.monotonic_ns(), utc_now()
            if self.current == "method" and not self.injected:
                self.detector.arm(self.started_ns)
                if self.stops is not None:
                    self.stops.active = True

    def activity(self, context: dict[str, Any], state: dict[str, Any]) -> None:
        if context.get("type") != "action":
            return
        name, status = context.get("name"), state.get("status")
        provider = context.get("provider") or {}
        started_ns = self.started_ns or time.monotonic_ns()
        took = round((time.monotonic_ns() - started_ns) / 1e9, 3)
        if self.current == "method":
            if status == "succeeded":
                self.incident.record(events.fault_injected(name, status, provider, took),
                                     "chaos", at_ns=started_ns, at_utc=self.started_utc)
                self.injected = True
            else:
                self.incident.record(events.chaos_action_failed(
                    name, status, provider, str(state.get("exception", ""))), "chaos")
        elif self.current == "rollbacks":
            self.incident.record(events.fault_rolled_back(name, status, provider, took),
                                 "chaos", at_ns=started_ns, at_utc=self.started_utc)

    def hypothesis(self, state: dict[str, Any]) -> None:
        self.incident.record(events.steady_state_checked(
            "before" if self.current == "before" else "after",
            bool(state.get("steady_state_met"))), "chaos")

    def hold(self) -> None:
        if self.injected:
            self.response.run()
            self.let_recovery_show()

    def let_recovery_show(self) -> None:
        """People may resolve the incident at any moment, and a drill's hold then lets
        go (``drills.master.end_with_incident``), perhaps while the SLIs are still coming
        back from their fix: the steady-state hypothesis that follows the hold would find
        the damage still in its window. So the hold waits for the detector to measure the
        recovery, as long as one under way when they resolved takes to be confirmed (the
        SLO window, the recovery window and an evaluation or two, counted from the
        resolve, or from the end of a runbook run that finished after it), and no longer
        once a window of requests made after both misses the objective: nothing but the
        rollback will bring those back."""
        if self.detector.mitigated.is_set():
            return
        moves = self.incident.store.events(
            self.incident.id, kinds=[Kind.INCIDENT_RESOLVED, Kind.RUNBOOK_FINISHED])
        if not any(e.kind == Kind.INCIDENT_RESOLVED for e in moves):
            return
        sc, since_ns = self.response.sc, max(e.at_monotonic_ns for e in moves)
        window_ns = int(sc.slo.window_s * 1e9)
        confirmed_by = since_ns + window_ns + int(
            (sc.recovery_window_s + 2 * sc.evaluation_interval_s) * 1e9)
        while not wait(self.detector.mitigated, sc.evaluation_interval_s):
            sli = self.detector.current()
            if time.monotonic_ns() >= confirmed_by or (
                    sli is not None and sli.at_ns - window_ns >= since_ns
                    and outside(sli, sc.slo)):
                return


def wait_steady(sc: Scenario, source: samples.SliSource) -> samples.Sli:
    """Until the window holds enough samples (as many as ``source`` says a window needs)
    and the SLIs are inside the objective; returns that window. The window is judged
    again as each sample arrives, so the steady state counts from the sample that made
    it, not from the next look at an interval."""
    needed = source.needed(sc.slo.window_s)
    deadline = time.monotonic() + sc.timeouts.steady
    seen = 0
    while True:
        sli = source.sli(sc.slo.window_s)
        # a reading with no number (no requests in Prometheus's window yet) is no
        # steady state: the fault would go in against a service nobody measured
        if sli.total >= needed and sli.success_ratio is not None \
                and not outside(sli, sc.slo):
            return sli
        left = deadline - time.monotonic()
        if left <= 0:
            raise SandboxError(f"the target did not reach its steady state within "
                               f"{sc.timeouts.steady:g}s (last window: "
                               f"{describe_impact(sli.as_dict())})")
        seen = source.wait_recorded(seen, left)


def release_runbook_executor() -> None:
    """The game day is over and nothing in this process runs a runbook any more: the
    warm executor is told to go on a thread of its own, so that the process ends without
    waiting for it (its exit, a quarter of a second of CPU with Ansible loaded, would
    otherwise be waited for at exit, or compete with stopping the target if sooner)."""
    from gameday.runbooks import executor

    threading.Thread(target=executor.default().stop, name="executor-stop",
                     daemon=True).start()


def refuse_if_frozen(store: Store) -> None:
    """The freeze blocks every new game day."""
    frozen = store.freeze()
    if frozen:
        raise Frozen(f"game days are frozen by {frozen['who']} since {frozen['at'][:19]}"
                     f" ({frozen['reason'] or 'no reason given'}); `gameday freeze off` "
                     "lifts it")


def refuse_during_real_incident(store: Store, sc: Scenario) -> None:
    """A game day on a team's own system waits while a real incident is open for its
    service, as a schedule's does (the sandbox is gameday's own world: it never is),
    and while another game day holds that service: running, or ended with a fault that
    may still be in (``store.leases.holding``)."""
    if sc.target in OWN:
        real = real_incident_open(store, sc.service)
        if real:
            raise RealIncidentOpen(f"{real}; game days on {sc.service} wait until it "
                                   "is resolved")
        refuse_if_held(store, sc)


def refuse_if_held(store: Store, sc: Scenario, me: int | None = None) -> None:
    """No game day starts on a team's own service another holds (``holding``); asked
    again once this one's lease is taken (``me``), so that of two started at once only
    the first goes on."""
    held = holding(store, sc.service, OWN, me=me) if sc.target in OWN else None
    if held:
        raise FaultMayBeIn(f"{held}; no other game day starts on {sc.service} meanwhile")


def stop_for_freeze(incident: Incident, frozen: FreezeRow) -> None:
    """Called by the lease's thread when the freeze is pulled while this game day
    runs: on the record, then stopped as Ctrl-C stops it (rollbacks, exit 130)."""
    incident.record(events.gameday_frozen(frozen["who"], frozen["reason"]), "gameday")
    interrupts.interrupt_main()


def run_gameday(sc: Scenario, store: Store, *, say: Say,
                on_event: Callable[[Event], None] | None = None,
                root: Path | None = None, alerting: str | None = None,
                on_open: Callable[[int, Path], None] | None = None,
                kind: str = "gameday") -> GameResult:
    """``on_open(incident_id, run_dir)`` is called once both exist, before the target
    starts (a scheduled game day records them on its scheduled run)."""
    refuse_if_frozen(store)
    refuse_during_real_incident(store, sc)
    alerting = alerting or sc.alerting
    if alerting == "prometheus" and sc.target != "sandbox":
        raise GamedayError("--alerting prometheus works with the sandbox target only")
    if alerting == "alertmanager" and sc.alertmanager is None:
        raise ValidationError("--alerting alertmanager needs the scenario's alertmanager "
                              "(a service target's)", file=str(sc.path), field="alertmanager")
    TARGETS[sc.target].check(sc)  # what it touches of a team's own system: the allowlist
    experiment = chaos.load_experiment(sc.experiment)  # validated before anything starts
    linked_runbook_within_hosts(sc)  # and the hosts its runbook would act on
    within_cluster(sc)  # and the namespaces and contexts in a team's cluster
    if sc.response.mode == "drill" and sc.drill:  # second faults roll back with the rest
        experiment = chaos.with_drill_faults(experiment, sc.drill, str(sc.path))
    run_dir = new_run_dir(root or runs_root(), sc.name)
    (run_dir / "scenario.yaml").write_text(as_run(sc))
    (run_dir / "experiment.json").write_text(json.dumps(experiment, indent=2))
    with interrupts.shielded():  # the incident is never left without its lease
        incident = Incident.open(store, sc.title, service=sc.service, scenario=sc.name,
                                 run_dir=str(run_dir), kind=kind)
        incident.listener = on_event
        (run_dir / "run.json").write_text(json.dumps(
            {"scenario": sc.name, "incident_id": incident.id,
             "db": store.shown_url, "started_at": clock.now().isoformat()},
            indent=2))
        target = make_target(sc, run_dir)
        lease = Lease(store, incident.id, run_dir, sc.target, experiment,
                      on_freeze=lambda frozen: stop_for_freeze(incident, frozen))
        lease.take(target.env)
        if on_open:
            on_open(incident.id, run_dir)
    say(f"run directory {run_dir}")

    game = _Game(sc, store, incident, target, lease, run_dir, alerting, say)
    try:
        interrupts.raise_if_received()  # one that landed while the lease was taken
        refuse_if_held(store, sc, me=incident.id)  # another that started at the same time
        game.play(experiment)
    except (KeyboardInterrupt, interrupts.Terminated):
        game.interrupted = True
    except GamedayError as exc:  # the target never got going: say so on the record
        with interrupts.shielded():
            incident.record(events.gameday_failed(str(exc)), "gameday")
            if incident.state == IncidentState.PENDING:
                incident.cancel("game day failed")
        raise
    finally:
        with interrupts.shielded():  # a signal now is remembered, never cuts this short
            game.stop()
    return GameResult(run_dir, incident.id, incident.state, game.journal.get("status"),
                      game.interrupted, game.stopped)


class _Game:
    """One game day under way: what it started, in the order it started them, so that
    ``stop`` takes all of it down whatever happened (a signal, an error, the end)."""

    def __init__(self, sc: Scenario, store: Store, incident: Incident, target: Target,
                 lease: Lease, run_dir: Path, alerting: str, say: Say) -> None:
        self.sc, self.store, self.incident, self.target = sc, store, incident, target
        self.lease, self.run_dir, self.say = lease, run_dir, say
        self.generator: samples.SliSource | None = None
        self.detector: Detector | None = None
        self.response: Response | None = None
        self.source: AlertSource = alert_source(alerting)
        self.watch: Watch | None = None
        self.stops: StopWatch | None = None
        self.stopped: str | None = None
        self.journal: dict[str, Any] = {}
        self.interrupted = False

    def play(self, experiment: dict[str, Any]) -> None:
        """The target up, traffic and detection, the steady state, the experiment with
        the incident run inside it, then the recovery."""
        sc, incident, target, run_dir = self.sc, self.incident, self.target, self.run_dir
        if sc.response.mode == "auto":
            from gameday.runbooks.runbook import prewarm

            prewarm()  # Ansible imported while the target comes up: the runbook starts warm
        ready = target.up()
        env = {**target.env, **self.store.child_env()}
        os.environ.update(target.env)  # for the chaos activities running in this process
        if "KUBECONFIG" in target.env:
            from gameday.targets.kube import use_kubeconfig

            use_kubeconfig(target.env["KUBECONFIG"])
        incident.record(events.target_ready(target.name, **ready), "gameday")
        generator = self.generator = target.sampler(run_dir / "samples.jsonl")
        generator.start()
        samples.LIVE = generator
        # The alert as it fires in this world: the target's labels (a cluster's context)
        # over the scenario's, as the runbook it links needs them.
        alert = replace(sc.alert, labels={**sc.alert.labels, **target.labels()})
        detector = self.detector = Detector(
            generator, sc.slo, alert, interval_s=sc.evaluation_interval_s,
            recovery_window_s=sc.recovery_window_s, sli_path=run_dir / samples.SLI_FILE,
            publish=lambda windows: self.store.add_sli_windows(incident.id, windows),
            report=lambda entry, at_ns, at_utc: record_measured(incident, entry, at_ns,
                                                                at_utc),
            emit_alerts=self.source.detector_alerts)
        detector.start()
        response = self.response = Response(sc, incident, detector, run_dir, env, self.say,
                                            target_labels=target.labels())
        self.source.start(run_dir, target, incident, response, detector)
        if sc.stop_when:
            self.stops = StopWatch(sc.stop_when, detector, incident,
                                   alertmanager=sc.alertmanager,
                                   every_s=sc.evaluation_interval_s)
            self.stops.start()
        steady = wait_steady(sc, generator)
        incident.record(events.steady_state_reached(steady.as_dict()), "gameday")
        self.watch = target.watch(run_dir, lambda entry: incident.record(entry, "kubernetes"))
        with settings.overridden(**target.settings):  # the activities act on our target
            self.journal = chaos.run(experiment, run_dir, GameHooks(
                incident, detector, response, self.lease.before_fault, stops=self.stops))
        self.interrupted = self.journal.get("status") == "interrupted"
        if not self.interrupted:
            finish(incident, detector, response, sc, self.say)

    def stop(self) -> None:
        self.source.stop()  # first, so a stopping shop pages nobody
        if self.response:  # after a signal, nobody waits for a trace
            self.response.close(wait=interrupts.received is None)
        if self.stops:
            self.stops.stop()
            self.stopped = self.stops.reason
        if self.detector:
            self.detector.stop()
        if self.watch:
            self.watch.stop()
        if self.generator:
            samples.LIVE = None
            self.generator.stop()
        left = self.take_down()
        self.interrupted = interrupts.received is not None or (
            self.interrupted and self.stopped is None)
        if self.stopped:
            self.incident.unless_ended(lambda: self.incident.abort(f"stopped: {self.stopped}"))
        if self.interrupted:
            self.incident.record(events.gameday_interrupted(self.journal.get("status"),
                                                            interrupts.name()), "gameday")
            self.incident.unless_ended(lambda: self.incident.end_unfinished("interrupted"))
        if left is None:
            self.incident.record(events.target_stopped(self.target.name), "gameday")
        else:  # the verdict says so; its lease stays, for ``gameday recover``
            self.incident.record(events.gameday_failed(left), "gameday")
            self.say(left)
        self.lease.release(target_stopped=left is None)

    def take_down(self) -> str | None:
        """The target down; what went wrong if it could not be (a ``kwokctl delete`` that
        fails, a sandbox that will not stop): the game day still ends its record."""
        try:
            self.target.down()
        except Exception as exc:
            said = " ".join(str(exc).split())[:600] or type(exc).__name__
            return (f"the {self.target.name} target could not be stopped ({said}); its "
                    "lease is kept: `gameday recover` stops it")
        return None


def record_measured(incident: Incident, entry: Entry, at_ns: int, at_utc: str) -> None:
    """What the detector measured, on the incident's timeline. ``mitigated`` also moves
    the incident to mitigated, unless its state cannot take that any more: people may
    resolve an incident at any time, also before the SLIs have been back inside the
    objective for the recovery window. Then the recovery goes on the record as the
    measurement it is (``Incident.record``'s ``measured``), dated at the first good
    request: it still gives TTM, the budget burned and the scorecards their moment."""
    incident.record(entry, "detector", at_ns=at_ns, at_utc=at_utc, measured=True)


def finish(incident: Incident, detector: Detector, response: Response, sc: Scenario,
           say: Say) -> None:
    """After the rollbacks: see the SLIs recover, then resolve, unless people resolved
    it already (at any moment: before the SLIs recovered too)."""
    if incident.state == IncidentState.PENDING:
        incident.cancel("never declared")
        return
    if not wait(detector.mitigated, sc.timeouts.recover, tick=None):
        incident.record(events.recovery_missed(sc.timeouts.recover), "gameday")
        say(f"the SLIs did not recover within {sc.timeouts.recover:g}s after the rollbacks")
        return
    if response.drilling:  # the incident commander resolves it, or the drill's time runs out
        deadline = time.monotonic() + (sc.drill or DrillSpec()).resolve_within
        while time.monotonic() < deadline and incident.state not in TERMINAL_STATES \
                and not any(e.kind == Kind.DRILL_ENDED for e in incident.events()):
            time.sleep(0.2)
        if incident.state in TERMINAL_STATES:
            return
        say("nobody resolved the drill's incident: resolving it")
    ic = incident.roles().get("incident_commander", "gameday")
    incident.unless_ended(lambda: incident.resolve(
        ic, how="SLIs inside the objective for the recovery window"))
    if not response.drilling and incident.state == IncidentState.RESOLVED:
        response.post_updates(final=True)  # whoever resolved it: the last update says so


def conclude(result: GameResult, store: Store) -> dict[str, Any]:
    """Score the run from its stored events, write its review and put its verdict on
    the timeline (``verdict.record``): the run's summary."""
    from gameday.game.verdict import record
    from gameday.scenarios.scenario import load_scenario

    # the run's copy of its scenario, read once for the score, the review and the verdict
    sc = load_scenario(result.run_dir / "scenario.yaml", check_experiment=False)
    summary = rescore(result.run_dir, store, sc) | {
        "status": result.status, "experiment": result.experiment_status,
        "interrupted": result.interrupted, "stopped": result.stopped}
    record(store, summary, sc)
    return summary


def rescore(run_dir: Path, store: Store, sc: Scenario | None = None) -> dict[str, Any]:
    """Recompute the scorecard and the review of a run directory from the store (``sc``:
    the run's copy of its scenario, if the caller has read it already)."""
    from gameday.game.review import write_review
    from gameday.game.scoring import compute_metrics, score
    from gameday.scenarios.scenario import load_scenario

    run_dir = Path(run_dir).resolve()
    info_path = run_dir / "run.json"
    if not info_path.exists():
        raise NotFound(f"{run_dir} is not a game day's run directory (no run.json)")
    info = json.loads(info_path.read_text())
    if sc is None:
        sc = load_scenario(run_dir / "scenario.yaml", check_experiment=False)
    incident_id = info["incident_id"]
    metrics = compute_metrics(store.events(incident_id), sc.slo.success_ratio)
    card = score(metrics, sc.targets)
    write_review(store, incident_id, sc, card, run_dir)
    return {"run_dir": str(run_dir), "incident_id": incident_id, "score": card.score,
            "metrics": metrics.as_dict(), "deductions": card.as_dict()["deductions"],
            "review": str(run_dir / "review.md")}


# -- the night before --------------------------------------------------------------------
@dataclass(frozen=True)
class Preflight:
    name: str
    ok: bool
    detail: str


def preflight(sc: Scenario, store: Store, *, say: Say,
              root: Path | None = None) -> list[Preflight]:
    """What a game day needs, checked without injecting anything and without opening an
    incident: the freeze, the target up, its SLIs inside the objective, and the
    experiment's steady-state hypothesis. The scenario, experiment and runbook were
    validated by loading them (a ValidationError ends it before this)."""
    TARGETS[sc.target].check(sc)
    experiment = chaos.load_experiment(sc.experiment)
    checks = [Preflight("validation", True, f"{sc.path.name}, {Path(sc.experiment).name}")]
    frozen = store.freeze()
    checks.append(Preflight("not frozen", frozen is None, "game days may run" if not frozen
                            else f"frozen by {frozen['who']}: {frozen['reason'] or ''}"))
    if sc.target in OWN:
        real = real_incident_open(store, sc.service)
        checks.append(Preflight("no real incident", real is None,
                                real or f"none open for {sc.service}"))
        held = holding(store, sc.service, OWN)
        checks.append(Preflight("no other game day", held is None,
                                held or f"none holds {sc.service}"))
    run_dir = new_run_dir(root or runs_root(), f"{sc.name}-preflight")
    target = make_target(sc, run_dir)
    generator: samples.SliSource | None = None
    try:
        try:
            ready = target.up()
        except GamedayError as exc:
            return [*checks, Preflight("target up", False, str(exc))]
        checks.append(Preflight("target up", True, f"{target.name} {ready}"[:200]))
        os.environ.update(target.env)
        generator = target.sampler(run_dir / "samples.jsonl")
        try:
            generator.start()
        except ValidationError:
            raise  # a query the team's Prometheus refuses: the file's mistake, exit 2
        except GamedayError as exc:  # a team's SLIs that cannot be read
            generator = None
            return [*checks, Preflight("SLIs readable", False, str(exc))]
        # with the load running: the pieces of the world gameday does not start
        checks += [Preflight(*piece) for piece in TARGETS[sc.target].pieces(sc, experiment)]
        samples.LIVE = generator
        try:
            sli = wait_steady(sc, generator)
            checks.append(Preflight("SLIs inside the objective", True,
                                    describe_impact(sli.as_dict())))
        except SandboxError as exc:
            checks.append(Preflight("SLIs inside the objective", False, str(exc)))
        with settings.overridden(**target.settings):
            met = chaos.steady_state_met(experiment)
        title = (experiment.get("steady-state-hypothesis") or {}).get("title", "")
        checks.append(Preflight("steady-state hypothesis", met, title))
        return checks
    finally:
        with interrupts.shielded():
            if generator:
                samples.LIVE = None
                generator.stop()
            target.down()
            say(f"preflight run directory {run_dir}")
