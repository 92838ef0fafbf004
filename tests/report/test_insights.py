"""Learning across game days: the report over hand-built stores whose figures are known
exactly, over real sandbox game days, as a page, as ``/metrics``, and as a command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Route
from starlette.testclient import TestClient

from gameday.core import clock, events
from gameday.core.errors import ValidationError
from gameday.game.scoring import compute_metrics
from gameday.incidents.incident import Incident
from gameday.report import freshness, insights
from gameday.report.insights import Scope, distribution, percentile
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
NOW: datetime  # when the test runs (see _now): the CLI's --since counts from it


@pytest.fixture(autouse=True)
def _now(request):
    """Each test's NOW is the clock's, pinned first where the test runs at each of the
    pinned moments (conftest.MOMENTS)."""
    global NOW
    if "moment" in request.fixturenames:
        request.getfixturevalue("moment")
    NOW = clock.now().replace(microsecond=0)


def day(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


def week(days_ago: float) -> str:
    year, number, _ = (NOW - timedelta(days=days_ago)).isocalendar()
    return f"{year}-W{number:02d}"
TOKEN = "insights-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE_NS = 10**15


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The report's store on each database: the SQL it reads with differs between them
    (``incident_facts.derive_sql``). The CLI and the pages are pointed at it too."""
    if request.param == "sqlite":
        found = Store(tmp_path / "gameday.db")
    else:
        found = Store(request.getfixturevalue("postgres").database())
        monkeypatch.setenv("GAMEDAY_DB", found.url)
    yield found
    found.close()


def ns(seconds: float) -> int:
    return BASE_NS + int(round(seconds * 1e9))


def opened(store: Store, incident_id: int, days_ago: float) -> None:
    at = (NOW - timedelta(days=days_ago)).isoformat(timespec="microseconds")
    insights.connection(store).execute("UPDATE incidents SET created_at = ? WHERE id = ?",
                                       (at, incident_id))


def gameday(store: Store, *, scenario: str = "replica-crash", service: str = "checkout",
            team: str = "shop", days_ago: float = 1.0, ttd: float = 2.0, tta: float = 1.0,
            tte: float = 1.5, ttfc: float = 2.0, ttm: float = 10.0, ttr: float = 12.0,
            severity: str = "SEV-2", measured: str = "SEV-2", model: str = "hybrid",
            runbook: str | None = "restart-replica", runbook_status: str = "successful",
            contains: bool = True, escalate: bool = False, mode: str = "auto",
            kind: str | None = None) -> int:
    """A game day's timeline with known spans (seconds from the fault)."""
    inc = Incident.open(store, f"game day {scenario}", service=service, scenario=scenario,
                        kind=kind)
    provider = {"module": "m", "func": "f", "arguments": {}}
    inc.record(events.fault_injected("kill", "succeeded", provider, 0.1), "chaos", at_ns=ns(0))
    inc.record(events.alert_fired("Burn", {"service": service, "team": team}, {}), "gameday",
               at_ns=ns(ttd))
    inc.record(events.incident_declared(severity, "Burn", measured_severity=measured,
                                        model=model, mode=mode), "gameday",
               at_ns=ns(ttd + 0.1))
    inc.record(events.incident_acknowledged("auto"), "ana", at_ns=ns(ttd + tta))
    inc.record(events.role_assigned("scribe", "eli"), "ana", at_ns=ns(ttd + 0.1 + tte / 2))
    inc.record(events.role_assigned("incident_commander", "chidi"), "chidi",
               at_ns=ns(ttd + 0.1 + tte))
    inc.record(events.comms_posted("internal", "we are on it", False), "fay",
               at_ns=ns(ttd + 0.1 + ttfc))
    if runbook:
        run_id = store.create_run(inc.id, runbook, {"service": service}, "gameday", False)
        start = ttm - 3 if contains else ttm + 1
        inc.record(events.runbook_started(runbook, {"service": service}, False, "a", run_id),
                   "gameday", at_ns=ns(start))
        inc.record(events.runbook_finished(runbook, runbook_status, 0, run_id=run_id),
                   "gameday", at_ns=ns(start + 1))
        store.update_run(run_id, status=runbook_status, finished_at=(
            NOW - timedelta(days=days_ago)).isoformat())
    if escalate:
        inc.record(events.incident_escalated("mitigation timed out", runbook), "gameday",
                   at_ns=ns(ttm - 0.5))
    if not contains:
        inc.record(events.fault_rolled_back("undo", "succeeded", provider, 0.1), "chaos",
                   at_ns=ns(ttm - 0.2))
    inc.record(events.mitigated(2.0, 100, 10, 10), "gameday", at_ns=ns(ttm))
    inc.record(events.incident_resolved("SLIs back"), "chidi", at_ns=ns(ttr))
    opened(store, inc.id, days_ago)
    return inc.id


