"""CI verdicts: checks, exit codes and JUnit reports, on real game days (the sandbox,
through the CLI process) and on hand-built timelines for what a real run cannot be made
to do on demand (signals, deviation together with a late acknowledgement, failing
runbooks)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gameday.core import events as ev
from gameday.core.errors import ValidationError
from gameday.core.sentences import describe
from gameday.game.verdict import (
    ACKNOWLEDGED,
    DETECTED,
    MITIGATED,
    RUNBOOK,
    STEADY_AFTER,
    STEADY_BEFORE,
    Check,
    Verdict,
    check_junit_path,
    judge,
    junit_xml,
    record,
    write_junit,
)
from gameday.scenarios.scenario import load_scenario
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [STEADY_BEFORE, STEADY_AFTER, DETECTED, ACKNOWLEDGED, MITIGATED, RUNBOOK]
S = 1_000_000_000
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- reading a report back --------------------------------------------------------------
def parse(data: bytes) -> ET.Element:
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(data)
    assert root.tag == "testsuites"
    return root


def structure(root: ET.Element) -> dict[str, list[ET.Element]]:
    """Checks what a JUnit reader relies on and no schema checks for us: counts that
    equal the children, required attributes, one outcome element at most per case."""
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    by_outcome: dict[str, list[ET.Element]] = {"failure": [], "error": [], "skipped": [],
                                               "passed": []}
    for case in cases:
        assert case.get("classname") and case.get("name")
        float(case.get("time", "x"))  # seconds, a number
        outcome = [c for c in case if c.tag in ("failure", "error", "skipped")]
        assert len(outcome) <= 1, ET.tostring(case)
        by_outcome[outcome[0].tag if outcome else "passed"].extend(outcome or [case])
    for node in (root, suite):
        assert int(node.get("tests", "-1")) == len(cases)
        assert int(node.get("failures", "-1")) == len(by_outcome["failure"])
        assert int(node.get("errors", "-1")) == len(by_outcome["error"])
        assert int(node.get("skipped", "-1")) == len(by_outcome["skipped"])
        float(node.get("time", "x"))
    datetime.strptime(suite.get("timestamp", ""), "%Y-%m-%dT%H:%M:%S")
    assert [c.tag for c in suite][0] == "properties"  # before the cases, as Ant has it
    for prop in suite.find("properties") or []:
        assert prop.tag == "property" and prop.get("name") and prop.get("value") is not None
    return {"cases": cases, **by_outcome}


def case_named(root: ET.Element, name: str) -> ET.Element:
    found = [c for c in root.iter("testcase") if c.get("name") == name]
    assert len(found) == 1, name
    return found[0]


def properties(root: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in root.iter("property")}


# -- real game days ---------------------------------------------------------------------
class Run:
    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        env = {**os.environ, "GAMEDAY_RUNS": str(tmp / "runs")}
        env.pop("GAMEDAY_DB", None)
        self.proc = subprocess.run(
            [sys.executable, "-m", "gameday", "--db", str(tmp / "gameday.db"), "run",
             f"scenarios/{name}.yaml", "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert self.proc.stdout.strip(), self.proc.stderr[-3000:]
        self.summary = json.loads(self.proc.stdout)
        self.store = Store(tmp / "gameday.db")
        self.events = self.store.events(self.summary["incident_id"])
        assert not self.summary["interrupted"], self.proc.stderr[-3000:]

    def judge(self, **kw) -> Verdict:
        return judge(self.summary, self.scenario, self.events, **kw)


@pytest.fixture(scope="module")
def crash(tmp_path_factory) -> Run:
    return Run("checkout-replica-crash", tmp_path_factory.mktemp("crash"))


@pytest.fixture(scope="module")
def wrong(tmp_path_factory) -> Run:
    return Run("checkout-bad-deploy-wrong-runbook", tmp_path_factory.mktemp("wrong"))


@pytest.mark.slow
def test_a_game_day_that_meets_its_targets_passes(crash):
    v = crash.judge(min_score=80)
    assert crash.summary["status"] == "resolved" and crash.summary["score"] >= 80
    assert [c.name for c in v.checks] == [*CHECKS, "score >= 80"]
    assert all(c.passed and not c.skipped for c in v.checks), v.checks
    assert (v.status, v.exit_code) == ("passed", 0)
    assert crash.proc.returncode in (0, v.exit_code)
    seconds = {c.name: c.seconds for c in v.checks}
    metrics = crash.summary["metrics"]
    assert seconds[DETECTED] == metrics["TTD"] and seconds[ACKNOWLEDGED] == metrics["TTA"]
    assert seconds[MITIGATED] == metrics["TTM"]
    assert seconds[RUNBOOK] is not None and seconds[RUNBOOK] > 0
    assert "restart-replica: successful" in v.checks[CHECKS.index(RUNBOOK)].message
    assert v.duration_s is not None and v.duration_s > metrics["TTR"]
    # the game day recorded its own verdict (no minimum score: that is the gate's)
    (mark,) = [e for e in crash.events if e.kind == ev.Kind.GAMEDAY_VERDICT]
    assert (mark.data["status"], mark.data["failed"]) == ("passed", [])


@pytest.mark.slow
def test_the_same_game_day_fails_a_minimum_it_cannot_reach(crash):
    v = crash.judge(min_score=crash.summary["score"] + 1)
    assert (v.status, v.exit_code) == ("failed", 1)
    assert [c.name for c in v.failures] == [f"score >= {crash.summary['score'] + 1}"]
    assert crash.judge().checks == v.checks[:-1]  # no minimum, no score check


@pytest.mark.slow
def test_a_passing_game_day_as_junit(crash, tmp_path):
    v = crash.judge(min_score=80)
    path = write_junit(tmp_path / "reports" / "ci" / "gameday.xml", v,
                       suite=crash.name, summary=crash.summary)
    assert path.parent.is_dir() and os.listdir(path.parent) == ["gameday.xml"]  # no temp
    root = parse(path.read_bytes())
    found = structure(root)
    assert found["failure"] == [] and found["skipped"] == []
    assert [c.get("name") for c in found["cases"]] == [c.name for c in v.checks]
    assert {c.get("classname") for c in found["cases"]} == {"gameday.checkout-replica-crash"}
    assert root.find("testsuite").get("name") == "gameday: checkout-replica-crash"
    detected = case_named(root, DETECTED)
    assert float(detected.get("time")) == pytest.approx(crash.summary["metrics"]["TTD"],
                                                        abs=0.001)
    props = properties(root)
    for key in ("incident_id", "score", "run_dir", "review"):
        assert props[key] == str(crash.summary[key])
    assert Path(props["review"]).is_file()
    assert (props["verdict"], props["exit_code"]) == ("passed", "0")


@pytest.mark.slow
def test_the_wrong_runbook_deviates_and_misses_its_minimum(wrong):
    s = wrong.summary
    # what the scenario shows: the wrong runbook succeeds, changes nothing, the
    # experiment's rollback contains the fault
    assert s["metrics"]["runbook_status"] == "successful"
    assert s["metrics"]["contained_by"] == "experiment rollback" and s["score"] < 80
    v = wrong.judge(min_score=80)
    assert [c.name for c in v.checks] == [*CHECKS, "score >= 80"]
    by_name = {c.name: c for c in v.checks}
    assert by_name[STEADY_BEFORE].passed and by_name[DETECTED].passed
    assert by_name[RUNBOOK].passed  # it ran fine: the wrong one
    after = by_name[STEADY_AFTER]
    assert not after.passed and "deviated" in after.message
    assert not by_name["score >= 80"].passed
    # the mitigation check fails exactly where the scorecard deducted for lateness
    late = any(d["metric"] == "TTM" for d in s["deductions"])
    assert by_name[MITIGATED].passed is not late
    assert by_name[MITIGATED].seconds == s["metrics"]["TTM"]
    assert "contained by experiment rollback" in by_name[MITIGATED].message
    assert (v.status, v.exit_code) == ("deviated", 3)  # 3 wins over the missed minimum
    assert wrong.proc.returncode in (0, v.exit_code)
    (mark,) = [e for e in wrong.events if e.kind == ev.Kind.GAMEDAY_VERDICT]
    assert mark.data["status"] == "deviated" and STEADY_AFTER in mark.data["failed"]
    assert "deviated" in mark.data["why"][STEADY_AFTER]


@pytest.mark.slow
def test_a_failing_game_day_as_junit(wrong, tmp_path):
    v = wrong.judge(min_score=80)
    path = write_junit(tmp_path / "gameday.xml", v, suite=wrong.name, summary=wrong.summary)
    root = parse(path.read_bytes())
    found = structure(root)
    assert len(found["failure"]) == len(v.failures) >= 2
    failure = case_named(root, STEADY_AFTER).find("failure")
    assert failure is not None and failure.get("type") == "SteadyStateNotRestored"
    assert "deviated" in failure.get("message", "")
    assert failure.get("message") in (failure.text or "")  # GitLab shows the text
    score = case_named(root, "score >= 80").find("failure")
    assert score is not None and str(wrong.summary["score"]) in score.get("message", "")
    assert case_named(root, RUNBOOK).find("failure") is None
    assert properties(root)["verdict"] == "deviated"
    out = root.find("testsuite/system-out")
    assert out is not None and "experiment rollback" in (out.text or "")


# -- hand-built timelines ---------------------------------------------------------------
def timeline(*items: tuple[float, ev.Entry], incident_id: int = 7) -> list[dict]:
    return [{"incident_id": incident_id, "seq": i + 1, "at_monotonic_ns": int(t * S),
             "at_utc": (T0 + timedelta(seconds=t)).isoformat(), "kind": str(e.kind),
             "actor": "gameday", "data": e.data}
            for i, (t, e) in enumerate(items)]


STEADY = [(1.0, ev.steady_state_reached({"success_ratio": 1.0, "p99_ms": 40})),
          (1.1, ev.steady_state_checked("before", True)),
          (1.2, ev.fault_injected("kill", "succeeded", None, 0.1))]
DETECT = [(2.0, ev.alert_fired("CheckoutAvailabilityBurn", {}, {})),
          (2.0, ev.incident_declared("SEV-2", "CheckoutAvailabilityBurn",
                                     measured_severity="SEV-2"))]
ACK = [(2.1, ev.incident_acknowledged("auto"))]
RESPOND = [(2.2, ev.runbook_started("restart-replica", {}, False, "a", run_id=1)),
           (5.0, ev.mitigated(2.0, 100, 20, 20)),
           (5.5, ev.runbook_finished("restart-replica", "successful", 0, run_id=1))]
END = [(9.0, ev.steady_state_checked("after", True)),
       (9.1, ev.fault_rolled_back("restart", "succeeded", None, 0.1)),
       (9.2, ev.incident_resolved("SLIs back"))]
GOOD = [*STEADY, *DETECT, *ACK, *RESPOND, *END]


def summary(**kw) -> dict:
    return {"run_dir": "/runs/x", "incident_id": 7, "score": 90, "metrics": {},
            "deductions": [], "review": "/runs/x/review.md", "status": "resolved",
            "experiment": "completed", "interrupted": False, **kw}


@pytest.fixture
def sc(scenario):
    assert scenario.target_for("SEV-2")["ack"] == 5  # the targets these timelines meet
    assert scenario.target_for("SEV-2")["mitigate"] == 15
    return scenario


def test_a_clean_timeline_passes(sc):
    v = judge(summary(), sc, timeline(*GOOD), min_score=90)
    assert (v.status, v.exit_code) == ("passed", 0), v.checks
    assert [c.seconds for c in v.checks[2:6]] == [0.8, 0.1, 3.8, 3.3]
    assert v.started_at == T0.replace(second=6).isoformat() and v.duration_s == 8.2


@pytest.mark.parametrize("score,minimum,passed", [(75, 80, False), (80, 80, True),
                                                  (81, 80, True), (79.5, 79.6, False)])
def test_the_minimum_score(sc, score, minimum, passed):
    v = judge(summary(score=score), sc, timeline(*GOOD), min_score=minimum)
    check = v.checks[-1]
    assert check.name == f"score >= {minimum:g}" and check.passed is passed
    assert (v.status, v.exit_code) == (("passed", 0) if passed else ("failed", 1))
    if not passed:
        assert v.failures == (check,) and str(score) in check.message


def test_no_minimum_no_score_check(sc):
    v = judge(summary(score=0), sc, timeline(*GOOD))
    assert [c.name for c in v.checks] == CHECKS and v.exit_code == 0


def test_a_late_acknowledgement_fails_with_the_scorecards_words(sc):
    late_ack = [(8.0, ev.incident_acknowledged("auto"))]
    v = judge(summary(), sc, timeline(*STEADY, *DETECT, *RESPOND, *late_ack, *END))
    (ack,) = v.failures
    assert ack.name == ACKNOWLEDGED and ack.seconds == 6.0
    assert ack.message == "acknowledgement took 6.00s, target 5s"
    assert (v.status, v.exit_code) == ("failed", 1)


def test_deviation_wins_over_a_missed_target(sc):
    late_ack = [(8.0, ev.incident_acknowledged("auto"))]
    deviated = [(9.0, ev.steady_state_checked("after", False)), *END[1:]]
    v = judge(summary(), sc, timeline(*STEADY, *DETECT, *RESPOND, *late_ack, *deviated),
              min_score=95)
    assert {c.name for c in v.failures} == {STEADY_AFTER, ACKNOWLEDGED, "score >= 95"}
    assert (v.status, v.exit_code) == ("deviated", 3)


def test_an_experiment_reported_deviated_is_deviated(sc):
    v = judge(summary(experiment="deviated"), sc, timeline(*GOOD))
    assert [c.name for c in v.failures] == [STEADY_AFTER] and v.exit_code == 3


def test_recovery_missed_is_deviated(sc):
    missed = [(9.0, ev.steady_state_checked("after", True)),
              (30.0, ev.recovery_missed(20.0))]
    v = judge(summary(status="mitigated"), sc,
              timeline(*STEADY, *DETECT, *ACK, *RESPOND, *missed))
    (after,) = v.failures
    assert after.name == STEADY_AFTER and "did not recover within 20.0 s" in after.message
    assert (v.status, v.exit_code) == ("deviated", 3)


def test_missed_detection_fails_the_response_checks(sc):
    missed = [(16.2, ev.detection_missed(15.0, "CheckoutAvailabilityBurn")),
              (16.3, ev.incident_cancelled("never declared"))]
    v = judge(summary(status="cancelled"), sc, timeline(*STEADY, *missed))
    failed = {c.name: c.message for c in v.failures}
    assert set(failed) == {STEADY_AFTER, DETECTED, ACKNOWLEDGED, MITIGATED, RUNBOOK}
    assert "no CheckoutAvailabilityBurn alert within 15.0 s" in failed[DETECTED]
    assert failed[RUNBOOK] == "no runbook was run"
    assert (v.status, v.exit_code) == ("failed", 1)  # never seen to recover is not 3


@pytest.mark.parametrize("entry,words", [
    (ev.runbook_finished("restart-replica", "failed", 2, error="boom", run_id=1),
     "restart-replica: failed (rc 2): boom"),
    (ev.runbook_rejected("restart-replica", "not allowed"), "restart-replica refused"),
    (ev.runbook_missing("CheckoutAvailabilityBurn"), "no runbook linked to"),
])
def test_a_runbook_that_failed_or_never_ran(sc, entry, words):
    v = judge(summary(), sc, timeline(*GOOD, (5.6, entry)))
    (runbook,) = v.failures
    assert runbook.name == RUNBOOK and words in runbook.message
    assert (v.status, v.exit_code) == ("failed", 1)


def test_a_check_mode_runbook_is_not_the_remediation(sc):
    dry = [(2.2, ev.runbook_started("restart-replica", {}, True, "a", run_id=1)),
           (5.0, ev.mitigated(2.0, 100, 20, 20)),
           (5.5, ev.runbook_finished("restart-replica", "successful", 0, check=True,
                                     run_id=1))]
    v = judge(summary(), sc, timeline(*STEADY, *DETECT, *ACK, *dry, *END))
    assert [c.name for c in v.failures] == [RUNBOOK]


INTERRUPTED = [*STEADY, *DETECT, *ACK,
               (3.0, ev.gameday_interrupted("interrupted", "SIGTERM")),
               (3.1, ev.incident_aborted("interrupted"))]


@pytest.mark.parametrize("signal_code,expected", [(None, 143), (130, 130), (143, 143)])
def test_an_interrupted_game_day_skips_what_it_never_got_to(sc, signal_code, expected):
    v = judge(summary(status="aborted", interrupted=True, experiment="interrupted"), sc,
              timeline(*INTERRUPTED), min_score=80, signal_code=signal_code)
    assert (v.status, v.exit_code) == ("interrupted", expected)
    assert [c.name for c in v.checks if c.passed] == [STEADY_BEFORE, DETECTED, ACKNOWLEDGED]
    skipped = [c.name for c in v.skipped]
    assert skipped == [STEADY_AFTER, MITIGATED, RUNBOOK, "score >= 80"]
    assert v.failures == ()
    assert all(c.message.startswith("not run: the game day was interrupted")
               for c in v.skipped)

    root = parse(junit_xml(v, suite="checkout-replica-crash", summary=summary()))
    found = structure(root)
    assert [s.get("message") for s in found["skipped"]] == [c.message for c in v.skipped]
    assert found["failure"] == [] and len(found["passed"]) == 3
    assert properties(root)["exit_code"] == str(expected)


def test_an_interrupt_without_a_recorded_signal_is_sigints(sc):
    rows = timeline(*STEADY, (3.0, ev.gameday_interrupted("interrupted", None)))
    v = judge(summary(status="cancelled", interrupted=True), sc, rows)
    assert (v.status, v.exit_code) == ("interrupted", 130)
    assert [c.name for c in v.checks if not c.skipped] == [STEADY_BEFORE]


def test_a_miss_on_the_record_before_the_interrupt_stays_a_failure(sc):
    late_ack = [(8.0, ev.incident_acknowledged("auto")),
                (9.0, ev.gameday_interrupted("interrupted", "SIGINT"))]
    v = judge(summary(status="aborted", interrupted=True), sc,
              timeline(*STEADY, *DETECT, *late_ack))
    assert [c.name for c in v.failures] == [ACKNOWLEDGED]
    assert (v.status, v.exit_code) == ("interrupted", 130)
    found = structure(parse(junit_xml(v, suite="x", summary=summary())))
    assert len(found["failure"]) == 1 and len(found["skipped"]) == 3


def test_events_of_another_incident_are_refused(sc):
    with pytest.raises(ValueError, match="incident 8"):
        judge(summary(), sc, timeline(*GOOD, incident_id=8))


def test_store_events_and_their_dicts_judge_alike(sc, store):
    incident = store.create_incident("t", service="checkout", scenario="s", run_dir="/r")
    for t, entry in GOOD:
        store.append(incident, entry.kind, "gameday", entry.data, at_monotonic_ns=int(t * S),
                     at_utc=(T0 + timedelta(seconds=t)).isoformat())
    rows = store.events(incident)
    s = summary(incident_id=incident)
    assert judge(s, sc, rows) == judge(s, sc, [r.as_dict() for r in rows])
    assert judge(s, sc, rows).exit_code == 0


# -- the verdict on the timeline --------------------------------------------------------
def stored(store: Store, items: list[tuple[float, ev.Entry]]) -> int:
    incident = store.create_incident("t", service="checkout", scenario="s", run_dir="/r")
    for t, entry in items:
        store.append(incident, entry.kind, "gameday", entry.data, at_monotonic_ns=int(t * S),
                     at_utc=(T0 + timedelta(seconds=t)).isoformat())
    return incident


@pytest.fixture
def run_dir(sc, tmp_path) -> Path:
    """A game day's run directory: its copy of the scenario is what it is judged on."""
    path = tmp_path / "run"
    path.mkdir()
    shutil.copy(sc.path, path / "scenario.yaml")
    return path


