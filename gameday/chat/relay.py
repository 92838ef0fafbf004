"""The relay between the store and the chat, inside ``gameday serve``: a room per
incident (game day, drill or real, labelled so nobody takes a rehearsal for an outage),
its people invited and paged there, its timeline posted as it happens, and what people
say in the room taken as commands (``commands``) or, opted in, as the scribe's notes.

Every replica of ``gameday serve`` may run one: the store decides who makes a room and
who posts which events (claims), and a message is acted on once. A chat that does not
answer is recorded on the incident (``chat.unavailable``), tried again, and never holds
up anything: incidents, game days and runs go on without it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gameday.chat import commands
from gameday.chat.base import Chat, ChatDown, Message
from gameday.chat.config import ChatConfig
from gameday.core import clock, events
from gameday.core.audit import Audit
from gameday.core.errors import GamedayError
from gameday.core.events import Kind
from gameday.core.sentences import describe
from gameday.core.states import INCIDENT_ENDED, KIND_LABELS, IncidentKind
from gameday.core.text import WHY, bad_text
from gameday.incidents import moves, storms
from gameday.incidents.incident import Incident, kind_of_row
from gameday.store import Event, Store

log = logging.getLogger(__name__)
LABELS = {kind: label.replace("real ", "").upper() for kind, label in KIND_LABELS.items()}
TICK_S = 0.5
RECENT_S = 3600.0  # an incident still open but older than this gets no room of its own
READ = 500  # events a turn reads at a time
STORM_EVERY_S = 60.0  # an alert storm still going is summed up in its room this often
HEEDED = (Kind.PAGE_SENT, Kind.ROLE_ASSIGNED)  # a room's people are invited on these


@dataclass
class _Storm:
    """Where a room stands in an alert storm, as its events are claimed in order: how
    many storm events in a row so far, and those past the first ``STORM_SHOWN``,
    tallied for one line (``storms.Tally``), with the first one's ``seq`` (said as
    itself should it stay alone) and when it came (epoch seconds). Kept with each
    claim (``chat_rooms.storm``), so whichever replica posts next, or this one after a
    restart, goes on where it stopped."""

    run: int = 0
    tally: storms.Tally | None = None
    first: int | None = None
    since: float = 0.0

    @classmethod
    def of(cls, text: str | None) -> _Storm:
        """The state kept as ``text``; a fresh one when there is none, or it cannot be
        read (written by another version: its fields it does not know are left out)."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            state = cls(run=data.get("run", 0), first=data.get("first"),
                        since=data.get("since", 0.0),
                        tally=storms.Tally.of(data["tally"]) if data.get("tally") else None)
            if not (isinstance(state.run, int) and isinstance(state.first, int | None)
                    and isinstance(state.since, int | float)):
                raise ValueError(f"not a storm state: {text[:100]}")
            return state
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            log.warning("chat: a room's storm state is unreadable (%s): counted afresh", exc)
            return cls()

    def text(self) -> str | None:
        if not self.run and self.first is None:
            return None
        return json.dumps({"run": self.run, "first": self.first, "since": self.since,
                           "tally": self.tally.as_dict() if self.tally else None})

    def hold(self, event: Event) -> None:
        if self.tally is None:
            self.tally, self.first, self.since = storms.Tally(), event.seq, clock.epoch()
        self.tally.add(event.kind, storms.word(event.kind, event.data))

    def said(self) -> None:
        self.tally, self.first, self.since = None, None, 0.0


@dataclass
class _Read:
    """Where a turn stands in a room: its claims reach ``seen`` with the storm state
    ``state`` (the text the store holds: the next claim compares both); the events
    read after ``seen`` and not said one by one (a storm's, or what the room does not
    hear), claimed together, up to the last of them."""

    seen: int
    state: str | None
    quiet: list[Event] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.quiet[-1].seq if self.quiet else self.seen