def alert_incident(store: Store, *, service: str = "payments", team: str = "pay",
                   tta: float = 60.0, days_ago: float = 2.0) -> int:
    """A real incident: opened by an alert, no scenario, no fault on the record."""
    inc = Incident.open(store, "PaymentsDown", service=service)
    inc.record(events.alert_fired("PaymentsDown", {"service": service, "team": team}, {}),
               "alertmanager", at_ns=ns(0))
    inc.declare("SEV-2", "alertmanager", alert="PaymentsDown")
    inc.record(events.incident_acknowledged("pager"), "ana", at_ns=ns(tta))
    opened(store, inc.id, days_ago)
    return inc.id


RUNBOOKS = [SimpleNamespace(name=n, alerts=a) for n, a in
            (("restart-replica", ("ServiceReplicaDown",)), ("rollback-release", ()),
             ("disable-flag", ()))]


def rules(tmp_path: Path) -> list[Path]:
    path = tmp_path / "shop.rules.yml"
    path.write_text(
        "groups:\n- name: shop\n  rules:\n"
        "  - alert: CheckoutErrorsAfterDeploy\n    expr: up == 0\n    annotations:\n"
        "      runbook_url: '{{ $externalLabels.gameday_url }}/runbooks/rollback-release"
        "?service={{ $labels.service }}'\n"
        "  - alert: CheckoutLatencyBurn\n    expr: up == 0\n    annotations:\n"
        "      runbook_url: http://gameday:8080/runbooks/disable-flag?flag=fraud_check\n")
    return [path]


def build(store: Store, tmp_path: Path, scope: Scope | None = None) -> insights.Report:
    return insights.build(store, scope, runbooks=RUNBOOKS, rule_files=rules(tmp_path),
                          now=NOW)


# -- percentiles --------------------------------------------------------------------------
def test_percentiles_interpolate_between_closest_ranks():
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([1, 2, 3, 4], 0.9) == pytest.approx(3.7)
    assert percentile([7], 0.9) == 7
    assert distribution([None, 4, 1, 3, 2]) == {"n": 4, "p50": 2.5, "p90": 3.7}
    assert distribution([None]) == {"n": 0, "p50": None, "p90": None}


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_since_parses_ages_and_dates():
    assert insights.parse_since("30d", NOW) == NOW - timedelta(days=30)
    assert insights.parse_since("2w", NOW) == NOW - timedelta(days=14)
    assert insights.parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValidationError):
        insights.parse_since("last tuesday")


# -- a hand-built store ------------------------------------------------------------------
# -- exact figures per group, whatever the grouping ------------------------------------------
def test_every_group_matches_a_plain_sort(store, tmp_path):
    """Each group's p50/p90 (merged runs, bisected) equal a plain sort of its values,
    for every dimension and week, with ties, gaps and missing moments."""
    scenarios = [("crash", "checkout", "shop"), ("deploy", "checkout", "web"),
                 ("flag", "fraud", "risk")]
    for n in range(36):
        sc, service, team = scenarios[n % 3]
        gameday(store, scenario=sc, service=service, team=team, days_ago=(n * 5) % 41,
                ttd=1.0 + (n * 7) % 5, tta=0.5 + (n % 4) * 0.25, ttm=8.0 + (n * 13) % 17,
                ttr=30.0 + n % 3, severity=("SEV-1", "SEV-2", "SEV-3")[n % 3 if n % 5 else 1],
                measured="SEV-2", mode="drill" if n % 9 == 0 else "auto",
                kind="drill" if n % 9 == 0 else None)
    for n in range(6):
        alert_incident(store, service=("payments", "search")[n % 2], tta=float(10 * (n % 4)),
                       days_ago=n * 3)
    r = build(store, tmp_path)
    rows = insights.facts(store)
    for kind, section in r.response.items():
        mine = [f for f in rows if f.kind == kind]
        assert section["overall"]["n"] == len(mine)
        for metric in insights.METRICS:
            assert section["overall"]["metrics"][metric] == insights.distribution(
                getattr(f, metric) for f in mine)
        for dimension in insights.DIMENSIONS:
            groups = {insights.group(f, dimension) for f in mine}
            assert set(section[f"by_{dimension}"]) == groups
            for name, g in section[f"by_{dimension}"].items():
                members = [f for f in mine if insights.group(f, dimension) == name]
                assert g["n"] == len(members)
                for metric in insights.METRICS:
                    assert g["metrics"][metric] == insights.distribution(
                        getattr(f, metric) for f in members), (kind, dimension, name, metric)
        for w in r.trend[kind]:
            members = [f for f in mine if f.week == w["week"]]
            assert w["n"] == len(members)
            assert w["score"] == insights.distribution(f.score for f in members)
            for metric in insights.METRICS:
                assert w["metrics"][metric] == insights.distribution(
                    getattr(f, metric) for f in members)
    scores = r.outcomes["gameday"]["score_by_scenario"]
    for name, d in scores.items():
        assert d == insights.distribution(f.score for f in rows
                                          if f.kind == "gameday" and f.scenario == name)
    assert r.counts["drill"] == 4 and r.response["drill"]["overall"]["metrics"]["TTM"]["n"] == 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(0, 1e6, allow_nan=False)),
                min_size=1, max_size=60))
