"""gameday serve: Alertmanager webhooks, auth, idempotency, validation, pages."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from gameday.errors import ValidationError
from gameday.store import Store
from gameday.web.alerts import parse
from gameday.web.app import create_app

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def write_runbook(directory: Path, name: str, alerts: list[str], *, auto: bool = True,
                  sleep: float = 0.0, destructive: bool = False) -> None:
    tasks = [{"name": "say the service", "ansible.builtin.command": {
        "argv": ["echo", "restarting {{ service }}"]}}]
    if sleep:
        tasks.insert(0, {"name": "take a while",
                         "ansible.builtin.command": {"argv": ["sleep", str(sleep)]}})
    (directory / f"{name}.yml").write_text(yaml.safe_dump([{
        "name": name, "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                 "gameday_runbook": {
                     "summary": "test", "alerts": alerts, "auto": auto,
                     "destructive": destructive,
                     "parameters": {"service": {"type": "string", "required": True,
                                                "pattern": "^[a-z][a-z0-9-]{0,30}$"}}}},
        "tasks": tasks}]))


def payload(*alerts: dict, status: str = "firing", group: str = "{}:{alertname=\"Boom\"}",
            truncated: int = 0) -> dict:
    return {"version": "4", "groupKey": group, "truncatedAlerts": truncated,
            "status": status, "receiver": "gameday", "groupLabels": {"alertname": "Boom"},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
            "alerts": list(alerts)}


def alert(name: str = "Boom", *, fingerprint: str = "abc123", service: str = "checkout",
          status: str = "firing", starts: str = "2026-11-22T10:00:00Z",
          annotations: dict | None = None) -> dict:
    return {"status": status, "labels": {"alertname": name, "service": service,
                                         "severity": "critical"},
            "annotations": annotations or {"summary": f"{name} on {service}"},
            "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": fingerprint}


@pytest.fixture
def books(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    write_runbook(d, "restart-it", ["Boom"])
    write_runbook(d, "slow-fix", ["Slow"], sleep=1.0)
    write_runbook(d, "manual-fix", ["Manual"], auto=False, destructive=True)
    return d


@pytest.fixture
def app_and_store(tmp_path: Path, books: Path):
    store = Store(tmp_path / "serve.db")
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data", runbook_dir=books,
                     max_concurrent=2)
    return app, store


@pytest.fixture
def client(app_and_store):
    app, _ = app_and_store
    with TestClient(app) as c:
        yield c


def wait_runs_done(store: Store, n: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = store.runs()
        if len(runs) >= n and all(r["finished_at"] for r in runs):
            return runs
        time.sleep(0.1)
    raise AssertionError(f"runs not finished: {store.runs()}")


# -- parsing -------------------------------------------------------------------------------
def test_parse_firing_resolved_groups_and_truncation():
    note = parse(payload(alert(fingerprint="a"), alert(fingerprint="b", service="payments"),
                         truncated=3))
    assert [a.fingerprint for a in note.alerts] == ["a", "b"] and note.truncated == 3
    assert note.alerts[0].key != note.alerts[1].key
    resolved = parse(payload(alert(status="resolved"), status="resolved"))
    assert resolved.alerts[0].status == "resolved"


@pytest.mark.parametrize("change,field", [
    (lambda p: p.update(version="3"), "version"),
    (lambda p: p.update(alerts=[]), "alerts"),
    (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alerts[0].labels.alertname"),
    (lambda p: p["alerts"][0].update(fingerprint=7), "alerts[0].fingerprint"),
    (lambda p: p["alerts"][0]["labels"].update(service=["x"]), "alerts[0].labels"),
])
def test_parse_errors_name_the_field(change, field):
    p = payload(alert())
    change(p)
    with pytest.raises(ValidationError) as err:
        parse(p)
    assert err.value.field == field


# -- auth ----------------------------------------------------------------------------------
def test_token_required(client):
    body = payload(alert())
    assert client.post("/api/v1/alerts", json=body).status_code == 401
    wrong = client.post("/api/v1/alerts", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert client.get("/api/v1/incidents/1").status_code == 401


def test_hmac_signature(client):
    raw = json.dumps(payload(alert())).encode()
    good = "sha256=" + hmac.new(TOKEN.encode(), raw, hashlib.sha256).hexdigest()
    ok = client.post("/api/v1/alerts", content=raw, headers={"X-Gameday-Signature": good})
    assert ok.status_code == 200
    bad = client.post("/api/v1/alerts", content=raw,
                      headers={"X-Gameday-Signature": "sha256=" + "0" * 64})
    assert bad.status_code == 403


# -- at-least-once delivery --------------------------------------------------------------
def test_three_deliveries_start_one_run(client, app_and_store):
    _, store = app_and_store
    answers = [client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
               for _ in range(3)]
    assert answers[0]["alerts"][0]["duplicate"] is False
    assert [a["alerts"][0]["duplicate"] for a in answers[1:]] == [True, True]
    assert len({a["incident_id"] for a in answers}) == 1
    (run,) = wait_runs_done(store, 1)
    assert run["status"] == "successful" and run["params"] == {"service": "checkout"}
    incident = client.get(f"/api/v1/incidents/{answers[0]['incident_id']}", headers=AUTH).json()
    kinds = [e["kind"] for e in incident["timeline"]]
    assert kinds.count("alert.fired") == 1 and kinds.count("runbook.started") == 1
    tasks = [e["data"] for e in incident["timeline"] if e["kind"] == "runbook.task"
             and e["data"]["status"] == "ok"]
    assert tasks[0]["stdout"] == "restarting checkout"


def test_api_incident_matches_cli_json(client, app_and_store):
    from click.testing import CliRunner

    from gameday.cli import cli

    _, store = app_and_store
    first = client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
    wait_runs_done(store, 1)
    api = client.get(f"/api/v1/incidents/{first['incident_id']}", headers=AUTH).json()
    out = CliRunner().invoke(cli, ["--db", str(store.path), "incident", "show",
                                   str(first["incident_id"]), "--json"])
    assert json.loads(out.output) == api


def test_a_new_firing_of_the_same_alert_joins_the_open_incident(client, app_and_store):
    _, store = app_and_store
    a = client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
    b = client.post("/api/v1/alerts", json=payload(alert(starts="2026-11-22T11:00:00Z")),
                    headers=AUTH).json()
    assert a["incident_id"] == b["incident_id"] and b["alerts"][0]["duplicate"] is False
    wait_runs_done(store, 2)


def test_resolved_notifications_are_recorded(client, app_and_store):
    _, store = app_and_store
    first = client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
    client.post("/api/v1/alerts", json=payload(alert(status="resolved"), status="resolved"),
                headers=AUTH)
    wait_runs_done(store, 1)
    kinds = [e.kind for e in store.events(first["incident_id"])]
    assert "alert.resolved" in kinds


@pytest.mark.parametrize("value", ["; rm -rf /", "$(id)", "{{ lookup('pipe','id') }}",
                                   "checkout\nid", "x" * 300, "`id`"])
def test_hostile_labels_never_reach_a_playbook(client, app_and_store, value):
    _, store = app_and_store
    answer = client.post("/api/v1/alerts", json=payload(alert(service=value)),
                         headers=AUTH).json()
    assert "service" in answer["alerts"][0]["error"]
    assert store.runs() == []
    kinds = [e.kind for e in store.events(answer["incident_id"])]
    assert "runbook.rejected" in kinds and "runbook.started" not in kinds


def test_bad_payload_is_422_and_starts_nothing(client, app_and_store):
    _, store = app_and_store
    r = client.post("/api/v1/alerts", json={"version": "4"}, headers=AUTH)
    assert r.status_code == 422 and "status" in r.json()["error"]
    r = client.post("/api/v1/alerts", content=b"{nope", headers=AUTH)
    assert r.status_code == 400
    assert store.incidents() == [] and store.runs() == []


def test_concurrency_limit_holds_under_a_burst(client, app_and_store):
    _, store = app_and_store
    for i in range(5):
        client.post("/api/v1/alerts", json=payload(
            alert("Slow", fingerprint=f"f{i}"), group=f"g{i}"), headers=AUTH)
    runs = wait_runs_done(store, 5, timeout=120)
    moments = sorted([(r["started_at"], 1) for r in runs] + [(r["finished_at"], -1)
                                                               for r in runs])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak == 2  # two at once, the rest queued
    assert all(r["status"] == "successful" for r in runs)


# -- pages ---------------------------------------------------------------------------------
def sign_in(client, name="ana"):
    r = client.post("/login", data={"name": name, "token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303
    return r


def test_pages_need_sign_in(client):
    r = client.get("/runbooks/restart-it?service=checkout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    bad = client.post("/login", data={"name": "ana", "token": "wrong"})
    assert bad.status_code == 403


def test_one_click_page_runs_with_csrf_and_audit(client, app_and_store):
    _, store = app_and_store
    first = client.post("/api/v1/alerts", json=payload(alert("Manual")), headers=AUTH).json()
    link = first["alerts"][0]["link"]
    assert link == f"/runbooks/manual-fix?service=checkout&incident={first['incident_id']}"
    assert store.runs() == []  # not automatic: a link, no run
    sign_in(client)
    page = client.get(link)
    assert page.status_code == 200 and "echo restarting {{ service }}" in page.text
    assert 'value="checkout"' in page.text and "destructive" in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    form = {"csrf": csrf, "incident": str(first["incident_id"]), "p.service": "checkout",
            "mode": "run"}
    assert client.post("/runbooks/manual-fix/run", data={**form, "csrf": "forged"}
                       ).status_code == 403
    assert client.post("/runbooks/manual-fix/run", data=form).status_code == 400  # confirm
    r = client.post("/runbooks/manual-fix/run", data={**form, "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/runs/")
    (run,) = wait_runs_done(store, 1)
    assert run["started_by"] == "ana" and run["status"] == "successful"
    events = client.get(r.headers["location"] + "/events").text
    assert '"kind": "runbook.task"' in events and "event: done" in events
    audit = [(a["who"], a["action"]) for a in store.audit_log()]
    assert ("ana", "runbook.run") in audit and ("ana", "runbook.result") in audit
    timeline = [e for e in store.events(first["incident_id"]) if e.kind == "runbook.started"]
    assert timeline[0].actor == "ana"
    incident_page = client.get(f"/incidents/{first['incident_id']}")
    assert "manual-fix" in incident_page.text and "successful" in incident_page.text


def test_runbook_page_refuses_hostile_prefill(client):
    sign_in(client)
    page = client.get("/runbooks/restart-it", params={"service": "$(id)"})
    assert page.status_code == 200 and 'id="error"' in page.text
    assert 'id="run" disabled' in page.text
