"""gameday serve: webhooks, pages, real processes, replicas on PostgreSQL, on Kubernetes."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def swept_once(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """``gameday serve``'s sweep (``create_app``'s lifespan) runs once, at start, and not
    again in the test; the event is set once it has. A test that ends the database's
    connections waits for it first: a sweep that found them gone before the request did
    would take the one 503 a failover costs."""
    from gameday.web import app as web_app

    swept, sweep = threading.Event(), web_app.Dispatcher.sweep

    def sweep_once(self):  # type: ignore[no-untyped-def]
        try:
            return sweep(self)
        finally:
            swept.set()

    monkeypatch.setattr(web_app.Dispatcher, "sweep", sweep_once)
    monkeypatch.setattr(web_app, "SWEEP_EVERY_S", 3600.0)
    return swept