def test_every_group_is_sorted_from_one_sort_of_its_column(rows):
    """A column sorted once, then stably by group (ties in any order): each group's run
    is its values sorted, and its percentiles are those of a plain sorted list."""
    import numpy as np

    values = np.array([v for _, v in rows])
    order = np.argsort(values, kind="stable")
    runs, spans = insights.group_runs(values[order],
                                      np.array([g for g, _ in rows])[order], 5)
    assert [g for g, _, _ in spans] == list(range(5))
    for g, start, end in spans:
        expected = sorted(v for k, v in rows if k == g)
        assert runs[start:end].tolist() == expected
        if expected:
            for q in (0.5, 0.9):
                assert percentile(runs[start:end], q) == percentile(expected, q)


def test_a_report_pauses_the_cycle_collector_and_leaves_it_as_it_was(store):
    """Paused while the report is built (its objects hold no cycles), then as before."""
    import gc

    gameday(store)
    paused: list[bool] = []
    insights.build(store, timer=lambda stage: paused.append(not gc.isenabled()))
    assert paused == [True, True, True] and gc.isenabled()
    gc.disable()
    try:
        insights.build(store)
        assert not gc.isenabled()
    finally:
        gc.enable()


# -- verdicts and the pass rate ------------------------------------------------------------
def judged(store: Store, incident_id: int, status: str, failed: dict[str, str]) -> None:
    entry = events.gameday_verdict(status, {"passed": 0, "failed": 1, "deviated": 3}[status],
                                   failed)
    store.append(incident_id, entry.kind, "gameday", entry.data)


def test_the_pass_rate_counts_every_game_day(store, tmp_path):
    passed = [gameday(store) for _ in range(3)]
    late = gameday(store, tta=30.0)
    deviated = gameday(store, scenario="wrong-runbook", contains=False)
    cut = gameday(store)
    scheduled = gameday(store)  # before verdicts were recorded: its schedule run kept it
    unjudged = gameday(store)  # nothing on record
    drill = gameday(store, mode="drill", kind="drill")
    for i in passed:
        judged(store, i, "passed", {})
    judged(store, late, "failed", {"acknowledged within target": "took 30.00s, target 5s"})
    judged(store, deviated, "deviated", {"steady state after the fault": "deviated",
                                         "acknowledged within target": "late"})
    Incident(store, cut).record(events.gameday_interrupted("interrupted", "SIGINT"), "gameday")
    judged(store, drill, "failed", {"mitigated within target": "took 90.00s"})
    run = store.claim_schedule_run("nightly", "2026-11-20T02:00:00+00:00", target="sandbox",
                                   by="test")
    assert run is not None
    store.update_schedule_run(run, status="failed", incident_id=scheduled)
    later = store.claim_schedule_run("nightly", "2026-11-21T02:00:00+00:00", target="sandbox",
                                     by="test")
    assert later is not None
    store.update_schedule_run(later, status="passed", incident_id=passed[0])  # both: one
    o = build(store, tmp_path).outcomes
    v = o["gameday"]["verdicts"]
    assert v["counts"] == {"deviated": 1, "failed": 2, "interrupted": 1, "passed": 3}
    assert v["recorded"] == 7 and o["gameday"]["n"] == 8  # the unjudged one is not counted
    assert v["pass_rate"] == round(3 / 7, 3)
    assert v["failed_checks"] == {"acknowledged within target": 2,
                                  "steady state after the fault": 1}
    d = o["drill"]["verdicts"]
    assert d["counts"] == {"failed": 1} and d["pass_rate"] == 0.0
    assert d["failed_checks"] == {"mitigated within target": 1}
    assert unjudged not in {f.id for f in insights.facts(store) if f.verdict}
    # said the same way in the terminal and on the page
    from gameday.cli.common import State
    from gameday.cli.report import report
    from gameday.core.settings import Settings
    from gameday.report.page import render_html

    text = CliRunner().invoke(report, [], obj=State(Settings.load())).output
    assert "verdicts: pass rate 43% of 7 judged (deviated 1, failed 2, interrupted 1, " \
           "passed 3)" in text
    assert "checks that failed most: acknowledged within target 2" in text
    html = render_html(build(store, tmp_path))
    assert "3 of 7 judged" in html and "acknowledged within target 2" in html


