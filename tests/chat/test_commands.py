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
