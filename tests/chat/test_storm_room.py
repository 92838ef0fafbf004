"""An alert storm in its incident's room: the first alerts, then one line that counts
the rest, as the incident page folds them; not a message an alert, which would bury
the page to the on-call under thousands and take the chat's rate limit for hours.
Against a real Synapse."""

from __future__ import annotations

from pathlib import Path

import pytest
from chatserver import needs_synapse

from gameday.chat import relay as relay_module
from gameday.chat.config import ChatConfig
from gameday.chat.matrix import MatrixChat
from gameday.chat.relay import Relay
from gameday.core import events
from gameday.incidents.incident import Incident
from gameday.store import Store

pytestmark = [needs_synapse, pytest.mark.slow]


def test_a_storm_is_a_few_lines_in_its_room_and_its_claims_are_ranges(
        tmp_path: Path, synapse, monkeypatch):
    store = Store(tmp_path / "g.db")
    incident = Incident.open(store, "checkout storm", service="checkout")
    incident.declare("SEV-2", "alertmanager")
    bot, password = synapse.register("gameday-storm")
    config = ChatConfig(kind="matrix", homeserver=synapse.base_url, user=bot)
    relay = Relay(store, MatrixChat(config, synapse.login("gameday-storm", password)),
                  config, owner="test", base_url="http://127.0.0.1:8080")
    monkeypatch.setattr(relay_module, "READ", 50)  # the storm is read a page at a time
    claims = []
    advance = store.advance_chat_room
    monkeypatch.setattr(store, "advance_chat_room",
                        lambda *args: claims.append(args) or advance(*args))
    n = iter(range(10_000))

    def storm(instances: int, run_id: int = 7) -> None:
        for _ in range(instances):  # as the intake records them: fired, then joined
            fingerprint = f"f{next(n)}"
            incident.record(events.alert_fired("CheckoutDown", {"alertname": "CheckoutDown"},
                                               {}, starts_at="2026-11-23T10:00:00Z",
                                               fingerprint=fingerprint), "alertmanager")
            incident.record(events.runbook_coalesced(
                "restart-it", run_id, "CheckoutDown", fingerprint=fingerprint,
                because=f"run {run_id} is running"), "gameday")

    try:
        relay.tick()  # the room, and the declaration in it
        room = store.chat_room(incident.id)["room"]
        claims.clear()
        storm(300)
        incident.record(events.note_added("the storm is over"), "ana")
        relay.tick()
        said = [m.text for m in relay.chat.history(room, 20)]
        assert [t.split(":")[0] for t in said] == [
            "incident.declared", "alert.fired", "alert.fired", "alert storm", "note.added"]
        assert said[3] == ("alert storm: 298 more alert instances fired (CheckoutDown); 298 "
                           "joined run 7 instead of starting it again - the whole timeline: "
                           f"http://127.0.0.1:8080/incidents/{incident.id}")
        assert store.chat_room(incident.id)["last_seq"] == incident.events()[-1].seq
        assert len(claims) < 30, "a storm's events are claimed a range at a time"

        # a storm that goes on is summed up as it goes (every STORM_EVERY_S), and what
        # the room does not hear (a runbook's tasks) does not break it up
        monkeypatch.setattr(relay_module, "STORM_EVERY_S", 0.0)
        storm(10, run_id=8)
        incident.record(events.runbook_task("restart-it", "Restart", "ok"), "gameday")
        storm(10, run_id=8)
        relay.tick()
        said = [m.text for m in relay.chat.history(room, 20)][5:]
        assert [t.split(":")[0] for t in said] == ["alert.fired", "alert.fired",
                                                   "alert storm"]
        assert said[2].startswith("alert storm: 18 more alert instances fired (CheckoutDown); "
                                  "18 joined run 8 instead of starting it again")
        storm(1, run_id=8)  # still going: the next line counts only what came since
        relay.tick()
        said = [m.text for m in relay.chat.history(room, 20)][8:]
        assert [t.split(":")[0] for t in said] == ["alert storm"]
        assert said[0].startswith("alert storm: 1 more alert instances fired (CheckoutDown); "
                                  "1 joined run 8")
        assert store.chat_room(incident.id)["last_seq"] == incident.events()[-1].seq
    finally:
        relay.chat.close()
        store.close()
