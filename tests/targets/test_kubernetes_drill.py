"""A training drill in a team's own Kubernetes cluster, across two ``gameday serve``
replicas on one PostgreSQL database: the game master starts it on one replica, the
on-call plays it in Chromium through the other (its console, its SLI chart from the
store, the linked runbook run from there in the team's context), and nothing outside
the allowed namespace moves."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest
from chromium import browser, needs_chromium, sign_in
from controlplane import needs_build
from serving import eventually
from test_kubernetes import ALLOWED, team_cluster, write_project

from gameday.store import Store

pytestmark = [pytest.mark.slow, needs_build, needs_chromium]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "k8s-drill-token-0123456789abcdef"
SHOTS = os.environ.get("GAMEDAY_SCREENSHOTS")  # set to refresh docs/img


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with team_cluster("drill", tmp_path_factory.mktemp("manifests")) as team:
        yield team


def api(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + path, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=150) as answer:
        return json.loads(answer.read())


def test_a_drill_in_the_teams_cluster_played_from_another_replica(
        tmp_path, cluster, postgres, gameday_serve):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    here, there = tmp_path / "replica-a", tmp_path / "replica-b"
    write_project(here, cluster)
    shutil.copytree(here, there)   # the other replica has the project, not the run directory
    url = postgres.database()
    bindir = ROOT / ".gameday" / "k8s" / "bin"   # the built kubectl, not whatever is on PATH
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEDAY_", "KUBE"))}
    env |= {"GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": url, "GAMEDAY_K8S_BIN": str(bindir),
            "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}"}
    first = gameday_serve(env, "--no-scheduler", name="serve-a", cwd=here)
    second = gameday_serve(env, "--no-scheduler", name="serve-b", cwd=there)
    before = cluster.versions()

    started = api(first.base, "/api/v1/drills",
                  {"scenario": "scenarios/api-scaled-to-zero.yaml", "as": "gm"})
    drill_id, incident_id = started["drill_id"], started["incident_id"]
    store = Store(url)
    commander = eventually(lambda: next((e.data["person"] for e in store.events(incident_id)
                                         if e.kind == "page.sent" and
                                         e.data["role"] == "incident_commander"), None),
                           90, "the incident commander's page")
    driver = browser(tmp_path)
    try:
        wait = WebDriverWait(driver, 90)
        driver.get(f"{second.base}/drills/{drill_id}")     # sign-in first, on the other one
        sign_in(driver, TOKEN, "page-box", name=commander)
        wait.until(ec.visibility_of_element_located((By.ID, "page-box")))
        driver.find_element(By.ID, "ack").click()
        wait.until(ec.visibility_of_element_located((By.ID, "panel-ic")))
        # The SLIs the drill's game day (started by the first replica) stored, charted here.
        wait.until(ec.text_to_be_present_in_element((By.ID, "sli-now"),
                                                    "outside the objective"))
        assert driver.find_elements(By.CSS_SELECTOR, "#chart polyline")
        link = wait.until(ec.presence_of_element_located((By.ID, "runbook-link")))
        href = link.get_attribute("href")
        assert href.startswith(f"{second.base}/runbooks/k8s-scale-deployment?")
        driver.get(href)
        driver.find_element(By.ID, "run").click()
        try:
            WebDriverWait(driver, 90).until(
                lambda d: any(word in d.find_element(By.ID, "status").text
                              for word in ("successful", "failed", "refused", "rror")))
        except Exception:
            raise AssertionError(driver.find_element(By.TAG_NAME, "body").text) from None
        assert "successful" in driver.find_element(By.ID, "status").text, \
            driver.find_element(By.TAG_NAME, "main").text
        driver.get(f"{second.base}/drills/{drill_id}")
        wait.until(ec.text_to_be_present_in_element((By.ID, "timeline"), "mitigated"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "sli-now"),
                                                    "100.0% of replicas available"))
        if SHOTS:
            driver.save_screenshot(str(Path(SHOTS) / "drill-console-kubernetes.png"))
        driver.find_element(By.ID, "how").send_keys("scaled the api back to three")
        driver.find_element(By.ID, "resolve").click()
        wait.until(ec.visibility_of_element_located((By.ID, "over")))
        driver.get(f"{second.base}/drills")   # the console offers drills on the cluster
        offered = driver.find_element(By.ID, "scenario").text
        assert f"api-scaled-to-zero (on {cluster.context}, namespace {ALLOWED})" in offered
    finally:
        driver.quit()
    eventually(lambda: store.drill(drill_id)["state"] != "running", 120,
               "the drill's game day to end")

    (run,) = store.runs()
    assert run["runbook"] == "k8s-scale-deployment" and run["status"] == "successful"
    assert run["started_by"] == commander and run["params"]["context"] == cluster.context
    assert run["owner"].split(":")[1] == str(second.proc.pid)   # run by the other replica
    windows, _ = store.sli_windows(incident_id)
    assert any(w["outside"] for w in windows) and not windows[-1]["outside"]
    kinds = [e.kind for e in store.events(incident_id)]
    assert "mitigated" in kinds and "incident.resolved" in kinds
    store.close()
    assert cluster.available() == 3
    assert cluster.versions() == before                  # the other namespace, untouched
    assert cluster.running()
