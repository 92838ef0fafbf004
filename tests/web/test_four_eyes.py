"""Four eyes and revocation in a real ``gameday serve``, over real HTTP: a run that waits
for a second person is asked for by a person with their own token, approved only while
its asker still may ask for it and only while the runbook reads as it was asked for,
a check-mode run that acts for real is gated as a real one, the run's page says why it
waits, the shared token's refusals are on the audit log, and a revoked person's open
streams (a run's, a drill's) end."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import drillstate
import pytest
from chromium import browser, needs_chromium, sign_in
from click.testing import CliRunner
from people import TOKEN, add_user

from gameday.cli.main import cli
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
DRAIN = {"params": {"service": "payments", "replica": "2"}, "confirm": True}


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


def page(base: str, path: str, token: str) -> str:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read().decode()


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


def test_an_approval_is_of_the_runbook_as_it_was_asked_for(served):
    """The second person approves what was asked for: a runbook changed since (its
    version) is not approved, on the audit log and on the run's page, and someone asks
    again; one that reads the same (a comment added) is."""
    start, store, books, tokens = served
    base = start()
    status, asked = call(base, "/api/v1/runbooks/drain-replica/run", tokens["cleo"], DRAIN)
    assert status == 202 and asked["status"] == "awaiting_approval"
    run_id = asked["run_id"]
    path = books / "drain-replica.yml"
    original = path.read_text()
    path.write_text(original.replace('pattern: "^[a-z][a-z0-9-]{0,30}$"',
                                     'pattern: "^(checkout|cart)$"'))
    status, answer = call(base, f"/api/v1/runs/{run_id}/approve", tokens["carl"], {})
    assert status == 409, answer
    assert answer["error"] == ("runbook drain-replica changed since it was asked for: "
                               "ask again")
    assert store.run(run_id)["status"] == "awaiting_approval"
    (refused,) = [a for a in store.audit_log() if a["action"] == "forbidden"]
    assert refused["who"] == "carl" and refused["data"]["run_id"] == run_id
    assert refused["data"]["asked_version"] != refused["data"]["version"]
    shown = page(base, f"/runs/{run_id}", tokens["carl"])
    assert "changed since it was asked for" in shown and 'id="approve"' not in shown
    path.write_text("# reviewed again\n" + original)   # the same plays: the same version
    status, answer = call(base, f"/api/v1/runs/{run_id}/approve", tokens["carl"], {})
    assert status == 200 and answer["approved_by"] == "carl", answer


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


PROBE = """\
- name: Drain with a look first
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    gameday_runbook:
      summary: Look, then drain.
      destructive: true
  tasks:
    - name: Look
      ansible.builtin.command:
        argv: [touch, "MARKER"]
      check_mode: false
      changed_when: false
"""


def test_a_check_run_that_acts_for_real_is_gated_as_a_real_run(served, tmp_path):
    """A task with ``check_mode: false`` runs for real in ``--check``: such a dry run is
    asked for by a commander and approved by a second person, as a run for real is,
    and the runbook's page says why."""
    start, store, books, tokens = served
    marker = tmp_path / "looked"
    (books / "probe.yml").write_text(PROBE.replace("MARKER", str(marker)))
    base = start()
    check = {"check": True, "confirm": True}
    status, answer = call(base, "/api/v1/runbooks/probe/run", tokens["rhea"], check)
    assert status == 403 and "rhea is a responder" in answer["error"], answer
    status, answer = call(base, "/api/v1/runbooks/probe/run", TOKEN, {**check, "as": "cleo"})
    assert status == 403 and "your own token" in answer["error"], answer
    status, asked = call(base, "/api/v1/runbooks/probe/run", tokens["cleo"], check)
    assert status == 202 and asked["status"] == "awaiting_approval", asked
    assert not marker.exists()                          # nothing ran before the approval
    shown = page(base, f"/runs/{asked['run_id']}", tokens["carl"])
    assert "its check mode is not dry: &#39;Look&#39; (play 1): check_mode: false" in shown
    one_click = page(base, "/runbooks/probe", tokens["cleo"])
    assert 'id="dry-run"' in one_click and "Check mode (change nothing)" not in one_click
    dry = page(base, "/runbooks/drain-replica", tokens["cleo"])
    assert 'id="dry-run"' not in dry and "Check mode (change nothing)" in dry