@pytest.fixture
def history(store: Store) -> dict[str, int]:
    ids = {}
    for n, ttm in enumerate((10.0, 20.0, 30.0, 40.0)):  # p50 25, p90 37
        ids[f"crash{n}"] = gameday(store, ttm=ttm, ttr=ttm + 2, ttd=1.0 + n, days_ago=n + 1)
    ids["stale"] = gameday(store, scenario="bad-deploy", runbook="rollback-release",
                           days_ago=40, team="web")
    ids["downplayed"] = gameday(store, scenario="bad-deploy", runbook="rollback-release",
                                severity="SEV-3", measured="SEV-1", days_ago=45, team="web",
                                model="distributed")
    ids["wrong"] = gameday(store, scenario="wrong-runbook", runbook="restart-replica",
                           contains=False, escalate=True, ttm=25, ttr=27, days_ago=3)
    for n, tta in enumerate((30.0, 60.0, 120.0)):
        ids[f"alert{n}"] = alert_incident(store, tta=tta, days_ago=n + 1)
    failed = store.create_run(ids["alert0"], "rollback-release", {}, "alertmanager", False)
    store.update_run(failed, status="failed", finished_at=(NOW - timedelta(days=1)).isoformat())
    ids["failed_run"] = failed
    # action items: 2 of 5 done; 2 open are overdue (ana 1, ben 1), the oldest opened 20 d ago
    for key, owner, due, done in (("a", "ana", day(22), False),
                                  ("b", "ben", day(3), False),
                                  ("c", "ana", day(-30), False),
                                  ("d", "ana", day(10), True),
                                  ("e", "ben", day(10), True)):
        store.upsert_action(ids["crash0"], key, f"item {key}", owner, due)
        if done:
            (row,) = [a for a in store.actions(incident_id=ids["crash0"]) if a["key"] == key]
            store.close_action(row["id"])
    insights.connection(store).execute(
        "UPDATE action_items SET created_at = ? WHERE key = 'a'",
        ((NOW - timedelta(days=20)).isoformat(),))
    return ids


def test_kinds_are_kept_apart(store, history, tmp_path):
    r = build(store, tmp_path)
    assert r.counts == {"gameday": 7, "drill": 0, "incident": 3}
    alerts = r.response["incident"]["overall"]["metrics"]
    assert alerts["TTA"] == {"n": 3, "p50": 60.0, "p90": 108.0}
    for name in ("TTD", "TTM", "TTR"):  # no ground truth for a real incident
        assert alerts[name]["n"] == 0
    only = build(store, tmp_path, Scope(kind="incident"))
    assert only.counts == {"gameday": 0, "drill": 0, "incident": 3}


def test_medians_and_percentiles_per_scenario(store, history, tmp_path):
    crash = build(store, tmp_path).response["gameday"]["by_scenario"]["replica-crash"]
    assert crash["n"] == 4
    assert crash["metrics"]["TTM"] == {"n": 4, "p50": 25.0, "p90": 37.0}
    assert crash["metrics"]["TTD"] == {"n": 4, "p50": 2.5, "p90": 3.7}
    assert crash["metrics"]["TTA"] == {"n": 4, "p50": 1.0, "p90": 1.0}
    assert crash["metrics"]["TTE"] == {"n": 4, "p50": 1.5, "p90": 1.5}
    by_team = build(store, tmp_path).response["gameday"]["by_team"]
    assert by_team["web"]["n"] == 2 and by_team["shop"]["n"] == 5
    by_severity = build(store, tmp_path).response["gameday"]["by_severity"]
    assert by_severity["SEV-3"]["n"] == 1


def test_metrics_match_the_scorecard_for_every_incident(store, history, tmp_path):
    build(store, tmp_path)
    for f in insights.facts(store):
        expected = compute_metrics(store.events(f.id)).as_dict()
        got = f.metrics.as_dict()
        expected.pop("budget_burned"), got.pop("budget_burned")  # needs the scenario's SLO
        assert got == expected, f.id


def test_drills_are_a_kind_of_their_own(store, tmp_path):
    gameday(store, ttm=10)
    drill = gameday(store, ttm=50, mode="drill", kind="drill")
    older = gameday(store, ttm=70, mode="drill")  # from before incidents had a kind
    insights.connection(store).execute("UPDATE incidents SET kind = NULL WHERE id = ?",
                                       (older,))
    r = build(store, tmp_path)
    assert r.counts == {"gameday": 1, "drill": 2, "incident": 0}
    assert r.response["drill"]["overall"]["metrics"]["TTM"] == {"n": 2, "p50": 60.0,
                                                                "p90": 68.0}
    assert r.response["gameday"]["overall"]["metrics"]["TTM"]["p50"] == 10.0
    only = build(store, tmp_path, Scope(kind="drill"))
    assert only.counts == {"gameday": 0, "drill": 2, "incident": 0}
    assert [f.id for f in insights.facts(store, Scope(kind="drill"))] == [drill, older]


