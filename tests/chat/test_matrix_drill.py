"""A training drill in chat, on a real Synapse: the room says it is a drill, the game
master's inject arrives there from its sender, a hint is given on request (at its
cost), and when it is over the debrief's scorecards are posted before the room
closes."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_matrix_game_day import TOKEN, Person, gameday, project

from gameday.store import Store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def api(base: str, path: str, token: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + path, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=150) as answer:
        return json.loads(answer.read())


def test_a_drill_in_chat(tmp_path, synapse, gameday_serve):
    bot, bot_password = synapse.register("gameday-3")
    ben_id, ben_password = synapse.register("ben-3")
    root = tmp_path / "team"
    scenario = project(root, synapse)
    raw = yaml.safe_load(scenario.read_text())
    raw["drill"] = yaml.safe_load((ROOT / "scenarios" / "checkout-replica-crash.yaml")
                                  .read_text())["drill"]
    raw["team"] = {"name": "shop-checkout", "model": "hybrid", "oncall": ["ben"],
                   "ic_rotation": ["ben"]}
    scenario.unlink()
    (root / "scenarios").mkdir()
    scenario = root / "scenarios" / "replica-crash.yaml"   # where the console offers it
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    (root / "gameday.toml").write_text((root / "gameday.toml").read_text().replace(
        "@gameday:localhost", bot))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    env |= {"GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db"),
            "GAMEDAY_RUNS": str(tmp_path / "runs"),
            "GAMEDAY_CHAT_TOKEN": synapse.login("gameday-3", bot_password)}
    gm = json.loads(gameday(root, env, "user", "add", "gm", "--role", "commander",
                            "--json"))["token"]
    gameday(root, env, "user", "add", "ben", "--role", "responder")
    gameday(root, env, "user", "link", "ben", "--chat", ben_id)
    served = gameday_serve(env, "--no-scheduler", "--data-dir", str(tmp_path / "data"),
                           cwd=root)
    started = api(served.base, "/api/v1/drills", gm,
                  {"scenario": "scenarios/replica-crash.yaml"})
    drill = started["drill_id"]
    heard = asyncio.run(play(synapse, ben_id, ben_password, served.base, drill, gm))
    store = Store(tmp_path / "g.db")
    timeline = store.events(started["incident_id"])
    hint = next(e for e in timeline if e.kind == "drill.hint")
    assert hint.actor == "ben" and hint.data["cost"] == 5
    assert any("VP of sales" in line for line in heard)
    debrief = next(line for line in heard if line.startswith("debrief:"))
    assert "ben" in debrief


async def play(synapse: Any, ben_id: str, password: str, base: str, drill: int,
               gm: str) -> list[str]:
    ben = Person(synapse.base_url, ben_id, synapse.login("ben-3", password))
    try:
        paged = await ben.until(lambda p: p.said("answer with !gd ack"), "his page", 120)
        room = paged[0]
        assert "(a rehearsal)" in paged[2]
        await ben.say(room, "!gd ack")
        await ben.say(room, "!gd hint")
        await ben.until(lambda p: p.said("costs 5"), "the hint")
        await asyncio.to_thread(api, base, f"/api/v1/drills/{drill}/inject", gm,
                                {"name": "exec-asks-eta"})
        await ben.until(lambda p: p.said("VP of sales"), "the inject")
        await ben.say(room, "!gd run")
        await ben.until(lambda p: p.said("restart-replica: successful"), "the run", 120)
        await ben.until(lambda p: p.said("SLIs inside the objective"), "the SLIs back", 120)
        await ben.say(room, "!gd resolve restart-replica brought replica 2 back")
        await ben.until(lambda p: p.said("this room stays as the record"), "the end", 180)
    finally:
        await ben.client.close()
    return [line for _, _, line in ben.heard]
