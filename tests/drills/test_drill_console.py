"""A whole training drill in the console: three people in three Chromium sessions at
once (incident commander, comms lead, responder) against the real sandbox, the game
master scripting from the terminal and the JSON API."""

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

from gameday.drills.scorecards import scorecards
from gameday.scenarios.scenario import load_scenario
from gameday.store import Store
from gameday.targets.sandbox.supervisor import free_port

pytestmark = [pytest.mark.slow, needs_chromium]
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "scenarios/checkout-replica-crash.yaml"
TOKEN = "drill-console-token-0123456789"
SHOTS = os.environ.get("GAMEDAY_SCREENSHOTS")  # set to refresh docs/img


def api(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + path, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def shot(driver, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / f"{name}.png"))
    if SHOTS:
        shutil.copy(tmp_path / f"{name}.png", Path(SHOTS) / f"{name}.png")


def test_three_people_run_a_drill_in_chromium(tmp_path, gameday_serve):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = tmp_path / "g.db"
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db),
           "GAMEDAY_RUNS": str(tmp_path / "runs"), "GAMEDAY_URL": base}
    gameday_serve(env, "--data-dir", str(tmp_path / "data"), "--no-scheduler", port=port)
    drivers: dict[str, object] = {}
    drill_id = None
    try:
        # The game master starts the drill from the terminal and shares the join link.
        started = json.loads(subprocess.run(
            [sys.executable, "-m", "gameday", "drill", "start", SCENARIO, "--json",
             "--game-master", "gm"], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=150, check=True).stdout)
        drill_id, incident_id = started["drill_id"], started["incident_id"]
        assert started["join_url"] == f"{base}/drills/{drill_id}"
        assert started["join_url_assumed"] is False   # GAMEDAY_URL says where serve is

        # Who is on call is the rotation's business (the week decides): whoever the store
        # says was paged commands, the other one of the rotation responds.
        store = Store(db)
        rotation = list(load_scenario(ROOT / SCENARIO).team.oncall)
        deadline = time.monotonic() + 90
        while not (paged := [e.data["person"] for e in store.events(incident_id)
                             if e.kind == "page.sent" and e.data["person"] in rotation]):
            assert time.monotonic() < deadline, "nobody of the on-call rotation was paged"
            time.sleep(0.2)
        ic = paged[0]
        (other,) = (p for p in rotation if p != ic)
        people = {ic: "incident_commander", "fay": "comms_lead", other: "responder"}
        for name in people:
            d = drivers[name] = browser(tmp_path, f"chromium-{name}", "420,1500" if name == "fay"
                                        else "1280,1100")
            d.get(started["join_url"])                      # sign-in first, then the console
            sign_in(d, TOKEN, "timeline", name=name, timeout=30)
        commander, fay, responder = drivers[ic], drivers["fay"], drivers[other]
        wait = {n: WebDriverWait(d, 90) for n, d in drivers.items()}
        # A drill's incident is titled as a drill, not as the scenario's game day.
        assert store.incident(incident_id)["title"] == "Drill: a checkout replica crashes"
        assert commander.find_element(By.ID, "heading").text == \
            f"Drill {drill_id}: a checkout replica crashes"

        # The on-call's page arrives: they answer it and command.
        wait[ic].until(ec.visibility_of_element_located((By.ID, "page-box")))
        assert "incident commander" in commander.find_element(By.ID, "page-text").text
        commander.find_element(By.ID, "ack").click()
        wait[ic].until(ec.visibility_of_element_located((By.ID, "panel-ic")))
        # fay is the roster's comms lead: paged, she answers; the other on-call takes a role.
        wait["fay"].until(ec.visibility_of_element_located((By.ID, "page-box")))
        assert "comms lead" in fay.find_element(By.ID, "page-text").text
        fay.find_element(By.ID, "ack").click()
        Select(responder.find_element(By.ID, "join-role")).select_by_value("responder")
        responder.find_element(By.ID, "join").click()
        wait["fay"].until(ec.visibility_of_element_located((By.ID, "panel-comms")))
        wait[other].until(ec.visibility_of_element_located((By.ID, "hint")))
        wait["fay"].until(ec.text_to_be_present_in_element((By.ID, "roles"), other))

        # The game master fires an inject: it reaches the comms lead live.
        api(base, f"/api/v1/drills/{drill_id}/inject", {"name": "exec-asks-eta", "as": "gm"})
        wait["fay"].until(ec.text_to_be_present_in_element((By.ID, "injects"), "VP of sales"))
        Select(fay.find_element(By.ID, "audience")).select_by_value("executive")
        wait["fay"].until(lambda d: "SEV-" in d.find_element(By.ID, "update")
                          .get_attribute("value") and "executive" not in
                          d.find_element(By.ID, "missing").text)
        assert fay.find_element(By.ID, "missing").text == ""   # the template says it all
        shot(fay, tmp_path, "drill-console-comms-lead")
        fay.find_element(By.ID, "post").click()
        wait["fay"].until(ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "#panel-comms [data-msg]"), "posted to executive"))

        # The responder takes a hint, then runs the linked runbook from its one-click page.
        responder.find_element(By.ID, "hint").click()
        wait[other].until(ec.text_to_be_present_in_element((By.ID, "hint-text"), "costs 5"))
        link = responder.find_element(By.ID, "runbook-link").get_attribute("href")
        assert f"/runbooks/restart-replica?service=checkout&incident={incident_id}" in link
        responder.get(link)
        responder.find_element(By.ID, "run").click()
        wait[other].until(ec.text_to_be_present_in_element((By.ID, "status"), "successful"))
        responder.get(started["join_url"])

        # The SLIs recover: the commander sees it live, judges the severity and resolves.
        wait[ic].until(ec.text_to_be_present_in_element((By.ID, "timeline"), "mitigated"))
        shot(commander, tmp_path, "drill-console")
        Select(commander.find_element(By.ID, "sev")).select_by_value("SEV-2")
        commander.find_element(By.ID, "sev-reason").send_keys("a third of checkouts failed")
        commander.find_element(By.ID, "set-sev").click()
        wait[ic].until(ec.text_to_be_present_in_element((By.ID, "severity"), "SEV-2"))
        commander.find_element(By.ID, "how").send_keys("restart-replica brought replica 2 back")
        commander.find_element(By.ID, "resolve").click()
        wait[ic].until(ec.visibility_of_element_located((By.ID, "over")))
        deadline = time.monotonic() + 120
        while store.drill(drill_id)["state"] == "running":
            assert time.monotonic() < deadline, "the drill's game day did not end"
            time.sleep(0.5)

        # The debrief: a scorecard per person, numbers from the stored events.
        commander.get(f"{base}/drills/{drill_id}/debrief")
        assert commander.find_element(By.ID, "heading").text == \
            f"Debrief: Drill {drill_id}: a checkout replica crashes"
        cards = {el.get_attribute("data-person"): el
                 for el in commander.find_elements(By.CSS_SELECTOR, "#scorecards .card")}
        assert set(cards) == {ic, "fay", other, "eli"}   # eli, the scribe, never came
        stored = store.events(incident_id)
        expected = {c.person: c for c in scorecards(load_scenario(ROOT / SCENARIO), stored)}
        for person, el in cards.items():
            assert int(el.find_element(By.CSS_SELECTOR, "[data-score]").text) == \
                expected[person].score
        for person, role in people.items():
            assert role.replace("_", " ") in cards[person].text
        assert "never answered the page" in cards["eli"].text
        page = next(e for e in stored if e.kind == "page.sent" and e.data["person"] == ic)
        answered = next(e for e in stored if e.kind == "incident.acknowledged")
        took = round((answered.at_monotonic_ns - page.at_monotonic_ns) / 1e9, 1)
        shown = cards[ic].find_element(By.CSS_SELECTOR,
                                          '[data-measure="time_to_answer_page"]').text
        assert shown == f"{took:.1f} s"
        responder_card = cards[other].text
        assert "−5 took the triage hint" in responder_card
        debrief = api(base, f"/api/v1/drills/{drill_id}/debrief")
        assert {c["person"]: c["score"] for c in debrief["scorecards"]} == \
            {p: c.score for p, c in expected.items()}
        injects = {i["name"]: i for i in debrief["injects"]}
        assert injects["exec-asks-eta"]["met"] is True
        assert injects["support-tickets"]["met"] is False   # nobody told the customers
        assert any("support-tickets" in d["why"] for d in
                   next(c for c in debrief["scorecards"] if c["person"] == "fay")["deductions"])
        shot(commander, tmp_path, "drill-debrief")
    finally:
        for d in drivers.values():
            d.quit()  # type: ignore[attr-defined]
        if drill_id is not None:
            subprocess.run([sys.executable, "-m", "gameday", "drill", "end", str(drill_id),
                            "--as", "gm"], cwd=ROOT, env=env, capture_output=True, timeout=60)
