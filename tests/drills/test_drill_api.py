"""The drill console's API: every move a person makes in the console, made by a script
with the token or by a signed-in person with the page's CSRF token, checked and
recorded as ``gameday drill``/``gameday incident`` would."""

from __future__ import annotations

import json
from pathlib import Path

import drillstate
import pytest
from starlette.testclient import TestClient

from gameday.core import events
from gameday.core.errors import ValidationError
from gameday.drills.master import spin
from gameday.incidents.incident import Incident
from gameday.store import Store
from gameday.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "drill-api-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def drill(tmp_path: Path):
    """A drill whose game day has declared its incident and paged ana: the store as the
    drill's process leaves it, with SLI windows in the store."""
    store = Store(tmp_path / "gameday.db")
    drill = drillstate.paged(store, tmp_path)
    drill_id, inc, run_dir = drill.id, drill.incident, drill.run_dir
    at = inc.events()[0].at_monotonic_ns
    from gameday.game.detection import SliLog

    windows = SliLog(run_dir / "sli.jsonl",
                     publish=lambda found: store.add_sli_windows(inc.id, found))
    for i, ratio in enumerate((1.0, 0.66, 0.67)):
        windows.write({"at_ns": at + i * 500_000_000, "total": 40, "success_ratio": ratio,
                       "p99_ms": 20.0, "outside": ratio < 0.99})
    windows.close()  # the game day's detector: to the file, and to the store
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    with TestClient(app) as client:
        yield client, store, drill_id, inc.id


def move(client, path: str, body: dict, status: int = 200) -> dict:
    r = client.post(path, json=body, headers=BEARER)
    assert r.status_code == status, r.text
    return r.json()


def test_the_snapshot_is_what_the_console_shows(drill):
    client, _, drill_id, incident_id = drill
    snap = client.get(f"/api/v1/drills/{drill_id}", headers=BEARER).json()
    assert snap["incident"]["severity"] == "SEV-3"
    assert snap["pages"] == [{"person": "ana", "role": "incident_commander",
                              "reason": "CheckoutAvailabilityBurn fired", "answered": False}]
    assert snap["runbook"]["link"] == \
        f"/runbooks/restart-replica?service=checkout&incident={incident_id}"
    assert snap["injects_left"] == ["exec-asks-eta", "support-tickets", "payments-slow"]
    assert [s["success_ratio"] for s in snap["sli"]] == [1.0, 0.66, 0.67]
    assert [s["t"] for s in snap["sli"]] == [0.0, 0.5, 1.0]
    later = client.get(f"/api/v1/drills/{drill_id}", headers=BEARER).json()
    assert later["next_sli_offset"] == snap["next_sli_offset"] > 0
    assert [e["kind"] for e in snap["events"]][-2:] == ["incident.declared", "page.sent"]


def test_a_drill_played_through_the_api(drill):
    client, store, drill_id, incident_id = drill
    d, i = f"/api/v1/drills/{drill_id}", f"/api/v1/incidents/{incident_id}"
    assert move(client, f"{i}/ack", {"as": "ana"})["events"] == [
        "incident.acknowledged", "role.assigned"]
    move(client, f"{d}/join", {"as": "fay", "role": "comms_lead"})
    move(client, f"{d}/join", {"as": "ben", "role": "responder"})
    # only the game master runs the clock, and a move the drill is not in a state for is
    # refused with the reason
    assert "only the game master" in move(client, f"{d}/pause", {"as": "ben"}, 403)["error"]
    move(client, f"{d}/pause", {"as": "gm"})
    assert "already paused" in move(client, f"{d}/pause", {"as": "gm"}, 409)["error"]
    move(client, f"{d}/resume", {"as": "gm"})
    fired = move(client, f"{d}/inject", {"as": "gm", "name": "exec-asks-eta"})["result"]
    assert fired["sender"] == "executive" and fired["by_hand"] is True
    assert "no inject" in move(client, f"{d}/inject", {"as": "gm", "name": "nope"}, 422)["error"]
    own = move(client, f"{d}/inject", {"as": "gm", "from": "sales", "message": "Any ETA?"})
    assert own["result"]["name"] == "by-hand-2"
    hint = move(client, f"{d}/hint", {"as": "ben"})["result"]
    assert hint["stage"] == "triage" and hint["cost"] == 5
    # the incident's moves
    wrong = move(client, f"{i}/severity", {"as": "ana", "severity": "SEV-9", "reason": "x"}, 422)
    assert wrong["field"] == "severity"
    assert move(client, f"{i}/severity", {"as": "ana", "severity": "SEV-2"}, 422)["field"] == \
        "reason"
    move(client, f"{i}/severity", {"as": "ana", "severity": "SEV-2",
                                    "reason": "a third of checkouts fail"})
    posted = move(client, f"{i}/comms", {"as": "fay", "audience": "executive"})
    assert posted["missing"] == []                       # the template says it all
    own_words = move(client, f"{i}/comms", {"as": "fay", "audience": "internal",
                                             "text": "We are looking into it."})
    assert own_words["missing"] == ["impact", "next update"]
    noted = move(client, f"{i}/note", {"as": "eli", "text": "Ben forgot to check the pool."})
    assert noted["warnings"][0]["phrase"] == "forgot"
    move(client, f"{i}/assign", {"as": "ana", "role": "incident_commander",
                                  "person": "chidi"})
    roles = Incident(store, incident_id).roles()
    assert roles["incident_commander"] == "chidi" and roles["deputy"] == "ana"
    move(client, f"{d}/end", {"as": "gm"})
    assert "is over" in move(client, f"{d}/hint", {"as": "ben"}, 409)["error"]
    kinds = [(e.kind, e.actor) for e in store.events(incident_id)]
    for expected in [("drill.joined", "fay"), ("drill.paused", "gm"), ("drill.hint", "ben"),
                     ("severity.changed", "ana"), ("comms.posted", "fay"),
                     ("note.added", "eli"), ("drill.ended", "gm")]:
        assert expected in kinds
    debrief = client.get(f"{d}/debrief", headers=BEARER).json()
    cards = {c["person"]: c for c in debrief["scorecards"]}
    assert {"ana", "fay", "ben", "chidi"} <= set(cards)
    assert any(x["measure"] == "hints" for x in cards["ben"]["deductions"])


