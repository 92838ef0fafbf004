"""``!gd run RUNBOOK --check`` in an incident's room: a dry run that acts for real (a
task with ``check_mode: false``) is gated as a run for real is, as on the one-click
page: a responder may not ask for it when the runbook is destructive, and it waits for
a second person."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gameday.chat import commands
from gameday.core.errors import GamedayError
from gameday.incidents.incident import Incident
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
LOOK = """\
    - name: Look
      ansible.builtin.command:
        argv: [kubectl, get, pods]
      check_mode: false
      changed_when: false
"""


@pytest.fixture
def room(tmp_path: Path):
    """A real incident's room, with copies of the built-in runbooks and a ``wet``
    drain-replica whose first task runs for real in check mode; the runs it asks for."""
    books = tmp_path / "runbooks"
    shutil.copytree(ROOT / "gameday" / "targets" / "sandbox" / "runbooks", books)
    drain = (books / "drain-replica.yml").read_text()
    (books / "wet.yml").write_text(drain.replace("  tasks:\n", "  tasks:\n" + LOOK, 1))
    store = Store(tmp_path / "g.db")
    asked: list[float | None] = []

    def start_run(book, params, incident_id, who, *, check, approve_within):
        asked.append(approve_within)
        return len(asked)

    def made(role: str) -> commands.Room:
        return commands.Room(store, Incident.open(store, "payments slow", service="payments"),
                             "ana", role, start_run=start_run, approval_ttl=900.0,
                             runbook_dir=books)
    return made, asked


def run(room: commands.Room, line: str) -> str:
    command = commands.parse(line)
    assert command is not None
    return commands.apply(command, room)


def test_a_dry_run_that_acts_is_gated_as_a_real_one(room):
    made, asked = room
    args = "service=payments replica=2 --check"
    assert "(check mode) started" in run(made("responder"), f"!gd run drain-replica {args}")
    with pytest.raises(GamedayError, match="may not ask for destructive runs"):
        run(made("responder"), f"!gd run wet {args}")
    said = run(made("commander"), f"!gd run wet {args}")
    assert "waits for a second person" in said
    assert asked == [None, 900.0]
