"""Automation earned by proof (``gameday.report.trust``): an automatic runbook runs by
itself from a real alert only while a game day has proven it, and the record says why
when it does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chromium import browser, needs_chromium, sign_in
from serving import eventually
from webhooks import AUTH, TOKEN, payload

from gameday.core.errors import ValidationError
from gameday.core.settings import Automation, Settings
from gameday.report.freshness import Freshness
from gameday.report.trust import PROVEN, SUSPECT, UNPROVEN, Proof, exercising, judge
from gameday.store import Store
from gameday.targets.sandbox import start_sandbox, stop_sandbox

ROOT = Path(__file__).resolve().parents[2]
SHOTS = os.environ.get("GAMEDAY_SCREENSHOTS")  # set to refresh docs/img
POLICY = Automation(require="proven", max_age_days=30)


def fresh(**kw) -> Freshness:
    base = {"runbook": "restart-replica", "status": "verified", "verified_by": 12,
            "verified_at": "2026-11-01T10:00:00+00:00", "verified_days_ago": 3.0,
            "verifications": 1}
    return Freshness(**(base | kw))


# -- the rules -----------------------------------------------------------------------------
def test_a_recent_proof_on_the_same_kind_of_target_is_proven():
    trust = judge(fresh(), POLICY, proof=Proof(on="sandbox"), wanted_on=None)
    assert trust.level == PROVEN and trust.proven
    assert trust.why == "proven by game day #12, 3 days ago on sandbox"


@pytest.mark.parametrize(("kw", "on", "wanted", "level", "why"), [
    ({"status": "never verified", "verified_by": None, "verified_at": None,
      "verified_days_ago": None}, None, None, UNPROVEN, "never verified by a game day"),
    ({"status": "stale", "verified_days_ago": 41.0}, "sandbox", None, UNPROVEN,
     "not verified for 41 days (the policy allows 30)"),
    ({}, "sandbox", "kubernetes", UNPROVEN,
     "proven on sandbox only, and this alert is about a kubernetes target"),
    ({"last_failed_run": 7, "last_failed_at": "2026-11-02T00:00:00+00:00",
      "failed_since_verified": True}, "sandbox", None, SUSPECT,
     "its last failed run (#7) came after its last proof"),
    ({"status": "stale", "verified_days_ago": 41.0, "ran_without_containing": 15,
      "ran_without_containing_at": "2026-11-02T10:00:00+00:00"},
     "sandbox", None, SUSPECT,
     "not verified for 41 days (the policy allows 30); last game day #15 ran it without "
     "containing the fault"),
])
def test_what_keeps_a_runbook_from_being_proven(kw, on, wanted, level, why):
    trust = judge(fresh(**kw), POLICY, proof=Proof(on=on), wanted_on=wanted)
    assert (trust.level, trust.why) == (level, why)
    assert not trust.proven and "gameday" in trust.restore(["scenarios/crash.yaml"])


def test_a_game_day_before_the_last_proof_does_not_make_it_suspect():
    trust = judge(fresh(ran_without_containing=19,
                        ran_without_containing_at="2026-10-30T10:00:00+00:00"),
                  POLICY, proof=Proof(on="sandbox"), wanted_on=None)
    assert trust.level == PROVEN


def test_a_policy_that_asks_for_no_sameness_accepts_any_target():
    trust = judge(fresh(), Automation(require="proven", same_target=False),
                  proof=Proof(on="sandbox"), wanted_on="service")
    assert trust.proven


@pytest.mark.parametrize(("then", "now", "level", "why"), [
    ("a1b2c3", "a1b2c3", PROVEN, "proven by game day #12, 3 days ago on sandbox"),
    ("a1b2c3", None, PROVEN, "proven by game day #12, 3 days ago on sandbox"),
    ("a1b2c3", "d4e5f6", UNPROVEN,
     "changed since game day #12 proved it (version a1b2c3 then, d4e5f6 now)"),
    (None, "d4e5f6", UNPROVEN,
     "game day #12 proved it before gameday kept which version of a runbook ran"),
])
def test_a_proof_holds_for_the_version_of_the_runbook_that_ran(then, now, level, why):
    trust = judge(fresh(), POLICY, proof=Proof(on="sandbox", version=then), version=now)
    assert (trust.level, trust.why) == (level, why)
    assert trust.verified_version == then


def test_the_scenarios_that_exercise_a_runbook_are_offered():
    found = exercising("restart-replica", [ROOT / "scenarios"], ROOT)
    assert "scenarios/checkout-replica-crash.yaml" in found
    assert all(f.startswith("scenarios/") for f in found)
    trust = judge(fresh(status="never verified", verified_by=None, verified_at=None,
                        verified_days_ago=None), POLICY, wanted_on=None)
    assert trust.restore(found) == (
        f"a game day that runs it and sees it contain the fault: gameday schedule add "
        f"verify-restart-replica {found[0]} --cron '0 10 * * 1'")


# -- the policy as written -------------------------------------------------------------------
@pytest.mark.parametrize(("table", "field"), [
    ('require = "sometimes"', "automation.require"),
    ("max_age_days = 0", "automation.max_age_days"),
    ('max_age_days = "30"', "automation.max_age_days"),
    ('same_target = "yes"', "automation.same_target"),
    ("trust = true", "automation.trust"),
])
def test_a_policy_that_does_not_parse_names_its_field(tmp_path, table, field):
    (tmp_path / "gameday.toml").write_text(f"[automation]\n{table}\n")
    with pytest.raises(ValidationError) as caught:
        Settings.load(cwd=tmp_path, environ={})
    assert caught.value.field == field
    proc = subprocess.run([sys.executable, "-m", "gameday", "runbook", "list"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and field in proc.stderr and "Traceback" not in proc.stderr


def test_the_policy_defaults_to_todays_behaviour_and_is_documented(tmp_path):
    from gameday.core.settings import AUTOMATION_KEYS

    assert Settings.load(cwd=tmp_path, environ={}).automation == Automation()
    assert not Automation().needs_proof
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert all(f"- `{key}`: {text}" in page for key, text in AUTOMATION_KEYS.items())
    (tmp_path / "gameday.toml").write_text(
        '[automation]\nrequire = "proven"\nmax_age_days = 7\nsame_target = false\n')
    assert Settings.load(cwd=tmp_path, environ={}).automation == Automation(
        require="proven", max_age_days=7, same_target=False)


# -- end to end: held, earned, lost ---------------------------------------------------------------
def real_alert(n: int) -> dict:
    """A real CheckoutAvailabilityBurn, a group of its own each time (an incident each)."""
    body = payload({
        "status": "firing", "labels": {"alertname": "CheckoutAvailabilityBurn",
                                       "service": "checkout", "team": "shop-checkout",
                                       "severity": "critical"},
        "annotations": {"summary": "Checkout success ratio is below its objective",
                        "runbook_url": "http://127.0.0.1:8080/runbooks/restart-replica"},
        "startsAt": f"2026-11-22T10:00:0{n}Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "", "fingerprint": f"real{n}"}, group=f'{{}}:{{n="{n}"}}')
    return body


def post(base: str, body: dict) -> dict:
    request = urllib.request.Request(f"{base}/api/v1/alerts", data=json.dumps(body).encode(),
                                     headers={**AUTH, "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def game_day(project: Path, env: dict[str, str], scenario: str) -> dict:
    """A game day in its own sandbox (not the one the real alerts' runbook acts on)."""
    env = {k: v for k, v in env.items() if k != "GAMEDAY_SANDBOX"}
    proc = subprocess.run([sys.executable, "-m", "gameday", "run",
                           str(ROOT / "scenarios" / f"{scenario}.yaml"), "--json"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]
    return json.loads(proc.stdout)


def answer_of(result: dict) -> dict:
    """The runbook part of a webhook's answer for its one alert."""
    text = json.dumps(result)
    assert "restart-replica" in text, text
    found: list[dict] = []

    def walk(value):
        if isinstance(value, dict):
            if value.get("runbook") == "restart-replica":
                found.append(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(result)
    incident = result.get("incident_id") or result["alerts"][0].get("incident_id")
    return {"incident_id": incident, **found[0]}


def move(base: str, incident: int, what: str, **data: str) -> None:
    request = urllib.request.Request(
        f"{base}/api/v1/incidents/{incident}/{what}",
        data=json.dumps({"as": "dana", **data}).encode(),
        headers={**AUTH, "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=30).read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{what} on #{incident}: {exc.read()!r}") from None


@pytest.mark.slow
@needs_chromium
def test_automation_is_earned_by_a_game_day_and_lost_again(tmp_path, gameday_serve):
    """Held while never verified; run by itself once a game day proved it; held again
    (suspect) after a game day where it ran without containing the fault. The report,
    /insights and the runbook's page show the ladder and why."""
    from selenium.webdriver.common.by import By

    project = tmp_path / "project"
    project.mkdir()
    (project / "gameday.toml").write_text('[automation]\nrequire = "proven"\n')
    (project / "runbooks").mkdir()  # the team's own copy of it, which they will change
    runbook = project / "runbooks" / "restart-replica.yml"
    original = (ROOT / "gameday/targets/sandbox/runbooks/restart-replica.yml").read_text()
    runbook.write_text(original)
    db = tmp_path / "gameday.db"
    start_sandbox(tmp_path / "sandbox")  # where the real alerts' runbook acts
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GAMEDAY_DB": str(db),
           "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_RUNS": str(tmp_path / "runs"),
           "GAMEDAY_SANDBOX": str(tmp_path / "sandbox")}
    try:
        served = gameday_serve(env, "--coalesce-window", "0", cwd=project)
        store = Store(db)

        first = answer_of(post(served.base, real_alert(1)))
        assert first["held"] == "never verified by a game day" and "run_id" not in first
        assert "/runbooks/restart-replica" in first["link"]
        held = [e for e in store.events(first["incident_id"]) if e.kind == "runbook.held"]
        assert [e.data["why"] for e in held] == ["never verified by a game day"]
        assert any(a["action"] == "runbook.held" for a in store.audit_log())
        assert store.runs() == []
        move(served.base, first["incident_id"], "resolve", how="restarted checkout by hand")

        proved = game_day(project, env, "checkout-replica-crash")
        assert proved["verdict"]["status"] == "passed", proved["verdict"]
        second = answer_of(post(served.base, real_alert(2)))
        assert "held" not in second and second["run_id"], second
        ran = eventually(lambda: store.run(second["run_id"])["finished_at"]
                         and store.run(second["run_id"]), 90, "the automatic run to end")
        assert ran["status"] == "successful" and ran["started_by"] == "alertmanager"
        move(served.base, second["incident_id"], "resolve", how="the runbook's restart held")

        # A proof holds for what ran: changed since (every replica restarted, not only
        # the failed ones), it waits for a click again; a comment, the layout or the
        # summary is no change, and put back as it was it runs by itself.
        runbook.write_text(original.replace("\n  - name:", "\n\n  # a step\n  - name: "))
        same = answer_of(post(served.base, real_alert(4)))
        assert "run_id" in same, same  # its run reads the file: let it end before the edit
        done = eventually(lambda: store.run(same["run_id"])["finished_at"]
                          and store.run(same["run_id"]), 90, "the automatic run to end")
        assert done["status"] == "successful", done
        runbook.write_text(original.replace("summary: Restart", "summary: Restart at once")
                           .replace('"{{ service }}", --failed]', '"{{ service }}"]'))
        changed = answer_of(post(served.base, real_alert(5)))
        assert "run_id" not in changed and changed["held"].startswith(
            f"changed since game day #{proved['incident_id']} proved it (version "), changed
        runbook.write_text(original)

        wrong = game_day(project, env, "checkout-bad-deploy-wrong-runbook")
        third = answer_of(post(served.base, real_alert(3)))
        assert "run_id" not in third
        assert third["held"] == (f"last game day #{wrong['incident_id']} ran it without "
                                 "containing the fault")

        report = json.loads(subprocess.run(
            [sys.executable, "-m", "gameday", "report", "--json"], cwd=project, env=env,
            capture_output=True, text=True, timeout=120, check=True).stdout)["trust"]
        levels = {r["runbook"]: r["level"] for r in report["runbooks"]}
        assert levels["restart-replica"] == SUSPECT and report["held_now"]
        assert {"alert": "CheckoutAvailabilityBurn", "runbook": "restart-replica",
                "level": SUSPECT, "why": third["held"]} in report["held"]
        assert report["real"] == {"incidents": 5, "contained": 2, "by_proven_runbook": 0,
                                  "by_other_runbook": 1, "by_people": 1,
                                  "proven_share": 0.0, "people_share": 0.5}

        driver = browser(tmp_path, size="1280,1500")
        try:
            driver.get(served.base + third["link"])  # the held run's one click
            trust = sign_in(driver, TOKEN, "trust", name="dana").text
            assert trust.startswith("Suspect: ") and third["held"] in trust
            assert "Automatic, but held" in trust and "To restore it" in trust
            assert driver.find_element(By.ID, "run").is_enabled()
            shot(driver, tmp_path, "runbook-trust.png")
            driver.get(f"{served.base}/insights#trust")
            rungs = driver.find_element(By.ID, "trust-ladder").text
            assert "restart-replica" in rungs.split("Suspect: waits for a click")[1]
            assert "people 1" in driver.find_element(By.CLASS_NAME, "share").text
            driver.execute_script(
                "document.getElementById('trust').scrollIntoView(true)")
            shot(driver, tmp_path, "insights-trust.png")
        finally:
            driver.quit()
    finally:
        stop_sandbox(tmp_path / "sandbox")


def shot(driver, tmp_path: Path, name: str) -> None:
    """Every run keeps it beside the test; GAMEDAY_SCREENSHOTS=docs/img refreshes the
    docs' copy."""
    driver.save_screenshot(str(tmp_path / name))
    if SHOTS:
        driver.save_screenshot(str(Path(SHOTS) / name))
