"""The command language, read before anything moves: words with apostrophes are prose,
not open quotes; a run's approval stays in its own incident's room; four eyes as
``gameday serve --four-eyes`` says, the same rule as the one-click page."""

from __future__ import annotations

import pytest

from gameday.chat import commands
from gameday.core.errors import GamedayError, ValidationError
from gameday.incidents.incident import Incident
from gameday.runbooks.runbook import find
from gameday.runs import run as runs
from gameday.runs.run import approval_window
from gameday.store import Store


def test_prose_is_read_as_typed_and_arguments_as_words():
    note = commands.parse("!gd note don't restart the db yet")
    assert note is not None and note.rest == "don't restart the db yet"
    escalate = commands.parse("!gameday escalate can't reach the primary")
    assert escalate is not None and escalate.verb == "escalate"
    run = commands.parse('!gd run restart-replica service="checkout" --check')
    assert run is not None and run.args == ("restart-replica", "service=checkout", "--check")
    assert commands.parse("thanks all") is None
    assert commands.parse("!gd").verb == "help"            # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="no command 'reboot'"):
        commands.parse("!gd reboot everything")
    with pytest.raises(ValidationError, match="cannot read the arguments"):
        commands.parse("!gd run restart-replica service='checkout")


@pytest.mark.parametrize("destructive,check,four_eyes,waits", [
    (True, False, "destructive", True), (False, False, "destructive", False),
    (False, False, "all", True), (True, False, "off", False), (True, True, "all", False),
])
def test_four_eyes_is_one_rule(destructive, check, four_eyes, waits):
    assert (approval_window(destructive, check, four_eyes, 900.0) is not None) is waits


def test_a_run_is_approved_only_in_its_own_incidents_room(tmp_path):
    store = Store(tmp_path / "g.db")
    real = Incident.open(store, "orders fail", service="orders")
    drill = Incident.open(store, "Drill: orders fail", service="orders", kind="drill",
                          run_dir=str(tmp_path / "drill"))
    book = find("restart-replica")
    waiting = runs.ask_approval(store, book, {"service": "checkout"}, incident=real,
                                who="ana", check=False, within_s=600)
    approved: list[tuple[int, str]] = []
    room = commands.Room(store, drill, "ben", "commander",
                         approve_run=lambda run, who: approved.append((run, who)))
    with pytest.raises(GamedayError, match="not this incident's"):
        commands.apply(commands.Command("approve", (str(waiting),), str(waiting)), room)
    assert approved == []
    room.incident = real
    commands.apply(commands.Command("approve", (str(waiting),), str(waiting)), room)
    assert approved == [(waiting, "ben")]


@pytest.mark.parametrize("given", ["99999999999999999999999", "9223372036854775808", "١٢",
                                   "+3"])
def test_approve_takes_a_run_number_the_store_keeps_and_nothing_else(tmp_path, given):
    """A number past the store's 64 bits, digits of another script or a sign are not a
    run's number: refused naming ``approve`` before the store is asked."""
    store = Store(tmp_path / "g.db")
    real = Incident.open(store, "orders fail", service="orders")
    approved: list[tuple[int, str]] = []
    room = commands.Room(store, real, "ben", "commander",
                         approve_run=lambda run, who: approved.append((run, who)))
    with pytest.raises(ValidationError) as refused:
        commands.apply(commands.Command("approve", (given,), given), room)
    assert refused.value.field == "approve" and approved == []


@pytest.mark.parametrize("said", ["!gd note half \ud800 a surrogate", "!gd note a \x00 NUL",
                                  "checking the \ud83d deploy"])
def test_a_message_the_store_cannot_keep_is_refused_in_words(tmp_path, caplog, said):
    """Text a store cannot keep (a lone surrogate SQLite cannot encode, a NUL PostgreSQL
    refuses), as any Matrix client may send it: refused in the room, nothing recorded,
    no traceback in the log."""
    import hashlib
    import logging

    from gameday.chat.base import Message
    from gameday.chat.config import ChatConfig
    from gameday.chat.relay import Relay
    from gameday.chat.slack import SlackChat

    store = Store(tmp_path / "g.db")
    store.add_user("ana", "responder", hashlib.sha256(b"ana").hexdigest(), "test")
    store.link_chat_account("@ana:localhost", "ana")
    incident = Incident.open(store, "orders fail", service="orders")
    incident.declare("SEV-3", "alertmanager")
    assert store.claim_chat_room(incident.id, "matrix", "r1")
    assert store.chat_room_made(incident.id, "!room:localhost", "r1")
    config = ChatConfig(kind="matrix", homeserver="http://127.0.0.1:9",
                        user="@gameday:localhost", notes=True)
    relay = Relay(store, SlackChat("unused", "http://127.0.0.1:9/api/"), config,
                  owner="r1", base_url="http://gameday.test")
    before = [e.seq for e in incident.events()]
    with caplog.at_level(logging.WARNING):
        reply = relay.handle(Message("$1", "!room:localhost", "@ana:localhost", said, 0))
    assert reply is not None and reply.startswith("refused:")
    assert [e.seq for e in incident.events()] == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
