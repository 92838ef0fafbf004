"""A chat that does not answer never holds an incident up: the room it could not make
is on the record (``chat.unavailable``, which the review's timeline shows), the
incident goes on, and the room is made once the chat is back. Against a real Matrix
client and a port where nothing listens, then a real Synapse."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gameday.chat.config import ChatConfig
from gameday.chat.matrix import MatrixChat
from gameday.chat.relay import Relay
from gameday.incidents import moves
from gameday.incidents.incident import Incident
from gameday.store import Store
from gameday.targets.sandbox.supervisor import free_port

pytestmark = pytest.mark.slow


def test_a_homeserver_that_does_not_answer_is_recorded_and_tried_again(
        tmp_path: Path, synapse, monkeypatch):
    import gameday.store.chat as chat_store

    store = Store(tmp_path / "g.db")
    incident = Incident.open(store, "orders fail", service="orders")
    incident.declare("SEV-2", "alertmanager")
    incident.page("ana", "incident_commander", "OrdersFailing fired")
    dead = ChatConfig(kind="matrix", homeserver=f"http://127.0.0.1:{free_port()}",
                      user="@gameday:localhost")
    relay = Relay(store, MatrixChat(dead, "syt_not_a_real_token"), dead, owner="test",
                  base_url="http://127.0.0.1:8080")
    began = time.monotonic()
    relay.tick()
    assert time.monotonic() - began < 20  # a refused connection: no long wait
    (down,) = [e for e in incident.events() if e.kind == "chat.unavailable"]
    assert "127.0.0.1" in down.data["error"] and "syt_" not in down.data["error"]
    assert store.chat_room(incident.id)["state"] == "opening"
    moves.set_severity(incident, "SEV-1", "ana", "orders down")  # it goes on without it
    relay.chat.close()

    bot, password = synapse.register("gameday-down")
    up = ChatConfig(kind="matrix", homeserver=synapse.base_url, user=bot)
    back = Relay(store, MatrixChat(up, synapse.login("gameday-down", password)), up,
                 owner="test-2", base_url="http://127.0.0.1:8080")
    monkeypatch.setattr(chat_store, "CLAIM_TTL_S", 0.0)  # the failed claim ran out
    back.tick()
    room = store.chat_room(incident.id)
    assert room["state"] == "open" and room["room"].startswith("!")
    assert [e.kind for e in incident.events()].count("chat.room_opened") == 1
    # late: where it stands and the page nobody answered, not the backlog
    said = [m.text for m in back.chat.history(room["room"], 20)]
    assert said[0].startswith("opened late (matrix did not answer)") and "SEV-1" in said[0]
    assert [t for t in said if t.startswith("PAGE")] == [
        "PAGE ana: you are paged as incident commander - answer with !gd ack"]
    assert not any(t.startswith("incident.declared") for t in said)
    assert room["last_seq"] == incident.events()[-1].seq
    back.chat.close()
