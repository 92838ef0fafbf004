"""Moves from chat: one command language for every chat (``!gd VERB ...`` in a Matrix
room, ``/gameday VERB ...`` in Slack), each verb the move ``gameday.incidents.moves``
(or a runbook run, a drill's hint) makes from the console or the CLI, with the same
rules: who may do what is the gameday person the chat account is linked to
(``gameday user link``), never a name typed in the message; a destructive run waits for
a second person's ``approve``; each move is dated by the message.

``parse`` reads a message (None: it is not a command); ``apply`` makes the move and
says, in a line for the room, what happened. Both raise ``ValidationError`` or
``GamedayError`` with words for the room (nothing changed).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gameday.core.errors import GamedayError, ValidationError
from gameday.core.policy import ROLES, may
from gameday.core.text import LARGEST
from gameday.incidents import moves
from gameday.incidents.incident import Incident
from gameday.runs.run import approval_window
from gameday.store import Store

PREFIXES = ("!gameday", "!gd", "/gameday")
HELP = {
    "ack": "ack: answer your page",
    "severity": "severity SEV-N REASON: judge the impact",
    "escalate": "escalate REASON: page the next level",
    "assign": "assign ROLE PERSON: give a role (hand over command)",
    "mitigated": "mitigated [HOW]: call the impact contained",
    "resolve": "resolve [HOW]: end the incident",
    "update": "update AUDIENCE [TEXT]: a status update (no text: the template)",
    "note": "note TEXT: the scribe's note",
    "run": "run [RUNBOOK] [KEY=VALUE ...] [--check]: the linked runbook, or another",
    "approve": "approve RUN: a second person lets a destructive run start",
    "hint": "hint [STAGE]: a drill's next hint (it costs points)",
    "status": "status: where the incident stands",
    "help": "help: these commands",
}
NEEDS = {"approve": "approve"}  # every other verb needs "run" (a responder)
WORDS = ("run", "assign", "approve", "hint")  # read as shell words; the rest as typed
RUN_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits, within the store's 64 bits (LARGEST)


@dataclass(frozen=True)
class Command:
    verb: str
    args: tuple[str, ...]
    rest: str  # everything after the verb, as typed (a reason, a note)


def parse(text: str) -> Command | None:
    """The command in a message, None when the message is not one (a note, talk)."""
    stripped = text.strip()
    first, _, rest = stripped.partition(" ")
    if first.lower() not in PREFIXES:
        return None
    verb, _, rest = rest.strip().partition(" ")
    verb = verb.lower() or "help"
    if verb not in HELP:
        raise ValidationError(f"no command {verb[:40]!r}; {first} help lists them",
                              field="command")
    if verb in WORDS:  # arguments, not prose: "don't" in a note is no open quote
        try:
            args = tuple(shlex.split(rest))
        except ValueError as exc:
            raise ValidationError(f"cannot read the arguments: {exc}", field=verb) from None
    else:
        args = tuple(rest.split())
    return Command(verb, args, rest.strip())


@dataclass
class Room:
    """Where a command is applied: the incident the room is for, the person the chat
    account is (and their access role), and how runs start in this server."""

    store: Store
    incident: Incident
    person: str
    role: str | None  # the person's access role (viewer, responder, commander, admin)
    start_run: Callable[..., int] | None = None      # Dispatcher.start
    approve_run: Callable[[int, str], None] | None = None  # Dispatcher.approve
    approval_ttl: float | None = None   # four eyes: how long a destructive run waits
    four_eyes: str = "destructive"      # which runs wait (gameday serve --four-eyes)
    runbook_dir: Any = None


def apply(command: Command, room: Room) -> str:
    """Make the move; the line that tells the room what happened."""
    need = NEEDS.get(command.verb, "run")
    if command.verb not in ("help", "status") and not may(room.role, need):
        raise GamedayError(f"{room.person} may not {command.verb} here "
                           f"(their role: {room.role or 'none'})")
    return VERBS[command.verb](command, room)


def _ack(c: Command, room: Room) -> str:
    moves.acknowledge(room.incident, room.person, via="chat")
    return f"{room.person} acknowledged"


def _severity(c: Command, room: Room) -> str:
    if not c.args:
        raise ValidationError("give a severity and why: severity SEV-2 REASON",
                              field="severity")
    reason = c.rest[len(c.args[0]):].strip()
    moves.set_severity(room.incident, c.args[0].upper(), room.person, reason)
    return f"{room.person} set the severity to {c.args[0].upper()}: {reason}"


def _escalate(c: Command, room: Room) -> str:
    moves.escalate(room.incident, room.person, c.rest)
    return f"{room.person} escalated: {c.rest}"


def _assign(c: Command, room: Room) -> str:
    if len(c.args) != 2:
        raise ValidationError(f"assign ROLE PERSON (roles: {', '.join(ROLES)})",
                              field="assign")
    moves.assign(room.incident, c.args[0], c.args[1], room.person)
    return f"{c.args[1]} is {c.args[0].replace('_', ' ')} (by {room.person})"


def _mitigated(c: Command, room: Room) -> str:
    moves.declare_mitigated(room.incident, room.person, c.rest)
    return f"{room.person} declared it mitigated"


def _resolve(c: Command, room: Room) -> str:
    moves.resolve(room.incident, room.person, c.rest)
    return f"{room.person} resolved it"


def _update(c: Command, room: Room) -> str:
    if not c.args:
        raise ValidationError("update AUDIENCE [TEXT] (internal, executive, customer)",
                              field="update")
    body = c.rest[len(c.args[0]):].strip() or None
    _, missing = moves.post_update(room.incident, c.args[0], room.person, body)
    said = f"{room.person} posted the {c.args[0]} update"
    return said + (f"; it does not say: {', '.join(missing)}" if missing else "")


def _note(c: Command, room: Room) -> str:
    _, warnings = moves.add_note(room.incident, room.person, c.rest)
    return "noted" + "".join(f"; blameless? \"{w['phrase']}\" puts it on a person"
                             for w in warnings)


def _run(c: Command, room: Room) -> str:
    from gameday.runbooks.runbook import find, validate_params

    if room.start_run is None:
        raise GamedayError("runbooks run from the chat of gameday serve")
    named = [a for a in c.args if "=" not in a and not a.startswith("--")]
    given = dict(a.split("=", 1) for a in c.args if "=" in a and not a.startswith("--"))
    check = "--check" in c.args
    unknown = [a for a in c.args if a.startswith("--") and a != "--check"]
    if unknown or len(named) > 1:
        raise ValidationError("run [RUNBOOK] [KEY=VALUE ...] [--check]", field="run")
    linked = moves.linked(room.incident)
    if named:
        book = find(named[0], room.runbook_dir)
        params = dict(linked.params or {}) if linked and linked.runbook and \
            linked.runbook.name == book.name else {}
    elif linked is not None and linked.runbook is not None:
        book, params = linked.runbook, dict(linked.params or {})
    else:
        raise GamedayError("the alert links no runbook: name one (run RUNBOOK KEY=VALUE)")
    params = validate_params(book, {**{k: str(v) for k, v in params.items()}, **given})
    harmless = book.changes_nothing(check)  # a dry run that acts is gated as a real one
    if book.destructive and not harmless and not may(room.role, "run_destructive"):
        raise GamedayError(f"{room.person} may not ask for destructive runs")
    within = approval_window(book.destructive, harmless, room.four_eyes, room.approval_ttl)
    run_id = room.start_run(book, params, room.incident.id, room.person, check=check,
                            approve_within=within)
    if within is not None:
        return (f"run {run_id} of {book.name} waits for a second person: "
                f"!gd approve {run_id}")
    return f"run {run_id}: {book.name} {'(check mode) ' if check else ''}started"


def _approve(c: Command, room: Room) -> str:
    if len(c.args) != 1 or not RUN_ID.fullmatch(c.args[0]) or int(c.args[0]) > LARGEST:
        raise ValidationError("approve RUN (the run's number)", field="approve")
    if room.approve_run is None:
        raise GamedayError("runs are approved from the chat of gameday serve")
    run = room.store.run(int(c.args[0]))
    if run["incident_id"] != room.incident.id:
        raise GamedayError(f"run {c.args[0]} is not this incident's: approve it in its own "
                           "room, or on its page")
    from gameday.people.auth import Forbidden

    try:
        room.approve_run(int(c.args[0]), room.person)
    except Forbidden as exc:  # their own request: four eyes are two people
        raise GamedayError(str(exc)) from None
    return f"{room.person} approved run {c.args[0]}: it starts"


def _hint(c: Command, room: Room) -> str:
    from gameday.core.settings import current
    from gameday.drills.master import Drill

    drill = room.store.drill_of(room.incident.id)
    if drill is None:
        raise GamedayError("hints are for drills")
    given = Drill.load(room.store, current(), int(drill["id"])).hint(
        room.person, c.args[0] if c.args else None)
    return f"hint ({given['stage']}, costs {given['cost']}): {given['text']}"


def _status(c: Command, room: Room) -> str:
    row = room.incident.row
    roles = ", ".join(f"{r.replace('_', ' ')} {p}" for r, p in room.incident.roles().items())
    severity = row.get("severity") or "no severity yet"
    return (f"#{row['id']} {row['title']}: {row['state']}, {severity}; "
            f"{roles or 'nobody holds a role yet'}")


def _help(c: Command, room: Room) -> str:
    return "commands: " + "; ".join(HELP.values())


VERBS: dict[str, Callable[[Command, Room], str]] = {
    "ack": _ack, "severity": _severity, "escalate": _escalate, "assign": _assign,
    "mitigated": _mitigated, "resolve": _resolve, "update": _update, "note": _note,
    "run": _run, "approve": _approve, "hint": _hint, "status": _status, "help": _help}
