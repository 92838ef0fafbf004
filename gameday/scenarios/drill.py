"""Responder training drills: the drill clock, injects, hints, and a scorecard for
every person by the roles they held.

A drill is a game day with ``response.mode: drill`` and people in the loop: the real
fault runs against the real target while they acknowledge pages, set the severity,
run the runbook and post updates, and a game master can pause the clock, fire
injects, give hints and end it. Everything is on the incident's timeline
(``drill.*`` events), so the debrief is computed from what happened, like a score.

The scenario's ``drill`` block declares injects (at a moment on the drill clock, or
when an event happens, each optionally with an expectation that is scored) and hints
per stage (taking one costs points)::

    drill:
      injects:
        - name: exec-asks-eta
          at: 45s
          from: executive
          message: The VP of sales asks when checkout will be back.
          expect: {event: comms.posted, audience: executive, within: 2m}
        - name: support-tickets
          when: runbook.started
          from: support
          message: Support has 40 tickets about failed payments.
      hints:
        - {stage: triage, text: "Whose replicas are down? gameday sandbox status", cost: 5}

The clock stops while the drill is paused: injects wait, and every time the scorecards
measure leaves the paused spans out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, model_validator

from gameday.core.events import Kind, in_time_order
from gameday.core.policy import (
    AUDIENCES,
    DRILL_TARGETS,
    ROLES,
    SEVERITIES,
    TARGET_KEYS,
)
from gameday.core.spec import Line, Name, OneOf, Seconds, Spec

if TYPE_CHECKING:
    pass

STAGES = ("triage", "diagnose", "mitigate", "communicate", "resolve")
SENDERS = ("executive", "support", "customer", "sales", "security", "vendor", "monitoring")
EXPECTABLE = (Kind.COMMS_POSTED, Kind.SEVERITY_CHANGED, Kind.INCIDENT_ESCALATED,
              Kind.RUNBOOK_STARTED, Kind.NOTE_ADDED, Kind.ROLE_ASSIGNED,
              Kind.INCIDENT_ACKNOWLEDGED, Kind.INCIDENT_RESOLVED)
TRIGGERS = (Kind.INCIDENT_DECLARED, Kind.INCIDENT_ACKNOWLEDGED, Kind.SEVERITY_CHANGED,
            Kind.RUNBOOK_STARTED, Kind.RUNBOOK_FINISHED, Kind.COMMS_POSTED,
            Kind.INCIDENT_ESCALATED, Kind.MITIGATED, Kind.ROLE_ASSIGNED, Kind.DRILL_HINT)
ANCHORS = (Kind.ALERT_FIRED, Kind.INCIDENT_DECLARED)
MAX_HINT_COST = 50


# -- the drill block of a scenario ---------------------------------------------------------
class ExpectSpec(Spec):
    """What the inject asks of the responders, scored in the debrief."""

    event: Annotated[str, OneOf(tuple(str(k) for k in EXPECTABLE))] = Field(
        description="The event that answers it.")
    within: Annotated[float, Seconds(high=3600)] = Field(
        description="How long after the inject it must happen (drill clock).")
    audience: Annotated[str, OneOf(AUDIENCES)] | None = Field(
        default=None, description="For comms.posted: the audience the update is for.")
    role: Annotated[str, OneOf(ROLES)] | None = Field(
        default=None, description="Who is expected to answer [default: whoever does].")
    points: int = Field(default=10, ge=1, le=50, description="What missing it costs.")


class InjectSpec(Spec):
    """Something that happens to the responders during the drill."""

    name: Name = Field(description="Its name on the timeline.")
    at: Annotated[float, Seconds(high=86_400, inclusive=True)] | None = Field(
        default=None, description="When, on the drill clock (from the fault).")
    when: Annotated[str, OneOf(tuple(str(k) for k in TRIGGERS))] | None = Field(
        default=None, description="Or: when this event first happens.")
    after: Annotated[str, OneOf(tuple(str(k) for k in ANCHORS))] | None = Field(
        default=None, description=(
            "Count at from this event's first moment instead of from the fault (a "
            "replayed incident's questions keep their offsets from its alert)."))
    sender: Annotated[str, OneOf(SENDERS)] = Field(
        alias="from", description="Who it comes from, as people would see it.")
    message: Line = Field(description="What they say.")
    expect: ExpectSpec | None = Field(default=None, description="What answers it, scored.")
    fault: dict[str, Any] | None = Field(default=None, description=(
        "A second fault: a Chaos Toolkit action the drill's game day runs when the inject "
        "fires (for example another replica killed)."))
    rollback: dict[str, Any] | None = Field(default=None, description=(
        "The Chaos Toolkit action that undoes the fault; it runs with the experiment's "
        "rollbacks whether the inject fired or not, so it must be safe when nothing broke."))

    @model_validator(mode="after")
    def _one_trigger(self) -> InjectSpec:
        if (self.at is None) == (self.when is None):
            raise ValueError("give exactly one of at (a time) or when (an event)")
        if self.after is not None and self.at is None:
            raise ValueError("after counts at from an event: give at too")
        if (self.fault is None) != (self.rollback is None):
            raise ValueError("a fault needs its rollback (and a rollback its fault): a "
                             "fault must never outlive the drill")
        for key in ("fault", "rollback"):
            action = getattr(self, key)
            if action is not None and (action.get("type") != "action"
                                       or not isinstance(action.get("name"), str)
                                       or not isinstance(action.get("provider"), dict)):
                raise ValueError(f"{key} must be a Chaos Toolkit action (type: action, name, "
                                 "provider)")
        return self


class HintSpec(Spec):
    """Help a responder can ask for; taking it is recorded and costs points."""

    stage: Annotated[str, OneOf(STAGES)] = Field(description="When it helps.")
    text: Line = Field(description="The hint.")
    cost: int = Field(default=5, ge=0, le=MAX_HINT_COST, description="Points it costs.")


class DrillSpec(Spec):
    """Injects, hints, the time box and the targets of a training drill."""

    time_box: Annotated[float, Seconds(high=4 * 3600)] = Field(default=900, description=(
        "How long people have to mitigate (drill clock) before the drill escalates and "
        "rolls the fault back."))
    resolve_within: Annotated[float, Seconds(high=3600)] = Field(default=300, description=(
        "After the SLIs recover, how long the incident commander has to resolve."))
    targets: dict[Annotated[str, OneOf(SEVERITIES)],
                  dict[Annotated[str, OneOf(TARGET_KEYS)],
                       Annotated[float, Seconds(high=86_400)]]] = Field(
        default={}, description=(
            "Response targets per severity for the people in the drill, overriding key by "
            "key: " + "; ".join(f"{sev} " + ", ".join(f"{k} {v:g}s" for k, v in keys.items())
                                for sev, keys in DRILL_TARGETS.items()) + "."))
    injects: list[InjectSpec] = Field(default=[], max_length=50, description=(
        "What happens to the responders, at a time or on an event."))
    hints: list[HintSpec] = Field(default=[], max_length=50, description=(
        "Help per stage, in order; taking one costs its points."))

    def target_for(self, severity: str) -> dict[str, float]:
        return DRILL_TARGETS.get(severity, {}) | self.targets.get(severity, {})

    @model_validator(mode="after")
    def _unique_names(self) -> DrillSpec:
        names = [i.name for i in self.injects]
        if len(names) != len(set(names)):
            raise ValueError("inject names must be unique")
        return self


# -- the drill clock ------------------------------------------------------------------------
def event_ns(event: Any) -> int:
    """An event's moment on its incident's monotonic clock (a row or a recorded event)."""
    return int(event["at_monotonic_ns"] if isinstance(event, Mapping) else event.at_monotonic_ns)


def _kind(event: Any) -> str:
    return str(event["kind"] if isinstance(event, Mapping) else event.kind)


def _data(event: Any) -> Mapping[str, Any]:
    data: Mapping[str, Any] = event["data"] if isinstance(event, Mapping) else event.data
    return data


@dataclass(frozen=True)
class Clock:
    """Drill time: seconds since the drill started (the fault), paused spans left out."""

    started_ns: int | None
    pauses: tuple[tuple[int, int | None], ...] = ()

    @classmethod
    def of(cls, timeline: Iterable[Any]) -> Clock:
        started: int | None = None
        open_at: int | None = None
        pauses: list[tuple[int, int | None]] = []
        for e in in_time_order(list(timeline)):
            kind = _kind(e)
            if kind == Kind.FAULT_INJECTED and started is None:
                started = event_ns(e)
            elif kind == Kind.DRILL_PAUSED and open_at is None:
                open_at = event_ns(e)
            elif kind == Kind.DRILL_RESUMED and open_at is not None:
                pauses.append((open_at, event_ns(e)))
                open_at = None
        if open_at is not None:
            pauses.append((open_at, None))
        return cls(started, tuple(pauses))

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    def at(self, ns: int) -> float | None:
        """Drill seconds at monotonic ``ns`` (None before the drill started)."""
        if self.started_ns is None or ns < self.started_ns:
            return None
        stopped = 0
        for begin, end in self.pauses:
            end = ns if end is None else min(end, ns)
            if end > begin and begin >= self.started_ns:
                stopped += end - max(begin, self.started_ns)
        return round((ns - self.started_ns - stopped) / 1e9, 3)

    def between(self, a: Any, b: Any) -> float | None:
        """Drill seconds from event ``a`` to event ``b``."""
        if a is None or b is None:
            return None
        start = self.at(max(event_ns(a), self.started_ns or event_ns(a)))
        end = self.at(event_ns(b))
        return None if start is None or end is None else round(end - start, 3)


def due_injects(spec: DrillSpec, timeline: Sequence[Any], now_ns: int) -> list[InjectSpec]:
    """The injects that should fire now and have not: their time has come on the drill
    clock, or their event happened. Nothing while the drill is paused."""
    clock = Clock.of(timeline)
    if clock.started_ns is None or clock.paused:
        return []
    fired = {_data(e).get("name") for e in timeline if _kind(e) == Kind.DRILL_INJECT}
    elapsed = clock.at(now_ns) or 0.0
    kinds = {_kind(e) for e in timeline if event_ns(e) >= clock.started_ns}
    since = _anchors(clock, timeline)

    def due(i: InjectSpec) -> bool:
        if i.when is not None:
            return i.when in kinds
        start = since.get(i.after) if i.after else 0.0
        return i.at is not None and start is not None and elapsed - start >= i.at

    return [i for i in spec.injects if i.name not in fired and due(i)]


def _anchors(clock: Clock, timeline: Sequence[Any]) -> dict[str, float | None]:
    """Drill seconds at the first moment of each event injects can count from."""
    found: dict[str, float | None] = {}
    for e in in_time_order(list(timeline)):
        kind = _kind(e)
        if kind in ANCHORS and kind not in found:
            found[kind] = clock.at(event_ns(e))
    return found