def test_kept_facts_give_the_same_report_and_follow_new_events(store, history, tmp_path):
    from gameday.report import facts as incident_facts

    db = insights.connection(store)
    first = build(store, tmp_path).as_dict()  # derives every incident's row
    assert db.execute("SELECT COUNT(*) FROM incident_facts").fetchone()[0] == 10
    assert incident_facts.refresh(store, {}) == 0  # nothing new
    assert build(store, tmp_path).as_dict() == first  # read back, not derived again
    (f,) = [f for f in insights.facts(store) if f.id == history["alert2"]]
    assert f.TTE is None  # no incident commander yet
    inc = Incident(store, history["alert2"])
    inc.record(events.role_assigned("incident_commander", "dana"), "dana", at_ns=ns(200))
    assert incident_facts.refresh(store, {}) == 1  # only the incident that changed
    (f,) = [f for f in insights.facts(store) if f.id == history["alert2"]]
    assert f.TTE is not None
    # two incidents far apart (a probe each, not the range between them)
    Incident(store, history["crash0"]).record(events.severity_changed(
        "SEV-1", "SEV-2", "worse than thought", measured_severity="SEV-1"), "ana",
        at_ns=ns(50))
    Incident(store, history["alert0"]).record(events.comms_posted("internal", "hi", False),
                                              "fay", at_ns=ns(60))
    assert incident_facts.refresh(store, {}) == 2
    for f in insights.facts(store):
        expected = compute_metrics(store.events(f.id)).as_dict()
        got = f.metrics.as_dict()
        expected.pop("budget_burned"), got.pop("budget_burned")
        assert got == expected, f.id
    (crash,) = [f for f in insights.facts(store) if f.id == history["crash0"]]
    assert (crash.severity_final, crash.severity_measured) == ("SEV-1", "SEV-1")


def test_rows_of_another_version_or_none_are_derived_again(store, history, tmp_path):
    from gameday.report import facts as incident_facts

    first = build(store, tmp_path).as_dict()
    db = insights.connection(store)
    db.execute("UPDATE incident_facts SET version = 1, score = NULL, ttm = NULL"
               " WHERE incident_id = ?", (history["crash1"],))
    db.execute("DELETE FROM incident_facts WHERE incident_id = ?", (history["alert0"],))
    late = Incident.open(store, "opened, nothing recorded yet", service="search")
    assert incident_facts.refresh(store, {}) == 3
    again = build(store, tmp_path).as_dict()
    assert again["counts"]["incident"] == first["counts"]["incident"] + 1
    again["counts"]["incident"] -= 1
    assert again["response"]["gameday"] == first["response"]["gameday"]
    assert late.id in {f.id for f in insights.facts(store)}


def test_a_scenario_whose_targets_change_is_scored_again(tmp_path):
    """Scores follow the targets of the scenario's latest run directory, and are kept."""
    store = Store(tmp_path / "gameday.db")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    text = (ROOT / "scenarios" / "checkout-replica-crash.yaml").read_text()
    (run_dir / "scenario.yaml").write_text(text)
    crash = gameday(store, scenario="checkout-replica-crash", ttm=10.0, ttr=12.0)
    insights.connection(store).execute("UPDATE incidents SET run_dir = ?, state = 'resolved'"
                                       " WHERE id = ?", (str(run_dir), crash))
    (before,) = insights.facts(store)
    assert before.score is not None
    # a scenario that allows 1 s to mitigate: the same game day scores lower
    strict = text.replace("mitigate: 15", "mitigate: 1")
    assert strict != text
    (run_dir / "scenario.yaml").write_text(strict)
    (after,) = insights.facts(store)
    assert after.score is not None and after.score < before.score
    assert after.targets_key != before.targets_key
    kept = insights.connection(store).execute(
        "SELECT score FROM incident_facts WHERE incident_id = ?", (crash,)).fetchone()[0]
    assert kept == after.score


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_filters_and_window(store, history, tmp_path):
    recent = build(store, tmp_path, Scope(since=NOW - timedelta(days=30)))
    assert recent.counts == {"gameday": 5, "drill": 0, "incident": 3}
    web = build(store, tmp_path, Scope(team="web"))
    assert web.counts == {"gameday": 2, "drill": 0, "incident": 0}
    assert build(store, tmp_path, Scope(service="payments")).counts["gameday"] == 0
    assert build(store, tmp_path, Scope(scenario="bad-deploy")).counts["gameday"] == 2


def test_severity_accuracy(store, history, tmp_path):
    s = build(store, tmp_path).severity
    assert s["gameday"]["overall"] == {"n": 7, "accurate": 6, "too_low": 1, "too_high": 0,
                                       "unmeasured": 0, "declared_too_low": 1,
                                       "too_low_share": round(1 / 7, 3)}
    assert s["gameday"]["matrix"] == {"SEV-2": {"SEV-2": 6}, "SEV-3": {"SEV-1": 1}}
    assert s["gameday"]["by_team"]["web"]["too_low"] == 1
    assert s["gameday"]["by_model"]["distributed"]["too_low_share"] == 1.0
    assert s["incident"]["overall"]["unmeasured"] == 3  # an alert measures nothing


