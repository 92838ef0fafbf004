"""A game day played from chat only, on a real Synapse with real Matrix clients: its
room opens labelled as a rehearsal, the incident commander and the responder are paged
there, answer, judge the severity, run the linked runbook and resolve, all by message;
the timings are measured from the messages' own times; the review lists what was said.
An account no gameday person is linked to is refused and audited; a destructive run
asked in the room waits for a second person's approval there."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.incidents.incident import Incident
from gameday.store import Store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "chat-serve-token-0123456789abcdef"


class Person:
    """Someone in chat: a real matrix-nio client of their own account."""

    def __init__(self, base: str, user_id: str, token: str) -> None:
        from chatserver import client_config
        from nio import AsyncClient

        self.id = user_id
        self.client = AsyncClient(base, user_id, config=client_config())
        self.client.restore_login(user_id, "TEST", token)
        self.since: str | None = None
        self.heard: list[tuple[str, str, str]] = []  # (room, sender, body)

    async def sync(self) -> None:
        from nio import RoomMessageNotice, RoomMessageText

        found = await self.client.sync(timeout=500, since=self.since, full_state=False)
        self.since = found.next_batch
        for room_id in list(found.rooms.invite):
            await self.client.join(room_id)
        for room_id, room in found.rooms.join.items():
            for event in room.timeline.events:
                if isinstance(event, RoomMessageText | RoomMessageNotice):
                    self.heard.append((room_id, event.sender, event.body))

    async def until(self, check: Any, what: str, timeout: float = 90) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check(self)
            if found:
                return found
            assert time.monotonic() < deadline, f"{self.id} never heard {what}: {self.heard}"
            await self.sync()

    def said(self, text: str) -> tuple[str, str, str] | None:
        return next((h for h in self.heard if text in h[2]), None)

    async def say(self, room: str, text: str) -> int:
        """Send; the server's timestamp of the message, in epoch milliseconds."""
        sent = await self.client.room_send(room, "m.room.message",
                                           {"msgtype": "m.text", "body": text})
        event = await self.client.room_get_event(room, sent.event_id)
        return int(event.event.server_timestamp)