def test_every_game_day_puts_its_verdict_on_its_timeline(sc, store, run_dir):
    good = stored(store, GOOD)
    s = summary(incident_id=good, run_dir=str(run_dir))
    v = record(store, s)
    assert (v.status, v.exit_code) == ("passed", 0)
    *_, last = store.events(good)
    assert last.kind == ev.Kind.GAMEDAY_VERDICT
    assert last.data == {"status": "passed", "exit_code": 0, "failed": [], "why": {},
                         "skipped": []}
    assert describe(last.kind, last.actor, last.data) == "passed (exit 0)"
    # judged again with its verdict on the record: the same verdict, the same duration
    assert judge(s, sc, store.events(good)) == v and v.duration_s == 8.2


def test_a_failed_game_day_records_why(sc, store, run_dir):
    late = stored(store, [*STEADY, *DETECT, *RESPOND, (8.0, ev.incident_acknowledged("auto")),
                          *END])
    v = record(store, summary(incident_id=late, run_dir=str(run_dir)))
    assert (v.status, v.exit_code) == ("failed", 1)
    *_, last = store.events(late)
    assert last.data["status"] == "failed" and last.data["failed"] == [ACKNOWLEDGED]
    assert last.data["why"] == {ACKNOWLEDGED: "acknowledgement took 6.00s, target 5s"}
    assert describe(last.kind, last.actor, last.data) == (
        "failed (exit 1): acknowledged within target: acknowledgement took 6.00s, target 5s")