class Relay:
    def __init__(self, store: Store, chat: Chat, config: ChatConfig, *, owner: str,
                 base_url: str, room_kwargs: dict[str, Any] | None = None) -> None:
        """``room_kwargs``: how a command reaches runs in this server (``commands.Room``:
        ``start_run``, ``approve_run``, ``approval_ttl``, ``runbook_dir``)."""
        self.store, self.chat, self.config = store, chat, config
        # Slack's signing secret, read once: gameday serve then takes it out of the
        # environment its runbooks inherit (``cli.serve``)
        self.signing_secret = os.environ.get(config.signing_secret_env, "")
        self.owner, self.base_url = owner, base_url.rstrip("/")
        self.room_kwargs = room_kwargs or {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chat-relay", daemon=True)
        # events a move from chat made here: its reply said it; not posted again
        self._answered: set[tuple[int, int]] = set()

    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.chat.close()

    def _loop(self) -> None:
        """Rooms and posts, then what people said: each half on its own, so trouble
        with one (a room the chat refuses, a store that blinks) never stops the other,
        and nothing ends the relay."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("chat relay: rooms and posts")
                self._stop.wait(TICK_S)
            try:
                for message in self.chat.receive(TICK_S):
                    reply = self.handle(message)
                    if reply:
                        self._say(message.room, reply)
            except ChatDown as exc:
                log.warning("chat: %s", exc)
                self._stop.wait(TICK_S)
            except Exception:
                log.exception("chat relay: messages")
                self._stop.wait(TICK_S)

    def _say(self, room: str, text: str) -> None:
        try:
            self.chat.post(room, text)
        except ChatDown as exc:
            log.warning("chat: a reply was not posted: %s", exc)

    # -- rooms and the timeline ---------------------------------------------------------
    def tick(self) -> None:
        """Each incident that should have a room gets one; each room gets the events
        it has not had; a room whose incident is over says so and is closed. Real
        incidents first: a rehearsal's room never delays a real one's page."""
        since = (clock.now() - timedelta(seconds=RECENT_S)).isoformat(timespec="seconds")
        rows = [row for row in self.store.chat_incidents(since)
                if kind_of_row(row) in self.config.kinds]
        for row in sorted(rows, key=lambda r: kind_of_row(r) != IncidentKind.INCIDENT):
            try:
                self._turn(row)
            except ChatDown as exc:  # this room's trouble: the others go on
                log.warning("chat: incident %s: %s", row["id"], exc)

    def _turn(self, row: dict[str, Any]) -> None:
        room = self.store.chat_room(int(row["id"]))
        if room is not None and room["state"] == "opening" and row["state"] in INCIDENT_ENDED:
            self.store.close_chat_room(int(row["id"]))  # over before a room could be made
            return
        if room is None or room["state"] == "opening":
            room = self._open(row)
        if room is not None and room["state"] == "open":
            try:
                self._post_new(row, room)
            except ChatDown as exc:
                self._unavailable(row, room, exc)
                raise
            if room["error"]:  # lines went out again: the next outage is recorded too
                after = self.store.chat_room(int(row["id"]))
                if after is not None and after["last_seq"] != room["last_seq"]:
                    self.store.chat_room_failed(int(row["id"]), "")

    def _unavailable(self, row: dict[str, Any], room: dict[str, Any], exc: ChatDown) -> None:
        """The room's chat stopped taking its lines: on the incident's record once for
        the outage (the room keeps the error), as when the room could not be made; the
        lines are tried again next turn."""
        if room["error"]:
            return
        self.store.chat_room_failed(int(row["id"]), str(exc) or "no answer")
        Incident(self.store, int(row["id"])).record(
            events.chat_unavailable(self.config.kind, str(exc)), "chat")

    def _open(self, row: dict[str, Any]) -> dict[str, Any] | None:
        incident = Incident(self.store, int(row["id"]))
        if not self.store.claim_chat_room(incident.id, self.config.kind, self.owner):
            return None
        name = self.room_name(row)
        before = self.store.chat_room(incident.id)
        try:
            room = self.chat.open_room(name, self._topic(row), self._invited(incident))
        except ChatDown as exc:
            self.store.chat_room_failed(incident.id, str(exc))
            if before is None or not before["error"]:  # once an outage, not every try
                incident.record(events.chat_unavailable(self.config.kind, str(exc)), "chat")
            return None
        if not self.store.chat_room_made(incident.id, room, self.owner):
            self.chat.close_room(room, "[not used] " + name, "another gameday serve made "
                                 "this incident's room first: this one is not used")
            return None
        incident.record(events.chat_room_opened(self.config.kind, room, name), "chat")
        if before is not None and before["error"]:
            self._catch_up(incident, room)
        return self.store.chat_room(incident.id)

    def _catch_up(self, incident: Incident, room: str) -> None:
        """A room made late (the chat was down): where things stand and the pages
        nobody has answered yet, not the backlog line by line (the incident page has
        the story so far)."""
        row = incident.row  # what it says, not every event: a storm's are many
        timeline = [e for e in self.store.events(incident.id, kinds=[
            Kind.INCIDENT_ACKNOWLEDGED, Kind.ROLE_ASSIGNED, Kind.PAGE_SENT])
            if e.seq <= int(row["last_seq"])]  # what comes after is posted as it comes
        answered = {e.actor for e in timeline if e.kind != Kind.PAGE_SENT}
        self.store.advance_chat_room(incident.id, 0, int(row["last_seq"]), storm=None,
                                     was=None)
        self.chat.post(room, f"opened late ({self.config.kind} did not answer): "
                             f"#{row['id']} is {row['state']}, "
                             f"{row.get('severity') or 'no severity yet'}; the story so far "
                             f"is at {self.base_url}/incidents/{row['id']}")
        for page in (e for e in timeline if e.kind == Kind.PAGE_SENT
                     and e.data["person"] not in answered):
            self._post_event(incident, room, page, dict(row))

    def room_name(self, row: dict[str, Any]) -> str:
        label = LABELS.get(kind_of_row(row), "INCIDENT")
        return f"[{label}] {self.config.room_prefix} #{row['id']}: {row['title']}"[:200]

    def _topic(self, row: dict[str, Any]) -> str:
        rehearsal = kind_of_row(row) != IncidentKind.INCIDENT
        return ((f"A {LABELS[kind_of_row(row)].lower()}: a rehearsal, not a real incident. "
                 if rehearsal else "")
                + f"{self.base_url}/incidents/{row['id']} - commands: !gd help")

    def _invited(self, incident: Incident) -> list[str]:
        people = {p for r, p in incident.roles().items() if r in self.config.invite}
        people |= {e.data["person"] for e in self.store.events(incident.id,
                                                               kinds=[Kind.PAGE_SENT])
                   if e.data.get("role") in self.config.invite}
        return sorted({a["account"] for p in people for a in self.store.chat_accounts(p)})

    def _post_new(self, row: dict[str, Any], room: dict[str, Any]) -> None:
        """Each event not yet posted, in order: claimed (so one replica posts it),
        posted, or given back when the chat fails, to be tried again next turn. An
        alert storm's events past its first ``STORM_SHOWN`` are not posted one by one:
        they are claimed a range at a time and counted in one line once something the
        room hears comes between them, or every ``STORM_EVERY_S`` while the storm goes
        on (``incidents.storms``, as the incident page folds them); events the room does
        not hear are claimed the same way. The events are read a few hundred at a
        time; where the room stands in a storm is kept with each claim (``_Storm``)."""
        incident = Incident(self.store, int(row["id"]))
        where, storm = str(room["room"]), _Storm.of(room.get("storm"))
        read, anything = _Read(int(room["last_seq"]), room.get("storm")), False
        while True:
            new = self.store.events(incident.id, after_seq=read.last, limit=READ)
            anything = anything or bool(new)
            for event in new:
                heard, stormy = self._heard(incident, event), event.kind in storms.STORM
                if stormy and storm.run >= storms.STORM_SHOWN:
                    storm.run += 1
                    storm.hold(event)
                    self._answered.discard((incident.id, event.seq))  # counted, not said
                    read.quiet.append(event)
                    continue
                if not heard:  # what the room does not hear leaves a storm be
                    storm.run += 1 if stormy else 0
                    read.quiet.append(event)
                    continue
                if not self._claim(incident, read, storm):
                    return  # another replica is posting these
                if not stormy and storm.first is not None and \
                        not self._say_storm(incident, where, storm, row, read):
                    return  # a storm over: its line first
                seen, before = read.seen, read.state
                storm.run = storm.run + 1 if stormy else 0
                if not self._advance(incident, read, event.seq, storm):
                    return
                try:
                    self._post_event(incident, where, event, row)
                except ChatDown:
                    self.store.advance_chat_room(incident.id, event.seq, seen, storm=before,
                                                 was=read.state)
                    raise
            if not self._claim(incident, read, storm):
                return
            if len(new) < READ:
                break
        over = row["state"] in INCIDENT_ENDED
        if storm.first is not None and (over or clock.epoch() - storm.since >= STORM_EVERY_S) \
                and not self._say_storm(incident, where, storm, row, read):
            return
        if over and not anything and self.store.claim_chat_close(incident.id):
            try:
                for line in self._debrief(incident.id):
                    self.chat.post(where, line)
                self.chat.close_room(where, "[over] " + self.room_name(row),
                                     f"#{row['id']} is {row['state']}: this room stays as "
                                     "the record")
            finally:  # closed either way: a room someone archived is not retried forever
                self.store.close_chat_room(incident.id)

    def _heard(self, incident: Incident, event: Event) -> bool:
        """Whether the event is for this room one by one: posted, its person invited, or
        a chat move's own (its reply said it)."""
        return (event.kind in self.config.post or event.kind in HEEDED
                or (incident.id, event.seq) in self._answered)

    def _claim(self, incident: Incident, read: _Read, storm: _Storm) -> bool:
        """Claim the events read and not said one by one, with where the room then
        stands in a storm. False: another replica is posting them."""
        if not read.quiet:
            return True
        if not self._advance(incident, read, read.last, storm):
            return False
        read.quiet = []
        return True

    def _advance(self, incident: Incident, read: _Read, to: int, storm: _Storm) -> bool:
        """The room's claims from ``read.seen`` (and its storm state) to ``to`` with
        ``storm``: False when another replica moved either first."""
        state = storm.text()
        if not self.store.advance_chat_room(incident.id, read.seen, to, storm=state,
                                            was=read.state):
            return False
        read.seen, read.state = to, state
        return True

    def _say_storm(self, incident: Incident, where: str, storm: _Storm,
                   row: dict[str, Any], read: _Read) -> bool:
        """The storm's line (a storm one event longer than shown: that event), if the
        room hears any of its kinds: claimed as an event is (False: another replica
        says it), and given back should the chat fail, to be said next turn. Should
        this replica stop between saying it and the claim, it is not said again: the
        claim comes first."""
        tally, first, held = storm.tally, storm.first, read.state
        if tally is None or first is None:
            return True  # nothing held
        storm.said()
        if not self._advance(incident, read, read.seen, storm):
            return False
        try:
            if tally.total == 1:
                for event in self.store.events(incident.id, seqs=[first]):
                    self._post_event(incident, where, event, row)
            elif any(kind in self.config.post for kind in tally.counts):
                said, _ = tally.summary()
                self.chat.post(where, f"{storms.STORM_LINE}: {said} - the whole timeline: "
                                      f"{self.base_url}/incidents/{incident.id}")
        except ChatDown:
            self.store.advance_chat_room(incident.id, read.seen, read.seen, storm=held,
                                         was=read.state)
            raise
        return True

    def _debrief(self, incident_id: int) -> list[str]:
        """A drill's scorecards, as its debrief computes them from the timeline."""
        from gameday.core.settings import current
        from gameday.drills.master import Drill

        drill = self.store.drill_of(incident_id)
        if drill is None:
            return []
        try:
            cards = Drill.load(self.store, current(), int(drill["id"])).debrief()["scorecards"]
        except GamedayError as exc:  # its scenario moved since: the debrief page says so
            return [f"debrief: {exc}"]
        return ["debrief: " + "; ".join(
            f"{c['person']} {c['score']}"
            + (f" ({', '.join(d['why'] for d in c['deductions'][:3])})" if c["deductions"]
               else "") for c in cards)]

    def _post_event(self, incident: Incident, room: str, event: Event,
                    row: dict[str, Any]) -> None:
        if event.kind in (Kind.PAGE_SENT, Kind.ROLE_ASSIGNED) and \
                event.data.get("role") in self.config.invite:
            self._invite(room, str(event.data["person"]))  # paged, or given a role
        if (incident.id, event.seq) in self._answered:
            self._answered.discard((incident.id, event.seq))
            return
        if event.kind not in self.config.post or event.actor == "chat":
            return
        line = f"{event.kind}: {describe(event.kind, event.actor, event.data)}"
        if event.kind == Kind.PAGE_SENT:
            person = event.data["person"]
            accounts = [a["account"] for a in self.store.chat_accounts(person)]
            who = " ".join(accounts) or person
            what = (" (a rehearsal)" if kind_of_row(row) != IncidentKind.INCIDENT else "")
            line = (f"PAGE{what} {who}: you are paged as "
                    f"{str(event.data['role']).replace('_', ' ')} - answer with !gd ack")
        elif event.kind == Kind.ALERT_FIRED:
            route = moves.linked(incident)
            if route is not None and route.runbook is not None:
                line += (f" - runbook {route.runbook.name}: !gd run, or "
                         f"{self.base_url}{route.link(incident.id)}")
        self.chat.post(room, line)

    def _invite(self, room: str, person: str) -> None:
        accounts = [a["account"] for a in self.store.chat_accounts(person)]
        if accounts:
            self.chat.invite(room, accounts)

    # -- what people say ----------------------------------------------------------------
    def handle(self, message: Message) -> str | None:
        """A message from a room: a command (the move made, a line saying so), a note
        (opted in), or nothing. A command from an account no gameday person is linked
        to is refused and audited."""
        room = self.store.chat_room_by_id(message.room)
        if room is None:
            return None  # not an incident's room
        unreadable: GamedayError | None = None
        try:
            command = commands.parse(message.text)
        except GamedayError as exc:
            command, unreadable = None, exc  # answered once, by whoever claims it
        if command is None and unreadable is None and not self.config.notes:
            return None
        if any(bad_text(t) for t in (message.id, message.account)):
            return None  # no chat server sends these: nothing to claim or answer
        if not self.store.claim_chat_message(message.id, int(room["incident_id"])):
            return None  # another replica took it
        if unreadable is None and bad_text(message.text):  # as the web API refuses it
            unreadable = GamedayError(f"the message {WHY}: nothing was recorded")
        if unreadable is not None:
            return f"refused: {unreadable}"
        if room["state"] != "open":
            return (f"refused: incident {room['incident_id']} is over; this room is its "
                    "record" if command is not None else None)
        incident = Incident(self.store, int(room["incident_id"]),
                            listener=lambda e: self._answered.add((e.incident_id, e.seq)))
        person = self.store.chat_person(message.account)
        user = self.store.user(person) if person else None
        if person is None or user is None:
            if command is None:
                return None  # talk from someone gameday does not know: not a note
            self.store.audit(message.account, Audit.CHAT_REFUSED, {
                "incident_id": incident.id, "command": command.verb,
                "why": "no gameday person is linked to this chat account"})
            return (f"refused: {message.account} is not linked to a gameday person "
                    "(gameday user link PERSON --chat ACCOUNT)")
        talk = command is None  # a note: with the same rights as ``!gd note``
        if command is None:
            command = commands.Command("note", (), message.text.strip())
        with incident.said(message.at_epoch_ns):
            try:
                reply = commands.apply(command, commands.Room(
                    self.store, incident, person, str(user["role"]), **self.room_kwargs))
                return None if talk and reply == "noted" else reply
            except GamedayError as exc:
                if talk:
                    return None  # talk from someone who may not write notes: just talk
                self.store.audit(person, Audit.CHAT_REFUSED, {
                    "incident_id": incident.id, "command": command.verb,
                    "why": str(exc)[:300]})
                return f"refused: {exc}"
            except Exception:  # a fault of gameday's: said in the room, logged here
                log.exception("chat: %s from %s", message.text[:80], message.account)
                return "failed: gameday could not do that (its log says why)"
