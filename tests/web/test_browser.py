"""A real browser clicks Run on a runbook link taken from an alert."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from chromium import browser, needs_chromium, sign_in

from gameday.targets.sandbox import start_sandbox, stop_sandbox

pytestmark = [pytest.mark.slow, needs_chromium]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-token-0123456789abcdef"


def test_run_button_in_chromium(tmp_path, gameday_serve):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    shop = start_sandbox(tmp_path / "sandbox")
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db"),
           "GAMEDAY_SANDBOX": str(tmp_path / "sandbox")}
    driver = None
    try:
        base = gameday_serve(env, "--data-dir", str(tmp_path / "data"), wait=False).base
        alert = {"version": "4", "groupKey": "{}:{alertname=\"ServiceReplicaSlow\"}",
                 "truncatedAlerts": 0, "status": "firing", "receiver": "gameday",
                 "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                 "externalURL": "", "alerts": [{
                     "status": "firing", "fingerprint": "slow1",
                     "labels": {"alertname": "ServiceReplicaSlow", "service": "payments",
                                "replica": "2"},
                     "annotations": {"summary": "payments replica 2 is slow"},
                     "startsAt": "2026-11-22T10:00:00Z", "endsAt": "", "generatorURL": ""}]}
        request = urllib.request.Request(
            f"{base}/api/v1/alerts", data=json.dumps(alert).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
                break
            except OSError:
                assert time.monotonic() < deadline, "gameday serve did not start"
                time.sleep(0.2)
        link = answer["alerts"][0]["link"]
        assert link.startswith("/runbooks/drain-replica?")   # not automatic: a link

        driver = browser(tmp_path, size="1200,1000")
        wait = WebDriverWait(driver, 60)
        driver.get(base + link)                                # sign-in first
        sign_in(driver, TOKEN, "run", name="ana")
        assert driver.find_element(By.ID, "p.service").get_attribute("value") == "payments"
        assert "gameday sandbox drain" in driver.page_source
        driver.find_element(By.ID, "confirm").click()          # destructive: confirm
        driver.find_element(By.ID, "run").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "successful"))
        output = driver.find_element(By.ID, "output").text
        assert "Drain the replica" in output and "finished: successful" in output
        driver.save_screenshot(str(tmp_path / "run.png"))
        driver.get(f"{base}/incidents/{answer['incident_id']}")
        runs = driver.find_element(By.ID, "runs").text
        assert "drain-replica" in runs and "successful" in runs and "ana" in runs
        replicas = shop.state()["services"]["payments"]["replicas"]
        assert [r["drained"] for r in replicas] == [False, True]
    finally:
        if driver:
            driver.quit()
        stop_sandbox(tmp_path / "sandbox")


def test_a_responder_pulls_the_freeze_in_chromium(tmp_path, gameday_serve):
    """The schedules page's lever in a real browser: a responder signs in with their own
    token, freezes game days with a reason, and the page says who and why."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from gameday.store import Store

    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db")}

    def gameday(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "gameday", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    gameday("schedule", "add", "nightly", "scenarios/checkout-replica-crash.yaml",
            "--every", "6h")
    rhea = json.loads(gameday("user", "add", "rhea", "--role", "responder", "--json"))["token"]
    base = gameday_serve(env, "--data-dir", str(tmp_path / "data")).base
    driver = None
    try:
        driver = browser(tmp_path, size="1200,1000")
        wait = WebDriverWait(driver, 30)
        driver.get(base + "/schedules")                       # sign-in first
        sign_in(driver, rhea, "freeze")
        assert "Run now" not in driver.page_source            # a responder starts nothing
        driver.find_element(By.NAME, "reason").send_keys("real incident on checkout")
        driver.find_element(By.CSS_SELECTOR, "#freeze button").click()
        wait.until(ec.presence_of_element_located((By.ID, "frozen")))
        banner = driver.find_element(By.ID, "frozen").text
        assert "FROZEN by rhea" in banner and "real incident on checkout" in banner
        assert not driver.find_elements(By.ID, "unfreeze")   # a commander lifts it
        driver.save_screenshot(str(tmp_path / "frozen.png"))
        store = Store(tmp_path / "g.db")
        assert store.freeze()["who"] == "rhea"
        (entry,) = [e for e in store.audit_log() if e["action"] == "freeze"]
        assert entry["who"] == "rhea"
        store.close()
    finally:
        if driver:
            driver.quit()


def test_pages_say_which_world_in_chromium(tmp_path, gameday_serve):
    """The incident list marks a real incident, a game day and a drill (a badge each,
    and a filter); the incident page of a rehearsal says so; the one-click runbook page
    shows its commands with the alert's parameters in them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from gameday.incidents.incident import Incident
    from gameday.runbooks.runbook import find
    from gameday.runs import run as runs
    from gameday.store import Store

    shots = os.environ.get("GAMEDAY_SCREENSHOTS")  # set to refresh docs/img
    db = tmp_path / "g.db"
    store = Store(db)
    for kind, title in (("gameday", "Game day: a checkout replica crashes"),
                        ("drill", "Drill: a checkout replica crashes")):
        (tmp_path / kind / "sandbox").mkdir(parents=True)
        rehearsal = Incident.open(store, title, service="checkout", kind=kind,
                                  scenario="checkout-replica-crash",
                                  run_dir=str(tmp_path / kind))
        rehearsal.declare("SEV-2", "gameday")
        env, _ = runs.environment(rehearsal)
        runs.queue(store, find("restart-replica"), {"service": "checkout"},
                   incident=rehearsal, who="gameday", env=env)
    store.close()
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db)}
    base = gameday_serve(env, "--data-dir", str(tmp_path / "data"), "--no-scheduler").base
    driver = None
    try:
        alert = {"version": "4", "groupKey": "{}:{alertname=\"CheckoutErrorsAfterDeploy\"}",
                 "truncatedAlerts": 0, "status": "firing", "receiver": "gameday",
                 "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                 "externalURL": "", "alerts": [{
                     "status": "firing", "fingerprint": "real1",
                     "labels": {"alertname": "CheckoutErrorsAfterDeploy",
                                "service": "checkout", "severity": "critical"},
                     "annotations": {"summary": "checkout fails after the deploy"},
                     "startsAt": "2026-11-22T10:00:00Z", "endsAt": "", "generatorURL": ""}]}
        request = urllib.request.Request(
            f"{base}/api/v1/alerts", data=json.dumps(alert).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        real = json.loads(urllib.request.urlopen(request, timeout=30).read())["incident_id"]

        driver = browser(tmp_path, size="1200,1000")
        wait = WebDriverWait(driver, 30)
        driver.get(base + "/incidents")                         # sign-in first
        sign_in(driver, TOKEN, "incidents", name="ana")
        rows = driver.find_elements(By.CSS_SELECTOR, "#incidents tr[class^=kind-row-]")
        kinds = [r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows]
        assert kinds == ["real incident", "drill", "game day"]  # newest first
        driver.save_screenshot(str(tmp_path / "incidents-list.png"))
        driver.find_element(By.CSS_SELECTOR, '#kinds a[data-kind="gameday"]').click()
        wait.until(ec.url_contains("kind=gameday"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#incidents tr[class^=kind-row-]")
        assert [r.get_attribute("class") for r in rows] == ["kind-row-gameday"]
        rows[0].find_element(By.CSS_SELECTOR, "a").click()
        wait.until(ec.presence_of_element_located((By.ID, "rehearsal")))
        assert "not a real incident" in driver.find_element(By.ID, "rehearsal").text
        acted = driver.find_element(By.CSS_SELECTOR, "#runs code.world")
        assert acted.text == "its own sandbox"  # the whole key on hover
        assert acted.get_attribute("title").startswith("GAMEDAY_SANDBOX=")

        driver.get(f"{base}/runbooks/rollback-release?service=checkout&incident={real}")
        wait.until(ec.presence_of_element_located((By.ID, "commands")))
        assert driver.find_element(By.ID, "kind").text == "real incident"
        commands = driver.find_element(By.ID, "commands").text
        assert "gameday sandbox rollback checkout" in commands and "{{" not in commands
        driver.save_screenshot(str(tmp_path / "runbook-page.png"))
        if shots:
            for name in ("incidents-list", "runbook-page"):
                shutil.copy(tmp_path / f"{name}.png", Path(shots) / f"{name}.png")
    finally:
        if driver:
            driver.quit()


def test_a_storms_incident_page_in_chromium(tmp_path, gameday_serve):
    """At 3am, the incident of an alert storm: its first alerts as they came, then one
    line that counts the hundreds more and the run they joined; the page reads what it
    shows, not every event."""
    from selenium.webdriver.common.by import By

    from gameday.core import events
    from gameday.incidents.incident import Incident
    from gameday.runbooks.runbook import find
    from gameday.runs import run as runs
    from gameday.store import Store

    shots = os.environ.get("GAMEDAY_SCREENSHOTS")  # set to refresh docs/img
    db = tmp_path / "g.db"
    store = Store(db)
    incident = Incident.open(store, "checkout fails after the deploy", service="checkout")
    labels = {"alertname": "CheckoutErrorsAfterDeploy", "service": "checkout",
              "severity": "critical"}

    def fired(n: int) -> None:
        incident.record(events.alert_fired(
            "CheckoutErrorsAfterDeploy", {**labels, "pod": f"checkout-{n}"},
            {"summary": "checkout fails after the deploy"}, starts_at="2026-11-22T10:00:00Z",
            fingerprint=f"fp{n}"), "alertmanager")

    fired(0)
    incident.declare("SEV-2", "alertmanager", alert="CheckoutErrorsAfterDeploy")
    run_id = runs.queue(store, find("rollback-release"), {"service": "checkout"},
                        incident=incident, who="alertmanager")
    for n in range(1, 400):
        fired(n)
        incident.record(events.runbook_coalesced(
            "rollback-release", run_id, "CheckoutErrorsAfterDeploy", fingerprint=f"fp{n}",
            because=f"run {run_id} is queued"), "gameday")
    incident.acknowledge("ana", via="page")
    store.close()
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db)}
    base = gameday_serve(env, "--data-dir", str(tmp_path / "data"), "--no-scheduler").base
    driver = None
    try:
        driver = browser(tmp_path, size="1200,900")
        driver.get(f"{base}/incidents/{incident.id}")
        sign_in(driver, TOKEN, "timeline", name="ana")
        rows = driver.find_elements(By.CSS_SELECTOR, "#timeline tr")[1:]
        kinds = [r.find_element(By.CSS_SELECTOR, ".kind").text for r in rows]
        assert kinds.count("alert storm") == 1 and len(rows) < 20, kinds
        storm = rows[kinds.index("alert storm")].find_element(By.CSS_SELECTOR, ".what").text
        assert storm.startswith("397 more alert instances fired (CheckoutErrorsAfterDeploy); "
                                f"397 joined run {run_id} instead of starting it again"), storm
        assert kinds[-1] == "incident.acknowledged"
        driver.execute_script("document.getElementById('timeline').scrollIntoView()")
        driver.save_screenshot(str(tmp_path / "incident-storm.png"))
        if shots:
            shutil.copy(tmp_path / "incident-storm.png", Path(shots) / "incident-storm.png")
    finally:
        if driver:
            driver.quit()
