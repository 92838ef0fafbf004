"""Bad input on the command line: a clear message naming the parameter (or the file and
what is wrong with it), exit 2, no traceback, nothing written. And a reader that goes
away (`| head -1`) ends `gameday runbook run` at once, its run ended on the record."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from gameday.cli.main import cli

HUGE = "99999999999999999999999"  # past the store's 64-bit integers
LARGEST = str(2**63 - 1)  # the largest id the store keeps


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def refused(result: Result, *named: str) -> None:
    """Exit 2 with Click's message (no traceback) that names each of ``named``."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for name in named:
        assert name in result.output, (name, result.output)


# -- ids and counts: one rule, 1..2**63-1 ------------------------------------------------
ID_COMMANDS = [
    ("incident", "show", "{}"),
    ("incident", "ack", "{}", "--as", "ana"),
    ("incident", "note", "{}", "a note", "--as", "ana"),
    ("incident", "severity", "{}", "SEV-1", "--as", "ana", "--reason", "r"),
    ("incident", "assign", "{}", "scribe", "ben", "--by", "ana"),
    ("incident", "escalate", "{}", "--as", "ana", "--reason", "r"),
    ("incident", "mitigated", "{}", "--as", "ana"),
    ("incident", "resolve", "{}", "--as", "ana"),
    ("incident", "comms", "{}", "--audience", "internal", "--as", "ana"),
    ("incident", "list", "--before", "{}"),
    ("drill", "debrief", "{}"),
    ("drill", "end", "{}", "--as", "ana"),
    ("drill", "join", "{}", "--as", "ana", "--role", "scribe"),
    ("drill", "pause", "{}", "--as", "ana"),
    ("drill", "resume", "{}", "--as", "ana"),
    ("drill", "hint", "{}", "--as", "ana"),
    ("drill", "inject", "{}", "--as", "ana"),
    ("drill", "start", "--from-incident", "{}"),
    ("actions", "done", "{}"),
    ("actions", "list", "--incident", "{}"),
    ("runbook", "run", "restart-replica", "-e", "service=checkout", "--incident", "{}"),
]


def _with(args: tuple[str, ...], value: str) -> list[str]:
    return [a.format(value) for a in args]


def _name(args: tuple[str, ...]) -> str:
    return " ".join(args[:args.index("{}")])


@pytest.mark.parametrize("args", ID_COMMANDS, ids=_name)
def test_an_id_past_the_store_s_integers_is_a_usage_error(args, tmp_path):
    result = invoke(*_with(args, HUGE))
    refused(result, "is not an id", HUGE)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args", ID_COMMANDS, ids=_name)
def test_the_largest_id_the_store_keeps_is_taken(args, store):
    """It fits: the command answers for an id it does not know as before (`no incident
    N`, exit 1; an empty list, exit 0), and nothing runs."""
    result = invoke(*_with(args, LARGEST))
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), (result.exit_code, result.output, result.exception)
    if result.exit_code == 1:
        assert re.search(rf"no (incident|drill|action item) {LARGEST}\b", result.output), \
            result.output
    assert store.runs() == [] and store.drills() == []


@pytest.mark.parametrize("args", [
    ("actions", "list", "--incident", "-1"),
    ("actions", "list", "--incident", "0"),
    ("runbook", "run", "restart-replica", "-e", "service=checkout", "--incident", "-1"),
    ("incident", "list", "--before", "0"),
    ("drill", "start", "--from-incident", "-3"),
], ids=" ".join)
def test_every_id_option_takes_the_same_range(args, store):
    refused(invoke(*args), f"Invalid value for '{args[-2]}'", "is not an id")
    assert store.runs() == []


@pytest.mark.parametrize("args", [("incident", "list", "--limit"), ("actions", "list", "--limit")],
                         ids=" ".join)
def test_a_count_is_bounded_too(args, store):
    refused(invoke(*args, HUGE), "--limit", "is not a count")
    refused(invoke(*args, "0"), "--limit", "is not a count")
    store.create_incident("one")
    kept = invoke(*args, LARGEST, "--json")
    assert kept.exit_code == 0, kept.output
    assert len(json.loads(kept.output)) == (1 if args[0] == "incident" else 0)


def test_an_incident_that_is_not_there_is_still_exit_1(store):
    missing = invoke("incident", "show", "999")
    assert missing.exit_code == 1 and "no incident 999" in missing.output
    assert invoke("actions", "done", "999").exit_code == 1


# -- paths and files --------------------------------------------------------------------
@pytest.mark.parametrize("where", ["", "afile/x.html", "."], ids=["empty", "under-a-file",
                                                                   "a-directory"])
