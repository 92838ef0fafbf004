"""What a schedule is given, and what becomes of a bad one: refused at the command line
(exit 2, the option named, nothing stored), and, in a store that already holds one,
shown for what it is by `schedule list` while the scheduler runs every other schedule."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gameday.cli.main import cli
from gameday.core import clock
from gameday.core.errors import ValidationError
from gameday.core.settings import Settings
from gameday.schedules.schedule import from_row, make_schedule, spec_of
from gameday.schedules.scheduler import Scheduler
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "scenarios/checkout-replica-crash.yaml"


def gameday(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def refused(result: Result, option: str) -> None:
    """Exit 2, the option named, a message and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert option in result.output and "Traceback" not in result.output, result.output


def held(store: Store, name: str, *, cron: str, tz: str = "UTC") -> None:
    """A schedule as a store made before its cron or zone was checked may hold it (or
    after the system's tzdata dropped its zone): written past ``make_schedule``."""
    made = make_schedule(name, SCENARIO, cron="0 3 * * *")
    store.add_schedule(name, SCENARIO, spec_of(made) | {"cron": cron, "tz": tz},
                       made.created_at.isoformat())


# -- 1. a cron that never fires --------------------------------------------------------------
@pytest.mark.parametrize("cron", ["0 3 30 2 *", "0 3 31 2 *", "15 4 31 4,6,9,11 *"])
def test_a_cron_that_never_fires_is_refused_and_nothing_stored(store, cron):
    result = gameday("schedule", "add", "never", SCENARIO, "--cron", cron)
    refused(result, "--cron")
    assert "never fires" in result.output
    assert store.schedules() == []
    listed = gameday("schedule", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.output)["schedules"] == []


@pytest.mark.parametrize("cron", [
    "0 3 29 2 *",     # 29 February: every four years (eight across 2100)
    "0 3 * 2 5#5",    # a fifth Friday of February: 29 February on a Friday, decades apart
    "0 3 30 2 1",     # 30 February never comes, but with a weekday cron fires on either
                      # (Mondays in February)
])
def test_a_rare_cron_is_still_accepted(store, cron):
    result = gameday("schedule", "add", "rare", SCENARIO, "--cron", cron,
                     "--tz", "Europe/Berlin")
    assert result.exit_code == 0, result.output
    assert [s["name"] for s in store.schedules()] == ["rare"]


def test_list_shows_a_schedule_that_never_fires_instead_of_crashing(store):
    held(store, "a-never", cron="0 3 30 2 *")
    held(store, "b-zone", cron="0 3 * * *", tz="Mars/Olympus")
    stored = make_schedule("c-ok", SCENARIO, every="1h")
    store.add_schedule("c-ok", SCENARIO, spec_of(stored), stored.created_at.isoformat())

    text = gameday("schedule", "list")
    assert text.exit_code == 0, text.output
    assert text.exception is None or isinstance(text.exception, SystemExit)
    lines = {line.split()[0]: line for line in text.output.splitlines()
             if line and not line.startswith(" ")}
    assert "never fires" in lines["a-never"] and "50 years" in lines["a-never"]
    assert "never fires" in lines["b-zone"] and "Mars/Olympus" in lines["b-zone"]
    assert "next " in lines["c-ok"] and "never" not in lines["c-ok"]

    as_json = gameday("schedule", "list", "--json")
    assert as_json.exit_code == 0, as_json.output
    shown = {s["name"]: s for s in json.loads(as_json.output)["schedules"]}
    assert shown["a-never"]["next"] is None and "50 years" in shown["a-never"]["never_fires"]
    assert shown["b-zone"]["next"] is None and "Mars/Olympus" in shown["b-zone"]["never_fires"]
    assert shown["c-ok"]["next"] and shown["c-ok"]["never_fires"] is None


