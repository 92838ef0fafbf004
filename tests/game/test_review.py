"""The blame-language check and the review's rendering from stored events."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gameday.cli.main import cli
from gameday.incidents.language import blame_warnings


@pytest.mark.parametrize("text", [
    "The outage was caused by human error.",
    "Ben forgot to check the dashboard.",
    "Dana was careless with the deploy.",
    "It was the fault of the on-call.",
])
def test_blaming_sentences_are_flagged(text):
    (warning,) = blame_warnings({"note": text})
    assert warning["sentence"] == text


@pytest.mark.parametrize("text", [
    "The router kept sending traffic to a dead replica.",
    "The rollout had no canary stage, so the bad release reached every replica.",
])
def test_system_language_passes(text):
    assert blame_warnings({"note": text}) == []


def test_note_command_warns_and_records(store):
    from gameday.incidents.incident import Incident

    inc = Incident.open(store, "t")
    result = CliRunner().invoke(cli, ["incident", "note", str(inc.id), "--as", "eli",
                                      "Restart took long because ana forgot the flag."])
    assert result.exit_code == 0 and "puts the cause on a person" in result.output
    (event,) = inc.events()
    assert event.kind == "note.added" and event.actor == "eli"


def test_sli_windows_skip_a_line_cut_by_a_crash(tmp_path):
    from gameday.slis.samples import sli_windows

    (tmp_path / "sli.jsonl").write_text(
        '{"at_ns": 1, "total": 4, "success_ratio": 1.0}\n'
        'not json\n'
        '{"at_ns": 2, "total": 0}\n'
        '{"at_ns": 3, "total": 4, "succ')
    windows, offset = sli_windows(tmp_path)
    assert [w["at_ns"] for w in windows] == [1, 2]
    assert offset < (tmp_path / "sli.jsonl").stat().st_size   # the cut line is read later
    assert sli_windows(tmp_path / "nothing") == ([], 0)


def test_the_chart_leaves_a_gap_for_readings_with_no_number(tmp_path):
    """A team's Prometheus answers NaN while its window holds no requests: those
    readings have no point on the chart, and the review is still written."""
    import json

    from gameday.game.review import chart_svg

    rows = [{"at_ns": (i + 1) * 1_000_000_000, "total": 1,
             "success_ratio": None if i < 2 else 1.0, "p99_ms": None if i < 3 else 120.0}
            for i in range(6)]
    (tmp_path / "sli.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    svg = chart_svg(tmp_path, [], 0.99, 300)
    ratio, latency = (line for line in svg.splitlines() if line.startswith("<polyline"))
    assert ratio.count(",") == 4 and latency.count(",") == 3


@pytest.mark.parametrize("traced,said,action", [
    ({}, "its expression was never true in the team's Prometheus after the fault began",
     "Make Slow fire for this failure mode"),
    ({"rule_error": "many-to-many matching not allowed"}, "the team's Prometheus could not "
     "evaluate it: many-to-many matching not allowed", "Fix Slow's rule"),
    ({"labels_differ": {"service": ["cart", "podinfo"]}}, "the team's Prometheus had it only with "
     "other labels than the scenario's alert.labels (service: 'cart' there, 'podinfo' in the "
     "scenario)", "Give the scenario's alert.labels the labels Slow carries"),
    ({"pending_after_s": 2.0}, "it was pending in the team's Prometheus from 2 s after the fault "
     "began; the rule's for: duration kept it from firing", "Shorten Slow's for: duration"),
    ({"pending_after_s": 1.0, "pending_runs": 3}, "it went pending in the team's Prometheus 3 "
     "times from 1 s after the fault began, its expression never holding",
     "Make Slow's expression hold through this failure mode"),
    ({"firing_after_s": 3.0, "alertmanager": "silenced", "silenced_by": ["a1", "b2"]},
     "firing 3 s after the fault began; the team's Alertmanager held it silenced (silence a1, b2)",
     "Review the silence that hid Slow (a1, b2)"),
    ({"pending_after_s": 1.0, "firing_after_s": 3.0, "alertmanager": "inhibited"},
     "the team's Prometheus had it firing 3 s after the fault began; the team's Alertmanager "
     "held it inhibited by another alert", "Check the inhibit rule that suppressed Slow"),
    ({"firing_after_s": 7.5, "alertmanager": "active"}, "firing 7.5 s after the fault began; "
     "it reached the team's Alertmanager only after the wait ended",
     "Make Slow reach Alertmanager sooner"),
    ({"firing_after_s": 2.0, "alertmanager": "other labels",
      "labels_differ": {"proxy": ["db", "api"]}}, "the team's Alertmanager held it with other "
     "labels than the scenario's alert.labels (proxy: 'db' there, 'api' in the scenario)",
     "Give the scenario's alert.labels the labels Slow carries"),
    ({"firing_after_s": 2.0, "alertmanager": "other labels",
      "labels_differ": {"service": [None, "podinfo"]}}, "the team's Alertmanager held it with "
     "other labels than the scenario's alert.labels (service: none there, 'podinfo' in the "
     "scenario)", "Give the scenario's alert.labels the labels Slow carries"),
    ({"firing_after_s": 2.0, "alertmanager": "absent"}, "firing 2 s after the fault began, but "
     "it had not reached the team's Alertmanager when the wait ended",
     "Check where the Prometheus that evaluates it"),
    ({"firing_after_s": 2.0, "alertmanager": "no answer"}, "firing 2 s after the fault began; "
     "the team's Alertmanager did not answer",
     "Find out why the team's Alertmanager did not answer"),
])
def test_where_a_missed_alert_stopped_says_what_to_change(traced, said, action):
    """Each place a team's alert can stop (``detection.traced``) in words, in the finding
    and its action item; tests/targets has the pending, silenced and absent ones on a
    real Prometheus and Alertmanager."""
    from gameday.game.review import _missed

    finding = _missed(missed_then(traced))
    assert "Where it stopped: " in finding.factor and said in finding.factor, finding.factor
    assert finding.action.startswith(action), finding.action


def missed_then(traced: dict, *later: dict) -> list[dict]:
    """A timeline: the fault, the alert missed, where it stopped, then ``later``."""
    def event(seq: int, at_s: float, kind: str, actor: str, data: dict) -> dict:
        return {"seq": seq, "at_monotonic_ns": int(at_s * 1e9), "kind": kind, "actor": actor,
                "data": data}

    return [event(1, 10.0, "fault.injected", "chaos", {}),
            event(2, 18.0, "detection.missed", "gameday",
                  {"alert": "Slow", "waited_s": 8.0, "outside_s": 6.0, "fallback": True}),
            event(3, 18.1, "detection.traced", "gameday", {"alert": "Slow", **traced}),
            *(event(4 + i, e["at_s"], e["kind"], e["actor"], {}) for i, e in enumerate(later))]


def test_an_alert_their_alertmanager_reports_after_the_trace_arrived_late():
    """Asked at the end of the wait, the team's Alertmanager did not hold it yet; it reported
    it 12.5 s after the fault began: the review says it came late, not that it never
    did."""
    from gameday.game.review import _missed

    finding = _missed(missed_then({"firing_after_s": 7.8, "alertmanager": "absent"},
                                  {"at_s": 22.5, "kind": "alert.received",
                                   "actor": "alertmanager"}))
    assert ("firing 7.8 s after the fault began; it reached the team's Alertmanager only after the "
            "wait ended, 12.5 s after the fault began") in finding.factor, finding.factor
    assert finding.action.startswith("Make Slow reach Alertmanager sooner")


def test_a_label_their_alertmanager_lacks_is_what_differs():
    """In Prometheus a scenario label the series lacks is left out of the comparison; in
    Alertmanager, which matched none of them, it is the difference."""
    from gameday.targets.alert_path import _differ

    assert _differ({"alertname": "Slow"}, {"service": "podinfo"}) == {}
    assert _differ({"alertname": "Slow"}, {"service": "podinfo"}, missing=True) == \
        {"service": [None, "podinfo"]}
    assert _differ({"service": "cart"}, {"service": "podinfo"}, missing=True) == \
        {"service": ["cart", "podinfo"]}
