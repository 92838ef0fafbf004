"""Four eyes and revocation in a real ``gameday serve``, over real HTTP: a run that waits
for a second person is asked for by a person with their own token, approved only while
its asker still may ask for it and only as the runbook now reads, and a revoked
person's open stream ends."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from gameday.cli.main import cli
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "shared-token-0123456789abcdef"
DRAIN = {"params": {"service": "payments", "replica": "2"}, "confirm": True}


def add_user(name: str, role: str) -> str:
    result = CliRunner().invoke(cli, ["user", "add", name, "--role", role, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["token"]


def call(base: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    """``POST`` ``body`` (``GET`` without one) with a bearer token: status and JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


@pytest.fixture
def served(tmp_path: Path, gameday_serve):
    """``gameday serve`` on its own runbooks (copies of the built-in ones, to change)
    with four people; its address, the store, the runbooks' directory and the tokens."""
    books = tmp_path / "runbooks"
    shutil.copytree(ROOT / "gameday" / "targets" / "sandbox" / "runbooks", books)
    tokens = {name: add_user(name, role) for name, role in (
        ("vic", "viewer"), ("rhea", "responder"), ("cleo", "commander"),
        ("carl", "commander"))}
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_RUNBOOKS": str(books)}

    def start(*args: str) -> str:
        return gameday_serve(env, "--no-scheduler", "--data-dir", str(tmp_path / "data"),
                             *args).base

    return start, Store(tmp_path / "gameday.db"), books, tokens


@pytest.mark.parametrize("four_eyes, runbook, body", [
    ("destructive", "drain-replica", DRAIN),
    ("all", "restart-replica", {"params": {"service": "checkout"}}),
])
def test_the_shared_token_never_asks_for_a_run_a_second_person_approves(served, four_eyes,
                                                                         runbook, body):
    """Else whoever holds the shared token asks in a colleague's name and approves with
    their own: one person, both pairs of eyes."""
    start, store, _, tokens = served
    base = start("--four-eyes", four_eyes)
    for name in ("carl", "rhea"):   # a commander's name, and a responder's
        status, answer = call(base, f"/api/v1/runbooks/{runbook}/run", TOKEN,
                              {**body, "as": name})
        assert status == 403, answer
        assert "your own token" in answer["error"]
    assert store.runs() == []       # nothing waits for cleo to approve it
    refused = [a for a in store.audit_log() if a["action"] == "forbidden"]
    assert len(refused) == 2 and {a["data"]["via"] for a in refused} == {"token"}
    check = call(base, f"/api/v1/runbooks/{runbook}/run", TOKEN,
                 {**body, "check": True, "as": "rhea"})   # changes nothing: no second person
    assert check[0] == 202 and check[1]["status"] != "awaiting_approval"


@pytest.mark.parametrize("change", [["user", "revoke", "cleo"],
                                    ["user", "role", "cleo", "responder"]])
def test_a_run_is_not_approved_once_its_asker_may_no_longer_ask(served, change):
    start, store, _, tokens = served
    base = start()
    status, asked = call(base, "/api/v1/runbooks/drain-replica/run", tokens["cleo"], DRAIN)
    assert status == 202 and asked["status"] == "awaiting_approval"
    assert CliRunner().invoke(cli, change).exit_code == 0
    status, answer = call(base, f"/api/v1/runs/{asked['run_id']}/approve", tokens["carl"], {})
    assert status == 403, answer
    assert "cleo" in answer["error"] and "ask again" in answer["error"]
    run = store.run(asked["run_id"])
    assert run["status"] == "awaiting_approval" and run["approved_by"] is None
    (refused,) = [a for a in store.audit_log() if a["action"] == "forbidden"]
    assert refused["who"] == "carl" and refused["data"]["requested_by"] == "cleo"


def test_an_approval_runs_the_runbook_as_it_reads_now(served):
    """The runbook is read again when the second person approves: a value its
    parameters refuse now never reaches the playbook."""
    start, store, books, tokens = served
    base = start()
    status, asked = call(base, "/api/v1/runbooks/drain-replica/run", tokens["cleo"], DRAIN)
    assert status == 202 and asked["status"] == "awaiting_approval"
    path = books / "drain-replica.yml"
    path.write_text(path.read_text().replace('pattern: "^[a-z][a-z0-9-]{0,30}$"',
                                             'pattern: "^(checkout|cart)$"'))
    status, answer = call(base, f"/api/v1/runs/{asked['run_id']}/approve", tokens["carl"], {})
    assert status == 422 and answer["field"] == "service", answer
    assert store.run(asked["run_id"])["status"] == "awaiting_approval"


def test_a_revoked_persons_open_run_stream_ends(served):
    """``/runs/ID/events`` asks who is there as it goes on, not only when it opens."""
    start, store, books, tokens = served
    (books / "slow.yml").write_text("""\
- name: Wait a while
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    gameday_runbook:
      summary: Wait a while.
      auto: false
      destructive: false
  tasks:
    - name: Wait
      ansible.builtin.command:
        argv: [sleep, "60"]
      changed_when: false
""")
    base = start()
    status, asked = call(base, "/api/v1/runbooks/slow/run", tokens["rhea"], {})
    assert status == 202, asked
    stream = urllib.request.urlopen(urllib.request.Request(
        f"{base}/runs/{asked['run_id']}/events",
        headers={"Authorization": f"Bearer {tokens['vic']}"}), timeout=90)
    ended = threading.Event()

    def read() -> None:
        with stream:
            while stream.readline():
                pass
        ended.set()

    threading.Thread(target=read, daemon=True).start()
    assert not ended.wait(1.0)      # open while the run goes on
    assert CliRunner().invoke(cli, ["user", "revoke", "vic"]).exit_code == 0
    revoked = time.monotonic()
    assert ended.wait(20), "the revoked viewer's stream is still open"
    assert time.monotonic() - revoked < 20
    assert store.run(asked["run_id"])["status"] in ("queued", "running")  # not its end