def test_report_html_that_cannot_be_written_is_exit_2(where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("report", "--html", where)
    refused(result, "--html")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_report_html_is_written_where_it_can_be(tmp_path):
    out = tmp_path / "new" / "report.html"
    result = invoke("report", "--html", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().lower().startswith("<!doctype html")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs" / "20261207T000000Z-x"
    d.mkdir(parents=True)
    return d


@pytest.mark.parametrize(("content", "said"), [
    ("garbage", "is not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"incident_id": "seven"}', "incident_id"),
    (f'{{"incident_id": {HUGE}}}', "incident_id"),
], ids=["garbage", "a-list", "a-text-id", "a-huge-id"])
@pytest.mark.parametrize("command", ["score", "review"])
def test_a_run_json_that_is_not_a_game_day_s_names_the_file(command, content, said, run_dir):
    (run_dir / "run.json").write_text(content)
    result = invoke(command, str(run_dir))
    refused(result, f"{run_dir / 'run.json'}:", said)
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.json"]


def test_a_journal_that_is_not_json_names_the_file_before_anything_is_written(run_dir,
                                                                              store):
    from gameday.scenarios.scenario import as_run, load_scenario

    sc = load_scenario(Path("scenarios/checkout-replica-crash.yaml"))
    incident = store.create_incident("practice")
    (run_dir / "scenario.yaml").write_text(as_run(sc))
    (run_dir / "run.json").write_text(json.dumps({"incident_id": incident}))
    (run_dir / "journal.json").write_text("{cut")
    result = invoke("review", str(run_dir))
    refused(result, f"{run_dir / 'journal.json'}:", "is not JSON")
    assert sorted(p.name for p in run_dir.iterdir()) == ["journal.json", "run.json",
                                                         "scenario.yaml"]
    assert store.actions(incident_id=incident) == []


@pytest.mark.parametrize("under", ["", "sub"], ids=["the-file", "under-the-file"])
@pytest.mark.parametrize("command", ["up", "status", "down"])
def test_a_sandbox_state_dir_that_is_a_file(command, under, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    result = invoke("sandbox", "--state-dir", str(afile / under if under else afile), command)
    refused(result, "--state-dir", "is not a directory")
    assert afile.read_text() == "mine\n"


# -- parameters -------------------------------------------------------------------------
def test_a_runbook_parameter_given_twice_is_refused(store):
    result = invoke("runbook", "run", "restart-replica", "-e", "service=checkout",
                    "-e", "service=payments")
    refused(result, "-e", "'service' is given twice", "checkout", "payments")
    assert store.runs() == []


@pytest.mark.parametrize("age", ["-1", "0", "nan", "inf", "1.5", "thirty"])
def test_report_max_age_is_whole_days_of_at_least_one(age):
    result = invoke("report", "--max-age", age)
    refused(result, "--max-age", "a whole number, at least 1")
    assert "stale after" not in result.output


def test_report_max_age_in_whole_days():
    result = invoke("report", "--max-age", "7")
    assert result.exit_code == 0, result.output
    assert "stale after 7 days" in result.output


@pytest.mark.parametrize("rest", [("scenarios/checkout-replica-crash.yaml",),
                                  ("--from-incident", "1")], ids=["scenario", "replay"])
def test_drill_seed_goes_with_the_wheel(rest, monkeypatch, store):
    from gameday.drills import master, replay

    started = []
    monkeypatch.setattr(master, "start_drill", lambda *a, **k: started.append(a))
    monkeypatch.setattr(replay, "start_replay", lambda *a, **k: started.append(a))
    store.create_incident("a real one")
    result = invoke("drill", "start", "--seed", "5", *rest)
    refused(result, "--seed", "--wheel")
    assert started == [] and store.drills() == []


# -- a reader that goes away -------------------------------------------------------------
SLOW_BOOK = [{
    "name": "slow", "hosts": "localhost", "connection": "local", "gather_facts": False,
    "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
             "gameday_runbook": {
                 "summary": "says something, then takes its time", "alerts": ["Slow"],
                 "auto": False, "destructive": False, "concurrency": 1,
                 "parameters": {"service": {"type": "string", "required": True,
                                            "pattern": "^[a-z][a-z0-9-]{0,30}$"}}}},
    "tasks": [{"name": f"say {n}", "ansible.builtin.command": {"argv": ["echo", str(n)]},
               "changed_when": False} for n in range(3)]
    + [{"name": "take a long while", "ansible.builtin.command": {"argv": ["sleep", "90"]},
        "changed_when": False}],
}]


def test_runbook_run_ends_at_once_when_its_reader_goes_away(tmp_path):
    """`gameday runbook run ... | head -1`: the output's thread used to die on the broken
    pipe and the command waited for it forever, its run left `running` (and every later
    run of the runbook `queued`). Now the playbook is stopped and the run ended
    `canceled` on the record, at once, exit 141 as SIGPIPE ends a Unix tool."""
    from gameday.store import Store

    books = tmp_path / "books"
    books.mkdir()
    (books / "slow.yml").write_text(yaml.safe_dump(SLOW_BOOK))
    env = {**os.environ, "GAMEDAY_RUNBOOKS": str(books)}
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gameday", "runbook", "run", "slow", "-e", "service=checkout",
         "--run-dir", str(tmp_path / "artifacts")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # what `head -1` reads, then it goes
        proc.stdout.close()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"runbook.started" in first
    assert proc.returncode == 141, err.decode()
    assert time.monotonic() - began < 60  # the playbook's 90 s sleep was not waited for
    assert b"Traceback" not in err and b"broken pipe" in err
    runs = Store(os.environ["GAMEDAY_DB"]).runs()
    assert [(r["runbook"], r["status"]) for r in runs] == [("slow", "canceled")]


def test_the_bounds_hold_on_each_store(any_store, monkeypatch):
    """The largest id and count go through to SQLite's and PostgreSQL's 64-bit integers."""
    monkeypatch.setenv("GAMEDAY_DB", any_store.url)
    kept = any_store.create_incident("one")
    listed = invoke("incident", "list", "--limit", LARGEST, "--before", LARGEST, "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.output)] == [kept]
    missing = invoke("incident", "show", LARGEST)
    assert missing.exit_code == 1 and f"no incident {LARGEST}" in missing.output
    actions = invoke("actions", "list", "--incident", LARGEST, "--limit", LARGEST, "--json")
    assert actions.exit_code == 0 and json.loads(actions.output) == []