def test_the_run_page_says_why_a_run_waits(served):
    """Under ``--four-eyes all`` a runbook that is not destructive waits too: its page
    says so, not that it is destructive."""
    start, store, _, tokens = served
    base = start("--four-eyes", "all")
    status, asked = call(base, "/api/v1/runbooks/restart-replica/run", tokens["cleo"],
                         {"params": {"service": "checkout"}})
    assert status == 202 and asked["status"] == "awaiting_approval", asked
    shown = page(base, f"/runs/{asked['run_id']}", tokens["carl"])
    banner = shown[shown.index('id="approval"'):shown.index("</div>", shown.index(
        'id="approval"'))]
    assert "destructive." not in banner and "is destructive" not in banner
    assert "not destructive, but every run here waits for a second person" in banner
    assert "--four-eyes all" in banner and 'id="approve"' in banner


def test_the_shared_token_refused_a_personal_move_is_on_the_audit_log(served):
    start, store, _, tokens = served
    base = start()
    status, asked = call(base, "/api/v1/runbooks/drain-replica/run", tokens["cleo"], DRAIN)
    assert status == 202, asked
    for name in ("carl", "nobody"):
        status, answer = call(base, f"/api/v1/runs/{asked['run_id']}/approve", TOKEN,
                              {"as": name})
        assert status == 403, answer
    refused = [a for a in store.audit_log() if a["action"] == "forbidden"]
    assert [(a["who"], a["data"]["need"], a["data"]["via"], a["data"]["as"])
            for a in refused] == [("token", "approve", "token", "carl"),
                                  ("token", "approve", "token", "nobody")]
    assert store.run(asked["run_id"])["status"] == "awaiting_approval"


def test_a_revoked_persons_open_drill_stream_ends(served, tmp_path):
    """``/drills/ID/events`` asks who is there as it goes on, as ``/runs/ID/events``
    does: a revoked viewer stops seeing the drill within seconds."""
    start, store, _, tokens = served
    drill_id = drillstate.running(store, tmp_path, game_master="cleo").id
    base = start()
    stream = urllib.request.urlopen(urllib.request.Request(
        f"{base}/drills/{drill_id}/events",
        headers={"Authorization": f"Bearer {tokens['vic']}"}), timeout=90)
    first, ended = threading.Event(), threading.Event()

    def read() -> None:
        with stream:
            while line := stream.readline():
                if line.startswith(b"data:"):
                    first.set()
        ended.set()

    threading.Thread(target=read, daemon=True).start()
    assert first.wait(30), "the console's first snapshot never came"
    assert not ended.wait(1.0)      # open while the drill goes on
    assert CliRunner().invoke(cli, ["user", "revoke", "vic"]).exit_code == 0
    revoked = time.monotonic()
    assert ended.wait(20), "the revoked viewer's drill stream is still open"
    assert time.monotonic() - revoked < 20
    assert store.drill(drill_id)["state"] == "running"   # it ended for vic, not the drill


@pytest.mark.slow
@needs_chromium
def test_a_dry_run_that_acts_reads_so_on_a_phone_in_chromium(served, tmp_path):
    """The runbook's page says which tasks run for real in check mode, and the waiting
    run's page why it waits, readable on a phone (nothing out of sight sideways)."""
    from selenium.webdriver.common.by import By

    start, store, books, tokens = served
    (books / "probe.yml").write_text(PROBE.replace("MARKER", str(tmp_path / "looked")))
    base = start()
    status, asked = call(base, "/api/v1/runbooks/probe/run", tokens["cleo"],
                         {"check": True, "confirm": True})
    assert status == 202 and asked["status"] == "awaiting_approval", asked
    phone = browser(tmp_path, "phone", size="390,844")
    try:
        phone.get(f"{base}/runbooks/probe")
        sign_in(phone, tokens["carl"], "dry-run")
        banner = phone.find_element(By.ID, "dry-run")
        assert banner.is_displayed() and "Its check mode is not dry" in banner.text
        assert "'Look' (play 1): check_mode: false" in banner.text
        assert phone.find_element(By.ID, "check").text == "Check mode (not dry: see above)"
        no_sideways(phone, "a runbook whose dry run acts")
        phone.get(f"{base}/runs/{asked['run_id']}")
        why = phone.find_element(By.ID, "approval").text
        assert why.startswith("Four eyes: this runbook is destructive, and its check mode "
                              "is not dry: 'Look' (play 1)"), why
        assert phone.find_element(By.ID, "approve").is_displayed()
        no_sideways(phone, "a waiting check-mode run")
    finally:
        phone.quit()


def no_sideways(driver, what: str) -> None:
    wide, window = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    assert wide <= window, f"{what}: {wide} px wide in a {window} px window"
