"""A real alert for a service a game day or drill is at work on, on the team's own
systems (its fault can fire the team's real alerts, and their Alertmanager may well
notify ``gameday serve``): the real incident is opened and answered as any other (its
automatic runbook is queued, nothing held back for the rehearsal), and each timeline
says what is beside it. A rehearsal in a world gameday builds (the sandbox) or one that
has ended is no cause of a real alert, and says nothing."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient
from webhooks import AUTH, TOKEN, alert, payload, wait_runs_done, write_runbook

from gameday.core import events
from gameday.incidents.incident import Incident
from gameday.store import Store


def rehearsal(store: Store, target: str, *, kind: str = "gameday",
              ended: bool = False) -> Incident:
    """A game day (or drill) on checkout, its target ready, its fault in."""
    incident = Incident.open(store, f"Game day: checkout on {target}", service="checkout",
                             scenario="checkout-latency", kind=kind)
    incident.record(events.target_ready(target), "gameday")
    incident.record(events.fault_injected("slow", "succeeded", {}, 0.1), "chaos")
    incident.declare("SEV-3", "gameday", alert="CheckoutDown")
    if ended:
        incident.resolve("gameday")
    return incident


def real_alert(store: Store, tmp_path: Path, n: int) -> dict:
    """``CheckoutDown`` through the webhook, its group's own incident; the answer."""
    from gameday.web.app import create_app

    runbooks = tmp_path / "runbooks"
    runbooks.mkdir(exist_ok=True)
    write_runbook(runbooks, "restart-checkout", ["CheckoutDown"])
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data",
                     runbook_dir=runbooks)
    with TestClient(app) as client:
        answer = client.post("/api/v1/alerts", headers=AUTH, json=payload(
            alert("CheckoutDown", fingerprint=f"real{n}"),
            group=f'{{}}:{{alertname="CheckoutDown", n="{n}"}}'))
        assert answer.status_code == 200, answer.text
        wait_runs_done(store, n)
    return dict(answer.json())


def kinds(store: Store, incident_id: int) -> list[str]:
    return [e.kind for e in store.events(incident_id)]


def test_a_real_alert_beside_a_rehearsal_on_the_teams_own_service(any_store, tmp_path):
    store = any_store
    game = rehearsal(store, "service")
    drill = rehearsal(store, "kubernetes", kind="drill")
    rehearsal(store, "sandbox")              # gameday's own world: no cause of real alerts
    rehearsal(store, "service", ended=True)  # over: its fault is out

    real_alert(store, tmp_path, 1)
    (real,) = [row for row in store.incidents() if row["kind"] == "incident"]
    live = [e.data for e in store.events(real["id"]) if e.kind == "rehearsal.live"]
    assert [(d["incident"], d["kind"], d["target"]) for d in live] == [
        (game.id, "gameday", "service"), (drill.id, "drill", "kubernetes")]
    (run,) = store.runs()  # answered as any real alert: its runbook ran, nothing held
    assert run["incident_id"] == real["id"] and run["status"] == "successful"
    assert "runbook.held" not in kinds(store, real["id"])
    for side in (game, drill):
        (beside,) = [e.data for e in store.events(side.id) if e.kind == "real_incident.beside"]
        assert beside == {"incident": real["id"], "alert": "CheckoutDown",
                          "service": "checkout"}
    others = [row["id"] for row in store.incidents()
              if row["id"] not in (game.id, drill.id, real["id"])]
    assert all("real_incident.beside" not in kinds(store, i) for i in others)


def test_a_real_alert_with_no_rehearsal_beside_it_says_nothing(any_store, tmp_path):
    rehearsal(any_store, "sandbox")
    real_alert(any_store, tmp_path, 1)
    (real,) = [row for row in any_store.incidents() if row["kind"] == "incident"]
    assert "rehearsal.live" not in kinds(any_store, real["id"])
