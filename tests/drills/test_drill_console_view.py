"""The drill console as people read it at 3am, in Chromium against a real ``gameday
serve``: a heading that says drill (a drill stored under its scenario's game-day title
too), who holds a role and who was paged before anyone answered, a chart with a time
axis, and the timeline in the order things happened, an event recorded late (the SLIs'
recovery, dated at the first good request) included, as it arrives live and on a reload."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import drillstate
import pytest
from chromium import browser, needs_chromium, sign_in

from gameday.core import events
from gameday.store import Store

pytestmark = [pytest.mark.slow, needs_chromium]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "drill-console-view-token-0123456789"
S = 1_000_000_000


@pytest.fixture
def drill(tmp_path: Path):
    """A drill as its game-day process leaves it once ana (incident commander) and fay
    (comms lead) are paged and nobody has answered: its incident titled as drills were
    before they had titles of their own, 90 s of SLI windows in the store."""
    store = Store(tmp_path / "g.db")
    drill = drillstate.paged(store, tmp_path, title="Game day: a checkout replica crashes")
    drill_id, inc = drill.id, drill.incident
    at = inc.events()[0].at_monotonic_ns
    inc.page("fay", "comms_lead", "the shop-checkout roster's comms lead")
    store.add_sli_windows(inc.id, [
        {"at_ns": at + i * 10 * S, "total": 40, "success_ratio": ratio, "p99_ms": 20.0,
         "outside": ratio < 0.99}
        for i, ratio in enumerate((1.0, 0.66, 0.67, 0.66, 0.66, 0.7, 0.9, 1.0, 1.0, 1.0))])
    return store, drill_id, inc


def api(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def texts(driver, selector: str) -> list[str]:
    """What the page shows for each element ``selector`` finds, read in one script: the
    live console redraws its rows, so an element found before may be gone a moment after."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())",
        selector)


def shown_kinds(driver) -> list[str]:
    return texts(driver, "#timeline td.kind")


def newest_first(store: Store, incident_id: int) -> list[str]:
    """The incident's kinds as the timeline should read: newest first, by time."""
    return [e["kind"] for e in reversed(events.in_time_order(store.events(incident_id)))]


def test_the_console_reads_in_time_order_and_says_who_is_paged(tmp_path, drill,
                                                               gameday_serve):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    store, drill_id, inc = drill
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db"),
           "GAMEDAY_RUNS": str(tmp_path / "runs")}
    served = gameday_serve(env, "--data-dir", str(tmp_path / "data"), "--no-scheduler")
    driver = browser(tmp_path, "chromium-ben")
    try:
        driver.get(f"{served.base}/drills/{drill_id}")
        sign_in(driver, TOKEN, "timeline", name="ben", timeout=30)
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: len(shown_kinds(d)) == len(store.events(inc.id)))

        # A drill, in words, though its incident kept the scenario's game-day title.
        assert driver.find_element(By.ID, "heading").text == \
            f"Drill {drill_id}: a checkout replica crashes"
        assert store.incident(inc.id)["title"] == "Game day: a checkout replica crashes"

        # Nobody holds a role yet; who was paged, for what, is there to read.
        none = driver.find_element(By.ID, "roles-none")
        assert none.is_displayed() and "Nobody holds a role yet" in none.text
        paged = texts(driver, "#paged li")
        assert paged == ["ana as incident commander (CheckoutAvailabilityBurn fired): "
                         "not answered yet",
                         "fay as comms lead (the shop-checkout roster's comms lead): "
                         "not answered yet"]

        # The chart has a time axis: seconds since the drill started, evenly spaced.
        ticks = driver.execute_script(
            "return [...document.querySelectorAll('#chart text.tick')]"
            ".map(t => [t.textContent, parseFloat(t.getAttribute('x'))])")
        assert [text for text, _ in ticks] == [f"{s} s" for s in range(0, 91, 15)]
        xs = [x for _, x in ticks]
        gaps = {round(b - a, 1) for a, b in zip(xs, xs[1:], strict=False)}
        assert len(gaps) == 1 and gaps.pop() > 0

        # ana answers; a runbook runs; then the detector records the recovery, dated a
        # moment before the runbook started: the timeline, live, puts it there.
        api(served.base, f"/api/v1/incidents/{inc.id}/ack", {"as": "ana"})
        started = inc.record(events.runbook_started("restart-replica", {"service": "checkout"},
                                                    False, "artifacts"), "ben")
        inc.record(events.runbook_finished("restart-replica", "successful", 0), "ben")
        wait.until(ec.text_to_be_present_in_element((By.ID, "timeline"), "runbook.finished"))
        inc.record(events.mitigated(1.0, 400, 130, 130), "detector",
                   at_ns=started.at_monotonic_ns - 1000, measured=True)
        wait.until(lambda d: len(shown_kinds(d)) == len(store.events(inc.id)))
        expected = newest_first(store, inc.id)
        assert expected[:3] == ["runbook.finished", "runbook.started", "mitigated"]
        assert shown_kinds(driver) == expected
        wait.until(lambda d: not d.find_element(By.ID, "roles-none").is_displayed())
        assert "ana" in driver.find_element(By.ID, "roles").text
        assert "ana as incident commander (CheckoutAvailabilityBurn fired): answered" in \
            driver.find_element(By.ID, "paged").text
        driver.save_screenshot(str(tmp_path / "drill-console-live.png"))

        # A reload reads the same order from the snapshot.
        driver.refresh()
        wait.until(lambda d: len(shown_kinds(d)) == len(store.events(inc.id)))
        assert shown_kinds(driver) == expected
        driver.save_screenshot(str(tmp_path / "drill-console-reloaded.png"))
    finally:
        driver.quit()