def test_next_fire_says_why_it_cannot_be_computed(store):
    from gameday.schedules.schedule import NeverFires

    held(store, "a-never", cron="0 3 30 2 *")
    held(store, "b-zone", cron="0 3 * * *", tz="Mars/Olympus")
    for row in store.schedules():
        schedule = from_row(row)
        for when in (schedule.next_moment, schedule.due):
            with pytest.raises(NeverFires) as caught:
                when(clock.now())
            assert caught.value.why in str(caught.value)


def test_a_tick_runs_every_due_schedule_past_one_that_never_fires(store, monkeypatch):
    """The schedules sort a-never, b-ok, c-zone: the ones that cannot fire neither stop
    the tick nor b-ok's game day, and each is reported once, not every second."""
    held(store, "a-never", cron="0 3 30 2 *")
    held(store, "c-zone", cron="0 3 * * *", tz="Mars/Olympus")
    due = make_schedule("b-ok", SCENARIO, every="10s",
                        created_at=clock.now() - timedelta(seconds=15))
    store.add_schedule("b-ok", SCENARIO, spec_of(due), due.created_at.isoformat())
    said: list[str] = []
    scheduler = Scheduler(store, Settings.load(cwd=ROOT, db=str(store.path)), say=said.append)
    spawned: list[int] = []

    def spawn(schedule, run_id, attach=False):  # the game day's process: a stand-in
        spawned.append(run_id)
        return subprocess.Popen([sys.executable, "-c", ""])

    monkeypatch.setattr(scheduler, "spawn", spawn)
    started = scheduler.tick()
    for _ in range(3):
        scheduler.tick(clock.now() + timedelta(seconds=1))
    for child in scheduler.children.values():
        child.wait(timeout=30)

    (run,) = store.schedule_runs()
    assert run["schedule"] == "b-ok" and started == spawned == [run["id"]]
    never = [line for line in said if "a-never" in line]
    zone = [line for line in said if "c-zone" in line]
    assert len(never) == 1 and "never fires" in never[0], said
    assert len(zone) == 1 and "Mars/Olympus" in zone[0], said


# -- 2. jitter against a cron's gaps -------------------------------------------------------------
@pytest.mark.parametrize("cron, tz, jitter", [
    ("* * * * *", "UTC", "2m"),
    ("* * * * *", "UTC", "1m"),              # not shorter than the minute between them
    ("0 3 * * *", "UTC", "25h"),
    ("0 3,4 * * *", "UTC", "90m"),           # 03:00 and 04:00: an hour apart, then 23
    ("0 3 * * *", "Europe/Berlin", "23.5h"),  # the night clocks go forward: 23 hours
])
def test_jitter_not_shorter_than_the_cron_gap_is_refused(store, cron, tz, jitter):
    result = gameday("schedule", "add", "jittery", SCENARIO, "--cron", cron, "--tz", tz,
                     "--jitter", jitter)
    refused(result, "--jitter")
    assert "shorter" in result.output
    assert store.schedules() == []


@pytest.mark.parametrize("cron, tz, jitter", [
    ("* * * * *", "UTC", "59s"),
    ("0 3 * * *", "UTC", "23.5h"),
    ("0 3 * * 1-5", "Europe/Berlin", "10m"),
    ("0 3 29 2 *", "UTC", "720h"),  # 30 days
])
def test_jitter_shorter_than_the_cron_gap_is_accepted(store, cron, tz, jitter):
    result = gameday("schedule", "add", "jittery", SCENARIO, "--cron", cron, "--tz", tz,
                     "--jitter", jitter)
    assert result.exit_code == 0, result.output
    assert [s["name"] for s in store.schedules()] == ["jittery"]


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_the_cron_gap_is_measured_in_elapsed_time_whatever_the_day():
    """A daily 03:00 in Berlin is 23 hours from the one before on the night the clocks
    go forward: within a year of any day."""
    with pytest.raises(ValidationError) as caught:
        make_schedule("nightly", SCENARIO, cron="0 3 * * *", tz="Europe/Berlin",
                      jitter="23.5h")
    assert caught.value.field == "--jitter" and "23h" in caught.value.message
    assert make_schedule("nightly", SCENARIO, cron="0 3 * * *", tz="Europe/Berlin",
                         jitter="1379m").jitter_s == 22 * 3600 + 59 * 60