@pytest.mark.parametrize("body, status, field", [
    ({"role": "responder"}, 422, "as"),                           # a script names the person
    ({"as": "x" * 80, "role": "responder"}, 422, "as"),
    ({"as": "ben", "role": "janitor"}, 422, "role"),
    ({"as": "ben\n", "role": "responder"}, 422, "as"),
])
def test_bad_moves_name_the_field(drill, body, status, field):
    client, _, drill_id, _ = drill
    assert move(client, f"/api/v1/drills/{drill_id}/join", body, status)["field"] == field


def test_bodies_that_are_not_objects_are_refused(drill):
    client, _, drill_id, _ = drill
    r = client.post(f"/api/v1/drills/{drill_id}/join", content=b"{nope", headers=BEARER)
    assert r.status_code == 400
    r = client.post(f"/api/v1/drills/{drill_id}/join", json=[1], headers=BEARER)
    assert r.status_code == 422
    assert client.post(f"/api/v1/drills/{drill_id}/dance", json={"as": "gm"},
                       headers=BEARER).status_code == 422
    assert client.post(f"/api/v1/drills/{drill_id}/join",
                       json={"as": "ben", "role": "responder"}).status_code == 401


def test_a_signed_in_person_moves_as_themselves_with_the_page_csrf(drill):
    client, store, drill_id, incident_id = drill
    client.post("/login", data={"name": "ana", "token": TOKEN})
    page = client.get(f"/drills/{drill_id}")
    assert page.status_code == 200 and "You are paged" in page.text
    cookie = client.cookies.get("gameday_session")
    csrf = client.app.state.auth.csrf_token(cookie)
    path = f"/api/v1/incidents/{incident_id}/ack"
    assert client.post(path, json={}).status_code == 403                 # no CSRF token
    assert client.post(path, json={}, headers={"X-CSRF-Token": "x" * 64}).status_code == 403
    assert client.post(path, json={"as": "ben"},
                       headers={"X-CSRF-Token": csrf}).status_code == 403  # not ben
    assert client.post(path, json={}, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert Incident(store, incident_id).roles()["incident_commander"] == "ana"
    checked = client.post("/api/v1/checks/note", json={"text": "It was human error."}).json()
    assert checked["warnings"][0]["phrase"] == "human error"
    draft = client.get(f"/api/v1/incidents/{incident_id}/comms/executive").json()
    assert "66" in draft["text"] or "67" in draft["text"]   # the live SLIs, not the alert's
    assert draft["required"] == ["impact", "next update"]


def test_the_stream_sends_the_console_then_ends_with_the_drill(drill):
    client, store, drill_id, incident_id = drill
    Incident(store, incident_id).record(events.drill_ended("done"), "gm")
    store.update_drill(drill_id, state="ended")
    client.post("/login", data={"name": "ana", "token": TOKEN})
    with client.stream("GET", f"/drills/{drill_id}/events?after=0&sli=0") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    messages = [json.loads(line[5:]) for line in body.splitlines()
                if line.startswith("data:") and line[5:].strip() != "{}"]
    assert len(messages) == 1 and messages[0]["over"] is True
    assert "event: over" in body
    kinds = [e["kind"] for e in messages[0]["events"]]
    assert kinds[0] == "drill.started" and kinds[-1] == "drill.ended"
    assert client.get(f"/drills/{drill_id}/events?after=x").status_code == 422


def test_the_debrief_page_and_the_drill_list(drill):
    client, _, drill_id, _ = drill
    client.post("/login", data={"name": "ana", "token": TOKEN})
    listing = client.get("/drills")
    assert listing.status_code == 200 and f'href="/drills/{drill_id}"' in listing.text
    assert "checkout-replica-crash" in listing.text        # a scenario to start
    debrief = client.get(f"/drills/{drill_id}/debrief")
    assert debrief.status_code == 200 and 'data-person="ana"' in debrief.text
    assert client.get("/drills/999").status_code == 404


def test_the_wheel_spins_only_what_happened_before_when_asked(tmp_path):
    store = Store(tmp_path / "h.db")
    with pytest.raises(ValidationError, match="past game day or incident"):
        spin(ROOT / "scenarios", seed=1, history=store)
    Incident.open(store, "t", scenario="checkout-replica-crash")          # a past game day
    picks = {spin(ROOT / "scenarios", seed=s, history=store)[0].name for s in range(8)}
    assert picks == {"checkout-replica-crash.yaml"}


def test_a_script_runs_the_linked_runbook_as_a_person(drill):
    client, store, _, incident_id = drill
    path = "/api/v1/runbooks/restart-replica/run"
    assert move(client, path, {"as": "ben", "params": {"service": "Bad Name"}},
                422)["field"] == "service"
    assert move(client, path, {"as": "ben", "params": ["x"]}, 422)["field"] == "params"
    assert move(client, path, {"as": "ben", "params": {"service": "checkout"},
                               "incident": "1"}, 422)["field"] == "incident"
    move(client, path, {"as": "ben", "params": {"service": "checkout"}, "incident": 999}, 404)
    move(client, "/api/v1/runbooks/no-such-book/run", {"as": "ben"}, 404)
    assert move(client, "/api/v1/runbooks/drain-replica/run",
                {"as": "ben", "params": {"service": "payments", "replica": "2"}},
                422)["field"] == "confirm"
    started = move(client, path, {"as": "ben", "params": {"service": "checkout"},
                                  "incident": incident_id, "check": True}, 202)
    run = store.run(started["run_id"])
    assert run["started_by"] == "ben" and run["incident_id"] == incident_id
    assert run["check_mode"]


def test_what_the_console_refuses(drill):
    client, store, drill_id, incident_id = drill
    d, i = f"/api/v1/drills/{drill_id}", f"/api/v1/incidents/{incident_id}"
    move(client, f"{i}/ack", {"as": "ana"})
    taken = move(client, f"{d}/join", {"as": "zed", "role": "incident_commander"}, 409)
    assert "ana is incident commander" in taken["error"]
    move(client, f"{d}/join", {"as": "zed", "role": "responder"})
    move(client, f"{d}/join", {"as": "ben", "role": "responder"})   # responders: many
    move(client, f"{i}/note", {"as": "ana", "text": "see <!--<script> for details"})
    client.post("/login", data={"name": "ana", "token": TOKEN})
    page = client.get(f"/drills/{drill_id}").text
    assert "<!--<script>" not in page and "\\u003c!--\\u003cscript\\u003e" in page
    assert client.get(f"/drills/{drill_id}/events?after=%C2%B2").status_code == 422
    move(client, f"{i}/resolve", {"as": "ana"})
    late = move(client, f"{i}/severity", {"as": "ana", "severity": "SEV-1", "reason": "x"}, 409)
    assert "too late" in late["error"]
    move(client, f"{i}/note", {"as": "ana", "text": "notes go on after the end"})


def test_an_admin_can_stand_in_for_the_game_master(drill):
    from gameday.people.auth import new_token, token_sha256

    client, store, drill_id, _ = drill
    admin, responder = new_token(), new_token()
    store.add_user("ada", "admin", token_sha256(admin), created_by="test")
    store.add_user("ben", "responder", token_sha256(responder), created_by="test")
    path = f"/api/v1/drills/{drill_id}/pause"
    assert client.post(path, json={}, headers={"Authorization": f"Bearer {responder}"}
                       ).status_code == 403
    r = client.post(path, json={}, headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200 and r.json()["by"] == "ada"
