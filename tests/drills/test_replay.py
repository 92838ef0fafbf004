"""A real incident replayed as a drill: a real alert opens an incident through the
intake, people ask and answer on its timeline, then ``gameday drill start
--from-incident`` rehearses it on the sandbox and its debrief puts both side by side."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from chromium import browser, needs_chromium, sign_in
from click.testing import CliRunner
from starlette.testclient import TestClient

from gameday.cli.main import cli
from gameday.core import events
from gameday.core.errors import ValidationError
from gameday.core.settings import Settings
from gameday.drills.replay import plan, write
from gameday.incidents.incident import Incident
from gameday.scenarios.scenario import load_scenario
from gameday.store import Store
from gameday.targets.sandbox.supervisor import free_port
from gameday.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "replay-token-0123456789abcdef"
S = 1_000_000_000
LABELS = {"alertname": "CheckoutReplicaUnhealthy", "service": "checkout", "replica": "2",
          "team": "shop-checkout", "severity": "warning"}
ANNOTATIONS = {"summary": "A checkout replica fails its requests",
               "runbook_url": "http://127.0.0.1:8080/runbooks/drain-replica"}


def project(tmp_path: Path) -> Path:
    """A project of its own (this repository's scenarios, experiments and runbooks), so
    the replays it writes land under its own state directory."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "gameday.toml", root / "gameday.toml")
    for name in ("scenarios", "experiments", "runbooks"):
        (root / name).symlink_to(ROOT / name)
    return root


def alertmanager(labels: dict[str, str], annotations: dict[str, str]) -> dict:
    """A firing notification as Alertmanager sends it (webhook payload version 4)."""
    return {"version": "4", "groupKey": f"{{}}:{{alertname=\"{labels['alertname']}\"}}",
            "truncatedAlerts": 0, "status": "firing", "receiver": "gameday",
            "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels,
            "commonAnnotations": annotations, "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": "firing", "labels": labels, "annotations": annotations,
                        "startsAt": "2026-11-22T10:00:00Z", "endsAt": "",
                        "generatorURL": "", "fingerprint": labels["alertname"].lower()}]}