# -- 3. run-now of a scenario that does not load ---------------------------------------------
@pytest.mark.parametrize("problem", ["deleted", "invalid"])
def test_run_now_of_a_scenario_that_does_not_load_exits_2_as_run_does(store, tmp_path,
                                                                     problem):
    path = tmp_path / "scenarios" / "gone.yaml"
    if problem == "invalid":
        path.parent.mkdir()
        path.write_text("name: [unclosed\n")
    made = make_schedule("gone", str(path), every="1h")
    store.add_schedule("gone", str(path), spec_of(made), made.created_at.isoformat())

    ran = gameday("run", str(path))
    result = gameday("schedule", "run-now", "gone")
    assert ran.exit_code == 2, ran.output
    refused(result, str(path))
    (run,) = store.schedule_runs("gone")  # and the skip is on the schedule's record
    assert run["status"] == "skipped" and "does not load" in run["reason"]
    assert str(path) in run["reason"]


def test_run_now_skipped_by_a_guardrail_still_exits_4(store):
    made = make_schedule("nightly", SCENARIO, every="1h")
    store.add_schedule("nightly", SCENARIO, spec_of(made), made.created_at.isoformat())
    store.set_freeze(True, "release 4.2", "ana")
    result = gameday("schedule", "run-now", "nightly")
    assert result.exit_code == 4, result.output
    (run,) = store.schedule_runs("nightly")
    assert run["status"] == "skipped" and "frozen by ana" in run["reason"]


# -- 4. an empty time zone --------------------------------------------------------------------
@pytest.mark.parametrize("tz", ["", "   "])
def test_an_empty_time_zone_is_refused_not_taken_for_utc(store, tz):
    result = gameday("schedule", "add", "nightly", SCENARIO, "--cron", "0 3 * * *",
                     "--tz", tz)
    refused(result, "--tz")
    assert store.schedules() == []


@pytest.mark.parametrize("option", ["--cron", "--every", "--jitter", "--max-late",
                                    "--blackout", "--notify"])
def test_every_other_empty_option_is_refused_too(store, option):
    base = ["--cron", "0 3 * * *"] if option != "--cron" and option != "--every" else []
    result = gameday("schedule", "add", "nightly", SCENARIO, *base, option, "")
    refused(result, option)
    assert store.schedules() == []


def test_the_schedules_page_shows_a_schedule_that_never_fires_beside_the_others(store,
                                                                                tmp_path):
    from starlette.testclient import TestClient

    from gameday.web.app import create_app

    held(store, "a-never", cron="0 3 30 2 *")
    held(store, "b-zone", cron="0 3 * * *", tz="Mars/Olympus")
    stored = make_schedule("c-ok", SCENARIO, every="1h")
    store.add_schedule("c-ok", SCENARIO, spec_of(stored), stored.created_at.isoformat())
    token = "a-token-of-twenty-chars"
    app = create_app(token=token, store=store, data_dir=tmp_path / "data")
    with TestClient(app) as client:
        page = client.get("/schedules", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    assert "never: " in page.text and "Mars/Olympus" in page.text and "c-ok" in page.text


@pytest.mark.usefixtures("moment")  # at each pinned date (conftest.MOMENTS)
def test_a_frequent_crons_gap_at_the_clock_change_counts_whatever_the_day():
    """Every two hours in Berlin: one gap of one hour, the night the clocks go back (or
    three hours, the night they go forward). Its first thousand firings may end before
    either: the check looks at the clock changes of the coming year too."""
    with pytest.raises(ValidationError) as caught:
        make_schedule("often", SCENARIO, cron="0 */2 * * *", tz="Europe/Berlin",
                      jitter="90m")
    assert caught.value.field == "--jitter"
    assert make_schedule("often", SCENARIO, cron="0 */2 * * *", tz="Europe/Berlin",
                         jitter="50m")
