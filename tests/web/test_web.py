"""gameday serve: Alertmanager webhooks, auth, idempotency, validation, pages."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from webhooks import AUTH, TOKEN, alert, payload, wait_runs_done, write_runbook

from gameday.core.errors import ValidationError
from gameday.runs.alerts import parse
from gameday.store import Store
from gameday.web.app import create_app


@pytest.fixture
def books(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    write_runbook(d, "restart-it", ["Boom"])
    write_runbook(d, "slow-fix", ["Slow"], sleep=1.0, concurrency=3)
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

    from gameday.cli.main import cli

    _, store = app_and_store
    first = client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
    wait_runs_done(store, 1)
    api = client.get(f"/api/v1/incidents/{first['incident_id']}", headers=AUTH).json()
    out = CliRunner().invoke(cli, ["--db", str(store.path), "incident", "show",
                                   str(first["incident_id"]), "--json"])
    assert json.loads(out.output) == api


def test_a_script_follows_an_incident_a_page_of_events_at_a_time(client, app_and_store):
    """``GET /api/v1/incidents/ID/events``: pages in recording order from ``after``; the
    last page's ``last_seq`` is where a script waits for what comes next, and what
    comes next is all it reads; a malformed parameter is named, an unknown incident
    is 404, and it wants a token like the rest of the API."""
    _, store = app_and_store
    first = client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
    incident_id = first["incident_id"]
    wait_runs_done(store, 1)
    url = f"/api/v1/incidents/{incident_id}/events"
    whole = client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH).json()["timeline"]

    read, after, more = [], 0, True
    while more:
        page = client.get(url, params={"after": after, "limit": 2}, headers=AUTH).json()
        assert len(page["events"]) <= 2
        read, after, more = read + page["events"], page["last_seq"], page["more"]
    assert sorted(read, key=lambda e: e["seq"]) == read
    assert sorted(whole, key=lambda e: e["seq"]) == read

    client.post("/api/v1/alerts", json=payload(alert(fingerprint="other")), headers=AUTH)
    new = client.get(url, params={"after": after}, headers=AUTH).json()
    assert [e["kind"] for e in new["events"]][:1] == ["alert.fired"]
    assert new["events"][0]["data"]["fingerprint"] == "other" and new["events"][0]["seq"] > after
    fired = client.get(url, params=[("kind", "alert.fired"), ("kind", "incident.declared")],
                       headers=AUTH).json()
    assert [e["kind"] for e in fired["events"]] == ["alert.fired", "incident.declared",
                                                    "alert.fired"]

    for params, field in [({"after": "-1"}, "after"), ({"after": "1.5"}, "after"),
                          ({"after": "9" * 400}, "after"),
                          ({"limit": "0"}, "limit"), ({"limit": "10001"}, "limit"),
                          ({"limit": "many"}, "limit"), ({"kind": "alert.fird"}, "kind")]:
        bad = client.get(url, params=params, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["field"] == field, (params, bad.text)
        assert len(bad.text) < 300  # what was given is quoted, not all of it
    missing = client.get(f"/api/v1/incidents/{incident_id + 1}/events", headers=AUTH)
    assert missing.status_code == 404 and f"no incident {incident_id + 1}" in missing.text
    assert client.get(url).status_code == 401


def test_a_new_firing_of_the_same_alert_joins_the_open_incident(client, app_and_store):
    _, store = app_and_store
    a = client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
    b = client.post("/api/v1/alerts", json=payload(alert(starts="2026-11-22T11:00:00Z")),
                    headers=AUTH).json()
    assert a["incident_id"] == b["incident_id"] and b["alerts"][0]["duplicate"] is False
    # the same runbook with the same parameters is queued or running: b joins that run
    assert b["alerts"][0]["run_id"] == a["alerts"][0]["run_id"]
    assert b["alerts"][0]["coalesced"].startswith(f"run {a['alerts'][0]['run_id']} is ")
    (run,) = wait_runs_done(store, 1)
    kinds = [e.kind for e in store.events(a["incident_id"])]
    assert kinds.count("alert.fired") == 2 and kinds.count("runbook.coalesced") == 1


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
    for i in range(5):  # five services: five runs, never more than the server's two at once
        client.post("/api/v1/alerts", json=payload(
            alert("Slow", fingerprint=f"f{i}", service=f"svc{i}"), group=f"g{i}"),
            headers=AUTH)
    runs = wait_runs_done(store, 5, timeout=120)
    moments = sorted([(r["started_at"], 1) for r in runs] + [(r["finished_at"], -1)
                                                               for r in runs])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak == 2, moments  # two at once, the rest queued
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
    # the commands with the alert's parameters filled in (quoted as a shell would need)
    assert page.status_code == 200 and "echo &#39;restarting checkout&#39;" in page.text
    assert "{{ service }}" not in page.text
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
    assert "echo &#39;restarting {{ service }}&#39;" in page.text  # never filled with it
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    refused = client.post("/runbooks/restart-it/run",
                          data={"csrf": csrf, "p.service": "$(id)", "mode": "run"})
    assert refused.status_code == 422 and 'id="error"' in refused.text


# -- errors are answered once, by the app's exception handlers ------------------------------
def test_not_found_is_a_page_for_people_and_json_for_the_api(client):
    api = client.get("/api/v1/incidents/999", headers=AUTH)
    assert api.status_code == 404 and "no incident 999" in api.json()["error"]
    assert client.get("/api/v1/runs/999", headers=AUTH).status_code == 404
    assert client.get("/api/v1/nothing-here", headers=AUTH).json() == {"error": "Not Found"}
    sign_in(client)
    for path, says in [("/incidents/999", "no incident 999"),
                       ("/runs/999", "no runbook run 999"),
                       ("/runbooks/no-such-book", "no runbook &#39;no-such-book&#39;"),
                       ("/nothing-here", "Not Found")]:
        page = client.get(path)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert says in page.text and 'id="error"' in page.text and "signed in as ana" in page.text


def test_an_unknown_runbook_names_the_known_ones_never_the_servers_directories(
        client, books):
    """A runbook link with a typo, or one renamed since the alert rule was written: the
    404 lists the runbooks there are, not where on the server's disk they live."""
    sign_in(client)
    for path in ("/runbooks/no-such-book", "/runbooks/no-such-book?service=checkout"):
        page = client.get(path)
        assert page.status_code == 404 and "known: manual-fix, restart-it, slow-fix" in page.text
        assert str(books) not in page.text and "/runbooks/," not in page.text
    api = client.post("/api/v1/runbooks/no-such-book/run", headers=AUTH,
                      json={"params": {"service": "checkout"}, "as": "ana"})
    assert api.status_code == 404 and str(books) not in api.json()["error"]
    assert "restart-it" in api.json()["error"]


