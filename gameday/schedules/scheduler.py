"""Running scheduled game days: what ``gameday serve`` does every second, and what
``gameday schedule run-now`` does at once.

Each tick looks at every schedule that is not paused, each on its own: one whose
next moment cannot be computed (``NeverFires``), or that fails otherwise, is reported
once and the others still start. When one is due (its moment plus its jitter has
come), the first process to claim that moment in the store runs it; the others see
the claim and do nothing. Before starting, the guardrails: the freeze, the schedule's
blackouts, a real incident open for the same service, a game day of the same schedule
or on the same target still running (never two at once), and a moment missed by more
than ``max_late``. Each refusal is a ``skipped`` run with its reason, in the
schedule's history.

The game day runs in its own process (``gameday run SCENARIO --schedule-run ID``;
chaoslib wants the main thread), its output in ``scheduled.log`` beside the run
directories. That process records its start, its verdict and its score on the
scheduled run, and sends the schedule's notifications; if it dies, the next tick
marks the run ``crashed`` (``gameday recover`` rolls its faults back).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.core import clock
from gameday.core.detached import spawn_gameday
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.settings import Settings
from gameday.core.spec import human_span
from gameday.core.states import SCHEDULE_RUN_UNFINISHED, ScheduleRunStatus
from gameday.incidents.incident import real_incident_open
from gameday.scenarios.scenario import OWN
from gameday.schedules import notify
from gameday.schedules.schedule import NeverFires, Schedule, from_row
from gameday.store import Store, utc_now
from gameday.store.leases import alive, holding, owner
from gameday.store.rows import FreezeRow, ScheduleRow, ScheduleRunRow

if TYPE_CHECKING:
    from gameday.scenarios.scenario import Scenario

TICK_S = 1.0
# How long the game days this process started get to roll back and record their end
# when it stops (gameday serve on SIGTERM): inside Kubernetes' default 30 s grace.
STOP_GRACE_S = 20.0
Say = Callable[[str], None]


def target_key(scenario: Any) -> str:
    """What two game days must not share at once: a cluster, or a sandbox service."""
    if scenario.target == "sandbox":
        return f"sandbox/{scenario.service}"
    return f"{scenario.target}/{scenario.workload.get('namespace', '')}"


def set_freeze(store: Store, frozen: bool, reason: str | None, who: str) -> FreezeRow | None:
    """Pull the safety lever (``gameday freeze``, the schedules page, ``POST
    /api/v1/freeze``): on, no game day starts and running ones stop with their
    rollbacks; off, they may start again. On the audit log; the freeze as it is now."""
    from gameday.core.audit import Audit

    reason = (reason or "").strip() or None
    if reason and (len(reason) > 500 or any(ord(c) < 32 for c in reason)):
        raise ValidationError("one line, at most 500 characters", field="reason")
    store.set_freeze(frozen, reason, who)
    store.audit(who, Audit.FREEZE, {"frozen": frozen, "reason": reason})
    return store.freeze()


def guardrail(store: Store, schedule: Schedule, scenario: Any, *, now: datetime,
              run_id: int | None = None) -> str | None:
    """Why the schedule's game day must not start now, or None."""
    frozen = store.freeze()
    if frozen:
        return (f"frozen by {frozen['who']} since {clock.shown_utc(frozen['at'])}: "
                f"{frozen['reason'] or 'no reason given'}")
    window = schedule.blackout(now)
    if window:
        return f"inside the blackout {window.text!r} ({schedule.tz})"
    real = real_incident_open(store, scenario.service)
    if real:
        return real
    if scenario.target in OWN:  # another game day at work there, or its fault left in
        held = holding(store, scenario.service, OWN)
        if held:
            return held
    key = target_key(scenario)
    for other in store.schedule_runs(limit=1000, unfinished=True):
        if other["id"] == run_id:
            continue
        if other["schedule"] == schedule.name:
            return f"game day {other['id']} of this schedule is still {other['status']}"
        if other["target"] == key:
            return (f"game day {other['id']} (schedule {other['schedule']}) is still "
                    f"{other['status']} on {key}")
    return None


def reap(store: Store) -> list[ScheduleRunRow]:
    """Scheduled runs whose game-day process is gone without saying how it ended."""
    crashed = []
    for run in store.schedule_runs(limit=1000, unfinished=True):
        who = run["owner"] if run["status"] == ScheduleRunStatus.RUNNING else run["claimed_by"]
        if who and alive(who) is False:
            store.update_schedule_run(run["id"], status=ScheduleRunStatus.CRASHED,
                                      finished_at=utc_now(),
                                      reason="its process ended before it finished "
                                             "(gameday recover rolls back what it left)")
            crashed.append(run)
    return crashed


