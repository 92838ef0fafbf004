"""gameday serve against what a careless or hostile sender gives it: text no store keeps,
numbers past 64 bits, fields of the wrong type, values that would be a command's
options. Each is refused with the field named (422), before anything is recorded or
run; pages never answer 500 for what a store already holds, and never run inside
another site's frame."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient
from webhooks import AUTH, TOKEN, alert, payload, write_runbook

from gameday.core import events
from gameday.incidents.incident import Incident
from gameday.runs.alerts import parse
from gameday.runs.intake import Delivery, Intake
from gameday.store import Store
from gameday.web.app import create_app


@pytest.fixture
def books(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    write_runbook(d, "restart-it", ["Boom"])
    (d / "scale-it.yml").write_text(yaml.safe_dump([{
        "name": "scale-it", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                 "gameday_runbook": {"summary": "scale", "alerts": ["Scale"], "auto": False,
                                     "parameters": {"replicas": {"type": "integer",
                                                                 "required": True}}}},
        "tasks": [{"name": "say", "ansible.builtin.command": {
            "argv": ["echo", "scale to {{ replicas }}"]}}]}]))
    return d


@pytest.fixture
def served(tmp_path: Path, books: Path):
    store = Store(tmp_path / "serve.db")
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data", runbook_dir=books)
    with TestClient(app) as client:
        yield client, store


def post_raw(client: TestClient, body: str):
    return client.post("/api/v1/alerts", content=body.encode(),
                       headers={**AUTH, "Content-Type": "application/json"})


def spelled(where: str, text: str) -> str:
    """An Alertmanager notification as JSON text, with ``text`` (JSON escapes kept as
    written) as the value of ``where``: the group key, a label or the summary."""
    body = payload(alert(annotations={"summary": "SUMMARY"}, service="SERVICE"),
                   group="GROUP")
    return json.dumps(body).replace({"groupKey": '"GROUP"', "service": '"SERVICE"',
                        "summary": '"SUMMARY"'}[where], f'"{text}"')


@pytest.mark.parametrize("where,field", [
    ("groupKey", "groupKey"), ("service", "alerts[0].labels.service"),
    ("summary", "alerts[0].annotations.summary")])
@pytest.mark.parametrize("text", [r"db \ud800 down", r"db \u0000 down", "db \\udfff"])
def test_text_no_store_keeps_is_refused_by_the_webhook(served, where, field, text):
    client, store = served
    answer = post_raw(client, spelled(where, text))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert store.incidents() == []  # nothing recorded


def test_an_emoji_spelled_as_a_surrogate_pair_is_text(served):
    client, store = served
    answer = post_raw(client, spelled("summary", r"checkout down \ud83d\udd25"))
    assert answer.status_code == 200, answer.text
    (incident,) = store.incidents()
    assert incident["title"] == "checkout down \N{FIRE}"


@pytest.mark.parametrize("change,field", [
    (lambda p: p.update(truncatedAlerts=True), "truncatedAlerts"),
    (lambda p: p.update(truncatedAlerts=10**30), "truncatedAlerts"),
    (lambda p: p.update(receiver=7), "receiver"),
    (lambda p: p["alerts"][0].update(startsAt="garbage"), "alerts[0].startsAt"),
    (lambda p: p["alerts"][0].update(endsAt="yesterday"), "alerts[0].endsAt"),
])
def test_fields_of_the_wrong_kind_are_named(served, change, field):
    client, store = served
    body = payload(alert())
    change(body)
    answer = client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["field"] == field, answer.text
    assert store.incidents() == []


def test_alertmanagers_own_times_are_taken():
    for starts in ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00.123456789Z",
                   "2026-11-22T10:00:00+01:00"):
        note = parse(payload(alert(starts=starts)))
        assert note.alerts[0].starts_at == starts
    assert parse(payload({**alert(), "endsAt": "0001-01-01T00:00:00Z"})).alerts[0]


def test_a_note_no_store_keeps_is_refused_and_pages_never_fail_on_kept_text(served):
    client, store = served
    incident_id = client.post("/api/v1/alerts", json=payload(alert()),
                              headers=AUTH).json()["incident_id"]
    refused = client.post(f"/api/v1/incidents/{incident_id}/note", headers=AUTH,
                          content=b'{"as": "ana", "text": "hi \\udfff"}')
    assert refused.status_code == 422 and refused.json()["field"] == "text", refused.text
    # text an older gameday kept (SQLite takes a lone surrogate): the page still opens
    Incident(store, incident_id).record(events.note_added("kept \udfff"), "ana")
    page = client.get(f"/incidents/{incident_id}", headers=AUTH)
    assert page.status_code == 200 and "ana: kept ?" in page.text


def test_numbers_past_64_bits_and_odd_ids_are_named(served):
    client, _ = served
    drill = client.post("/api/v1/drills", headers=AUTH,
                        json={"as": "ana", "incident": 10**21})
    assert drill.status_code == 422 and drill.json()["field"] == "incident", drill.text
    for odd in ("99999999999999999999", "\N{SUPERSCRIPT TWO}", "-1", "abc"):
        page = client.get("/runbooks/restart-it", params={"incident": odd}, headers=AUTH)
        assert page.status_code == 200 and "incident: must be an id" in page.text, odd
    for since in ("99999999999d", "0001-01-01"):
        insights = client.get("/insights", params={"since": since}, headers=AUTH)
        assert insights.status_code == 200 and "from 1970 on" in insights.text, since


def test_a_run_is_never_started_from_a_value_it_does_not_understand(served):
    client, store = served
    url = "/api/v1/runbooks/scale-it/run"
    negative = client.post(url, headers=AUTH, json={"params": {"replicas": "-5"}, "as": "ana"})
    assert negative.status_code == 422 and negative.json()["field"] == "replicas"
    assert "would read it as an option" in negative.json()["error"]
    sloppy = client.post(url, headers=AUTH,
                         json={"params": {"replicas": "2"}, "as": "ana", "check": "true"})
    assert sloppy.status_code == 422 and sloppy.json()["field"] == "check"
    assert store.runs() == []
    fine = client.post(url, headers=AUTH,
                       json={"params": {"replicas": "2"}, "as": "ana", "check": True})
    assert fine.status_code == 202, fine.text
    assert store.run(fine.json()["run_id"])["check_mode"]


def test_a_value_the_runbook_refuses_is_rejected_before_the_trust_policy_holds_it(
        tmp_path, books):
    """An automatic runbook not yet trusted waits for a click; a click could never start
    it with a label value the runbook refuses, so the alert is told that instead."""
    store = Store(tmp_path / "s.db")
    intake = Intake(store, runbook_dir=books, hold=lambda runbook, version, kind: "never verified")
    bad = parse(payload(alert(service="x; rm -rf / {{ 7*7 }}")))
    (answer,), _ = intake.handle([Delivery(bad, "alertmanager")])
    (said,) = answer["alerts"]
    assert "held" not in said and "service" in said["error"], said
    kinds = [e.kind for e in store.events(said["incident_id"])]
    assert "runbook.rejected" in kinds and "runbook.held" not in kinds
    good = parse(payload(alert(fingerprint="other")))
    (answer,), _ = intake.handle([Delivery(good, "alertmanager")])
    assert answer["alerts"][0]["held"] == "never verified"


def test_pages_are_never_framed_or_cached(served):
    client, _ = served
    for url in ("/incidents", "/runbooks/restart-it?service=checkout"):
        page = client.get(url, headers=AUTH)
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_json_is_utf8_on_the_wire_so_no_encoding_spells_past_the_checks(served, encoding):
    """json.loads would take UTF-16 and -32 from bytes, where a NUL or a lone surrogate
    is spelled with bytes the check does not look for: such a body is refused whole."""
    client, store = served
    body = spelled("service", "db down").replace("db down", "a\\u0000b")
    for url, content in (("/api/v1/alerts", body),
                         ("/api/v1/incidents/1/note", '{"as": "ana", "text": "hi"}')):
        answer = client.post(url, content=content.encode(encoding),
                             headers={**AUTH, "Content-Type": "application/json"})
        assert answer.status_code == 400, (url, answer.text)
    assert store.incidents() == []
