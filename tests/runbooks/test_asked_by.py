"""A run that waits for its runbook's slot starts only while the person who asked for it
may still ask for it: real runs of a real playbook through the pool ``gameday serve``
runs them in, one at a time."""

from __future__ import annotations

from serving import eventually
from webhooks import write_runbook

from gameday.people.auth import token_sha256
from gameday.runbooks.runbook import find
from gameday.runs.pool import Dispatcher
from gameday.store import Store


def test_a_waiting_run_of_someone_revoked_or_demoted_since_never_runs(tmp_path):
    books = tmp_path / "runbooks"
    books.mkdir()
    write_runbook(books, "one-at-a-time", ["Boom"], sleep=3.0, concurrency=1)
    store = Store(tmp_path / "g.db")
    for name in ("ana", "bo", "cy"):
        store.add_user(name, "responder", token_sha256(f"gd_{name}" * 8), "root")
    book = find("one-at-a-time", books)
    dispatcher = Dispatcher(store, runbook_dir=books, data_dir=tmp_path / "data")
    try:
        first = dispatcher.start(book, {"service": "shop"}, None, "ana")
        eventually(lambda: store.run(first)["status"] == "running", 60, "ana's run")
        waiting = {who: dispatcher.start(book, {"service": "cart"}, None, who)
                   for who in ("bo", "cy", "token")}  # token: the shared token, no person
        assert {store.run(r)["status"] for r in waiting.values()} == {"queued"}
        store.revoke_user("bo")
        store.set_user_role("cy", "viewer")
        ended = ("successful", "failed", "canceled")
        eventually(lambda: all(store.run(r)["status"] in ended
                               for r in (first, *waiting.values())), 90,
                   lambda: f"every run ended: {[r['status'] for r in store.runs()]}")
        assert [store.run(r)["status"] for r in (first, *waiting.values())] == \
            ["successful", "canceled", "canceled", "successful"]
        reasons = {a["data"]["run_id"]: a["data"].get("reason") for a in store.audit_log()
                   if a["action"] == "runbook.result" and a["data"]["status"] == "canceled"}
        assert reasons == {
            waiting["bo"]: f"bo asked for run {waiting['bo']} and was revoked since: someone "
                           "who may ask for it must ask again",
            waiting["cy"]: f"cy asked for run {waiting['cy']} and is a viewer now: someone "
                           "who may ask for it must ask again"}
    finally:
        dispatcher.shutdown()


def test_who_gameday_acts_as_is_never_a_persons_name(tmp_path, monkeypatch):
    """The intake's automatic runs are asked as ``alertmanager``, the shared token's as
    ``token``: no person may take those names, so no revocation cancels their runs."""
    import subprocess
    import sys

    from gameday.people.auth import NOT_PEOPLE
    from gameday.runs.intake import ACTOR

    assert ACTOR in NOT_PEOPLE and "token" in NOT_PEOPLE
    monkeypatch.setenv("GAMEDAY_DB", str(tmp_path / "g.db"))
    for name in sorted(NOT_PEOPLE):
        refused = subprocess.run([sys.executable, "-m", "gameday", "user", "add", name,
                                  "--role", "admin"], capture_output=True, text=True)
        assert refused.returncode == 2 and "not a person's name" in refused.stderr, \
            refused.stderr
        assert "Traceback" not in refused.stderr