def test_escalations_and_containment(store, history, tmp_path):
    g = build(store, tmp_path).outcomes["gameday"]
    assert g["escalations"]["n"] == 1
    assert g["escalations"]["latest"][0]["incident_id"] == history["wrong"]
    assert g["contained_by"] == {"experiment rollback": 1, "runbook": 6}


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_the_trust_ladder(store, history, tmp_path):
    """Per runbook its rung and why (the policy's age, a failed run or a game day that
    ran it without containing the fault after its last proof), and the alerts held."""
    from gameday.core.settings import Automation

    books = [SimpleNamespace(name=rb.name, alerts=rb.alerts, auto=True) for rb in RUNBOOKS]
    r = insights.build(store, Scope(), runbooks=books, rule_files=rules(tmp_path),
                       policy=Automation(require="proven"), now=NOW)
    trust = {t["runbook"]: t for t in r.trust["runbooks"]}
    assert trust["restart-replica"]["level"] == "proven"  # the wrong game day came first
    assert trust["restart-replica"]["why"].startswith(f"proven by game day #{history['crash0']}")
    assert trust["rollback-release"]["level"] == "suspect"
    assert trust["rollback-release"]["why"] == (
        f"not verified for 40 days (the policy allows 30); its last failed run "
        f"(#{history['failed_run']}) came after its last proof")
    assert trust["disable-flag"]["level"] == "unproven"
    held = {(h["alert"], h["runbook"], h["level"]) for h in r.trust["held"]}
    assert ("CheckoutErrorsAfterDeploy", "rollback-release", "suspect") in held
    assert not any(h[1] == "restart-replica" for h in held) and r.trust["held_now"]
    assert r.trust["real"]["incidents"] == 3


def test_runbook_freshness(store, history, tmp_path):
    r = build(store, tmp_path, Scope(max_age_days=30))
    fresh = {f.runbook: f for f in r.runbooks}
    restart = fresh["restart-replica"]
    assert restart.status == "verified" and restart.verified_by == history["crash0"]
    assert restart.verified_days_ago == 1.0 and restart.verifications == 4
    assert restart.ran_without_containing == history["wrong"]
    assert restart.sentence == f"Verified by game day #{history['crash0']}, 1 day ago."
    rollback = fresh["rollback-release"]
    assert rollback.status == "stale" and rollback.verified_by == history["stale"]
    assert rollback.verified_days_ago == 40.0
    assert rollback.failed_since_verified and rollback.last_failed_run == history["failed_run"]
    assert fresh["disable-flag"].status == "never verified"
    assert fresh["disable-flag"].sentence.startswith("Never verified")
    assert r.stale_alerts == [
        {"alert": "CheckoutLatencyBurn", "runbook": "disable-flag",
         "status": "never verified", "verified_days_ago": None},
        {"alert": "CheckoutErrorsAfterDeploy", "runbook": "rollback-release",
         "status": "stale", "verified_days_ago": 40.0}]
    # a longer allowed age makes the same record fresh
    longer = {f.runbook: f for f in build(store, tmp_path, Scope(max_age_days=60)).runbooks}
    assert longer["rollback-release"].status == "verified"
    one = freshness.runbook_freshness(store, "restart-replica", now=NOW)
    assert one.verified_by == history["crash0"] and one.status == "verified"


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_action_items(store, history, tmp_path):
    a = build(store, tmp_path).actions["gameday"]
    assert (a["total"], a["done"], a["open"], a["overdue"]) == (5, 2, 3, 2)
    assert a["completion_rate"] == 0.4
    assert a["overdue_by_owner"] == {"ana": 1, "ben": 1}
    assert a["overdue_by_team"] == {"shop": 2}
    assert a["oldest_open_days"] == 20.0
    assert build(store, tmp_path).actions["incident"]["total"] == 0


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_weekly_trend(store, history, tmp_path):
    weeks = build(store, tmp_path).trend["gameday"]
    # every week from the first game day's (45 days ago) to this one, empty ones too
    assert weeks[0]["week"] == week(45) and weeks[-1]["week"] == week(0)
    assert [w["week"] for w in weeks] == insights.week_axis(week(45), week(0))
    assert len(weeks) in (7, 8) and len({w["week"] for w in weeks}) == len(weeks)
    full = {week(d) for d in (1, 2, 3, 4, 40, 45)}
    for w in weeks:
        if w["week"] in full:
            assert w["n"] > 0
        else:  # a gap: counted as nothing, drawn as nothing
            assert w["n"] == 0 and w["escalated"] == 0
            assert w["metrics"]["TTM"] == {"n": 0, "p50": None, "p90": None}
            assert w["score"] == {"n": 0, "p50": None, "p90": None}
    assert sum(w["n"] for w in weeks) == 7 and sum(w["escalated"] for w in weeks) == 1
    # the incidents from alerts share the axis; a window starts where it says
    assert [w["week"] for w in build(store, tmp_path).trend["incident"]] == \
        [w["week"] for w in weeks]
    recent = build(store, tmp_path, Scope(since=NOW - timedelta(days=30))).trend["gameday"]
    assert recent[0]["week"] == week(30) and recent[-1]["week"] == week(0)
    assert build(store, tmp_path, Scope(kind="incident")).trend["drill"] == []


