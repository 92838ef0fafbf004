"""Scheduled game days: when they are due, the guardrails that skip them, the freeze,
notifications, preflight, and real `gameday serve` processes running them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from people import add_user
from serving import eventually

from gameday.cli.main import cli
from gameday.core import clock
from gameday.core.errors import ValidationError
from gameday.core.settings import Settings
from gameday.runs.alerts import parse
from gameday.runs.intake import Delivery, Intake
from gameday.schedules import notify
from gameday.schedules.schedule import from_row, make_schedule, parse_blackout, spec_of
from gameday.schedules.scheduler import Scheduler, guardrail, target_key
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "scenarios/checkout-replica-crash.yaml"
BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- when a schedule is due ---------------------------------------------------------------
@pytest.mark.parametrize("options, field", [
    ({}, "--cron/--every"),
    ({"cron": "* * * * *", "every": "5s"}, "--cron/--every"),
    ({"cron": "61 * * * *"}, "--cron"),
    ({"cron": "* * * *"}, "--cron"),
    ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, "--tz"),
    ({"every": "5s", "tz": "UTC"}, "--tz"),
    ({"every": "0s"}, "--every"),
    ({"every": "soon"}, "--every"),
    ({"every": "10s", "jitter": "10s"}, "--jitter"),
    ({"every": "10s", "max_late": "-1"}, "--max-late"),
    ({"every": "10s", "blackouts": ("funday",)}, "--blackout"),
    ({"every": "10s", "blackouts": ("2027-01-05..2027-01-04",)}, "--blackout"),
    ({"every": "10s", "blackouts": ("25:00-26:00",)}, "--blackout"),
    ({"every": "10s", "notify_url": "file:///etc/passwd"}, "--notify"),
    ({"every": "10s", "notify_url": "http://"}, "--notify"),
])
def test_bad_schedules_name_the_option(options, field):
    with pytest.raises(ValidationError) as caught:
        make_schedule("nightly", SCENARIO, **options)
    assert caught.value.field == field


@pytest.mark.parametrize("name", ["", "Nightly", "a b", "x" * 64, "../up"])
def test_schedule_names(name):
    with pytest.raises(ValidationError):
        make_schedule(name, SCENARIO, every="1h")


def test_cron_in_a_time_zone_across_daylight_saving():
    s = make_schedule("nightly", SCENARIO, cron="30 2 * * *", tz=BERLIN,
                      created_at=utc(2026, 3, 28, 12))
    # 02:30 does not exist in Berlin on 2026-03-29: it runs at 03:00 local, 01:00 UTC
    assert s.next_fire(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)
    assert s.next_fire(utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 0, 30)  # CEST from now on


def test_every_counts_from_creation_and_reports_what_it_missed():
    s = make_schedule("quick", SCENARIO, every="10s", created_at=utc(2026, 11, 23, 12))
    assert s.due(utc(2026, 11, 23, 12, 0, 9)) is None
    assert s.due(utc(2026, 11, 23, 12, 0, 10)) == (utc(2026, 11, 23, 12, 0, 10), 0)
    # an hour without a scheduler: only the latest moment is owed, 359 were missed
    assert s.due(utc(2026, 11, 23, 13, 0, 5)) == (utc(2026, 11, 23, 13), 359)
    later = from_row({"name": "quick", "scenario": SCENARIO, "spec": spec_of(s),
                      "paused": 0, "created_at": s.created_at.isoformat(),
                      "last_due": utc(2026, 11, 23, 13).isoformat()})
    assert later.due(utc(2026, 11, 23, 13, 0, 5)) is None


def test_cron_due_skips_to_the_latest_missed_moment():
    s = make_schedule("hourly", SCENARIO, cron="0 * * * *", created_at=utc(2026, 11, 23, 0, 30))
    assert s.due(utc(2026, 11, 23, 3, 10)) == (utc(2026, 11, 23, 3), 2)


def test_jitter_is_the_same_everywhere_and_within_bounds():
    s = make_schedule("nightly", SCENARIO, cron="0 3 * * *", jitter="10m")
    moments = [utc(2026, 11, d, 2) for d in range(1, 29)]
    jitters = [s.jitter(m) for m in moments]
    assert jitters == [s.jitter(m) for m in moments]
    assert all(0 <= j < 600 for j in jitters) and len(set(jitters)) == len(jitters)


@pytest.mark.parametrize("window, inside, outside", [
    ("2026-12-18..2027-01-04", [utc(2026, 12, 18, 0), utc(2027, 1, 4, 22)],
     [utc(2026, 12, 17, 22, 59), utc(2027, 1, 5, 0)]),  # Berlin local dates
    ("sat,sun", [utc(2026, 11, 28, 12), utc(2026, 11, 29, 22)], [utc(2026, 11, 27, 12)]),
    ("mon-fri 00:00-07:00", [utc(2026, 11, 23, 5)], [utc(2026, 11, 23, 7), utc(2026, 11, 28, 1)]),
    ("fri 22:00-02:00", [utc(2026, 11, 27, 21, 30), utc(2026, 11, 28, 0, 30)],
     [utc(2026, 11, 28, 21, 30), utc(2026, 11, 27, 20)]),
])
def test_blackouts_in_the_schedule_time_zone(window, inside, outside):
    s = make_schedule("nightly", SCENARIO, cron="0 3 * * *", tz=BERLIN, blackouts=(window,))
    assert parse_blackout(window).text == window
    for moment in inside:
        assert s.blackout(moment) is not None, moment
    for moment in outside:
        assert s.blackout(moment) is None, moment


# -- claims and guardrails ------------------------------------------------------------------
def stored(store: Store, **options) -> Settings:
    made = make_schedule(options.pop("name", "nightly"), SCENARIO,
                         **({"every": "10s"} | options))
    store.add_schedule(made.name, made.scenario, spec_of(made), made.created_at.isoformat())
    return Settings.load(cwd=ROOT, db=str(store.path))


def test_a_moment_is_claimed_once_across_processes(store):
    stored(store)
    due = "2026-11-23T12:00:10+00:00"
    winners = []

    def claim(n: int) -> None:
        got = Store(store.path).claim_schedule_run("nightly", due, target="t", by=f"p{n}")
        if got is not None:
            winners.append(n)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert store.schedule("nightly")["last_due"] == due


def begin(store: Store, settings: Settings, now: datetime | None = None) -> dict:
    row = store.schedule("nightly")
    scheduler = Scheduler(store, settings)
    now = now or clock.now()
    run_id = scheduler.begin(from_row(row), now - timedelta(seconds=1), now=now)
    assert not scheduler.children, "a guardrail should have stopped it"
    return store.schedule_run(run_id)


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_the_freeze_skips_with_who_and_why(store):
    settings = stored(store)
    store.set_freeze(True, "release 4.2 going out", "ana")
    at = datetime.fromisoformat(store.freeze()["at"]).astimezone(UTC)
    run = begin(store, settings)
    assert run["status"] == "skipped" and "ana" in run["reason"] and "4.2" in run["reason"]
    assert f"since {at:%Y-%m-%d %H:%M:%S} UTC:" in run["reason"], run["reason"]


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS), in its zone
def test_schedules_output_says_the_zone_of_every_time(store):
    """gameday schedule list and gameday freeze: the freeze, the next moment and each
    run's due moment in UTC, said so, whatever the machine's zone."""
    settings = stored(store, every="1h")  # its next moment as still when listed
    store.set_freeze(True, "release 4.2", "ana")
    begin(store, settings)
    frozen_at = datetime.fromisoformat(store.freeze()["at"]).astimezone(UTC)
    (run,) = store.schedule_runs("nightly")
    due = datetime.fromisoformat(run["due_at"]).astimezone(UTC)
    following = from_row(store.schedule("nightly")).next_moment(clock.now())
    listed = CliRunner().invoke(cli, ["schedule", "list"])
    lever = CliRunner().invoke(cli, ["freeze"])
    assert listed.exit_code == 0 and lever.exit_code == 0, listed.output + lever.output
    since = f"since {frozen_at:%Y-%m-%d %H:%M:%S} UTC:"
    assert since in listed.output and since in lever.output, listed.output + lever.output
    assert f"{due:%Y-%m-%d %H:%M:%S} UTC  skipped" in listed.output, listed.output
    assert f"next {following:%Y-%m-%d %H:%M:%S} UTC" in listed.output, listed.output


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_a_blackout_skips(store):
    settings = stored(store, blackouts=("mon-sun 00:00-24:00",))
    run = begin(store, settings)
    assert run["status"] == "skipped" and "blackout" in run["reason"]


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_a_real_incident_for_the_service_skips(store, scenario):
    settings = stored(store)
    note = parse({"version": "4", "status": "firing", "groupKey": "g", "truncatedAlerts": 0,
                  "alerts": [{"status": "firing", "fingerprint": "f",
                              "startsAt": "2026-11-22T10:00:00Z",
                              "labels": {"alertname": "CheckoutErrors",
                                         "service": scenario.service},
                              "annotations": {"summary": "checkout is failing for real"}}]})
    Intake(store).handle([Delivery(note, "token")])
    run = begin(store, settings)
    assert run["status"] == "skipped" and "real incident" in run["reason"]
    assert "checkout is failing for real" in run["reason"]


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_never_two_at_once_on_one_schedule_or_target(store, scenario):
    settings = stored(store)
    made = make_schedule("other", SCENARIO, every="1h")
    store.add_schedule("other", SCENARIO, spec_of(made), made.created_at.isoformat())
    busy = store.claim_schedule_run("other", "2026-11-23T00:00:00+00:00",
                                    target=target_key(scenario), by="me")
    store.update_schedule_run(busy, status="running", owner=f"{os.uname().nodename}:"
                              f"{os.getpid()}:0")
    run = begin(store, settings)
    assert run["status"] == "skipped" and f"still running on {target_key(scenario)}" \
        in run["reason"]


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_a_moment_missed_beyond_max_late_is_skipped(store):
    settings = stored(store, max_late="30s")
    row = store.schedule("nightly")
    now = clock.now()
    run_id = Scheduler(store, settings).begin(from_row(row), now - timedelta(minutes=5), now=now)
    run = store.schedule_run(run_id)
    assert run["status"] == "skipped" and "late" in run["reason"]


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_guardrail_is_clear_otherwise(store, scenario):
    settings = stored(store)
    schedule = from_row(store.schedule("nightly"))
    assert settings.root == ROOT
    assert guardrail(store, schedule, scenario, now=clock.now()) is None


# -- notifications --------------------------------------------------------------------------
class Receiver:
    """A local webhook receiver that fails the first ``fail`` requests with 503."""

    def __init__(self, fail: int = 0):
        self.bodies: list[dict] = []
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.attempts <= fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_notifications_retry_and_speak_slack():
    receiver = Receiver(fail=2)
    try:
        s = make_schedule("nightly", SCENARIO, every="1h", notify_url=receiver.url,
                          notify_format="slack")
        run = {"id": 7, "due_at": "2026-11-23T03:00:00+00:00", "status": "passed",
               "reason": None, "incident_id": 12, "score": 92.5,
               "summary": {"metrics": {"TTD": 4.2, "TTM": 31.0},
                           "review": "/runs/x/review.md"}}
        assert notify.send(s, notify.summary(s, run, "finished"))
        assert receiver.attempts == 3 and len(receiver.bodies) == 1
        text = receiver.bodies[0]["text"]
        assert "nightly" in text and "passed" in text and "92.5/100" in text
        assert "TTD 4.2s" in text and "review.html" in text
    finally:
        receiver.close()
    unreachable = make_schedule("nightly", SCENARIO, every="1h", notify_url=receiver.url)
    said: list[str] = []
    assert not notify.send(unreachable, notify.summary(unreachable, run, "finished"),
                           say=said.append)
    assert "not delivered" in said[0]


# -- real processes --------------------------------------------------------------------------
def wait_for(check, timeout: float, what: str):
    return eventually(check, timeout, what, every=0.25)


def serve_env() -> dict[str, str]:
    return {**os.environ, "GAMEDAY_TOKEN": "schedule-token-0123456789"}


@pytest.mark.slow
def test_two_serve_processes_run_every_due_game_day_once(tmp_path, gameday_serve):
    receiver = Receiver()
    store = Store(os.environ["GAMEDAY_DB"])
    result = CliRunner().invoke(cli, ["schedule", "add", "quick", SCENARIO, "--every", "5s",
                                      "--notify", receiver.url])
    assert result.exit_code == 0, result.output
    serves = [gameday_serve(serve_env(), name=f"serve{n}", wait=False).proc for n in range(2)]
    def two_done() -> list[dict] | None:
        ended = [r for r in store.schedule_runs("quick", limit=100)
                 if r["status"] in ("passed", "failed")]
        return ended if len(ended) >= 2 else None

    try:
        done = wait_for(two_done, 240, "two game days")
    finally:
        for serve in serves:
            serve.send_signal(signal.SIGTERM)
        for serve in serves:
            serve.wait(timeout=60)
        receiver.close()
    runs = store.schedule_runs("quick", limit=100)
    assert len({r["due_at"] for r in runs}) == len(runs)  # every moment claimed once
    started = [r for r in runs if r["incident_id"]]
    assert len(started) == len({r["incident_id"] for r in started})
    scenario_incidents = [i for i in store.incidents() if i["scenario"]]
    assert len(scenario_incidents) == len(started)  # no moment ran twice
    skipped = [r for r in runs if r["status"] == "skipped"]
    assert all("still running" in r["reason"] for r in skipped)  # never two at once
    for run in done[:2]:
        assert run["score"] is not None and Path(run["run_dir"], "review.html").is_file()
        kinds = [e.kind for e in store.events(run["incident_id"])]
        assert "gameday.scheduled" in kinds and "fault.rolled_back" in kinds
    events = [(b["scheduled_run"], b["event"]) for b in receiver.bodies]
    for run in done[:2]:
        assert (run["id"], "started") in events and (run["id"], "finished") in events
    listed = json.loads(CliRunner().invoke(cli, ["schedule", "list", "--json"]).output)
    shown = {r["id"]: r for r in listed["schedules"][0]["runs"]}
    assert shown[done[0]["id"]]["score"] == done[0]["score"]


@pytest.mark.slow
def test_sigterm_to_serve_stops_its_scheduled_game_day_and_leaves_no_claim(tmp_path,
                                                                          gameday_serve):
    """gameday serve stopped (SIGTERM, as Kubernetes stops a pod) while the game day it
    scheduled holds a fault: the game day rolls back and records its end, the serve
    exits by the signal, and nothing is left running or claimed."""
    from gameday.store.leases import alive, leftovers
    from gameday.targets.sandbox.client import sandbox_processes

    store = Store(os.environ["GAMEDAY_DB"])
    result = CliRunner().invoke(cli, ["schedule", "add", "soon", SCENARIO, "--every", "5s"])
    assert result.exit_code == 0, result.output
    serve = gameday_serve(serve_env(), wait=False).proc
    try:
        def injected() -> dict | None:
            for run in store.schedule_runs("soon", unfinished=True):
                if run["incident_id"] and any(e.kind == "fault.injected"
                                              for e in store.events(run["incident_id"])):
                    return run
            return None

        run = wait_for(injected, 120, "the scheduled game day's fault")
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert serve.returncode == -signal.SIGTERM  # a signal never exits 0
    assert store.schedule_runs(unfinished=True) == []
    ended = store.schedule_run(run["id"])
    assert ended["status"] == "interrupted", ended  # recorded by the game day itself
    kinds = [e.kind for e in store.events(run["incident_id"])]
    assert {"fault.rolled_back", "gameday.interrupted", "incident.cancelled",
            "target.stopped"} <= set(kinds), kinds
    assert alive(ended["owner"]) is False  # the game day's process
    assert sandbox_processes(Path(run["run_dir"]) / "sandbox") == []
    assert leftovers(run["run_dir"]) == []
    assert store.running_leases() == []


@pytest.mark.slow
def test_freeze_stops_a_running_game_day_and_blocks_the_next(tmp_path):
    store = Store(os.environ["GAMEDAY_DB"])
    run = subprocess.Popen([sys.executable, "-m", "gameday", "run", SCENARIO, "--json"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def injected():
            for incident in store.incidents():
                if any(e.kind == "fault.injected" for e in store.events(incident["id"])):
                    return incident["id"]
            return None

        incident_id = wait_for(injected, 120, "the fault")
        frozen = CliRunner().invoke(cli, ["freeze", "on", "--reason", "release", "--who", "ana"])
        assert frozen.exit_code == 0 and "FROZEN" in frozen.output
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err.decode()[-2000:]
    assert b"Traceback" not in err
    kinds = [e.kind for e in store.events(incident_id)]
    assert "gameday.frozen" in kinds and "fault.rolled_back" in kinds
    assert kinds.index("gameday.frozen") < kinds.index("fault.rolled_back")
    assert store.incident(incident_id)["state"] in ("aborted", "cancelled")
    blocked = subprocess.run([sys.executable, "-m", "gameday", "run", SCENARIO], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert blocked.returncode == 4 and "frozen" in blocked.stderr
    assert len(store.incidents()) == 1  # nothing was started
    assert CliRunner().invoke(cli, ["freeze", "off"]).exit_code == 0
    assert store.freeze() is None


@pytest.mark.slow
def test_preflight_checks_without_injecting(tmp_path):
    store = Store(os.environ["GAMEDAY_DB"])
    done = subprocess.run([sys.executable, "-m", "gameday", "run", SCENARIO, "--preflight",
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    checks = {c["name"]: c["ok"] for c in json.loads(done.stdout)}
    assert checks == {"validation": True, "not frozen": True, "target up": True,
                      "SLIs inside the objective": True, "steady-state hypothesis": True}
    assert store.incidents() == []  # no incident, no fault
    store.set_freeze(True, "release", "ana")
    frozen = subprocess.run([sys.executable, "-m", "gameday", "run", SCENARIO, "--preflight"],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert frozen.returncode == 4 and "NO  not frozen" in frozen.stdout


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_schedules_page_shows_the_freeze_next_moments_and_history(store, tmp_path):
    from starlette.testclient import TestClient

    from gameday.web.app import create_app

    stored(store, blackouts=("sat,sun",))
    done = store.claim_schedule_run("nightly", "2026-11-23T03:00:00+00:00", target="t", by="p")
    incident = store.create_incident("scheduled", scenario="checkout-replica-crash")
    store.update_schedule_run(done, status="passed", score=92.5, incident_id=incident)
    skipped = store.claim_schedule_run("nightly", "2026-11-24T03:00:00+00:00", target="t",
                                       by="p")
    store.update_schedule_run(skipped, status="skipped", reason="inside the blackout <b>")
    store.set_freeze(True, "release 4.2", "ana")
    token = "page-token-0123456789abcdef"
    app = create_app(token=token, store=store, data_dir=tmp_path / "data")
    with TestClient(app) as client:
        assert client.get("/schedules", follow_redirects=False).status_code == 303
        client.post("/login", data={"name": "ana", "token": token})
        page = client.get("/schedules").text
    assert "FROZEN by ana" in page and "release 4.2" in page
    assert "every 10s" in page and "no game days: sat,sun" in page
    assert f'href="/incidents/{incident}/review"' in page and "92.5" in page
    assert "inside the blackout &lt;b&gt;" in page  # escaped


def test_the_lever_and_run_now_from_the_schedules_page(store, tmp_path):
    """Anyone may stop the line (a responder freezes), a commander lifts the freeze and
    starts a schedule's game day now; each on the audit log under who did it. Run now
    starts the real game-day process (stopped here by SIGTERM, as an operator would)."""
    from starlette.testclient import TestClient

    from gameday.people.auth import SESSION_COOKIE, Auth
    from gameday.web.app import create_app

    settings = stored(store)
    tokens = {name: add_user(name, role) for name, role in (("rhea", "responder"),
                                                           ("cleo", "commander"))}
    token = "page-token-0123456789abcdef"
    scheduler = Scheduler(store, settings)
    app = create_app(token=token, store=store, data_dir=tmp_path / "data",
                     scheduler=scheduler)

    def signed_in(client: TestClient, who: str) -> str:
        client.cookies.clear()
        client.post("/login", data={"token": tokens[who]})
        return Auth(token, store).csrf_token(client.cookies[SESSION_COOKIE])

    with TestClient(app) as client:
        csrf = signed_in(client, "rhea")
        page = client.get("/schedules").text
        assert 'id="freeze"' in page and "Run now" not in page  # a responder
        assert client.post("/schedules/freeze", data={"csrf": "forged", "reason": "x"},
                           follow_redirects=False).status_code == 403
        frozen = client.post("/schedules/freeze", data={"csrf": csrf,
                             "reason": "real incident on checkout"}, follow_redirects=False)
        assert frozen.status_code == 303 and store.freeze()["who"] == "rhea"
        page = client.get("/schedules").text
        assert "FROZEN by rhea" in page and 'id="unfreeze"' not in page
        assert client.post("/schedules/unfreeze", data={"csrf": csrf}).status_code == 403
        assert client.post("/schedules/nightly/run", data={"csrf": csrf}).status_code == 403
        assert store.freeze() is not None

        csrf = signed_in(client, "cleo")
        # Run now while frozen: the guardrail skips it, on the record
        assert client.post("/schedules/nightly/run", data={"csrf": csrf},
                           follow_redirects=False).status_code == 303
        (skipped,) = store.schedule_runs("nightly")
        assert skipped["status"] == "skipped" and "frozen by rhea" in skipped["reason"]
        assert client.post("/schedules/unfreeze", data={"csrf": csrf},
                           follow_redirects=False).status_code == 303
        assert store.freeze() is None
        # and now it starts: the game day's own process
        started = client.post("/api/v1/schedules/nightly/run", json={},
                              headers={"Authorization": f"Bearer {tokens['cleo']}"})
        assert started.status_code == 202, started.text
        run = started.json()["run"]
        assert run["status"] in ("claimed", "running") and started.json()["by"] == "cleo"
        child = scheduler.children[run["id"]]
        assert child.poll() is None
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=120) != 0  # a signal never exits 0
        scheduler.tick()
        assert store.schedule_run(run["id"])["status"] not in ("claimed", "running")
        nothing = client.post("/api/v1/schedules/nope/run", json={},
                              headers={"Authorization": f"Bearer {tokens['cleo']}"})
        assert nothing.status_code == 404
    audit = [(e["who"], e["action"], e["data"]) for e in store.audit_log()
             if e["action"] in ("freeze", "gameday.started", "forbidden")]
    assert audit == [
        ("rhea", "freeze", {"frozen": True, "reason": "real incident on checkout"}),
        ("rhea", "forbidden", {"need": "unfreeze", "role": "responder",
                               "path": "/schedules/unfreeze"}),
        ("rhea", "forbidden", {"need": "start", "role": "responder",
                               "path": "/schedules/nightly/run"}),
        ("cleo", "gameday.started", {"schedule": "nightly", "run_id": skipped["id"],
                                     "status": "skipped"}),
        ("cleo", "freeze", {"frozen": False, "reason": None}),
        ("cleo", "gameday.started", {"schedule": "nightly", "run_id": run["id"],
                                     "status": run["status"]}),
    ]

    without = create_app(token=token, store=store, data_dir=tmp_path / "data2")
    with TestClient(without) as client:
        refused = client.post("/api/v1/schedules/nightly/run", json={},
                              headers={"Authorization": f"Bearer {tokens['cleo']}"})
        assert refused.status_code == 409 and "--no-scheduler" in refused.json()["error"]
        assert "Run now" not in client.get(
            "/schedules", headers={"Authorization": f"Bearer {tokens['cleo']}"}).text