def test_an_interrupted_game_day_adds_nothing_after_its_interruption(sc, store, run_dir):
    cut = stored(store, [*STEADY, (3.0, ev.gameday_interrupted("interrupted", "SIGTERM"))])
    v = record(store, summary(incident_id=cut, run_dir=str(run_dir), interrupted=True,
                              status="cancelled"))
    assert (v.status, v.exit_code) == ("interrupted", 143)
    assert store.events(cut)[-1].kind == ev.Kind.GAMEDAY_INTERRUPTED


def test_text_a_reader_cannot_parse_is_replaced(sc):
    v = Verdict("failed", 1, (Check(RUNBOOK, False, "ansible said \x1b[31mno\x00", 1.0),))
    root = parse(junit_xml(v, suite="s<&>", summary=summary(review=None)))
    failure = case_named(root, RUNBOOK).find("failure")
    assert failure is not None and failure.get("message") == "ansible said \ufffd[31mno\ufffd"
    assert root.find("testsuite").get("name") == "gameday: s<&>"


def test_the_report_goes_where_it_can_be_written(tmp_path):
    v = Verdict("passed", 0, (Check(STEADY_BEFORE, True, "ok", None),))
    (tmp_path / "a-file").write_text("")
    for bad in (tmp_path / "a-file" / "gameday.xml", tmp_path):
        with pytest.raises(ValidationError) as err:
            write_junit(bad, v, suite="s", summary=summary())
        assert err.value.field == "--junit"
        with pytest.raises(ValidationError) as err:
            check_junit_path(bad)
        assert err.value.field == "--junit"
    assert sorted(os.listdir(tmp_path)) == ["a-file"]  # no temporary file left behind
    target = check_junit_path(tmp_path / "new" / "out.xml")
    assert target.parent.is_dir() and not target.exists()
    target.write_text("old")
    write_junit(target, v, suite="s", summary=summary())
    assert structure(parse(target.read_bytes()))["passed"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
