from __future__ import annotations

from gameday.game.detection import Detector
from gameday.scenarios.scenario import Alert, Slo
from gameday.slis.samples import Sample
from gameday.slis.traffic import Traffic

S = 1_000_000_000
SLO = Slo(success_ratio=0.99, latency_p99_ms=300, window_s=2.0)
ALERT = Alert(name="Burn", for_s=0.5, labels={}, annotations={})


def feed(traffic: Traffic, start_s: float, end_s: float, status=200, latency_ms=5.0, rate=40):
    t = start_s
    while t < end_s:
        end = int(t * S)
        traffic.record(Sample(end - int(latency_ms * 1e6), end, "", status, latency_ms))
        t += 1 / rate


def detector_with_reports():
    traffic = Traffic("http://127.0.0.1:1/", 40, 1, None)
    reports = []
    det = Detector(traffic, SLO, ALERT, interval_s=0.25, recovery_window_s=1.0,
                   report=lambda entry, at, utc: reports.append((entry.kind, at, entry.data)))
    return traffic, det, reports


def evaluate_until(det, start_s, end_s, step=0.25):
    t = start_s
    while t <= end_s:
        det.evaluate(int(t * S))
        t += step


def test_impact_alert_and_mitigation_from_samples():
    traffic, det, reports = detector_with_reports()
    feed(traffic, 100, 110)                      # healthy
    det.arm(110 * S)                             # fault at t=110
    feed(traffic, 110.3, 113, status=502, rate=10)
    feed(traffic, 110, 113)                      # the rest keep succeeding
    feed(traffic, 113, 120)                      # fixed at 113
    evaluate_until(det, 110, 120)
    kinds = [r[0] for r in reports]
    assert kinds == ["impact.started", "alert.fired", "mitigated"]
    impact, fired, mitigated = (r[1] for r in reports)
    assert impact == int(110.3 * S)              # the first bad request's end
    # the window goes bad at 110.3 and the alert waits for the 0.5 s hold
    assert 110.8 * S <= fired <= 111.1 * S
    assert 113 * S <= mitigated <= 113.1 * S     # first good request after the last bad
    data = reports[2][2]
    fed_bad = [x for x in traffic.between(110 * S, 120 * S) if x.status == 502]
    assert data["bad_requests"] == len(fed_bad) and data["requests"] > data["bad_requests"]


def test_nothing_before_arming_and_the_alert_waits_for_its_hold():
    traffic, det, reports = detector_with_reports()
    feed(traffic, 100, 101, status=500)          # noise before the fault: ignored
    feed(traffic, 101, 110)
    evaluate_until(det, 100, 104)
    assert reports == []
    det.arm(110 * S)
    feed(traffic, 110.0, 110.2, status=500)
    feed(traffic, 110.2, 120)
    evaluate_until(det, 110.2, 110.5)            # breaching for 0.3 s < the 0.5 s hold
    assert [r[0] for r in reports] == ["impact.started"]
    det.evaluate(int(110.75 * S))
    assert [r[0] for r in reports] == ["impact.started", "alert.fired"]


def test_latency_breach_fires():
    traffic, det, reports = detector_with_reports()
    feed(traffic, 100, 110)
    det.arm(110 * S)
    feed(traffic, 110, 115, latency_ms=800)
    evaluate_until(det, 110, 115)
    assert [r[0] for r in reports][:2] == ["impact.started", "alert.fired"]


def test_a_prometheus_reading_with_no_number_is_judged_by_what_it_has():
    """The team's query returns NaN (0/0: no requests in its window): the detector goes
    on (it does not stop on it), counting what has no number as no burn; a number
    outside the objective still is."""
    from gameday.slis.prometheus import PrometheusSli, Queries

    readings = PrometheusSli(Queries("http://127.0.0.1:1", "ratio", "p99"),
                             objective_ratio=0.99, samples_path=None)
    reports = []
    det = Detector(readings, SLO, ALERT, interval_s=0.25, recovery_window_s=1.0,
                   report=lambda entry, at, utc: reports.append(entry.kind))
    det.arm(1)
    for ratio, p99, outside in ((None, None, False), (1.0, None, False),
                                (None, 900.0, True), (0.5, None, True)):
        readings._record(ratio, p99)
        det.evaluate(readings._latest[-1][0])
        assert det.current() is not None and det.current().success_ratio == ratio
        assert det.healthy() is not outside, (ratio, p99)


def test_a_reading_with_no_number_is_not_a_steady_state(tmp_path):
    """Before the load shows in the team's Prometheus its ratio is NaN: no steady state
    yet (nothing would measure the fault), and the wait says so instead of crashing."""
    import pytest

    from gameday.core.errors import SandboxError
    from gameday.game.run import wait_steady
    from gameday.incidents.comms import describe_impact
    from gameday.slis.prometheus import PrometheusSli, Queries

    readings = PrometheusSli(Queries("http://127.0.0.1:1", "ratio", "p99"),
                             objective_ratio=0.99, samples_path=None)

    class Steady:
        slo = SLO

        class timeouts:
            steady = 0.3

    readings._record(None, None)
    with pytest.raises(SandboxError, match="no success ratio read, no p99 latency read"):
        wait_steady(Steady, readings)
    readings._record(1.0, 12.0)
    assert wait_steady(Steady, readings).success_ratio == 1.0
    assert describe_impact({"total": 3, "success_ratio": None, "p99_ms": 40.0}) == \
        "no success ratio read, p99 latency 40 ms"


def test_the_newest_sample_says_whether_the_fix_has_landed():
    """The newest sample decides, however close the bad ones before it are (a kwok
    Deployment's replica samples right after the runbook scaled it back) and however
    old it is (samples slower than usual on a loaded machine): a fix that landed stops
    severity bumps at once."""
    import time

    traffic, det, _ = detector_with_reports()
    assert not det.recovering()  # no sample at all
    now = time.monotonic_ns() / S
    feed(traffic, now - 3.0, now - 2.0, status=500)
    assert not det.recovering()
    feed(traffic, now - 1.9, now - 1.0)  # good, older than any short look-back
    assert det.recovering()
    feed(traffic, now - 0.9, now - 0.1, status=500)
    feed(traffic, now - 0.05, now - 0.02)  # the fix, right after bad samples
    assert det.recovering()
    feed(traffic, now - 0.01, now - 0.005, status=500)
    assert not det.recovering()


def test_a_record_that_cannot_be_written_never_holds_the_game_day_up():
    """The store goes away while the fault is live: the detector's signals still come
    (the game day goes on to roll the fault back), and what it measured goes on the
    record once the store is back, in order, each dated when it happened."""
    from gameday.core.errors import StoreUnavailable

    traffic = Traffic("http://127.0.0.1:1/", 40, 1, None)
    reports, down = [], [True]

    def report(entry, at, utc):
        if down[0]:
            raise StoreUnavailable("the store is not answering")
        reports.append((entry.kind, at))

    det = Detector(traffic, SLO, ALERT, interval_s=0.25, recovery_window_s=1.0, report=report)
    feed(traffic, 100, 110)
    det.arm(110 * S)
    feed(traffic, 110.3, 113, status=502, rate=10)
    feed(traffic, 110, 120)
    evaluate_until(det, 110, 120)
    assert det.fired.is_set() and det.mitigated.is_set() and reports == []
    down[0] = False
    det.evaluate(121 * S)
    assert [kind for kind, _ in reports] == ["impact.started", "alert.fired", "mitigated"]
    assert reports[0][1] == int(110.3 * S) and 113 * S <= reports[2][1] <= 113.1 * S
