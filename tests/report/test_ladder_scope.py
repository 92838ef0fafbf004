"""The report's trust ladder says what the intake does now, whatever window or filter
the report is read with: a runbook a game day proved ten days ago runs by itself from a
real alert today, so a report of the last week (or of real incidents only, or of
another service) must not call it unproven and its alert held back."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_insights as history  # noqa: E402 - the report tests' timelines

from gameday.core import clock  # noqa: E402
from gameday.report import insights  # noqa: E402
from gameday.report.trust import PROVEN, Automation, runbook_trust  # noqa: E402
from gameday.store import Store  # noqa: E402

POLICY = Automation(require="proven")
BOOKS = [SimpleNamespace(name="restart-replica", alerts=("ServiceReplicaDown",), auto=True)]


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
@pytest.mark.parametrize("scope", ["last week", "real incidents", "another service",
                                   "another team", "before it"])
def test_the_ladder_is_the_intakes_whatever_the_reports_scope(tmp_path, scope):
    store = Store(tmp_path / "gameday.db")
    now = history.NOW = clock.now().replace(microsecond=0)
    history.gameday(store, days_ago=10)  # proved restart-replica ten days ago
    history.alert_incident(store, days_ago=2)
    assert runbook_trust(store, "restart-replica", POLICY, now=now).level == PROVEN
    narrowed = {"last week": insights.Scope(since=now - timedelta(days=7)),
                "real incidents": insights.Scope(kind="incident"),
                "another service": insights.Scope(service="payments"),
                "another team": insights.Scope(team="pay"),
                "before it": insights.Scope(until=now - timedelta(days=20))}[scope]
    report = insights.build(store, narrowed, runbooks=BOOKS, policy=POLICY, now=now)
    (rung,) = report.trust["runbooks"]
    assert (rung["runbook"], rung["level"]) == ("restart-replica", PROVEN), rung["why"]
    assert report.trust["held"] == []
    (fresh,) = report.runbooks
    assert (fresh.status, fresh.verifications) == ("verified", 1)
    assert report.stale_alerts == []
    store.close()