def opened_by_alert(store: Store, tmp_path: Path, labels: dict[str, str] = LABELS,
                    annotations: dict[str, str] = ANNOTATIONS) -> int:
    """A real incident, opened by the intake from an Alertmanager notification."""
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    with TestClient(app) as client:
        r = client.post("/api/v1/alerts", json=alertmanager(labels, annotations),
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    return int(r.json()["incident_id"])


def what_happened(store: Store, incident_id: int) -> None:
    """The incident's people at known offsets from the alert: ana answers at 30 s and
    notes what she does, a VP asks at 60 s, fay tells executives at 120 s, ana calls it
    mitigated at 300 s and resolves at 360 s."""
    inc = Incident(store, incident_id)
    t0 = next(e for e in inc.events() if e.kind == "alert.fired").at_monotonic_ns
    inc.record(events.incident_acknowledged("pager"), "ana", at_ns=t0 + 30 * S)
    inc.record(events.role_assigned("incident_commander", "ana"), "ana", at_ns=t0 + 31 * S)
    inc.record(events.note_added("draining replica 2"), "ana", at_ns=t0 + 45 * S)
    inc.record(events.note_added("The VP of sales asks when checkout will be back"),
               "vp-sales", at_ns=t0 + 60 * S)
    inc.record(events.comms_posted("executive", "Checkout fails for some; next update in "
                                                "20 minutes", False), "fay",
               at_ns=t0 + 120 * S)
    inc.record(events.mitigation_declared("replica 2 drained"), "ana", at_ns=t0 + 300 * S)
    inc.record(events.incident_resolved("replica 2 replaced"), "ana", at_ns=t0 + 360 * S)


def test_the_drill_is_planned_from_the_incident_record(any_store, tmp_path):
    incident_id = opened_by_alert(any_store, tmp_path)
    what_happened(any_store, incident_id)
    replay = plan(any_store, Settings.load(cwd=project(tmp_path)), incident_id)
    assert (replay.alert, replay.service, replay.declared) == (
        "CheckoutReplicaUnhealthy", "checkout", "SEV-3")
    assert replay.symptom == "availability"
    assert replay.fault.key == "gameday.activities.sandbox:kill_replica"
    assert replay.fault.method[0]["provider"]["arguments"] == {"service": "checkout",
                                                                "replica": 2}
    assert "replica 2, the one the alert names" in replay.fault.why
    # the stakeholder's question and the update asked of the comms lead, at the same
    # offsets from the alert; what a responder noted is not a stakeholder's question
    assert [(i["name"], i["at"], i["after"], i["from"]) for i in replay.injects] == [
        ("executive-asks-1", 60.0, "alert.fired", "executive"),
        ("executive-update-1", 120.0, "alert.fired", "executive")]
    assert replay.injects[0]["message"] == "The VP of sales asks when checkout will be back"
    assert replay.injects[1]["expect"]["audience"] == "executive"


@pytest.mark.parametrize(("labels", "annotations", "fault", "argument"), [
    ({"alertname": "ServiceReplicaDown", "service": "checkout"}, {},
     "gameday.activities.sandbox:kill_replica", {"service": "checkout", "replica": 1}),
    ({"alertname": "CheckoutErrorsAfterDeploy", "service": "checkout"}, {},
     "gameday.activities.sandbox:deploy_release", {"service": "checkout", "version": "v1.5.0"}),
    ({"alertname": "CheckoutLatencyBurn", "service": "checkout", "severity": "critical"}, {},
     "gameday.activities.sandbox:inject_latency", {"service": "checkout", "ms": 900}),
])
def test_the_fault_is_chosen_by_the_alert_rules_sli(store, tmp_path, labels, annotations,
                                                     fault, argument):
    """No summary to go by: the alert rule's expression says which SLI it measures."""
    incident_id = opened_by_alert(store, tmp_path, labels, annotations)
    replay = plan(store, Settings.load(cwd=project(tmp_path)), incident_id)
    assert replay.fault.key == fault
    assert replay.fault.method[0]["provider"]["arguments"] == argument
    assert replay.evidence.startswith("its rule in sandbox.rules.yml (")


def gameday(root: Path, env: dict[str, str], *args: str, check: bool = True,
            timeout: float = 150) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "gameday", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert not check or done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_a_real_incident_replayed_on_the_sandbox(any_store, tmp_path):
    incident_id = opened_by_alert(any_store, tmp_path)
    what_happened(any_store, incident_id)
    root = project(tmp_path)
    env = {**os.environ, "GAMEDAY_DB": any_store.url, "GAMEDAY_RUNS": str(tmp_path / "runs")}
    out = gameday(root, env, "drill", "start", "--from-incident", str(incident_id),
                  "--game-master", "gm").stdout
    drill_id = int(re.match(r"drill (\d+): a rehearsal of incident #(\d+)", out)[1])
    assert f"a rehearsal of incident #{incident_id} (CheckoutReplicaUnhealthy" in out
    assert ("fault on the sandbox: gameday.activities.sandbox:kill_replica, because the "
            "alert measures availability") in out
    assert "injects from its timeline: executive-asks-1, executive-update-1" in out
    try:
        row = any_store.drill(drill_id)
        scenario = root / row["scenario"]
        assert scenario.parent == root / ".gameday" / "replays"
        assert gameday(root, env, "validate", str(scenario)).returncode == 0
        sc = load_scenario(scenario)
        assert sc.replay["incident"] == incident_id
        drill_incident = Incident(any_store, row["incident_id"])
        assert drill_incident.row["kind"] == "drill"
        assert drill_incident.row["service"] == "checkout"
        assert drill_incident.row["title"].startswith(f"Rehearsal of incident #{incident_id}")

        # The drill's alert is the incident's: its name, labels and annotations.
        deadline = time.monotonic() + 90
        while not (pages := [e for e in drill_incident.events() if e.kind == "page.sent"]):
            assert time.monotonic() < deadline, "the drill's alert never fired"
            time.sleep(0.2)
        fired = next(e for e in drill_incident.events() if e.kind == "alert.fired")
        assert fired.data["alertname"] == "CheckoutReplicaUnhealthy"
        assert fired.data["labels"] == {k: v for k, v in LABELS.items() if k != "alertname"}
        assert fired.data["annotations"] == ANNOTATIONS
        declared = next(e for e in drill_incident.events() if e.kind == "incident.declared")
        assert declared.data["severity"] == "SEV-3"   # what the real one was run at
        said = next(e for e in drill_incident.events() if e.kind == "drill.replay")
        assert said.data["incident"] == incident_id
        assert said.data["fault"] == "gameday.activities.sandbox:kill_replica"
        assert said.data["injects"] == ["executive-asks-1", "executive-update-1"]

        # People answer; the game master fires the VP's question early and ends it.
        commander = pages[0].data["person"]
        gameday(root, env, "incident", "ack", str(drill_incident.id), "--as", commander)
        gameday(root, env, "drill", "inject", str(drill_id), "executive-asks-1", "--as", "gm")
        gameday(root, env, "incident", "comms", str(drill_incident.id), "--audience",
                "executive", "--as", "fay")
        gameday(root, env, "drill", "end", str(drill_id), "--as", "gm")
        deadline = time.monotonic() + 90
        while any_store.drill(drill_id)["state"] == "running":
            assert time.monotonic() < deadline, "the drill's game day did not end"
            time.sleep(0.3)

        debrief = json.loads(gameday(root, env, "drill", "debrief", str(drill_id),
                                     "--json").stdout)
        timings = {t["metric"]: t for t in debrief["replay"]["timings"]}
        assert timings["TTA"]["real"] == pytest.approx(30.0, abs=0.01)
        assert timings["TTFC"]["real"] == pytest.approx(120.0, abs=0.05)
        assert timings["alert_to_mitigated"]["real"] == pytest.approx(300.0, abs=0.01)
        assert timings["alert_to_resolved"]["real"] == pytest.approx(360.0, abs=0.01)
        assert timings["TTM"]["real"] is None   # a real incident knows no fault
        assert timings["severity_declared"] == {**timings["severity_declared"],
                                                "real": "SEV-3", "drill": "SEV-3"}
        drilled = compute(any_store, drill_incident.id)
        for metric in ("TTD", "TTA", "TTFC"):
            assert timings[metric]["drill"] == drilled[metric] is not None
        assert {i["name"]: i["met"] for i in debrief["injects"]} == {"executive-asks-1": None}
        text = gameday(root, env, "drill", "debrief", str(drill_id)).stdout
        assert f"a rehearsal of incident #{incident_id}" in text
        assert re.search(r"time to acknowledge \(alert → acknowledged\)\s+30\.0 s\s+\d", text)
    finally:
        gameday(root, env, "drill", "end", str(drill_id), "--as", "gm", check=False)


def compute(store: Store, incident_id: int) -> dict:
    from gameday.game.scoring import compute_metrics

    return compute_metrics(store.events(incident_id)).as_dict()


# -- what a replay refuses ------------------------------------------------------------------
def refused(store: Store, root: Path, *args: str) -> tuple[int, str]:
    done = gameday(root, {**os.environ, "GAMEDAY_DB": store.url}, "drill", "start", *args,
                   "--game-master", "gm", check=False, timeout=60)
    assert "Traceback" not in done.stderr
    assert store.drills() == [] and not (root / ".gameday" / "replays").exists()
    return done.returncode, done.stderr.strip()


def test_an_incident_that_is_not_there(any_store, tmp_path):
    code, said = refused(any_store, project(tmp_path), "--from-incident", "99")
    assert (code, said) == (1, "Error: no incident 99")


def test_an_incident_opened_by_hand_has_no_alert_to_replay(any_store, tmp_path):
    by_hand = Incident.open(any_store, "checkout is slow, says support", service="checkout")
    by_hand.declare("SEV-3", "ana")
    code, said = refused(any_store, project(tmp_path), "--from-incident", str(by_hand.id))
    assert code == 2
    assert f"incident {by_hand.id} has no alert on its timeline (it was opened by hand)" in said


@pytest.mark.parametrize("kind", ["gameday", "drill"])
def test_a_rehearsal_is_not_replayed(any_store, tmp_path, kind):
    rehearsal = Incident.open(any_store, "Game day: a checkout replica crashes",
                              service="checkout", scenario="checkout-replica-crash", kind=kind)
    rehearsal.record(events.alert_fired("CheckoutAvailabilityBurn", {"service": "checkout"},
                                        {}), "detector")
    code, said = refused(any_store, project(tmp_path), "--from-incident", str(rehearsal.id))
    assert code == 2
    assert "a rehearsal itself: replay a real incident" in said


def test_a_symptom_no_fault_produces(any_store, tmp_path):
    incident_id = opened_by_alert(any_store, tmp_path, {
        "alertname": "DiskAlmostFull", "service": "checkout", "severity": "warning"},
        {"summary": "The checkout database disk is 95% used"})
    code, said = refused(any_store, project(tmp_path), "--from-incident", str(incident_id))
    assert code == 2
    assert "alert DiskAlmostFull shows no symptom a fault in the registry produces" in said
    assert "availability, errors, latency" in said


def test_a_target_without_a_drill_scenario_for_the_service(any_store, tmp_path):
    incident_id = opened_by_alert(any_store, tmp_path)
    code, said = refused(any_store, project(tmp_path), "--from-incident", str(incident_id),
                         "--target", "kubernetes")
    assert code == 2
    assert "no kubernetes drill scenario for service checkout in scenarios/" in said


# -- the incident page ----------------------------------------------------------------------
def test_only_a_real_incident_opened_by_an_alert_offers_a_replay(store, tmp_path):
    real = opened_by_alert(store, tmp_path)
    by_hand = Incident.open(store, "checkout is slow, says support", service="checkout").id
    rehearsal = Incident.open(store, "Game day", service="checkout", kind="gameday").id
    tokens = {name: json.loads(CliRunner().invoke(
        cli, ["user", "add", name, "--role", role, "--json"]).output)["token"]
        for name, role in (("rhea", "responder"), ("cleo", "commander"))}
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    with TestClient(app) as client:
        def page(incident_id: int, token: str = tokens["cleo"]) -> str:
            r = client.get(f"/incidents/{incident_id}",
                           headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
            return r.text

        assert 'id="replay-form"' in page(real) and 'name="incident" value' in page(real)
        assert 'id="replay-form"' not in page(real, tokens["rhea"])  # may not start drills
        assert 'id="replay-form"' not in page(by_hand)
        assert 'id="replay-form"' not in page(rehearsal)


def test_the_api_refuses_what_cannot_be_replayed(store, tmp_path):
    by_hand = Incident.open(store, "checkout is slow, says support", service="checkout").id
    disk = opened_by_alert(store, tmp_path, {
        "alertname": "DiskAlmostFull", "service": "checkout", "severity": "warning"},
        {"summary": "The checkout database disk is 95% used"})
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    with TestClient(app) as client:
        def start(body: dict, status: int) -> dict:
            r = client.post("/api/v1/drills", json={**body, "as": "gm"},
                            headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == status, r.text
            return r.json()

        assert "no incident 99" in start({"incident": 99}, 404)["error"]
        assert start({"incident": "x"}, 422)["field"] == "incident"
        assert start({"incident": 1, "target": "moon"}, 422)["field"] == "target"
        said = start({"incident": by_hand}, 422)
        assert said["field"] == "incident" and "opened by hand" in said["error"]
        said = start({"incident": disk}, 422)   # told by the process that reads the registry
        assert "shows no symptom a fault in the registry produces" in said["error"]
    assert store.drills() == []


SHOTS = os.environ.get("GAMEDAY_SCREENSHOTS")  # set to refresh docs/img


@pytest.mark.slow
@needs_chromium
def test_the_incident_page_replays_it_as_a_drill_in_chromium(tmp_path, gameday_serve):
    """A commander opens a real incident, replays it from its page, lands in the drill's
    console, and after the drill reads both timings in the debrief."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    root = project(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = tmp_path / "g.db"
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db),
           "GAMEDAY_RUNS": str(tmp_path / "runs"), "GAMEDAY_URL": base}
    gameday_serve(env, "--data-dir", str(tmp_path / "data"), "--no-scheduler", port=port,
                  cwd=root)
    request = urllib.request.Request(
        f"{base}/api/v1/alerts", data=json.dumps(alertmanager(LABELS, ANNOTATIONS)).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    incident_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["incident_id"]
    store = Store(db)
    what_happened(store, incident_id)
    driver = browser(tmp_path, size="1280,1000")
    drill_id = None
    try:
        wait = WebDriverWait(driver, 150)
        driver.get(f"{base}/incidents/{incident_id}")            # sign-in first
        sign_in(driver, TOKEN, "replay-form", name="gm")
        assert "Replay as a drill" in driver.find_element(By.ID, "replay").text
        assert driver.find_element(By.ID, "replay-target").get_attribute("value") == "sandbox"
        shot(driver, tmp_path, "incident-replay")
        driver.find_element(By.ID, "replay").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p#replay")))
        drill_id = int(driver.current_url.rstrip("/").rsplit("/", 1)[1])
        banner = driver.find_element(By.CSS_SELECTOR, "p#replay").text
        assert f"A rehearsal of real incident #{incident_id}" in banner
        assert "gameday.activities.sandbox:kill_replica" in banner
        urllib.request.urlopen(urllib.request.Request(
            f"{base}/api/v1/drills/{drill_id}/end", data=json.dumps({"as": "gm"}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}),
            timeout=30).close()
        deadline = time.monotonic() + 120
        while store.drill(drill_id)["state"] == "running":
            assert time.monotonic() < deadline, "the drill's game day did not end"
            time.sleep(0.5)
        driver.get(f"{base}/drills/{drill_id}/debrief")
        table = driver.find_element(By.ID, "replay-timings")
        tta = table.find_element(By.CSS_SELECTOR, '[data-metric="TTA"] [data-real]').text
        assert tta == "30.0 s"
        resolved = table.find_element(By.CSS_SELECTOR,
                                      '[data-metric="alert_to_resolved"] [data-real]').text
        assert resolved == "360.0 s"
        detected = table.find_element(By.CSS_SELECTOR, '[data-metric="TTD"] [data-drill]').text
        assert detected.endswith(" s")                          # the drill's, measured
        driver.execute_script("document.getElementById('replay').scrollIntoView()")
        shot(driver, tmp_path, "drill-replay-debrief")
    finally:
        driver.quit()
        if drill_id is not None:
            gameday(root, env, "drill", "end", str(drill_id), "--as", "gm", check=False)


def shot(driver, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / f"{name}.png"))
    if SHOTS:
        shutil.copy(tmp_path / f"{name}.png", Path(SHOTS) / f"{name}.png")


# -- a team's own cluster -------------------------------------------------------------------
def cluster_project(tmp_path: Path) -> Path:
    """A project whose only drill scenario for payments-api is on the team's own cluster."""
    root = tmp_path / "team"
    for d in ("experiments", "scenarios"):
        (root / d).mkdir(parents=True)
    (root / "gameday.toml").write_text('[project]\nname = "payments-team"\n')
    shutil.copy(ROOT / "experiments" / "k8s-frontend-scaled-to-zero.yaml",
                root / "experiments" / "api-scaled-to-zero.yaml")
    (root / "kubeconfig").write_text("")
    scenario = {
        "name": "api-scaled-to-zero", "title": "The payments api is scaled to zero",
        "target": "kubernetes", "cluster": {"kubeconfig": "../kubeconfig", "context": "team"},
        "workload": {"namespace": "payments", "deployment": "api"},
        "experiment": "../experiments/api-scaled-to-zero.yaml", "service": "payments-api",
        "team": {"name": "payments-team", "oncall": ["ana"], "ic_rotation": ["chidi"]},
        "slo": {"success_ratio": 0.99, "latency_p99_ms": 1000, "window": "2s"},
        "alert": {"name": "DeploymentReplicasUnavailable", "for": "500ms",
                  "labels": {"namespace": "payments", "deployment": "api"}}}
    (root / "scenarios" / "api-scaled-to-zero.yaml").write_text(yaml.safe_dump(scenario))
    return root


def test_on_the_teams_cluster_its_scenarios_fault_serves_the_same_symptom(any_store, tmp_path):
    settings = Settings.load(cwd=cluster_project(tmp_path))
    down = opened_by_alert(any_store, tmp_path, {
        "alertname": "DeploymentReplicasUnavailable", "service": "payments-api",
        "namespace": "payments", "deployment": "api", "severity": "critical"}, {})
    replay = plan(any_store, settings, down, "kubernetes")
    assert replay.fault.key == "chaosk8s.deployment.actions:scale_deployment"
    assert "as api-scaled-to-zero's alert does" in replay.fault.why
    sc = load_scenario(write(settings, replay))
    assert sc.target == "kubernetes" and sc.cluster == {
        "kubeconfig": str(settings.root / "kubeconfig"), "context": "team"}
    assert sc.experiment == settings.root / "experiments" / "api-scaled-to-zero.yaml"
    assert sc.replay["incident"] == down and sc.alert.labels["severity"] == "critical"

    slow = opened_by_alert(any_store, tmp_path, {
        "alertname": "PaymentsApiSlow", "service": "payments-api", "severity": "warning"},
        {"summary": "payments-api p99 latency is above 1s"})
    with pytest.raises(ValidationError, match="no fault in the registry produces latency on "
                                              "kubernetes for payments-api here"):
        plan(any_store, settings, slow, "kubernetes")
