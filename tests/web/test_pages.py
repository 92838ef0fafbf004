"""The pages people read at 3am, in a real browser: a real game day's incident, its run
and its review, and a real alert whose name and summary run long, on a desktop and on
a phone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from chromium import browser, needs_chromium, sign_in

pytestmark = [pytest.mark.slow, needs_chromium]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "pages-token-0123456789abcdef"
LONG_ALERT = "PaymentsGatewayUpstreamConnectionPoolExhaustedInRegionEuropeWest1ZoneB"
LONG_SUMMARY = "https://grafana.example.org/d/payments-gateway/" + "x" * 180


def no_sideways(driver: Any, what: str) -> None:
    """The page is no wider than the window: nothing pushed out of sight to the right."""
    wide, window = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    assert wide <= window, f"{what}: {wide} px wide in a {window} px window"


def fits(driver: Any, table: str) -> None:
    """The table fits its box: no column (the title, say) out of sight to scroll to."""
    wide, box = driver.execute_script(
        "const t = document.getElementById(arguments[0]); "
        "return [t.scrollWidth, t.parentElement.clientWidth]", table)
    assert wide <= box, f"#{table}: {wide} px wide in a {box} px box"


def post_alert(base: str) -> int:
    alert = {"version": "4", "groupKey": f"{{}}:{{alertname=\"{LONG_ALERT}\"}}",
             "truncatedAlerts": 0, "status": "firing", "receiver": "gameday",
             "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
             "externalURL": "", "alerts": [{
                 "status": "firing", "fingerprint": "long1",
                 "labels": {"alertname": LONG_ALERT, "severity": "warning",
                            "service": "payments-gateway-europe-west1-b-canary"},
                 "annotations": {"summary": LONG_SUMMARY},
                 "startsAt": "2026-11-22T03:00:00Z", "endsAt": "", "generatorURL": ""}]}
    request = urllib.request.Request(
        f"{base}/api/v1/alerts", data=json.dumps(alert).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    return int(json.loads(urllib.request.urlopen(request, timeout=30).read())["incident_id"])


def test_pages_people_read_at_3am_in_chromium(tmp_path, gameday_serve):
    """Long alert names, summaries and titles wrap instead of pushing the page (or the
    rest of the incident list) out of sight; a game day's run page and its review say
    it was a rehearsal, and when it ran, in UTC; all of it on a phone too."""
    from selenium.webdriver.common.by import By

    from gameday.store import Store

    shots = os.environ.get("GAMEDAY_SCREENSHOTS")  # set to refresh docs/img
    db = tmp_path / "g.db"
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db),
           "GAMEDAY_RUNS": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-m", "gameday", "run",
                           "scenarios/checkout-replica-crash.yaml", "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    game = json.loads(done.stdout)["incident_id"]
    store = Store(db)
    (run,) = store.runs(incident_id=game)
    store.close()
    base = gameday_serve(env, "--data-dir", str(tmp_path / "data"), "--no-scheduler").base
    real = post_alert(base)
    desk = phone = None
    try:
        desk = browser(tmp_path, "desk", size="1100,1200")
        desk.get(f"{base}/incidents")
        sign_in(desk, TOKEN, "incidents", name="ana")
        no_sideways(desk, "the incident list")
        fits(desk, "incidents")
        titles = [a.text for a in desk.find_elements(By.CSS_SELECTOR, "#incidents .line a")]
        assert titles[1] == "Game day: a checkout replica crashes"  # in sight, whole
        desk.get(f"{base}/incidents/{real}")
        no_sideways(desk, "a real incident with a long alert name")
        fits(desk, "timeline")

        desk.get(f"{base}/runs/{run['id']}")
        assert desk.find_element(By.ID, "kind").text == "game day"
        assert "a rehearsal: not for a real incident" in desk.find_element(By.ID,
                                                                            "rehearsal").text
        when = desk.find_element(By.ID, "when").text
        assert when.startswith(f"started {run['started_at'][:10]} ") and "UTC" in when
        desk.get(f"{base}/incidents/{game}")
        desk.save_screenshot(str(tmp_path / "incident-page.png"))
        desk.get(f"{base}/incidents/{game}/review")
        assert desk.find_element(
            By.ID, "rehearsal").text == "A game day, a rehearsal: not a real incident."
        opened = desk.find_element(By.XPATH, "//tr[th='Opened']/td").text
        assert opened.endswith(" UTC") and opened[:4] == run["started_at"][:4]

        phone = browser(tmp_path, "phone", size="390,844")
        phone.get(f"{base}/incidents")
        sign_in(phone, TOKEN, "incidents", name="ana")
        for path, what in (("/incidents", "the incident list"),
                           (f"/incidents/{real}", "a real incident with a long alert name"),
                           (f"/incidents/{game}", "a game day's incident"),
                           (f"/runs/{run['id']}", "a game day's run"),
                           (f"/incidents/{game}/review", "a game day's review")):
            phone.get(base + path)
            no_sideways(phone, f"{what}, on a phone")
        if shots:
            shutil.copy(tmp_path / "incident-page.png", Path(shots) / "incident-page.png")
    finally:
        for driver in (desk, phone):
            if driver:
                driver.quit()
