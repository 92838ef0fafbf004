"""``/metrics`` keeps rehearsals apart from real work: the alerts a game day's own
Alertmanager delivered and the runs a game day or a drill queued are labelled with their
kind, never counted in the series a real on-call watches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient
from webhooks import alert, payload

from gameday.game.receiver import AlertReceiver
from gameday.incidents.incident import Incident
from gameday.runs import run as runs
from gameday.runs.alerts import decode
from gameday.store import Store
from gameday.store.leases import owner

TOKEN = "metrics-kinds-token-0123456789ab"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def scrape(store: Store, tmp_path: Path, before: dict | None = None
           ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """gameday serve's ``/metrics`` as Prometheus reads it (``before``: a webhook
    notification its intake takes first)."""
    from prometheus_client.parser import text_string_to_metric_families

    from gameday.web import insights as view
    from gameday.web.app import create_app

    view._cache.clear()
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    app.router.routes += [Route("/metrics", view.metrics)]
    with TestClient(app) as client:
        if before is not None:
            taken = client.post("/api/v1/alerts", json=before, headers=AUTH)
            assert taken.status_code == 200, taken.text
        body = client.get("/metrics", headers=AUTH)
    assert body.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body.text) for s in f.samples}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path):
    """On each database: the kinds are read with SQL (``kind_sql``, a join)."""
    if request.param == "sqlite":
        found = Store(tmp_path / "gameday.db")
    else:
        found = Store(request.getfixturevalue("postgres").database())
    yield found
    found.close()


def test_a_rehearsals_alerts_and_runs_are_labelled_as_such(store: Store, tmp_path: Path):
    drill = Incident.open(store, "checkout is slow", scenario="latency", service="checkout",
                          kind="drill")
    # the drill's own Alertmanager delivers its alert to the game day's receiver
    receiver = AlertReceiver(store, drill.id, lambda a: None, lambda a: None)
    note = decode(json.dumps(payload(alert("CheckoutSlow", fingerprint="drill1"),
                                     group='{}:{alertname="CheckoutSlow"}')).encode())
    receiver.take(note.alerts[0])
    store.create_run(drill.id, "restart-replica", {}, "ana", False, owner=owner(),
                     kind=runs.kind(drill))
    real = Incident.open(store, "payments down", service="payments")
    store.create_run(real.id, "restart-replica", {}, "bob", False, owner=owner(),
                     kind=runs.kind(real))
    store.create_run(None, "restart-replica", {}, "bob", False, owner=owner(),
                     kind=runs.kind(None))

    samples = scrape(store, tmp_path, before=payload(alert("PaymentsDown",
                                                           fingerprint="real1")))

    received = {dict(labels).get("kind"): value for (name, labels), value in samples.items()
                if name == "gameday_alerts_received_total"}
    assert received == {"drill": 1, "gameday": 0, "incident": 1}
    queued = {dict(labels).get("kind"): value for (name, labels), value in samples.items()
              if name == "gameday_runbook_runs" and dict(labels)["status"] == "queued"}
    assert queued == {"drill": 1, "gameday": 0, "incident": 2}
