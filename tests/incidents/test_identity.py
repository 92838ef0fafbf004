"""Real identities in ``gameday serve``: per-person tokens (stored hashed, revocable),
roles that decide who may view, run, ask for and approve destructive runs, single
sign-on through a trusted proxy's header, and four eyes on destructive runbooks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from people import TOKEN, add_user
from starlette.testclient import TestClient

from gameday.cli.main import cli
from gameday.people.auth import SESSION_COOKIE, Auth, token_sha256
from gameday.store import Store
from gameday.web.app import create_app


@pytest.fixture
def people(tmp_path: Path):
    """A store with four people; their tokens as ``gameday user add`` printed them."""
    tokens = {name: add_user(name, role) for name, role in (
        ("vic", "viewer"), ("rhea", "responder"), ("cleo", "commander"),
        ("carl", "commander"))}
    return Store(tmp_path / "gameday.db"), tokens


def app_for(store: Store, tmp_path: Path, **options):
    return create_app(token=TOKEN, store=store, data_dir=tmp_path / "data", **options)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_are_stored_hashed_listed_without_them_and_revocable(people):
    store, tokens = people
    raw = store._db.execute("SELECT token_sha256 FROM users WHERE name = 'rhea'").fetchone()[0]
    assert raw == token_sha256(tokens["rhea"]) and tokens["rhea"] not in raw
    listed = CliRunner().invoke(cli, ["user", "list", "--json"])
    assert "token" not in listed.output and '"rhea"' in listed.output
    again = CliRunner().invoke(cli, ["user", "add", "rhea", "--role", "viewer"])
    assert again.exit_code == 1 and "already a user rhea" in again.output
    bad = CliRunner().invoke(cli, ["user", "add", "Rhea Smith", "--role", "viewer"])
    assert bad.exit_code == 2 and "NAME" in bad.output
    assert CliRunner().invoke(cli, ["user", "revoke", "rhea"]).exit_code == 0
    assert store.user_by_token(token_sha256(tokens["rhea"])) is None
    assert CliRunner().invoke(cli, ["user", "revoke", "rhea"]).exit_code == 1


@pytest.mark.parametrize("name", ["Rhea Smith", "\x1b[2Jrhea", "r" * 200])
def test_user_revoke_reads_a_name_as_user_add_does(people, name):
    """A name no one can have is a usage error naming NAME (exit 2), not a search for
    it whose answer echoes it back as typed."""
    store, _ = people
    refused = CliRunner().invoke(cli, ["user", "revoke", name])
    assert refused.exit_code == 2 and "NAME" in refused.output, refused.output
    assert "\x1b" not in refused.output and "no active user" not in refused.output
    assert [u["revoked_at"] for u in store.users()] == [None] * 4
    assert not [e for e in store.audit_log() if e["action"] == "user.revoked"]


def test_roles_decide_who_may_run(people, tmp_path):
    store, tokens = people
    with TestClient(app_for(store, tmp_path)) as client:
        path = "/api/v1/runbooks/restart-replica/run"
        body = {"params": {"service": "checkout"}, "check": True}
        viewer = client.post(path, json=body, headers=bearer(tokens["vic"]))
        assert viewer.status_code == 403 and "viewer may not run" in viewer.json()["error"]
        assert client.get("/api/v1/runs/1", headers=bearer(tokens["vic"])).status_code == 404
        ran = client.post(path, json=body, headers=bearer(tokens["rhea"]))
        assert ran.status_code == 202 and ran.json()["by"] == "rhea"   # who, from the token
        lying = client.post(path, json={**body, "as": "cleo"}, headers=bearer(tokens["rhea"]))
        assert lying.status_code == 403
        wrong = client.post(path, json=body, headers=bearer("gd_" + "x" * 43))
        assert wrong.status_code == 403
    refused = [r["data"] for r in store.audit_log() if r["action"] == "forbidden"]
    assert {"need": "run", "role": "viewer", "path": path} in refused


def test_people_sign_in_with_their_own_token_and_the_audit_log_says_who(people, tmp_path):
    store, tokens = people
    with TestClient(app_for(store, tmp_path)) as client:
        shared = client.post("/login", data={"name": "mallory", "token": TOKEN})
        assert shared.status_code == 403            # the shared token no longer signs in
        r = client.post("/login", data={"name": "anyone", "token": tokens["cleo"]},
                        follow_redirects=False)
        assert r.status_code == 303
        assert "signed in as cleo" in client.get("/incidents").text
        CliRunner().invoke(cli, ["user", "revoke", "cleo"])
        assert client.get("/incidents", follow_redirects=False).status_code == 303  # sign in
    logins = [(r["who"], r["action"]) for r in store.audit_log()]
    assert ("cleo", "login") in logins and ("mallory", "login.failed") in logins


@pytest.mark.parametrize("headers, signed_in", [
    ({"Sec-Fetch-Site": "same-origin"}, True),        # this server's own sign-in page
    ({"Sec-Fetch-Site": "none"}, True),               # typed or bookmarked
    ({}, True),                                       # not a browser: curl, a script
    ({"Origin": "http://testserver"}, True),          # a browser without Sec-Fetch-Site
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, False),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://testserver:9999"}, False),
    ({"Origin": "https://evil.example"}, False),
    ({"Origin": "null"}, False),                      # a sandboxed frame, a data: page
])
def test_only_this_servers_own_page_signs_a_browser_in(people, tmp_path, headers,
                                                       signed_in):
    """Login CSRF: another site's page posting someone's token to /login would sign the
    browser in as them, and what its owner did next would be done in their name."""
    store, tokens = people
    with TestClient(app_for(store, tmp_path)) as client:
        r = client.post("/login", data={"token": tokens["vic"]}, headers=headers,
                        follow_redirects=False)
        assert (r.status_code, SESSION_COOKIE in r.cookies) == \
            ((303, True) if signed_in else (403, False))
        if not signed_in:
            assert "sent from another site" in r.text
            assert client.get("/incidents", follow_redirects=False).status_code == 303
    refused = [r for r in store.audit_log() if r["action"] == "login.failed"]
    assert len(refused) == (0 if signed_in else 1)


@pytest.mark.parametrize("origin, signed_in", [
    ("https://gameday.example.com", True),   # as people reach it, through the proxy
    ("HTTPS://GameDay.example.com", True),
    ("http://gameday.example.com", False),   # not as they reach it
    ("https://evil.example", False),
    ("null", False),
])
def test_behind_a_proxy_that_rewrites_host_gameday_url_is_its_origin(people, tmp_path,
                                                                    monkeypatch, origin,
                                                                    signed_in):
    """Plain HTTP to a name on the network gets no Sec-Fetch-Site from browsers, and a
    proxy that rewrites Host makes Origin differ from it: GAMEDAY_URL says which origin
    is this server's own."""
    from gameday.core import settings

    monkeypatch.setenv("GAMEDAY_URL", "https://gameday.example.com")
    settings.use(None)  # resolved again, with it (adding the people resolved them)
    store, tokens = people
    with TestClient(app_for(store, tmp_path)) as client:  # Host: testserver
        r = client.post("/login", data={"token": tokens["vic"]}, headers={"Origin": origin},
                        follow_redirects=False)
        assert (r.status_code, SESSION_COOKIE in r.cookies) == \
            ((303, True) if signed_in else (403, False))