class Scheduler:
    def __init__(self, store: Store, settings: Settings, *, say: Say = lambda text: None,
                 env: dict[str, str] | None = None):
        self.store, self.settings, self.say = store, settings, say
        self.env = env or {}
        self.children: dict[int, subprocess.Popen[bytes]] = {}  # its thread's, and begin's
        self._children = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._trouble: dict[str, str] = {}  # what was said of a failing schedule, by name

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop ticking, and leave nothing of this scheduler running or claimed: each
        game day it started is told to stop (SIGTERM: its rollbacks run, it records how
        it ended); one still running after ``grace`` is killed, its run ended on the
        record (its faults are rolled back by the next ``gameday serve``, ``run`` or
        ``recover``, from its lease). A moment it claimed and never started is released
        (skipped, saying why). Calling it again does nothing more."""
        with self._children:  # from here on, begin() starts nothing
            self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._children:
            children = dict(self.children)
            self.children.clear()
        for child in children.values():
            if child.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(child.pid, signal.SIGTERM)  # its own session: all of it
        deadline = time.monotonic() + grace
        for run_id, child in children.items():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(child.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5)
            self.ended(run_id, child.returncode if child.returncode is not None else -9)
        me = owner()
        for run in self.store.schedule_runs(unfinished=True, limit=1000):
            if run["status"] == ScheduleRunStatus.CLAIMED and run["claimed_by"] == me:
                self.store.update_schedule_run(
                    run["id"], status=ScheduleRunStatus.SKIPPED, finished_at=utc_now(),
                    reason="gameday serve stopped before the game day began")

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception as exc:  # one bad tick must not stop the scheduler
                self.say(f"scheduler: {type(exc).__name__}: {exc}")

    def tick(self, now: datetime | None = None) -> list[int]:
        """Start (or skip, on the record) every game day that is due; their ids."""
        now = now or clock.now()
        with self._children:
            done = [(i, c) for i, c in self.children.items() if c.poll() is not None]
            for child_id, _ in done:
                del self.children[child_id]
        for child_id, child in done:
            self.ended(child_id, child.returncode)
        reap(self.store)
        started = []
        rows = self.store.schedules()
        for row in rows:
            name = row["name"]
            try:  # one schedule's trouble never keeps the others from starting
                run_id = self._tick_one(row, now)
            except NeverFires as exc:
                self._troubled(name, f"{exc}: it is skipped (gameday schedule remove "
                                     f"{name})")
                continue
            except Exception as exc:
                self._troubled(name, f"schedule {name}: {type(exc).__name__}: {exc}")
                continue
            self._trouble.pop(name, None)
            if run_id is not None:
                started.append(run_id)
        for gone in set(self._trouble) - {row["name"] for row in rows}:
            del self._trouble[gone]
        return started

    def _tick_one(self, row: ScheduleRow, now: datetime) -> int | None:
        schedule = from_row(row)
        if schedule.paused:
            return None
        found = schedule.due(now)
        if found is None:
            return None
        due, missed = found
        begins = due.timestamp() + schedule.jitter(due)
        if now.timestamp() < begins:
            return None  # its jitter has not passed yet
        return self.begin(schedule, due, now=now, missed=missed)

    def _troubled(self, name: str, said: str) -> None:
        """Say what is wrong with a schedule once, not every second (again if it
        changes, or comes back after the schedule was well)."""
        if self._trouble.get(name) != said:
            self._trouble[name] = said
            self.say(f"scheduler: {said}")

    def ended(self, run_id: int, code: int) -> None:
        """A game-day process exited: if it never recorded its end, say so."""
        run = self.store.schedule_run(run_id)
        if run["status"] in SCHEDULE_RUN_UNFINISHED:
            self.store.update_schedule_run(
                run_id, status=ScheduleRunStatus.CRASHED, finished_at=utc_now(),
                reason=f"the game day's process exited {code} without recording its end")

    def begin(self, schedule: Schedule, due: datetime, *, now: datetime, missed: int = 0,
              manual: bool = False, attach: bool = False) -> int | None:
        """Claim ``due`` for ``schedule`` and start its game day, or skip it with the
        reason. None when another process claimed it first."""
        from gameday.scenarios.scenario import load_scenario

        try:
            scenario = load_scenario(self.settings.resolve(schedule.scenario))
            key, problem = target_key(scenario), None
        except GamedayError as exc:
            scenario, key, problem = None, "unknown", f"the scenario does not load: {exc}"
        run_id = self.store.claim_schedule_run(schedule.name, due.isoformat(), target=key,
                                               by=owner(), advance=not manual)
        if run_id is None:
            return None
        try:
            self._start(schedule, run_id, scenario, problem, due=due, now=now, missed=missed,
                        manual=manual, attach=attach)
        except Exception as exc:  # never leave a moment claimed that nothing will run
            with contextlib.suppress(Exception):
                if self.store.schedule_run(run_id)["status"] == ScheduleRunStatus.CLAIMED:
                    self.store.update_schedule_run(
                        run_id, status=ScheduleRunStatus.SKIPPED, finished_at=utc_now(),
                        reason=f"it could not start: {type(exc).__name__}: {exc}"[:500])
            raise
        return run_id

    def _start(self, schedule: Schedule, run_id: int, scenario: Any, problem: str | None, *,
               due: datetime, now: datetime, missed: int, manual: bool, attach: bool) -> None:
        """The claimed moment's game day started, or skipped with the reason."""
        late = now.timestamp() - due.timestamp() - schedule.jitter(due)
        if problem is None and not manual and late > schedule.max_late_s:
            problem = (f"started {human_span(late)} late, past --max-late "
                       f"{human_span(schedule.max_late_s)} (no gameday serve was running)")
        if problem is None and scenario is not None:
            try:
                problem = guardrail(self.store, schedule, scenario, now=now, run_id=run_id)
            except NeverFires as exc:  # its blackouts are in a zone this system lacks
                problem = exc.why
        if missed and not manual:
            self.say(f"schedule {schedule.name}: {missed} earlier moment(s) were missed")
        if problem:
            self.skip(schedule, run_id, problem)
            return
        with self._children:  # decided under the lock stop() takes its snapshot under
            if self._stop.is_set():
                self.skip(schedule, run_id, "gameday serve is stopping")
                return
            self.say(f"schedule {schedule.name}: starting game day {run_id} "
                     f"({schedule.scenario})")
            self.children[run_id] = self.spawn(schedule, run_id, attach=attach)

    def run_now(self, name: str, who: str) -> ScheduleRunRow:
        """Start ``name``'s game day at once, with its guardrails (``gameday schedule
        run-now``, the schedules page's Run now): its scheduled run, ``skipped`` with
        the reason when a guardrail says no. Who asked is on the audit log."""
        from gameday.core.audit import Audit

        made = from_row(self.store.schedule(name))
        now = clock.now()
        run_id = self.begin(made, now, now=now, manual=True)
        if run_id is None:  # a manual moment is this instant: nobody else claims it
            raise GamedayError(f"schedule {name}: this moment was claimed already; retry")
        run = self.store.schedule_run(run_id)
        self.store.audit(who, Audit.GAMEDAY_STARTED, {"schedule": name, "run_id": run_id,
                                                      "status": run["status"]})
        return run

    def skip(self, schedule: Schedule, run_id: int, reason: str) -> None:
        self.store.update_schedule_run(run_id, status=ScheduleRunStatus.SKIPPED, reason=reason,
                                       finished_at=utc_now())
        self.say(f"schedule {schedule.name}: skipped: {reason}")
        notify.send(schedule, notify.summary(schedule, self.store.schedule_run(run_id),
                                             "skipped"))

    def spawn(self, schedule: Schedule, run_id: int,
              attach: bool = False) -> subprocess.Popen[bytes]:
        """The game day's own process: in its own session, its output in a log beside
        the run directories (or this terminal's, ``attach``)."""
        log = None if attach else \
            self.settings.runs_dir / f"scheduled-{run_id:05d}-{schedule.name}.log"
        return spawn_gameday(self.settings.resolve(schedule.scenario), cwd=self.settings.root,
                             store_env=self.store.child_env(),
                             flag=("--schedule-run", run_id), log=log,
                             env=self.env)