def project(root: Path, synapse: Any) -> Path:
    """A project whose chat is the test's Synapse, and a sandbox game day played by
    people (response ``drill``): ben, the on-call, commands; ana responds."""
    root.mkdir()
    (root / "gameday.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "chat-team"

        [chat]
        kind = "matrix"
        homeserver = "{synapse.base_url}"
        user = "@gameday:localhost"
        notes = true
        """))
    raw = yaml.safe_load((ROOT / "scenarios" / "checkout-replica-crash.yaml").read_text())
    raw["experiment"] = str(ROOT / "experiments" / "checkout-replica-crash.yaml")
    raw["team"] = {"name": "shop-checkout", "model": "hybrid", "oncall": ["ben"],
                   "ic_rotation": ["ana"]}
    raw["response"] = {"mode": "drill"}
    raw["timeouts"] = {**raw["timeouts"], "mitigate": "240s", "recover": "60s"}
    raw.pop("drill", None)
    path = root / "replica-crash.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def gameday(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gameday", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_game_day_played_from_chat(tmp_path, synapse, gameday_serve):
    bot, bot_password = synapse.register("gameday")
    people = {name: synapse.register(name) for name in ("ana", "ben", "mallory")}
    scenario = project(tmp_path / "team", synapse)
    root = scenario.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    env |= {"GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db"),
            "GAMEDAY_RUNS": str(tmp_path / "runs"),
            "GAMEDAY_CHAT_TOKEN": synapse.login("gameday", bot_password)}
    tokens = {}
    for name, role in (("ana", "commander"), ("ben", "commander")):
        tokens[name] = json.loads(gameday(root, env, "user", "add", name, "--role", role,
                                          "--json"))["token"]
        gameday(root, env, "user", "link", name, "--chat", people[name][0])
    served = gameday_serve(env, "--no-scheduler", "--data-dir", str(tmp_path / "data"),
                           cwd=root)
    run = subprocess.Popen([sys.executable, "-m", "gameday", "run", str(scenario), "--json"],
                           cwd=root, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        result = asyncio.run(play(synapse, people, tmp_path / "g.db"))
        out, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, err[-3000:]
    verdict = json.loads(out)
    assert verdict["status"] == "resolved", verdict
    store = Store(tmp_path / "g.db")
    timeline = store.events(verdict["incident_id"])
    said = result["said"]

    def at(kind: str, actor: str) -> Any:
        return next(e for e in timeline if e.kind == kind and e.actor == actor)

    # dated by the messages, not by when the relay read them
    for kind, actor, key in (("incident.acknowledged", "ben", "ben ack"),
                             ("severity.changed", "ben", "severity"),
                             ("incident.resolved", "ben", "resolve")):
        stamped = at(kind, actor).at_utc
        assert abs(_epoch_ms(stamped) - said[key]) <= 1, (kind, stamped, said[key])
    fired = next(e for e in timeline if e.kind == "alert.fired")
    ack = at("incident.acknowledged", "ben")
    assert verdict["metrics"]["TTA"] == pytest.approx(   # the alert to ben's message
        (ack.at_monotonic_ns - fired.at_monotonic_ns) / 1e9, abs=0.01)
    (chat_run,) = [r for r in store.runs() if r["runbook"] == "restart-replica"]
    assert chat_run["started_by"] == "ana" and chat_run["status"] == "successful"
    review = (Path(verdict["run_dir"]) / "review.md").read_text()
    assert "replica 2 answers again after the restart" in review   # the chat's note
    refused = [a for a in store.audit_log() if a["action"] == "chat.refused"]
    assert refused and refused[0]["who"] == people["mallory"][0]
    kinds = [e.kind for e in timeline]
    assert "chat.room_opened" in kinds
    assert served.proc.poll() is None
    room_in_the_incident_page(tmp_path, served.base, verdict["incident_id"], tokens["ben"])


def room_in_the_incident_page(tmp_path: Path, base: str, incident_id: int,
                              token: str) -> None:
    """The incident page shows the room as the homeserver has it, in Chromium."""
    from chromium import CHROMIUM, DRIVER, browser, sign_in

    if not (CHROMIUM and DRIVER):
        return  # make test installs them; the room's record is checked above
    driver = browser(tmp_path, size="1200,1400")
    try:
        driver.get(f"{base}/incidents/{incident_id}")
        room = sign_in(driver, token, "room", timeout=30)
        said = room.text
        assert "!gd ack" in said and "you are paged as incident commander" in said
        assert "ben (@ben:localhost)" in said and "not linked to a gameday person" in said
        driver.execute_script("document.getElementById('room').scrollIntoView()")
        if os.environ.get("GAMEDAY_SCREENSHOTS"):
            driver.save_screenshot(str(Path(os.environ["GAMEDAY_SCREENSHOTS"])
                                       / "chat-room.png"))
    finally:
        driver.quit()


async def play(synapse: Any, people: dict[str, tuple[str, str]], db: Path) -> dict[str, Any]:
    """Ana and Ben play the incident from their Matrix clients only."""
    clients = {name: Person(synapse.base_url, user_id,
                            synapse.login(name, password))
               for name, (user_id, password) in people.items()}
    ana, ben, mallory = clients["ana"], clients["ben"], clients["mallory"]
    said: dict[str, int] = {}
    try:
        # SEV-3 under the hybrid model: the owning team's on-call commands
        paged = await ben.until(lambda p: p.said("answer with !gd ack"), "his page", 120)
        room = paged[0]
        assert "incident commander" in paged[2]
        assert "[GAME DAY]" in _room_name(await ben.client.room_get_state(room))
        said["ben ack"] = await ben.say(room, "!gd ack")
        await ben.until(lambda p: p.said("ben acknowledged"), "his ack taken")
        await ben.say(room, "!gd assign responder ana")        # she is invited
        await ana.until(lambda p: room in p.client.rooms, "her invite")
        await ben.client.room_invite(room, mallory.id)          # a stranger in the room
        await mallory.client.join(room)
        await mallory.say(room, "!gd resolve it was nothing")
        await ben.until(lambda p: p.said("is not linked to a gameday person"), "a refusal")
        said["severity"] = await ben.say(room, "!gd severity SEV-2 a third of checkouts fail")
        await ana.say(room, "!gd run")
        await ana.until(lambda p: p.said("restart-replica: successful"), "the run's end", 120)
        await ana.say(room, "replica 2 answers again after the restart")  # a note
        await ben.until(lambda p: p.said("SLIs inside the objective"), "the SLIs back", 120)
        said["resolve"] = await ben.say(room, "!gd resolve restart-replica brought it back")
        await ben.until(lambda p: p.said("this room stays as the record"), "the end", 120)
    finally:
        for person in clients.values():
            await person.client.close()
    return {"said": said}


def _room_name(state: Any) -> str:
    return next((e["content"].get("name", "") for e in getattr(state, "events", [])
                 if e.get("type") == "m.room.name"), "")


def _epoch_ms(utc: str) -> int:
    from datetime import datetime

    return round(datetime.fromisoformat(utc).timestamp() * 1000)


def test_a_destructive_run_asked_in_chat_waits_for_a_second_person(
        tmp_path, synapse, gameday_serve):
    """A real alert's incident gets an [INCIDENT] room; a destructive runbook asked for
    there waits for someone else's ``!gd approve``, then runs; the person who asked may
    not approve it."""
    import urllib.request

    from webhooks import alert, payload, write_runbook

    bot, bot_password = synapse.register("gameday-2")
    people = {name: synapse.register(name) for name in ("chidi", "dana")}
    root = tmp_path / "team"
    scenario = project(root, synapse)
    scenario.unlink()
    (root / "gameday.toml").write_text((root / "gameday.toml").read_text().replace(
        "@gameday:localhost", bot))
    (root / "runbooks").mkdir()
    write_runbook(root / "runbooks", "failover-db", ["DbDown"], auto=False, destructive=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    env |= {"GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db"),
            "GAMEDAY_CHAT_TOKEN": synapse.login("gameday-2", bot_password)}
    for name in people:
        gameday(root, env, "user", "add", name, "--role", "commander")
        gameday(root, env, "user", "link", name, "--chat", people[name][0])
    served = gameday_serve(env, "--no-scheduler", "--data-dir", str(tmp_path / "data"),
                           cwd=root)
    db_down = alert("DbDown", fingerprint="db1", service="orders")
    request = urllib.request.Request(
        served.base + "/api/v1/alerts", data=json.dumps(payload(db_down)).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    incident_id = json.loads(urllib.request.urlopen(request, timeout=30).read())[
        "alerts"][0]["incident_id"]
    store = Store(tmp_path / "g.db")
    incident = Incident(store, incident_id)   # the team's pager pages them (its record)
    incident.page("chidi", "incident_commander", "DbDown fired")
    incident.page("dana", "responder", "DbDown fired")
    asyncio.run(four_eyes(synapse, people))
    (run,) = store.runs()
    assert run["runbook"] == "failover-db" and run["status"] == "successful"
    assert run["started_by"] == "chidi" and run["approved_by"] == "dana"
    kinds = [e.kind for e in store.events(incident_id)]
    assert kinds.index("runbook.approval_requested") < kinds.index("runbook.approved") < \
        kinds.index("runbook.finished")


async def four_eyes(synapse: Any, people: dict[str, tuple[str, str]]) -> None:
    clients = {name: Person(synapse.base_url, user_id, synapse.login(name, password))
               for name, (user_id, password) in people.items()}
    chidi, dana = clients["chidi"], clients["dana"]
    try:
        paged = await chidi.until(lambda p: p.said("answer with !gd ack"), "his page")
        room = paged[0]
        assert "[INCIDENT]" in _room_name(await chidi.client.room_get_state(room))
        await dana.until(lambda p: room in p.client.rooms, "her invite")
        await chidi.say(room, "!gd run failover-db service=orders")
        asked = await chidi.until(lambda p: p.said("waits for a second person"), "the wait")
        run_id = asked[2].split()[1]
        await chidi.say(room, f"!gd approve {run_id}")     # not his own
        await chidi.until(lambda p: p.said("a second person approves it"), "a refusal")
        await dana.say(room, f"!gd approve {run_id}")
        await dana.until(lambda p: p.said("failover-db: successful"), "the run's end", 120)
    finally:
        for person in clients.values():
            await person.client.close()