def test_a_destructive_run_waits_for_a_second_person(people, tmp_path):
    store, tokens = people
    path = "/api/v1/runbooks/drain-replica/run"
    body = {"params": {"service": "payments", "replica": "2"}, "confirm": True}
    with TestClient(app_for(store, tmp_path)) as client:
        responder = client.post(path, json=body, headers=bearer(tokens["rhea"]))
        assert responder.status_code == 403      # a responder may not ask for one
        asked = client.post(path, json=body, headers=bearer(tokens["cleo"]))
        assert asked.status_code == 202 and asked.json()["status"] == "awaiting_approval"
        run_id = asked.json()["run_id"]
        approve = f"/api/v1/runs/{run_id}/approve"
        own = client.post(approve, json={}, headers=bearer(tokens["cleo"]))
        assert own.status_code == 403 and "second person" in own.json()["error"]
        assert client.post(approve, json={}, headers=bearer(tokens["rhea"])).status_code == 403
        assert store.run(run_id)["status"] == "awaiting_approval"   # nothing ran
        ok = client.post(approve, json={}, headers=bearer(tokens["carl"]))
        assert ok.status_code == 200 and ok.json()["approved_by"] == "carl"
        twice = client.post(approve, json={}, headers=bearer(tokens["carl"]))
        assert twice.status_code == 409
        deadline = time.monotonic() + 60
        while store.run(run_id)["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    run = store.run(run_id)
    assert run["started_by"] == "cleo" and run["approved_by"] == "carl"
    assert run["status"] in ("successful", "failed")  # it ran (the sandbox may be down)
    actions = [(r["who"], r["action"]) for r in store.audit_log()]
    assert ("cleo", "approval.requested") in actions and ("carl", "approval.granted") in actions
    assert ("cleo", "runbook.result") in actions


def test_an_approval_that_timed_out_is_recorded_and_can_never_be_given(people, tmp_path):
    store, tokens = people
    from gameday.incidents.incident import Incident

    inc = Incident.open(store, "payments replica 2 is slow", service="payments")
    body = {"params": {"service": "payments", "replica": "2"}, "confirm": True,
            "incident": inc.id}
    with TestClient(app_for(store, tmp_path, approval_ttl=0.0)) as client:
        asked = client.post("/api/v1/runbooks/drain-replica/run", json=body,
                            headers=bearer(tokens["cleo"]))
        run_id = asked.json()["run_id"]
        late = client.post(f"/api/v1/runs/{run_id}/approve", json={},
                           headers=bearer(tokens["carl"]))
        assert late.status_code == 409 and "expired" in late.json()["error"]
    assert store.run(run_id)["status"] == "expired"
    kinds = [e.kind for e in store.events(inc.id)]
    assert "runbook.approval_requested" in kinds and "runbook.approval_expired" in kinds
    assert "runbook.started" not in kinds and "runbook.approved" not in kinds


def test_the_run_page_asks_a_second_person_and_approves_with_a_click(people, tmp_path):
    store, tokens = people
    with TestClient(app_for(store, tmp_path)) as cleo, \
            TestClient(app_for(store, tmp_path)) as carl:
        cleo.post("/login", data={"token": tokens["cleo"]})
        page = cleo.get("/runbooks/drain-replica?service=payments&replica=2")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        r = cleo.post("/runbooks/drain-replica/run", follow_redirects=False, data={
            "csrf": csrf, "confirm": "yes", "p.service": "payments", "p.replica": "2"})
        run_path = r.headers["location"]
        mine = cleo.get(run_path).text
        assert "Four eyes" in mine and 'id="approve"' not in mine   # not to its requester
        carl.post("/login", data={"token": tokens["carl"]})
        theirs = carl.get(run_path).text
        assert 'id="approve"' in theirs
        csrf = theirs.split('name="csrf" value="')[1].split('"')[0]
        assert carl.post(run_path + "/approve", data={"csrf": "nope"}).status_code == 403
        done = carl.post(run_path + "/approve", data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303
    assert store.run(int(run_path.rsplit("/", 1)[1]))["approved_by"] == "carl"


def test_single_sign_on_through_a_trusted_proxy_header(people, tmp_path):
    store, _ = people
    app = app_for(store, tmp_path, user_header="X-Forwarded-User",
                  trusted_proxies=("10.0.0.0/8",))
    via_proxy = {"X-Forwarded-User": "rhea"}
    with TestClient(app, client=("10.1.2.3", 4321)) as proxied:
        page = proxied.get("/incidents", headers=via_proxy)
        assert page.status_code == 200 and "signed in as rhea" in page.text
        stranger = proxied.get("/api/v1/incidents/1", headers={"X-Forwarded-User": "eve"})
        assert stranger.status_code == 403 and "not a gameday user" in stranger.json()["error"]
    with TestClient(app, client=("192.0.2.9", 4321)) as direct:   # not from the proxy
        assert direct.get("/api/v1/incidents/1", headers=via_proxy).status_code == 401
    with pytest.raises(ValueError, match="proxies"):
        Auth(TOKEN, store, user_header="X-Forwarded-User")


def test_single_user_setups_keep_the_shared_token(tmp_path):
    store = Store(tmp_path / "solo.db")
    with TestClient(app_for(store, tmp_path)) as client:
        r = client.post("/login", data={"name": "ana", "token": TOKEN}, follow_redirects=False)
        assert r.status_code == 303
        page = client.get("/runbooks/drain-replica?service=payments&replica=2").text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        r = client.post("/runbooks/drain-replica/run", follow_redirects=False, data={
            "csrf": csrf, "confirm": "yes", "p.service": "payments", "p.replica": "2"})
        run_id = int(r.headers["location"].rsplit("/", 1)[1])
        assert store.run(run_id)["status"] != "awaiting_approval"  # nobody else to ask


def test_what_a_person_cannot_do_with_someone_elses_rights(people, tmp_path):
    store, tokens = people
    alert = {"version": "4", "groupKey": "g", "truncatedAlerts": 0, "status": "firing",
             "receiver": "gameday", "groupLabels": {}, "commonLabels": {},
             "commonAnnotations": {}, "externalURL": "", "alerts": [{
                 "status": "firing", "fingerprint": "f1",
                 "labels": {"alertname": "ServiceReplicaDown", "service": "payments"},
                 "annotations": {}, "startsAt": "2026-11-23T10:00:00Z", "endsAt": "",
                 "generatorURL": ""}]}
    with TestClient(app_for(store, tmp_path)) as client:
        # alerts are Alertmanager's (signed, or the shared token), not a person's way
        # around the runbook page's rules
        assert client.post("/api/v1/alerts", json=alert,
                           headers=bearer(tokens["rhea"])).status_code == 403
        assert client.post("/api/v1/alerts", json=alert, headers=bearer(TOKEN)).status_code == 200
        # the shared token acts only for real people, and never approves in their name
        body = {"params": {"service": "checkout"}, "check": True}
        path = "/api/v1/runbooks/restart-replica/run"
        stranger = client.post(path, json={**body, "as": "mallory"}, headers=bearer(TOKEN))
        assert stranger.status_code == 403 and "not a gameday user" in stranger.json()["error"]
        assert client.post(path, json={**body, "as": "rhea"},
                           headers=bearer(TOKEN)).json()["by"] == "rhea"
        asked = client.post("/api/v1/runbooks/drain-replica/run", headers=bearer(tokens["cleo"]),
                            json={"params": {"service": "payments", "replica": "2"},
                                  "confirm": True}).json()
        approve = f"/api/v1/runs/{asked['run_id']}/approve"
        assert client.post(approve, json={"as": "carl"}, headers=bearer(TOKEN)).status_code == 403
        # hostile bodies and ids are refused, not 500s
        deep = b"[" * 100_000
        assert client.post(approve, content=deep, headers=bearer(tokens["carl"])).status_code == 400
        assert client.post(approve, content=deep).status_code == 401   # who first
        assert client.get("/api/v1/runs/99999999999999999999999",
                          headers=bearer(TOKEN)).status_code == 404
        huge = client.post(path, json={**body, "as": "rhea", "incident": 2**70},
                           headers=bearer(TOKEN))
        assert huge.status_code == 422 and huge.json()["field"] == "incident"


def test_a_session_keeps_the_rights_it_was_signed_in_with(people, tmp_path):
    store, tokens = people
    with TestClient(app_for(store, tmp_path)) as client:
        client.post("/login", data={"token": tokens["vic"]})
        assert client.get("/api/v1/incidents/1").status_code == 404     # a viewer sees
        for name in ("rhea", "cleo", "carl", "vic"):                   # nobody left
            CliRunner().invoke(cli, ["user", "revoke", name])
        assert client.get("/api/v1/incidents/1").status_code == 403     # never admin


def test_a_forwarded_for_header_does_not_make_a_stranger_the_proxy(people, tmp_path,
                                                                    gameday_serve):
    import os
    import urllib.error
    import urllib.request

    store, _ = people
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(store.path)}
    base = gameday_serve(env, "--no-scheduler", "--data-dir", str(tmp_path / "data"),
                         "--trusted-user-header", "X-Forwarded-User",
                         "--trusted-proxy", "10.0.0.0/8").base
    request = urllib.request.Request(base + "/api/v1/incidents/1", headers={
        "X-Forwarded-User": "cleo", "X-Forwarded-For": "10.1.2.3"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 401   # 127.0.0.1 is not the proxy, whatever it says


def test_rotating_a_token_ends_the_old_one_and_its_sessions(people, tmp_path):
    store, tokens = people
    with TestClient(app_for(store, tmp_path)) as client:
        client.post("/login", data={"token": tokens["rhea"]})
        assert client.get("/api/v1/incidents/1").status_code == 404     # signed in
        rotated = CliRunner().invoke(cli, ["user", "rotate", "rhea", "--json"])
        assert rotated.exit_code == 0, rotated.output
        new = json.loads(rotated.output)["token"]
        assert new != tokens["rhea"]
        assert client.get("/api/v1/incidents/1").status_code == 403     # the session ended
        assert client.get("/api/v1/incidents/1",
                          headers=bearer(tokens["rhea"])).status_code == 403
        assert client.get("/api/v1/incidents/1", headers=bearer(new)).status_code == 404
    missing = CliRunner().invoke(cli, ["user", "rotate", "nobody"])
    assert missing.exit_code == 1 and "no active user nobody" in missing.output
    assert [e["data"] for e in store.audit_log() if e["action"] == "user.rotated"] == \
        [{"name": "rhea"}]


def test_a_role_change_reaches_signed_in_sessions_at_once(people, tmp_path):
    store, tokens = people
    path = "/api/v1/runbooks/restart-replica/run"
    body = {"params": {"service": "checkout"}, "check": True}
    with TestClient(app_for(store, tmp_path)) as client:
        client.post("/login", data={"token": tokens["vic"]})
        csrf = {"X-CSRF-Token": Auth(TOKEN, store).csrf_token(client.cookies[SESSION_COOKIE])}
        assert client.post(path, json=body, headers=csrf).status_code == 403   # a viewer
        changed = CliRunner().invoke(cli, ["user", "role", "vic", "responder"])
        assert changed.exit_code == 0 and "viewer -> responder" in changed.output
        assert client.post(path, json=body, headers=csrf).status_code == 202  # a responder
    bad = CliRunner().invoke(cli, ["user", "role", "vic", "root"])
    assert bad.exit_code == 2 and "ROLE" in bad.output
    assert CliRunner().invoke(cli, ["user", "role", "nobody", "admin"]).exit_code == 1
    (entry,) = [e for e in store.audit_log() if e["action"] == "user.role_changed"]
    assert entry["data"] == {"name": "vic", "from": "viewer", "to": "responder"}


def test_a_revoked_person_can_be_added_again_without_their_old_sessions(people, tmp_path):
    store, tokens = people
    with TestClient(app_for(store, tmp_path)) as client:
        client.post("/login", data={"token": tokens["cleo"]})
        assert client.get("/api/v1/incidents/1").status_code == 404
        assert CliRunner().invoke(cli, ["user", "revoke", "cleo"]).exit_code == 0
        assert client.get("/api/v1/incidents/1").status_code == 403
        again = CliRunner().invoke(cli, ["user", "add", "cleo", "--role", "viewer", "--json"])
        assert again.exit_code == 0, again.output
        added = json.loads(again.output)
        assert added["again"] is True and added["role"] == "viewer"
        # back, with a new token and role; the session from before stays dead
        assert client.get("/api/v1/incidents/1").status_code == 403
        assert client.get("/api/v1/incidents/1",
                          headers=bearer(tokens["cleo"])).status_code == 403
        assert client.get("/api/v1/incidents/1",
                          headers=bearer(added["token"])).status_code == 404
    (cleo,) = [u for u in store.users() if u["name"] == "cleo"]
    assert cleo["role"] == "viewer" and cleo["revoked_at"] is None
    actions = [(e["action"], e["data"].get("again")) for e in store.audit_log()
               if e["data"].get("name") == "cleo"]
    assert actions == [("user.added", False), ("user.revoked", None), ("user.added", True)]


def test_the_shared_token_in_someones_name_has_their_rights(people, tmp_path):
    """Once people have identities, a script's ``as`` acts with that person's rights:
    the shared token does not lend a responder a commander's."""
    store, _ = people
    store.set_freeze(True, "incident", "cleo")
    with TestClient(app_for(store, tmp_path)) as client:
        refused = client.post("/api/v1/unfreeze", json={"as": "rhea"}, headers=bearer(TOKEN))
        assert refused.status_code == 403 and "rhea is a responder" in refused.json()["error"]
        assert store.freeze() is not None
        lifted = client.post("/api/v1/unfreeze", json={"as": "cleo"}, headers=bearer(TOKEN))
        assert lifted.status_code == 200 and lifted.json()["frozen"] is None
        frozen = client.post("/api/v1/freeze", json={"as": "rhea", "reason": 5},
                             headers=bearer(TOKEN))
        assert frozen.status_code == 422 and frozen.json()["field"] == "reason"
    (entry,) = [e for e in store.audit_log() if e["action"] == "forbidden"]
    assert entry["who"] == "rhea" and entry["data"]["need"] == "unfreeze"