def test_run_keeps_what_was_typed_when_it_says_no(client, app_and_store):
    """Run with a value the runbook refuses, or without ticking a destructive one's
    confirmation: the same page again, saying why, with what the person typed still in
    the form (not an error page and the alert's values back), and nothing started."""
    _, store = app_and_store
    sign_in(client)
    page = client.get("/runbooks/manual-fix?service=checkout")
    assert 'id="run" disabled' not in page.text and 'id="confirm" required' in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    typed = {"csrf": csrf, "p.service": "Checkout EU", "mode": "run", "confirm": "yes"}
    again = client.post("/runbooks/manual-fix/run", data=typed)
    assert again.status_code == 422 and 'id="error"' in again.text
    assert 'value="Checkout EU"' in again.text and "Runbook manual-fix" in again.text
    assert 'id="run" disabled' not in again.text      # corrected, it runs
    unticked = client.post("/runbooks/manual-fix/run",
                           data={**typed, "p.service": "payments", "confirm": ""})
    assert unticked.status_code == 400 and "tick the confirmation" in unticked.text
    assert 'value="payments"' in unticked.text
    assert store.runs() == []


def test_schedules_page_says_when_this_server_does_not_run_them(client, tmp_path,
                                                                monkeypatch):
    """``gameday serve --no-scheduler`` (a replica, or schedules run as CronJobs): the
    page still shows each schedule's next moment, and says this server is not what
    starts it, so nobody waits on it for a game day."""
    from gameday.cli.main import cli

    sign_in(client)
    assert 'id="elsewhere"' not in client.get("/schedules").text  # no schedule, no word
    monkeypatch.setenv("GAMEDAY_DB", str(tmp_path / "serve.db"))
    added = CliRunner().invoke(cli, ["schedule", "add", "nightly",
                                     "scenarios/checkout-replica-crash.yaml", "--every", "6h"])
    assert added.exit_code == 0, added.output
    page = client.get("/schedules")
    assert "nightly" in page.text and 'id="elsewhere"' in page.text
    assert "--no-scheduler" in page.text and "Run now" not in page.text