class ScheduledRun:
    """The game-day process's side of a scheduled run (``gameday run --schedule-run
    ID``): it records its start, its end and its verdict, and sends the schedule's
    notifications, so the history is right even if the scheduler that started it is
    gone."""

    kind = "gameday"  # an occasion of ``game.session.play``

    def __init__(self, store: Store, run_id: int):
        from gameday.schedules.schedule import from_row

        self.store, self.id = store, run_id
        self.row = store.schedule_run(run_id)
        self.schedule = from_row(store.schedule(self.row["schedule"]))
        self.say: Say = lambda text: None

    def scenario(self, sc: Scenario) -> Scenario:  # as the schedule names it
        return sc

    def over(self) -> None:
        return None  # ``failed`` or ``finished`` said how

    def _notify(self, event: str) -> None:
        notify.send(self.schedule, notify.summary(self.schedule, self.store.schedule_run(self.id),
                                                  event), say=self.say)

    def opened(self, incident_id: int, run_dir: Path) -> None:
        from gameday.core import events
        from gameday.incidents.incident import Incident

        self.store.update_schedule_run(self.id, status=ScheduleRunStatus.RUNNING,
                                       incident_id=incident_id, run_dir=str(run_dir),
                                       owner=owner(), started_at=utc_now())
        Incident(self.store, incident_id).record(events.gameday_scheduled(
            self.schedule.name, self.id, self.row["due_at"]), "scheduler")
        self._notify("started")

    def failed(self, error: Exception) -> None:
        """The game day could not run: skipped if no fault was injected (the target or
        its steady state was not there, the freeze), else an error."""
        from gameday.core.events import Kind

        incident_id = self.store.schedule_run(self.id)["incident_id"]
        injected = incident_id is not None and any(
            e.kind == Kind.FAULT_INJECTED for e in self.store.events(incident_id))
        self.store.update_schedule_run(self.id, status="error" if injected else "skipped",
                                       reason=str(error)[:500], finished_at=utc_now())
        self._notify("finished" if injected else "skipped")

    def finished(self, summary: dict[str, Any], status: str) -> None:
        self.store.update_schedule_run(self.id, status=status, score=summary.get("score"),
                                       summary=summary, finished_at=utc_now())
        self._notify("finished")
