"""The incident: a state machine over an append-only timeline, its roles, and the
moves people make in it (declare, page, acknowledge, assign, change severity,
resolve). Who gets paged and what counts as serious is ``policy``'s; what each event
carries is ``events``'.

States: ``pending → declared → acknowledged → mitigated → resolved → reviewed``, plus
``cancelled``. Every change is an event in the store; the incident row's ``state``
and ``severity`` are projections of those events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from gameday.core import events
from gameday.core.errors import GamedayError
from gameday.core.events import Entry, Kind
from gameday.core.policy import ROLES
from gameday.core.states import INCIDENT_ENDED, IncidentKind, IncidentState
from gameday.store import Event, Store
from gameday.store.rows import IncidentRow

S = IncidentState
TRANSITIONS: dict[str, set[IncidentState]] = {
    S.PENDING: {S.DECLARED, S.CANCELLED, S.ABORTED},
    S.DECLARED: {S.ACKNOWLEDGED, S.MITIGATED, S.RESOLVED, S.CANCELLED, S.ABORTED},
    S.ACKNOWLEDGED: {S.MITIGATED, S.RESOLVED, S.CANCELLED, S.ABORTED},
    S.MITIGATED: {S.RESOLVED, S.ABORTED},
    S.RESOLVED: {S.REVIEWED},
    S.REVIEWED: set(),
    S.CANCELLED: set(),
    S.ABORTED: set(),  # the game day was interrupted or crashed before it could end
}
TERMINAL_STATES = tuple(s for s in IncidentState if s in INCIDENT_ENDED)
# What an incident is (``incidents.kind``): a real one (opened by an alert, or by hand),
# or a rehearsal, a game day or a training drill. Every page says which, in these words.
INCIDENT, GAMEDAY, DRILL = IncidentKind.INCIDENT, IncidentKind.GAMEDAY, IncidentKind.DRILL
KINDS = (GAMEDAY, DRILL, INCIDENT)


def real_incident_open(store: Store, service: str) -> str | None:
    """Why no game day may start on ``service`` now: a real incident (opened by an
    alert) still open for it; None when there is none. A rehearsal never adds a fault to
    a service people are fighting for real (schedules and game days on a team's own
    systems ask this before they start)."""
    real = store.open_alert_incidents(service)
    if not real:
        return None
    first = real[0]
    return f"a real incident is open for {service}: #{first['id']} {first['title']!r} " \
           f"({first['state']})"

STATE_OF_EVENT = {
    Kind.INCIDENT_DECLARED: S.DECLARED,
    Kind.INCIDENT_ACKNOWLEDGED: S.ACKNOWLEDGED,
    Kind.MITIGATED: S.MITIGATED,
    Kind.INCIDENT_RESOLVED: S.RESOLVED,
    Kind.INCIDENT_REVIEWED: S.REVIEWED,
    Kind.INCIDENT_CANCELLED: S.CANCELLED,
    Kind.INCIDENT_ABORTED: S.ABORTED,
}


def beside_rehearsals(store: Store, incident: Incident, alert: str
                      ) -> list[tuple[Incident, Entry]]:
    """What ties a new real ``incident`` to the game days and drills at work on its
    service on the team's own systems, each side on its own timeline: on the real one,
    that its alert may be the rehearsal's (its response goes on as for any real alert:
    nothing is held back for it); on the rehearsal, the real incident beside it."""
    row = incident.row
    service = row.get("service")
    if not service:
        return []
    out = []
    for r in store.live_rehearsals(service):
        out.append((incident, events.rehearsal_live(r["id"], kind_of_row(r), r["scenario"],
                                                    service, str(r.get("target")))))
        out.append((Incident(store, r["id"]),
                    events.real_incident_beside(incident.id, alert, service)))
    return out


def kind_of_row(row: Mapping[str, Any]) -> str:
    """An incident row's kind; one from before the column was kept is a game day when
    it has a scenario (as ``store.incidents.kind_sql`` reads it)."""
    return str(row.get("kind") or (GAMEDAY if row.get("scenario") else INCIDENT))


class InvalidTransition(GamedayError):
    pass


# -- the incident --------------------------------------------------------------------
class Incident:
    def __init__(self, store: Store, incident_id: int,
                 listener: Callable[[Event], None] | None = None):
        self.store = store
        self.id = incident_id
        self.listener = listener
        self.said_at: int | None = None  # ``said``: the moves' own moment, epoch ns

    @classmethod
    def open(cls, store: Store, title: str, **fields: Any) -> Incident:
        return cls(store, store.create_incident(title, **fields))

    @property
    def row(self) -> IncidentRow:
        return self.store.incident(self.id)

    @property
    def state(self) -> str:
        return str(self.row["state"])

    @property
    def severity(self) -> str | None:
        severity: str | None = self.row["severity"]
        return severity

    def events(self) -> list[Event]:
        return self.store.events(self.id)

    def timeline(self) -> list[dict[str, Any]]:
        """The events in time order (ties broken by sequence)."""
        return events.in_time_order(self.events())

    def roles(self) -> dict[str, str]:
        return held_roles(self.store.events(self.id, kinds=[Kind.ROLE_ASSIGNED]))

    @contextmanager
    def said(self, at_epoch_ns: int | None) -> Iterator[None]:
        """Moves recorded in the block are dated when the person made them (a chat
        message's time on its server), not when they reached the store: a response time
        measured from chat is the person's, not the relay's."""
        self.said_at = at_epoch_ns
        try:
            yield
        finally:
            self.said_at = None

    def record(self, entry: Entry, actor: str, *, at_ns: int | None = None,
               at_utc: str | None = None, once: str | None = None,
               measured: bool = False) -> Event:
        """Append an event; state-changing kinds must be valid transitions, judged on
        the state the incident has when the event is written (two replicas resolving at
        once: one wins). ``once``: a field of the payload no other event of this kind
        may share (an inject fires once, whoever fires it). ``measured``: a measurement
        (the detector's ``mitigated``): should the state no longer take it (people
        resolved the incident first), it goes on the record as it is, the state left
        where it stands."""
        try:
            return self._record(entry, actor, at_ns=at_ns, at_utc=at_utc, once=once,
                                moves=True)
        except InvalidTransition:
            if not measured:
                raise
        return self._record(entry, actor, at_ns=at_ns, at_utc=at_utc, once=once, moves=False)

    def _record(self, entry: Entry, actor: str, *, at_ns: int | None, at_utc: str | None,
                once: str | None, moves: bool) -> Event:
        target = STATE_OF_EVENT.get(entry.kind) if moves else None
        updates: dict[str, Any] = {}
        check = None
        if target:
            def check(state: str) -> None:
                if target not in TRANSITIONS[state]:
                    raise InvalidTransition(
                        f"incident {self.id} is {state}; it cannot become {target}")

            updates["state"] = target
        if entry.kind in (Kind.INCIDENT_DECLARED, Kind.SEVERITY_CHANGED):
            updates["severity"] = entry.data["severity"]
        said = self.said_at if at_ns is None and at_utc is None else None
        event = self.store.append(self.id, entry.kind, actor, entry.data, at_monotonic_ns=at_ns,
                                  at_utc=at_utc, incident_updates=updates, state_check=check,
                                  once=(once, entry.data[once]) if once else None,
                                  at_epoch_ns=said)
        if self.listener:
            self.listener(event)
        return event

    def declare(self, severity: str, actor: str, alert: str = "", **data: Any) -> Event:
        return self.record(events.incident_declared(severity, alert, **data), actor)

    def acknowledge(self, actor: str, via: str = "pager") -> Event:
        return self.record(events.incident_acknowledged(via), actor)

    def assign(self, role: str, person: str, actor: str, **data: Any) -> Event:
        if role not in ROLES:
            raise GamedayError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        return self.record(events.role_assigned(role, person, **data), actor)

    def hand_over(self, role: str, person: str, actor: str, **data: Any) -> list[Event]:
        """Give ``role`` to ``person``. Handing over command keeps the previous incident
        commander as deputy, so nobody loses track of who knows the story (the one
        home of that rule: moves and answered pages both come here)."""
        previous = self.roles().get(role)
        done = [self.assign(role, person, actor, **data)]
        if role == "incident_commander" and previous and previous != person:
            done.append(self.assign("deputy", previous, actor, reason="handoff"))
        return done

    def page(self, person: str, role: str, reason: str, actor: str = "gameday") -> Event:
        return self.record(events.page_sent(person, role, reason), actor)

    def change_severity(self, severity: str, actor: str, reason: str,
                        measured_severity: str | None = None) -> Event:
        return self.record(events.severity_changed(severity, self.severity, reason,
                                                   measured_severity=measured_severity), actor)

    def engage(self, person: str, via: str = "pager") -> list[Event]:
        """``person`` answers their pages: the first answer acknowledges the incident,
        and each role they were paged for becomes theirs. A dedicated IC taking over
        leaves the previous IC as deputy."""
        done: list[Event] = []
        pages = [e for e in self.store.events(self.id, kinds=[Kind.PAGE_SENT])
                 if e.data["person"] == person]
        if not pages:
            raise GamedayError(f"{person} was not paged for incident {self.id}")
        if self.state == IncidentState.DECLARED:
            done.append(self.acknowledge(person, via=via))
        held = self.roles()
        for page in pages:
            role = page.data["role"]
            if held.get(role) == person:
                continue
            done += self.hand_over(role, person, person, via=via, paged_seq=page.seq)
            held = self.roles()
        return done

    def resolve(self, actor: str, how: str = "") -> Event:
        return self.record(events.incident_resolved(how), actor)

    def cancel(self, reason: str, actor: str = "gameday") -> Event:
        return self.record(events.incident_cancelled(reason), actor)

    def abort(self, reason: str, actor: str = "gameday") -> Event:
        return self.record(events.incident_aborted(reason), actor)

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL_STATES

    def unless_ended(self, move: Callable[[], object]) -> bool:
        """Make one of the game day's own state-changing moves (engage, resolve, cancel,
        abort) unless the incident has ended by then; whether it made it. People may end
        it at any moment, and a move refused under the incident's lock because theirs
        came first is no error: the incident is where it should be."""
        if self.ended:
            return False
        try:
            move()
        except InvalidTransition:
            if not self.ended:
                raise
            return False
        return True

    def end_unfinished(self, reason: str, actor: str = "gameday") -> Event | None:
        """A game day that cannot finish its incident ends it: cancelled if nothing was
        mitigated yet, else aborted. Nothing if it had already ended."""
        state = self.state
        if state in TERMINAL_STATES:
            return None
        if IncidentState.CANCELLED in TRANSITIONS[state]:
            return self.cancel(reason, actor)
        return self.abort(reason, actor)

    def events_page(self, after_seq: int, limit: int,
                    kinds: Sequence[str] | None = None) -> dict[str, Any]:
        """Up to ``limit`` of the incident's events numbered after ``after_seq`` (of
        ``kinds``, when given), for a script that follows the incident or reads a
        storm's timeline a page at a time: ``last_seq`` is where the next page starts,
        ``more`` says whether it is there already. In recording order, not time order:
        an event can be recorded after one that happened later, and a reader paging by
        time would skip it. NotFound for an incident that is not there."""
        self.row  # noqa: B018 (NotFound first: an unknown incident is not an empty one)
        read = self.store.events(self.id, after_seq=after_seq, kinds=kinds, limit=limit + 1)
        page = read[:limit]
        return {"incident_id": self.id, "after": after_seq,
                "events": [e.as_dict() for e in page],
                "last_seq": page[-1].seq if page else after_seq, "more": len(read) > limit}

    def as_dict(self) -> dict[str, Any]:
        """The incident, its roles and its timeline in time order: what ``gameday
        incident show --json`` prints and ``/api/v1/incidents/ID`` returns."""
        row, timeline = self.row, self.events()  # read once: a storm's are many
        return {**row, "roles": held_roles(timeline),
                "timeline": events.in_time_order(timeline)}


def held_roles(timeline: list[Event]) -> dict[str, str]:
    """Who holds each role after ``timeline``: the last assignment wins."""
    held: dict[str, str] = {}
    for e in timeline:
        if e.kind == Kind.ROLE_ASSIGNED:
            held[e.data["role"]] = e.data["person"]
    return held
