"""An alert storm in its incident's room: the first alerts, then one line that counts
the rest, as the incident page folds them; not a message an alert, which would bury
the page to the on-call under thousands and take the chat's rate limit for hours.
Against a real Synapse."""

from __future__ import annotations

from pathlib import Path

import pytest
from chatserver import needs_synapse

from gameday.chat import relay as relay_module
from gameday.chat.base import ChatDown
from gameday.chat.config import ChatConfig
from gameday.chat.matrix import MatrixChat
from gameday.chat.relay import Relay
from gameday.core import events
from gameday.incidents.incident import Incident
from gameday.store import Store

BASE = "http://127.0.0.1:8080"


def relay_for(store: Store, synapse, bot: tuple[str, str, str], replica: str) -> Relay:
    """A relay (a replica of gameday serve) signed in as the project's bot (``bot``:
    its name, id and password) with a session of its own."""
    name, user, password = bot
    config = ChatConfig(kind="matrix", homeserver=synapse.base_url, user=user)
    return Relay(store, MatrixChat(config, synapse.login(name, password)), config,
                 owner=replica, base_url=BASE)


class Storm:
    """An alert storm on one incident, as the intake records it: each instance fired,
    then joined the run already going."""

    def __init__(self, incident: Incident) -> None:
        self.incident, self.n = incident, 0

    def __call__(self, instances: int, run_id: int = 7) -> None:
        for _ in range(instances):
            self.n += 1
            fingerprint = f"f{self.n}"
            self.incident.record(events.alert_fired(
                "CheckoutDown", {"alertname": "CheckoutDown"}, {},
                starts_at="2026-11-23T10:00:00Z", fingerprint=fingerprint), "alertmanager")
            self.incident.record(events.runbook_coalesced(
                "restart-it", run_id, "CheckoutDown", fingerprint=fingerprint,
                because=f"run {run_id} is running"), "gameday")


def said(relay: Relay, room: str, since: int = 0) -> list[str]:
    return [m.text for m in relay.chat.history(room, 30)][since:]


@needs_synapse
@pytest.mark.slow
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
                        lambda *args, **kw: claims.append(args) or advance(*args, **kw))
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


@needs_synapse
@pytest.mark.slow
def test_a_storm_is_counted_whole_across_an_outage_a_restart_and_two_replicas(
        tmp_path: Path, synapse, monkeypatch):
    """Where a room stands in a storm is kept with each claim: a chat that fails while
    the first alerts are posted still gets them one by one; a replica that restarts,
    or another that takes its turn, counts what the first held."""
    store = Store(tmp_path / "g.db")
    incident = Incident.open(store, "checkout storm", service="checkout")
    incident.declare("SEV-2", "alertmanager")
    storm = Storm(incident)
    bot = ("gameday-storms", *synapse.register("gameday-storms"))
    first, second = relay_for(store, synapse, bot, "a"), relay_for(store, synapse, bot, "b")
    try:
        first.tick()
        room = store.chat_room(incident.id)["room"]
        storm(3)
        post = first.chat.post

        def down(room: str, text: str) -> None:
            raise ChatDown("the homeserver is away")

        monkeypatch.setattr(first.chat, "post", down)
        for _ in range(4):  # four turns while the chat is down: nothing counted twice
            first.tick()
        monkeypatch.setattr(first.chat, "post", post)
        first.tick()
        # the storm's first four events: two instances fired, each joined the run
        assert [t.split(":")[0] for t in said(first, room)] == [
            "incident.declared", "alert.fired", "alert.fired"]

        storm(10)  # held by the first replica, which then stops
        first.tick()
        first.chat.close()
        restarted = relay_for(store, synapse, bot, "a")
        storm(5)
        restarted.tick()  # the first replica's turn again, as a new process
        storm(5)
        second.tick()  # and another replica's
        incident.record(events.note_added("the storm is over"), "ana")
        first = restarted
        second.tick()
        lines = said(second, room, 3)
        assert [t.split(":")[0] for t in lines] == ["alert storm", "note.added"]
        # the third instance, held while the chat was down, and the 20 after it
        assert lines[0].startswith("alert storm: 21 more alert instances fired (CheckoutDown);"
                                   " 21 joined run 7 instead of starting it again")
        assert store.chat_room(incident.id)["last_seq"] == incident.events()[-1].seq
    finally:
        first.chat.close()
        second.chat.close()
        store.close()


def test_a_rooms_claims_compare_where_it_stands_in_a_storm_too(any_store):
    """``advance_chat_room`` moves ``last_seq`` and the storm state together, only from
    what the claimant read of both: a replica that read the state before another said
    the storm's line cannot say it again, nor count its events twice."""
    incident = Incident.open(any_store, "checkout storm", service="checkout")
    assert any_store.claim_chat_room(incident.id, "matrix", "a")
    assert any_store.chat_room_made(incident.id, "!room", "a")
    held = '{"run": 9, "first": 5}'
    assert any_store.advance_chat_room(incident.id, 0, 10, storm=held, was=None)
    assert any_store.advance_chat_room(incident.id, 10, 10, storm=None, was=held)  # said
    # another replica read (10, held) before the line was said: both of its moves fail
    assert not any_store.advance_chat_room(incident.id, 10, 10, storm=None, was=held)
    assert not any_store.advance_chat_room(incident.id, 10, 12, storm=held, was=held)
    room = any_store.chat_room(incident.id)
    assert (room["last_seq"], room["storm"]) == (10, None)
    assert any_store.advance_chat_room(incident.id, 10, 12, storm='{"run": 11}', was=None)


def test_a_storm_state_from_another_version_is_read_or_counted_afresh():
    from gameday.chat.relay import _Storm

    assert _Storm.of('{"run": 7, "first": 3, "since": 1.5, "later": true}').run == 7
    for unreadable in ("not json", "[1, 2]", '{"run": "x"}', '{"counts": 5}', "null"):
        assert _Storm.of(unreadable) == _Storm(), unreadable