def test_week_axis_crosses_a_year():
    assert insights.week_axis("2026-W52", "2027-W02") == ["2026-W52", "2026-W53", "2027-W01",
                                                          "2027-W02"]
    assert insights.week_axis("2027-W01", "2027-W01") == ["2027-W01"]
    assert insights.week_axis(None, "2027-W01") == []


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_trend_chart_shows_a_gap(store, history, tmp_path):
    from gameday.report.page import figures

    r = build(store, tmp_path)
    svg = figures(r)["trend_gameday"]
    has = [bool(w["n"]) for w in r.trend["gameday"]]
    assert not all(has)  # 36 days without a game day between day 40 and day 4
    runs, length = [], 0
    for h in [*has, False]:
        if h:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    # TTD, TTM and TTR: a point per week with data, a line per run of weeks, none across
    # a gap
    assert svg.count("<circle") == 3 * sum(has)
    assert svg.count("<polyline") == 3 * sum(1 for n in runs if n > 1)


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_actions_list_filters(store, history):
    from gameday.cli.common import State
    from gameday.cli.learning import actions
    from gameday.core.settings import Settings

    def run(*args: str) -> list[dict]:
        result = CliRunner().invoke(actions, ["list", *args, "--json"],
                                    obj=State(Settings.load()))
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert [a["key"] for a in run("--owner", "ana")] == ["a", "c"]
    assert [a["key"] for a in run("--overdue")] == ["a", "b"]
    assert [a["key"] for a in run("--overdue", "--limit", "1")] == ["a"]
    assert all(a["overdue"] for a in run("--overdue"))


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_report_command(store, history):
    from gameday.cli.common import State
    from gameday.cli.report import report
    from gameday.core.settings import Settings

    result = CliRunner().invoke(report, ["--json", "--since", "30d"],
                                obj=State(Settings.load()))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["counts"] == {"gameday": 5, "drill": 0, "incident": 3}
    assert data["response"]["gameday"]["by_scenario"]["replica-crash"]["metrics"]["TTM"][
        "n"] == 4
    text = CliRunner().invoke(report, [], obj=State(Settings.load()))
    assert text.exit_code == 0
    assert "TTM   p50" in text.output and "RUNBOOKS" in text.output
    bad = CliRunner().invoke(report, ["--since", "yesterday"], obj=State(Settings.load()))
    assert bad.exit_code == 2 and "30d" in bad.output


def test_report_html_file(store, history, tmp_path):
    from gameday.cli.common import State
    from gameday.cli.report import report
    from gameday.core.settings import Settings

    out = tmp_path / "report.html"
    result = CliRunner().invoke(report, ["--html", str(out)], obj=State(Settings.load()))
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.count("<svg") >= 3 and "<script" not in html


# -- the page and /metrics ----------------------------------------------------------------
def client(store: Store, tmp_path: Path) -> TestClient:
    from gameday.web import insights as view
    from gameday.web.app import create_app

    view._cache.clear()
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    app.router.routes += [Route("/insights", view.insights_page),
                          Route("/metrics", view.metrics)]
    return TestClient(app)


def test_insights_page_renders_its_charts(store, history, tmp_path):
    with client(store, tmp_path) as c:
        page = c.get("/insights", headers=AUTH)
        assert page.status_code == 200
        html = page.text
        for chart in ("chart-trend-gameday", "chart-score-gameday", "chart-trend-incident",
                      "chart-severity"):
            assert f'id="{chart}"' in html
        assert html.count("<svg") == 4 and html.count("<circle") >= 3
        assert "Needs attention" in html and "CheckoutLatencyBurn" in html
        assert "25.0 / 37.0" in html  # TTM of replica-crash: p50 / p90
        bad = c.get("/insights?since=whenever", headers=AUTH)
        assert bad.status_code == 200 and 'id="error"' in bad.text
        assert c.get("/insights", follow_redirects=False).status_code == 303  # sign in


def test_metrics_parse_with_prometheus_client(store, history, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    with client(store, tmp_path) as c:
        assert c.get("/metrics").status_code == 401
        body = c.get("/metrics", headers=AUTH)
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("gameday_incidents", (("kind", "gameday"),))] == 7
    assert samples[("gameday_runbook_verified", (("runbook", "disable-flag"),))] == 0
    assert samples[("gameday_runbook_failed_since_verified",
                    (("runbook", "rollback-release"),))] == 1
    ttm = (("kind", "gameday"), ("metric", "TTM"), ("service", "checkout"))
    # TTM of the seven game days: 10, 20, 30, 40, 10, 10, 25 s
    assert samples[("gameday_response_seconds_count", ttm)] == 7
    assert samples[("gameday_response_seconds_sum", ttm)] == 145
    bucket = {dict(labels)["le"]: value for (name, labels), value in samples.items()
              if name == "gameday_response_seconds_bucket"
              and {k: v for k, v in labels if k != "le"} == dict(ttm)}
    assert {le: bucket[le] for le in ("5.0", "10.0", "30.0", "60.0", "+Inf")} == \
        {"5.0": 0, "10.0": 3, "30.0": 6, "60.0": 7, "+Inf": 7}
    assert samples[("gameday_escalations", (("kind", "gameday"), ("scenario", "wrong-runbook")))] \
        == 1
    assert samples[("gameday_action_items_overdue", (("kind", "gameday"), ("team", "shop")))] \
        == 2
    assert families["gameday_response_seconds"].type == "histogram"
    assert families["gameday_alerts_received"].type == "counter"


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_runbook_page_says_when_it_was_verified(store, history, tmp_path):
    with client(store, tmp_path) as c:
        page = c.get("/runbooks/restart-replica?service=checkout", headers=AUTH)
        assert page.status_code == 200
        assert "Verified by game day" in page.text
        never = c.get("/runbooks/disable-flag?service=checkout&flag=fraud_check",
                      headers=AUTH)
        assert "Never verified by a game day" in never.text


