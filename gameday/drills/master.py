"""Running a drill: starting one (its game day in its own process, like a scheduled
one), the Wheel of Misfortune, and the moves the game master and the players make.
The CLI (``gameday drill``) and the console in ``gameday serve`` both call these.

Every move is an event on the drill's incident (``drill.*``, ``role.assigned``, ...),
read by the game-day process (injects, pause, end) and by the debrief (``drill``).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from gameday.core import events
from gameday.core.detached import spawn_gameday
from gameday.core.errors import AlreadyRecorded, Frozen, GamedayError, NotFound, ValidationError
from gameday.core.events import Kind
from gameday.core.sentences import describe_event
from gameday.core.settings import TARGET_KINDS, Settings
from gameday.core.states import DrillState
from gameday.drills.scorecards import answered, scorecards
from gameday.incidents.incident import (
    INCIDENT,
    STATE_OF_EVENT,
    TERMINAL_STATES,
    Incident,
    held_roles,
    kind_of_row,
)
from gameday.runbooks.routing import Route
from gameday.scenarios.drill import Clock, DrillSpec, due_injects
from gameday.scenarios.scenario import Scenario, load_scenario
from gameday.store import Store, clock_ns
from gameday.store.rows import DrillRow, IncidentRow

START_TIMEOUT_S = 120.0
GAME_MASTER = "game-master"
DRILL_TARGETS = ("sandbox", *TARGET_KINDS)  # where a drill's fault may go
# A replay's debrief: the scorecard's metrics of the real incident beside the drill's,
# and the two spans a real incident (which has no fault to time from) can be compared on.
TIMINGS = (("TTD", "time to detect (fault → alert)"),
           ("TTA", "time to acknowledge (alert → acknowledged)"),
           ("TTE", "time to engage a commander (declared → IC)"),
           ("TTFC", "time to first comms (declared → first update)"),
           ("TTM", "time to mitigate (fault → mitigated)"),
           ("TTR", "time to resolve (fault → resolved)"),
           ("alert_to_mitigated", "alert → mitigated (measured, else declared)"),
           ("alert_to_resolved", "alert → resolved"),
           ("severity_declared", "severity declared"),
           ("severity_measured", "severity measured"))
Measure = Callable[[Sequence[Any]], Mapping[str, Any]]
# What a scenario's title opens with to say what it is ("Game day: ...", "Game day (kwok):
# ...", or a drill's own "Drill: ..."), and where, in parentheses.
_OPENING = re.compile(r"(?:game day|drill)\s*(\([^)]*\))?\s*:\s*(?=\S)", re.IGNORECASE)


def _said(title: str) -> tuple[str, str]:
    """Where a title says it runs (`` (kwok)``, or nothing) and what it says happens."""
    opening = _OPENING.match(title)
    if opening is None:
        return "", title
    return (f" {opening.group(1)}" if opening.group(1) else ""), title[opening.end():]


def drill_title(title: str) -> str:
    """A drill's incident title, from its scenario's: "Game day: a checkout replica
    crashes" is drilled as "Drill: a checkout replica crashes", "Game day (kwok): ..." as
    "Drill (kwok): ...", anything else is prefixed "Drill: "."""
    where, what = _said(title)
    return f"Drill{where}: {what}"


def heading(drill_id: int, title: str) -> str:
    """What the console and the debrief call drill ``drill_id`` with incident ``title``:
    "Drill 3: a checkout replica crashes", a drill opened under its scenario's game-day
    title before drills had their own ("Game day: ...") alike."""
    where, what = _said(title)
    return f"Drill {drill_id}{where}: {what}"


def drill_scenarios(settings: Settings) -> list[tuple[Path, Scenario]]:
    """The project's scenarios (``scenarios/``) a drill can run: on the sandbox or on a
    team's own cluster or service. What does not load is left out (``gameday
    validate`` says why)."""
    found = []
    for path in sorted((settings.root / "scenarios").glob("*.y*ml")):
        try:
            sc = load_scenario(path, check_experiment=False)
        except GamedayError:
            continue
        if sc.target in DRILL_TARGETS:
            found.append((path, sc))
    return found


def spin(pool: Path, *, seed: int | None = None,
         history: Store | None = None) -> tuple[Path, str]:
    """The Wheel of Misfortune: a random scenario from ``pool`` (a directory of
    scenarios, or one file) and a random on-call from its rotation.

    With ``history``, only what already happened spins: scenarios whose game days ran,
    or whose alert fired for a real incident (one opened by an alert), as a Wheel of
    Misfortune replays past outages."""
    files = sorted(pool.glob("*.y*ml")) if pool.is_dir() else [pool]
    wheel = random.Random(seed)
    candidates: list[tuple[Path, Scenario]] = []
    for path in files:
        try:
            sc = load_scenario(path)
        except GamedayError:
            continue  # `gameday validate` says why; the wheel only spins valid ones
        if sc.target == "sandbox":  # a drill needs nothing but this machine
            candidates.append((path, sc))
    if history is not None:
        ran, fired = history.past_outages()
        candidates = [(p, sc) for p, sc in candidates
                      if sc.name in ran or sc.alert.name in fired]
    if not candidates:
        what = "that a past game day or incident touched" if history is not None else ""
        raise ValidationError(f"no valid sandbox scenario {what} to spin".replace("  ", " "),
                              file=str(pool), field="--wheel")
    path, sc = wheel.choice(candidates)
    return path, wheel.choice(list(sc.team.oncall))


class DrillRun:
    """The game-day process's side of drill ``drill_id`` (``gameday run --drill ID``, an
    occasion of ``game.session.play``): people respond, the Wheel of Misfortune's pick is
    the one paged, the drill's start goes on the record once its incident exists, and
    the drill ends with its game day."""

    kind = "drill"

    def __init__(self, store: Store, drill_id: int) -> None:
        self.store, self.id = store, drill_id
        self.row = store.drill(drill_id)
        self.replay: dict[str, Any] | None = None
        self.injects: list[str] = []

    def scenario(self, sc: Scenario) -> Scenario:
        """The scenario as a drill runs it: people respond, its incident is titled as a
        drill's (a replay's says already that it rehearses incident #N), the wheel's pick
        is the one on call."""
        self.replay = sc.replay
        self.injects = [i.name for i in sc.drill.injects] if sc.drill else []
        drilled = replace(sc, response=replace(sc.response, mode="drill"),
                          title=sc.title if sc.replay else drill_title(sc.title))
        if self.row["oncall"]:
            drilled = replace(drilled, team=replace(sc.team, oncall=(self.row["oncall"],)))
        return drilled

    def opened(self, incident_id: int, run_dir: Path) -> None:
        row = self.row
        self.store.update_drill(self.id, incident_id=incident_id, run_dir=str(run_dir),
                                state=DrillState.RUNNING)
        incident = Incident(self.store, incident_id)
        incident.record(events.drill_started(
            self.id, row["game_master"], row["difficulty"], row["oncall"]),
            row["game_master"])
        if self.replay:  # which real incident, and why this fault: on its own record
            incident.record(events.drill_replay(
                self.replay["incident"], self.replay["alert"], self.replay["fault"],
                self.replay["why"], self.injects), row["game_master"])

    def failed(self, error: Exception) -> None:
        self.store.update_drill(self.id, state=DrillState.FAILED)

    def finished(self, summary: dict[str, Any], status: str) -> None:
        return None  # the debrief reads the timeline

    def over(self) -> None:
        """A drill still running is ended (a failed one says so already)."""
        if self.store.drill(self.id)["state"] == DrillState.RUNNING:
            self.store.update_drill(self.id, state=DrillState.ENDED)


def start_drill(store: Store, settings: Settings, scenario: Path, *, game_master: str,
                difficulty: str = "normal", oncall: str | None = None,
                base_url: str | None = None) -> dict[str, Any]:
    """Start the drill's game day in its own process and wait for its incident."""
    load_scenario(scenario)  # refuse what does not validate before anything starts
    _person(game_master, "--game-master")
    relative = settings.relative(scenario)
    drill_id = store.create_drill(relative, game_master=game_master, difficulty=difficulty,
                                  oncall=oncall)
    log = settings.runs_dir / f"drill-{drill_id:04d}.log"
    child = spawn_gameday(settings.resolve(relative), cwd=settings.root,
                          store_env=store.child_env(), flag=("--drill", drill_id), log=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        row = store.drill(drill_id)
        if row["incident_id"]:
            break
        if child.poll() is not None or time.monotonic() > deadline:
            if child.poll() is None:
                child.terminate()
            store.update_drill(drill_id, state=DrillState.FAILED)
            tail = log.read_text(errors="replace")[-1500:].strip()
            said = [line[len("Error: "):] for line in tail.splitlines()
                    if line.startswith("Error: ")]
            if child.poll() == Frozen.exit_code and said:  # a guardrail, as for a game day
                raise Frozen(f"the drill's game day may not start: {said[-1]}")
            raise GamedayError(f"the drill's game day did not start (exit {child.poll()}):\n"
                               f"{tail}")
        time.sleep(0.1)
    url = (base_url or settings.url).rstrip("/")
    return {"drill_id": drill_id, "incident_id": row["incident_id"], "scenario": relative,
            "difficulty": difficulty, "oncall": oncall, "pid": child.pid,
            "join_url": f"{url}/drills/{drill_id}", "log": str(log),
            # nobody said where `gameday serve` runs: the link is on the default address
            "join_url_assumed": base_url is None and not settings.url_given}


def _person(name: str, field: str = "--as") -> str:
    from gameday.incidents.moves import person

    return person(name, field)


class Drill:
    """A drill and its incident, for the moves people make in it."""

    def __init__(self, store: Store, row: DrillRow, scenario: Scenario):
        self.store, self.row, self.sc = store, row, scenario
        self.id: int = row["id"]
        if not row["incident_id"]:
            raise GamedayError(f"drill {self.id} has not started ({row['state']})")
        self.incident = Incident(store, row["incident_id"])
        self._route: Route | None = None

    @classmethod
    def load(cls, store: Store, settings: Settings, drill_id: int) -> Drill:
        row = store.drill(drill_id)
        return cls(store, row, load_scenario(settings.resolve(row["scenario"]),
                                             check_experiment=False))

    @property
    def spec(self) -> DrillSpec:
        return self.sc.drill or DrillSpec()

    def timeline(self) -> list[Any]:
        return self.incident.events()

    def _open(self) -> None:
        if self.over:
            raise GamedayError(f"drill {self.id} is over ({self.incident.state})")

    @property
    def ended(self) -> bool:
        return any(e.kind == Kind.DRILL_ENDED for e in self.timeline())

    @property
    def over(self) -> bool:
        """Ended by its game master, or its incident is (resolving it ends the drill)."""
        return self.incident.state in TERMINAL_STATES or self.ended

    @property
    def clock(self) -> Clock:
        return Clock.of(self.timeline())

    # -- moves ----------------------------------------------------------------------------
    def join(self, person: str, role: str) -> None:
        """Take ``role``: any number of responders; the other roles have one holder, who
        hands it over (``gameday incident assign``) rather than losing it unseen."""
        self._open()
        _person(person)
        held = self.incident.roles().get(role)
        if role != "responder" and held and held != person:
            raise GamedayError(f"{held} is {role.replace('_', ' ')}: ask them to hand it "
                               "over, or take another role")
        self.incident.record(events.drill_joined(person, role), person)
        self.incident.assign(role, person, person, via="drill")

    def pause(self, person: str) -> None:
        self._open()
        if self.clock.paused:
            raise GamedayError(f"drill {self.id} is already paused")
        self.incident.record(events.drill_paused(), _person(person))

    def resume(self, person: str) -> None:
        self._open()
        if not self.clock.paused:
            raise GamedayError(f"drill {self.id} is not paused")
        self.incident.record(events.drill_resumed(), _person(person))

    def inject(self, person: str, *, name: str | None = None, sender: str | None = None,
               message: str | None = None) -> dict[str, Any]:
        """The game master fires a declared inject now, or one made up on the spot."""
        self._open()
        _person(person)
        if name:
            declared = next((i for i in self.spec.injects if i.name == name), None)
            if declared is None:
                known = ", ".join(i.name for i in self.spec.injects) or "none"
                raise ValidationError(f"no inject {name!r} in the scenario (known: {known})",
                                      field="NAME")
            entry = events.drill_inject(declared.name, declared.sender, declared.message,
                                        by_hand=True)
        else:
            from gameday.incidents.moves import text

            if not sender or not message:
                raise ValidationError("name a declared inject, or give --from and --message",
                                      field="NAME")
            sender = text(sender, "--from", limit=64)
            message = text(message, "--message", limit=500)
            if "\n" in message or "\t" in message:
                raise ValidationError("one line, at most 500 characters", field="--message")
            count = sum(1 for e in self.timeline() if e.kind == Kind.DRILL_INJECT)
            entry = events.drill_inject(f"by-hand-{count + 1}", sender, message, by_hand=True)
        try:  # once, whoever fires it: the game day on its schedule, or a game master
            self.incident.record(entry, person, once="name")
        except AlreadyRecorded:
            raise AlreadyRecorded(f"inject {entry.data['name']} was already fired") from None
        return dict(entry.data)

    def hint(self, person: str, stage: str | None = None) -> dict[str, Any]:
        """The next hint not yet taken (for ``stage``, if given), recorded with its cost."""
        self._open()
        _person(person)
        if self.row["difficulty"] == "hard":
            raise GamedayError("a hard drill gives no hints")
        taken = {(e.data.get("stage"), e.data.get("text")) for e in self.timeline()
                 if e.kind == Kind.DRILL_HINT}
        hints = [h for h in self.spec.hints if (h.stage, h.text) not in taken
                 and (stage is None or h.stage == stage)]
        if not hints:
            raise NotFound(f"no hint left{' for ' + stage if stage else ''} in this drill")
        chosen = hints[0]
        cost = 0 if self.row["difficulty"] == "easy" else chosen.cost
        entry = events.drill_hint(chosen.stage, chosen.text, cost)
        self.incident.record(entry, person)
        return dict(entry.data)

    def end(self, person: str) -> bool:
        """End the drill: its game day rolls the fault back and writes the debrief.
        Whether this ended it: a drill that is over already (its incident resolved,
        which ends it too, or ended before) is left as it is and this succeeds, since
        what the game master asked for is done (a script's clean-up, or the console's
        button pressed as the incident commander resolves, is no error)."""
        _person(person)
        if self.over:
            return False
        self.incident.record(events.drill_ended("ended by the game master"), person)
        return True

    # -- what the console shows -----------------------------------------------------------
    def snapshot(self, *, after_seq: int = 0, sli_offset: int = 0) -> dict[str, Any]:
        """The drill as it stands, for the console and ``GET /api/v1/drills/ID``: the
        incident, roles, clock, pages, injects and hints, the linked runbook, the
        timeline's events after ``after_seq`` (time order, each with its sentence) and
        the SLI windows the game day stored after the one numbered ``sli_offset``
        (``next_sli_offset`` says where to go on)."""
        from gameday.incidents import moves

        row = self.store.drill(self.id)
        inc = self.incident.row
        timeline = self.timeline()
        clock = Clock.of(timeline)
        t0 = min((e.at_monotonic_ns for e in timeline), default=0)
        acked = {e.actor for e in timeline if e.kind in (Kind.INCIDENT_ACKNOWLEDGED,
                                                         Kind.ROLE_ASSIGNED)}
        pages = [{"person": e.data["person"], "role": e.data["role"],
                  "reason": e.data.get("reason"), "answered": e.data["person"] in acked}
                 for e in timeline if e.kind == Kind.PAGE_SENT]
        fired = {e.data.get("name") for e in timeline if e.kind == Kind.DRILL_INJECT}
        taken = sum(1 for e in timeline if e.kind == Kind.DRILL_HINT)
        if self._route is None:  # the alert fires once: route it once, not every poll
            self._route = moves.linked(self.incident, timeline)
        route = self._route
        new = [e for e in events.in_time_order(timeline) if e["seq"] > after_seq]
        samples, next_offset = self.sli_samples(sli_offset, t0)
        return {
            "drill": {k: row[k] for k in ("id", "scenario", "state", "difficulty",
                                          "game_master", "oncall")},
            "replay": self.sc.replay,
            "incident": {k: inc.get(k) for k in ("id", "title", "state", "severity",
                                                 "service")},
            "heading": heading(self.id, inc["title"]),
            "roles": held_roles(timeline),
            "clock": {"seconds": clock.at(clock_ns(inc)), "paused": clock.paused},
            "over": (any(e.kind == Kind.DRILL_ENDED for e in timeline)
                     or inc["state"] in TERMINAL_STATES),
            "pages": pages,
            "injects": answered(self.spec, timeline),
            "injects_left": [i.name for i in self.spec.injects if i.name not in fired],
            "hints_left": (0 if row["difficulty"] == "hard"
                           else max(0, len(self.spec.hints) - taken)),
            "runbook": ({"name": route.runbook.name, "link": route.link(self.incident.id),
                         "error": route.error} if route and route.runbook else None),
            "objective": {"success_ratio": self.sc.slo.success_ratio,
                          "latency_p99_ms": self.sc.slo.latency_p99_ms},
            # ``ns`` and ``seq`` place an event that comes late among those shown already
            "events": [{"seq": e["seq"], "ns": e["at_monotonic_ns"] - t0,
                        "t": round((e["at_monotonic_ns"] - t0) / 1e9, 2),
                        "at_utc": e["at_utc"], "kind": e["kind"], "actor": e["actor"],
                        "text": describe_event(e)} for e in new],
            "last_seq": max((e.seq for e in timeline), default=after_seq),
            "sli": samples, "next_sli_offset": next_offset,
        }

    def sli_samples(self, after: int, t0: int) -> tuple[list[dict[str, Any]], int]:
        """The game day's SLI windows stored after id ``after`` (any replica reads them),
        each ``t`` in seconds on the timeline's scale, and the id to read on from."""
        windows, next_after = self.store.sli_windows(self.incident.id, after)
        return [{"t": round((w["at_ns"] - t0) / 1e9, 2), "success_ratio": w.get("success_ratio"),
                 "p99_ms": w.get("p99_ms"), "outside": bool(w.get("outside")),
                 "unit": w.get("unit") or "request"}
                for w in windows], next_after

    # -- the debrief ------------------------------------------------------------------------
    def debrief(self, measure: Measure | None = None) -> dict[str, Any]:
        """Scorecards, injects, hints and the timeline; for a drill that replays a real
        incident, ``measure`` (the scorecard's ``compute_metrics``, which lives above
        drills) times both, side by side."""
        timeline = self.timeline()
        row = self.store.drill(self.id)
        review = None
        if row["run_dir"]:
            path = Path(row["run_dir"]) / "review.md"
            review = str(path) if path.is_file() else None
        return {"drill_id": self.id, "heading": heading(self.id, self.incident.row["title"]),
                "scenario": row["scenario"], "state": row["state"],
                "difficulty": row["difficulty"], "game_master": row["game_master"],
                "oncall": row["oncall"], "incident_id": self.incident.id,
                "incident_state": self.incident.state,
                "replay": self.replayed(timeline, measure),
                "scorecards": [c.as_dict() for c in scorecards(self.sc, timeline)],
                "injects": answered(self.spec, timeline),
                "hints_taken": [e.data for e in timeline if e.kind == Kind.DRILL_HINT],
                "timeline": events.in_time_order(timeline), "review": review}

    def replayed(self, timeline: Sequence[Any], measure: Measure | None) -> dict[str, Any] | None:
        """The real incident this drill rehearses and, measured alike, its timings beside
        the drill's (None for a drill of a shipped scenario)."""
        replay = self.sc.replay
        if not replay:
            return None
        out: dict[str, Any] = {**replay, "title": None, "missing": None, "timings": []}
        try:
            real = Incident(self.store, replay["incident"])
            out["title"] = real.row["title"]
            real_events: list[Any] = real.events()
        except NotFound:
            out["missing"] = f"incident {replay['incident']} is no longer in the store"
            real_events = []
        if measure is not None:
            was = {**measure(real_events), **from_alert(real_events)} if real_events else {}
            now = {**measure(timeline), **from_alert(timeline)}
            out["timings"] = [{"metric": key, "what": what, "real": was.get(key),
                               "drill": now.get(key)} for key, what in TIMINGS]
        return out


def from_alert(timeline: Sequence[Any]) -> dict[str, float | None]:
    """Seconds from the first alert to mitigation and to resolution: what a real
    incident, which knows no fault, and its rehearsal can both be timed by. Mitigation
    is the SLIs' recovery where they were measured, else the commander's call."""
    ordered = events.in_time_order(timeline)

    def first(*kinds: Kind) -> int | None:
        return next((e["at_monotonic_ns"] for e in ordered if e["kind"] in kinds), None)

    alert = first(Kind.ALERT_FIRED)
    measured = first(Kind.MITIGATED)
    mitigated = measured if measured is not None else first(Kind.MITIGATION_DECLARED)
    resolved = first(Kind.INCIDENT_RESOLVED)

    def since(ns: int | None) -> float | None:
        return None if alert is None or ns is None else round((ns - alert) / 1e9, 3)

    return {"alert_to_mitigated": since(mitigated), "alert_to_resolved": since(resolved)}


FIELD = "--from-incident"


def replayable(store: Store, incident_id: int
               ) -> tuple[IncidentRow, list[dict[str, Any]], dict[str, Any]]:
    """A real incident opened by an alert: its row, its timeline in time order and the
    alert that opened it; refused, saying what is missing, for an incident that is not
    there (NotFound), a rehearsal, or one opened by hand."""
    inc = Incident(store, incident_id)
    row = inc.row
    kind = kind_of_row(row)
    if kind != INCIDENT:
        raise ValidationError(f"incident {incident_id} is a {kind.replace('gameday', 'game day')}"
                              ", a rehearsal itself: replay a real incident (gameday "
                              "incident list --kind incident)", field=FIELD)
    timeline = events.in_time_order(inc.events())
    alert = next((e for e in timeline if e["kind"] == Kind.ALERT_FIRED), None)
    if alert is None:
        raise ValidationError(f"incident {incident_id} has no alert on its timeline (it was "
                              "opened by hand): a replay needs the alert that opened it, "
                              "to fire the same one", field=FIELD)
    return row, timeline, alert


def replay_elsewhere(settings: Settings, store: Store, incident_id: int, *, game_master: str,
                     difficulty: str = "normal", target: str = "sandbox",
                     base_url: str | None = None) -> dict[str, Any]:
    """``gameday drill start --from-incident`` in a process of its own, for ``gameday
    serve``: choosing the fault reads the fault registry, which imports the chaos
    provider modules a web process stays out of. What this process can tell (no such
    incident, a rehearsal, no alert) it refuses itself; the other process's refusal is
    raised here as the same kind of error, with the same words."""
    try:
        replayable(store, incident_id)
    except ValidationError as exc:
        raise ValidationError(exc.message, field="incident") from None
    argv = [sys.executable, "-m", "gameday", "drill", "start", "--from-incident",
            str(incident_id), "--target", target, "--game-master", game_master,
            "--difficulty", difficulty, "--json"]
    env = {**os.environ, **store.child_env(),
           **({"GAMEDAY_URL": base_url} if base_url else {})}
    done = subprocess.run(argv, cwd=settings.root, env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT_S + 60)
    if done.returncode == 0:
        started: dict[str, Any] = json.loads(done.stdout)
        return started
    said = done.stderr.strip()
    message = said.rpartition("Error: ")[2] if "Error: " in said else said[-500:]
    if done.returncode == 2:
        raise ValidationError(message, field="incident")
    raise GamedayError(message)


def fire_due_injects(incident: Incident, spec: DrillSpec) -> list[str]:
    """Called by the drill's game-day process a few times a second while the fault is
    held: the injects whose moment or event has come fire. A drill whose incident is
    over fires nothing more, and ends (``end_with_incident``)."""
    timeline = incident.events()
    if end_with_incident(incident, timeline):
        return []
    fired = []
    for inject in due_injects(spec, timeline, time.monotonic_ns()):
        try:
            incident.record(events.drill_inject(inject.name, inject.sender, inject.message),
                            GAME_MASTER, once="name")
        except AlreadyRecorded:
            continue  # fired by hand a moment ago
        fired.append(inject.name)
    return fired


def end_with_incident(incident: Incident, timeline: Sequence[Any]) -> bool:
    """Whether the drill's incident is over (read from ``timeline``, its events). People
    may resolve it at any moment, before gameday has seen the SLIs back inside the
    objective too: the drill then ends with it, ``drill.ended`` on the record once (why,
    and by whom), which lets the game day's hold go, so the fault is rolled back, the
    target stopped and the debrief written now, not when the time box runs out."""
    over = next((e for e in timeline if STATE_OF_EVENT.get(e.kind) in TERMINAL_STATES), None)
    if over is None:
        return False
    if not any(e.kind == Kind.DRILL_ENDED for e in timeline):
        incident.record(events.drill_ended(
            f"incident {STATE_OF_EVENT[over.kind]} by {over.actor}: the drill ends"),
            GAME_MASTER)
    return True