def test_metrics_fails_in_text_for_prometheus(tmp_path, postgres, swept_once):
    """Prometheus reads ``/metrics`` as text and shows a failed scrape's body: the store
    gone (PostgreSQL restarted or failed over) is a 503 in a line of text with
    Retry-After, never the HTML page people get; so are 401 and 403."""
    import psycopg

    from gameday.store import Store

    url = postgres.database()
    store = Store(url)
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    try:
        with TestClient(app) as client:  # no sweep after the first (``swept_once``)
            assert client.get("/metrics", headers=AUTH).status_code == 200
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                              " datname = current_database() AND pid <> pg_backend_pid()")
            lost = client.get("/metrics", headers=AUTH)
            assert lost.status_code == 503 and lost.headers["retry-after"] == "5"
            assert lost.headers["content-type"].startswith("text/plain")
            assert lost.text == "the store cannot take requests now; retry\n"
            anonymous = client.get("/metrics")
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"] == "Bearer"
            assert anonymous.headers["content-type"].startswith("text/plain")
            wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 403 and "<html" not in wrong.text
            assert wrong.headers["content-type"].startswith("text/plain")
    finally:  # a failed assertion leaves no open connection to a later test
        store.close()


def test_unauthorized_is_401_for_machines_and_sign_in_for_people(client):
    for path in ["/api/v1/incidents/1", "/api/v1/runs/1", "/runs/1/events"]:
        r = client.get(path)
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
        assert r.headers["www-authenticate"] == "Bearer"
    for path in ["/incidents", "/incidents/1", "/incidents/1/review", "/runs/1"]:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"/login?next={path}"
    # a forged or expired session: people sign in again, the API says 403
    client.cookies.set("gameday_session", "ana|1|00|forged")
    assert client.get("/incidents", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/incidents/1").status_code == 403


def test_invalid_payload_names_the_field(client):
    r = client.post("/api/v1/alerts", json=payload(alert(fingerprint="")), headers=AUTH)
    assert r.status_code == 422
    assert r.json()["field"] == "alerts[0].fingerprint" and "non-empty" in r.json()["error"]


def test_deeply_nested_json_is_400_and_oversize_is_413(client, app_and_store):
    _, store = app_and_store
    deep = b"[" * 100_000 + b"]" * 100_000
    r = client.post("/api/v1/alerts", content=deep, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"].startswith("not JSON")
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    assert client.post("/api/v1/alerts", content=deep_object, headers=AUTH).status_code == 400
    from gameday.runs.alerts import MAX_BODY

    big = b" " * (MAX_BODY + 1)
    r = client.post("/api/v1/alerts", content=big, headers=AUTH)
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    assert store.incidents() == [] and store.runs() == []


# -- incident, review and run pages -----------------------------------------------------------
def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start:html.index("</table>", start)]


def test_the_incident_list_shows_a_page_at_a_time_newest_first(client, app_and_store):
    """A year of game days and alerts is thousands of incidents: the list shows the
    newest hundred and links to the older ones, page after page, the kind filter
    kept; a malformed ``before`` is named."""
    import re

    _, store = app_and_store
    kinds = {}
    for n in range(230):
        kind = "gameday" if n % 3 == 0 else "incident"
        kinds[store.create_incident(f"incident {n}", kind=kind)] = kind
    sign_in(client)

    def listed(url: str) -> tuple[list[int], str | None, str]:
        text = client.get(url).text
        ids = [int(i) for i in re.findall(r'<tr class="kind-row-\w+"><td><a href="/incidents/'
                                          r'(\d+)">', text)]
        older = re.search(r'href="(/incidents\?[^"]*before=\d+)" rel="next"', text)
        return ids, older.group(1).replace("&amp;", "&") if older else None, text

    seen, url = [], "/incidents"
    while url:
        ids, url, text = listed(url)
        assert len(ids) == (100 if url else 30)
        seen += ids
    assert seen == sorted(kinds, reverse=True)
    assert "No older incidents." in text and 'rel="first"' in text

    seen, url = [], "/incidents?kind=gameday"
    while url:
        ids, url, text = listed(url)
        assert url is None or "kind=gameday" in url
        seen += ids
    assert seen == sorted((i for i, k in kinds.items() if k == "gameday"), reverse=True)
    first, older, text = listed("/incidents?kind=gameday")
    assert older is None and len(first) == 77 and 'id="pages"' not in text  # one page
    first, older, text = listed(f"/incidents?kind=gameday&before={first[40]}")
    assert older is None and len(first) == 36 and "No older game days." in text

    assert "No older incidents." in client.get(f"/incidents?before={min(kinds)}").text
    bad = client.get("/incidents?before=yesterday")
    assert bad.status_code == 422 and "before" in bad.text


def test_incident_page_lists_runs_and_reads_as_sentences(client, app_and_store):
    _, store = app_and_store
    first = client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
    (run,) = wait_runs_done(store, 1)
    sign_in(client)
    page = client.get(f"/incidents/{first['incident_id']}")
    assert page.status_code == 200
    assert '<meta name="viewport"' in page.text
    assert 'id="severity">SEV-2<' in page.text and 'id="state">declared<' in page.text
    runs = section(page.text, "runs")
    assert f'href="/runs/{run["id"]}"' in runs and "restart-it" in runs
    assert "successful" in runs and "service=checkout" in runs
    timeline = section(page.text, "timeline")
    kinds = [e.kind for e in store.events(first["incident_id"])]
    assert timeline.count("<tr") == len(kinds) + 1         # a header, then every event
    for sentence in ["Boom from alertmanager", "SEV-2 on Boom",
                     "restart-it: successful (rc 0)", "say the service"]:
        assert sentence in timeline
    assert 'class="num">0.00<' in timeline                  # seconds from the first event
    # the sentences, never the payloads: no JSON anywhere on the page
    for raw in ('{"', "&#34;", '"labels"', "fingerprint", "annotations"):
        assert raw not in page.text
    assert "/review" not in page.text                       # no run directory, no review


def test_review_is_served_from_the_run_directory(client, app_and_store, tmp_path):
    from gameday.incidents.incident import Incident

    _, store = app_and_store
    run_dir = tmp_path / "runs" / "2026-11-22-drill"
    run_dir.mkdir(parents=True)
    (run_dir / "review.html").write_text(
        "<!doctype html><h1>Incident review: drill</h1><svg><rect/></svg>")
    reviewed = Incident.open(store, "drill", run_dir=str(run_dir))
    unwritten = Incident.open(store, "still running", run_dir=str(tmp_path / "empty"))
    webhook = Incident.open(store, "from alertmanager")
    sign_in(client)
    page = client.get(f"/incidents/{reviewed.id}")
    assert f'href="/incidents/{reviewed.id}/review"' in page.text
    assert str(tmp_path) not in page.text                  # never a path on the server
    review = client.get(f"/incidents/{reviewed.id}/review")
    assert review.status_code == 200 and "Incident review: drill" in review.text
    assert "<svg><rect/></svg>" in review.text
    assert "default-src 'none'" in review.headers["content-security-policy"]
    for inc, says in [(unwritten, "has no review yet"), (webhook, "only game days")]:
        missing = client.get(f"/incidents/{inc.id}/review")
        assert missing.status_code == 404 and says in missing.text
        assert str(tmp_path) not in missing.text
        assert "/review" not in client.get(f"/incidents/{inc.id}").text
    assert client.get("/incidents/999/review").status_code == 404


def test_run_page_replays_a_run_from_another_process(client, app_and_store, books, tmp_path):
    """A game day's run (recorded by ``runs.run``, never in this server's streams) is
    replayed from the incident's timeline, on the page and as an event stream."""
    from gameday.incidents.incident import Incident
    from gameday.runbooks.runbook import find
    from gameday.runs import run as runs

    _, store = app_and_store
    incident = Incident.open(store, "checkout is failing")
    incident.declare("SEV-3", "gameday", alert="Boom")
    runs.run(store, find("restart-it", books), {"service": "checkout"}, tmp_path / "gd",
             incident=incident, who="gameday")
    (run,) = store.runs(incident_id=incident.id)
    sign_in(client)
    listed = section(client.get(f"/incidents/{incident.id}").text, "runs")
    assert f'href="/runs/{run["id"]}"' in listed and "gameday" in listed
    page = client.get(f"/runs/{run['id']}")
    assert page.status_code == 200 and "EventSource" not in page.text   # nothing to wait for
    output = page.text[page.text.index('id="output"'):page.text.index("</pre>")]
    assert "started  restart-it" in output
    assert "task     ok       say the service" in output
    assert "  | restarting checkout" in output
    assert output.rstrip().endswith("finished: successful (rc 0)</span>")
    stream = client.get(f"/runs/{run['id']}/events").text
    items = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: ")]
    assert [i["kind"] for i in items[:-1]][-1] == "runbook.finished"
    assert all(i["text"] for i in items[:-1]) and stream.rstrip().endswith(
        'event: done\ndata: {"status": "successful", "rc": 0}')
    api = client.get(f"/api/v1/runs/{run['id']}", headers=AUTH).json()
    assert [e["kind"] for e in api["events"]] == [i["kind"] for i in items[:-1]]


def test_live_run_page_streams_sentences(client, app_and_store):
    from gameday.core.sentences import describe

    _, store = app_and_store
    first = client.post("/api/v1/alerts", json=payload(alert()), headers=AUTH).json()
    run_id = first["alerts"][0]["run_id"]
    sign_in(client)
    stream = client.get(f"/runs/{run_id}/events").text      # follows until it ends
    task = next(json.loads(line[6:]) for line in stream.splitlines()
                if line.startswith("data: ") and '"runbook.task"' in line)
    assert task["text"] == describe("runbook.task", "", task)   # the terminal's line
    assert "event: done" in stream
    wait_runs_done(store, 1)
    page = client.get(f"/runs/{run_id}").text
    assert "say the service" in page and "finished: successful (rc 0)" in page


# -- layering -----------------------------------------------------------------------------------
def test_web_never_imports_the_game_day_orchestration():
    """gameday.web sits beside the game day, not above it: it may use the store, the
    incident, events, policy, routing, runs, runbooks, alerts, auth and rendering."""
    import subprocess
    import sys

    forbidden = ("gameday.game.run", "gameday.game.responders", "gameday.targets.base",
                 "gameday.game.detection", "gameday.game.control")
    code = ("import sys, gameday.web.app; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('gameday')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert "gameday.web.app" in loaded
    assert [m for m in loaded if m.startswith(forbidden)] == []
    assert "jinja2" not in "".join(
        p.read_text() for p in (Path(__file__).parents[2] / "gameday" / "web").glob("*.py")
    ), "pages render through gameday.core.render.templates(), the one environment"


def test_a_runbook_for_a_game_day_on_another_host_is_refused(client, app_and_store, tmp_path):
    """A drill started by another replica keeps its sandbox in a run directory on that
    host: a run asked of this one is refused with where to go, never run against this
    host's sandbox instead; once the game day is over the incident's runbooks run here."""
    _, store = app_and_store
    elsewhere = store.create_incident("drill", scenario="checkout-replica-crash",
                                      run_dir=str(tmp_path / "on-another-host"), kind="drill")
    store.update_incident(elsewhere, state="declared")
    body = {"as": "ana", "params": {"service": "checkout"}, "incident": elsewhere}
    refused = client.post("/api/v1/runbooks/restart-it/run", json=body, headers=AUTH)
    assert refused.status_code == 409 and "runs on another host" in refused.json()["error"]
    assert store.runs() == []  # nothing queued
    store.update_incident(elsewhere, state="resolved")
    assert client.post("/api/v1/runbooks/restart-it/run", json=body,
                       headers=AUTH).status_code == 202


def test_a_game_day_on_a_teams_service_runs_its_runbooks_from_any_replica(
        client, app_and_store, tmp_path):
    """A drill on a team's own service, started by another replica: its run directory is
    not here, but its world is the project's (the inventory its lease keeps), so a run
    asked of this replica goes ahead there, not on this host's sandbox."""
    _, store = app_and_store
    elsewhere = store.create_incident("drill", scenario="checkout-frozen",
                                      run_dir=str(tmp_path / "on-another-host"), kind="drill")
    store.update_incident(elsewhere, state="declared")
    store.take_lease(elsewhere, run_dir=str(tmp_path / "on-another-host"), host="replica-a",
                     pid=1, started=1, target="service")
    store.record_undo(elsewhere, {"target": "service", "faults": [], "rollbacks": [],
                                  "env": {"GAMEDAY_INVENTORY": "/etc/team/hosts.ini"}})
    body = {"as": "ana", "params": {"service": "checkout"}, "incident": elsewhere}
    answer = client.post("/api/v1/runbooks/restart-it/run", json=body, headers=AUTH)
    assert answer.status_code == 202, answer.text
    (run,) = store.runs()
    assert run["incident_id"] == elsewhere and "hosts.ini" in run["world"], run["world"]