def test_review_chart_unchanged_by_the_shared_renderer(tmp_path):
    from gameday.game.review import chart_svg

    rows = [{"at_ns": 1_000_000_000 + i * 250_000_000, "total": 10,
             "success_ratio": 1 - (0.4 if 5 < i < 15 else 0), "p99_ms": 100 + i * 7.3}
            for i in range(30)]
    (tmp_path / "sli.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    moments = [("fault.injected", 14), ("alert.fired", 22), ("incident.acknowledged", 23),
               ("runbook.started", 24), ("runbook.finished", 31), ("mitigated", 40),
               ("fault.rolled_back", 60)]
    evs = [{"kind": k, "at_monotonic_ns": 1_000_000_000 + t * 100_000_000, "data": {},
            "seq": n} for n, (k, t) in enumerate(moments)]
    golden = (ROOT / "tests" / "data" / "review-chart.svg").read_text()
    assert chart_svg(tmp_path, evs, 0.99, 300) == golden


# -- real game days -------------------------------------------------------------------------
def run_gameday(scenario: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "gameday", "run", f"scenarios/{scenario}.yaml",
                          "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=240)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_report_over_real_game_days_matches_their_events(tmp_path):
    env = {**os.environ, "GAMEDAY_DB": str(tmp_path / "real.db"),
           "GAMEDAY_RUNS": str(tmp_path / "runs")}
    crash = run_gameday("checkout-replica-crash", env)
    wrong = run_gameday("checkout-bad-deploy-wrong-runbook", env)
    store = Store(tmp_path / "real.db")
    from gameday.core.settings import current
    from gameday.runbooks.runbook import discover

    r = insights.build(store, runbooks=discover(current().runbook_dirs))
    assert r.counts == {"gameday": 2, "drill": 0, "incident": 0}
    by_id = {f.id: f for f in insights.facts(store)}
    for summary in (crash, wrong):
        f = by_id[summary["incident_id"]]
        assert f.metrics.as_dict() == summary["metrics"]  # the scorecard's own figures
        assert f.score == summary["score"]
    per = r.response["gameday"]["by_scenario"]["checkout-replica-crash"]["metrics"]
    assert per["TTM"] == {"n": 1, "p50": crash["metrics"]["TTM"],
                          "p90": crash["metrics"]["TTM"]}
    fresh = {f.runbook: f for f in r.runbooks}
    assert fresh["restart-replica"].verified_by == crash["incident_id"]
    assert fresh["restart-replica"].ran_without_containing == wrong["incident_id"]
    assert fresh["rollback-release"].status == "never verified"
    assert r.outcomes["gameday"]["escalations"]["latest"][0]["incident_id"] == wrong["incident_id"]
    assert r.actions["gameday"]["total"] == len(store.actions())
    # both game days recorded their verdicts: the pass rate counts hand-run ones
    verdicts = r.outcomes["gameday"]["verdicts"]
    assert verdicts["counts"] == {"deviated": 1, "passed": 1} and verdicts["pass_rate"] == 0.5
    assert verdicts["failed_checks"]["steady state after the fault"] == 1


def test_the_report_says_which_alerts_game_days_proved(store, tmp_path):
    """Per alert a game day waited for: fired or not, and the last time; a real
    incident's alert proves nothing."""
    gameday(store, days_ago=3)                                   # Burn fired
    missed = Incident.open(store, "game day slow", service="checkout", scenario="slow")
    missed.record(events.fault_injected("kill", "succeeded", {}, 0.1), "chaos", at_ns=ns(0))
    missed.record(events.detection_missed(30.0, "Burn"), "gameday", at_ns=ns(30))
    opened(store, missed.id, 1)                                  # then Burn missed
    never = Incident.open(store, "game day slower", service="checkout", scenario="slower")
    never.record(events.detection_missed(30.0, "SlowBurn"), "gameday", at_ns=ns(30))
    opened(store, never.id, 1)
    alert_incident(store)                                         # PaymentsDown: real
    proof = {a["alert"]: a for a in build(store, tmp_path).alerts}
    assert set(proof) == {"Burn", "SlowBurn"}
    assert (proof["SlowBurn"]["status"], proof["SlowBurn"]["fired"]) == ("never fired", 0)
    assert proof["Burn"]["status"] == "missed last time" and proof["Burn"]["last"] == missed.id
    assert (proof["Burn"]["fired"], proof["Burn"]["missed"]) == (1, 1)
    assert [a["alert"] for a in build(store, tmp_path).alerts] == ["SlowBurn", "Burn"]
