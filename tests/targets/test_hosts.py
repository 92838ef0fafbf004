"""Process faults on a team's hosts, for real: an INI inventory of two hosts reached
through Ansible's local connection, a real process frozen and thawed by the play
gameday ships, and the allowlist and the inventory checked before anything runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from gameday.activities import faults
from gameday.activities.hosts import pause_process, resume_process
from gameday.core.errors import ValidationError
from gameday.targets.inventory import load_inventory

pytestmark = pytest.mark.slow

LOCAL = f"ansible_connection=local ansible_python_interpreter={sys.executable}"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.ini"
    path.write_text(f"[app]\napp-1 {LOCAL}\napp-2 {LOCAL}\n")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inventory: Path) -> Path:
    """A team's project allowing app-1 only, the game's inventory variable set."""
    root = tmp_path / "team"
    root.mkdir()
    (root / "gameday.toml").write_text('[safety]\nhosts = ["app-1"]\n')
    monkeypatch.chdir(root)
    monkeypatch.setenv("GAMEDAY_INVENTORY", str(inventory))
    return root


@pytest.fixture
def victim():
    """A real process with a marker of its own on its command line."""
    marker = f"gameday-victim-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker],
                            start_new_session=True)
    try:
        yield proc, marker
    finally:
        proc.kill()
        proc.wait(10)


def state(pid: int) -> str:
    """The process's state letter in /proc/PID/stat (after the parenthesized name)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def settles(pid: int, stopped: bool, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (state(pid) == "T") == stopped:
            return True
        time.sleep(0.02)
    return False


def test_the_inventory_as_ansible_reads_it(inventory: Path):
    found = load_inventory(inventory)
    assert found.hosts == {"app-1", "app-2"}
    assert found.groups["app"] == {"app-1", "app-2"} == found.groups["all"]
    assert found.groups["ungrouped"] == frozenset()
    assert found.resolve("app") == {"app-1", "app-2"}
    assert found.resolve("all:!app-2") == {"app-1"}
    assert found.resolve("app-1,app-2") == {"app-1", "app-2"}
    assert found.resolve("app:&app-2") == {"app-2"}
    assert found.resolve("*") == {"app-1", "app-2"}
    assert found.resolve("nowhere") == frozenset()
    for dynamic in ("{{ x }}", "app-*", "~app", "app[0:1]"):
        assert found.resolve(dynamic) is None, dynamic
    assert load_inventory(inventory) is found  # unchanged: not read again


def test_an_inventory_ansible_cannot_read_is_refused(tmp_path: Path):
    broken = tmp_path / "broken.ini"
    broken.write_text("[app\napp-1 ansible_connection=\n")
    with pytest.raises(ValidationError) as err:
        load_inventory(broken)
    assert err.value.file == str(broken) and "parse" in err.value.message
    missing = tmp_path / "missing.ini"
    with pytest.raises(ValidationError) as err:
        load_inventory(missing)
    assert err.value.file == str(missing)
    empty = tmp_path / "empty.ini"
    empty.write_text("[app]\n")
    with pytest.raises(ValidationError, match="no hosts"):
        load_inventory(empty)


def test_the_faults_are_declared():
    pause = faults.lookup("gameday.activities.hosts:pause_process")
    assert pause is not None and pause.local and pause.factor and pause.action
    assert pause.rollback == ("gameday.activities.hosts:resume_process",)
    assert dict(pause.touches) == {"hosts": "hosts"}
    assert faults.lookup("gameday.activities.hosts:resume_process") is not None


def test_pause_freezes_the_process_and_resume_thaws_it(project: Path, victim):
    proc, marker = victim
    assert settles(proc.pid, stopped=False)
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    paused = pause_process(["app-1"], f"time\\.sleep.*{marker}$")
    assert paused == {"hosts": ["app-1"], "process": f"time\\.sleep.*{marker}$",
                      "signal": "STOP", "matched": {"app-1": True}}
    assert settles(proc.pid, stopped=True)
    resumed = resume_process(["app-1"], marker)
    assert resumed["signal"] == "CONT" and resumed["matched"] == {"app-1": True}
    assert settles(proc.pid, stopped=False)
    # the process's signal handlers are still its own (a game day's, say)
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers
    # a rollback after the process is gone, or was resumed already, is not a failure
    again = resume_process(["app-1"], f"{marker}-gone")
    assert again["matched"] == {"app-1": False}
    with pytest.raises(ActivityFailed, match="app-1: no process matches"):
        pause_process(["app-1"], f"{marker}-gone")
    assert state(proc.pid) != "T"


@pytest.mark.parametrize("hosts,process,why", [
    (["app-2"], None, "allowlist"),             # in the inventory, not allowlisted
    (["app-1", "db-9"], None, "allowlist"),    # not in the inventory either
    ([], None, "non-empty list"),
    (["app-1"], "", "non-empty"),
    (["app-1"], "a\nb", "one line"),
    (["app-1"], "x" * 201, "at most 200"),
    (["app-1"], "{{ lookup('pipe', 'id') }}", "Jinja"),
])
def test_nothing_outside_the_allowlist_or_the_rules_is_touched(project, victim, hosts,
                                                               process, why):
    proc, marker = victim
    with pytest.raises(ActivityFailed, match=why):
        pause_process(hosts, marker if process is None else process)
    assert state(proc.pid) != "T"


def test_an_allowlisted_host_the_inventory_lacks_is_refused(project: Path, victim,
                                                            tmp_path: Path):
    (project / "gameday.toml").write_text('[safety]\nhosts = ["app-1", "db-1"]\n')
    proc, marker = victim
    with pytest.raises(ActivityFailed, match="not hosts of the inventory.*db-1"):
        pause_process(["app-1", "db-1"], marker)
    assert state(proc.pid) != "T"


def test_without_an_inventory_the_fault_says_so(project: Path, monkeypatch):
    monkeypatch.delenv("GAMEDAY_INVENTORY")
    with pytest.raises(ActivityFailed, match="GAMEDAY_INVENTORY"):
        pause_process(["app-1"], "anything")


def test_a_host_the_play_fails_on_is_named_with_ansibles_message(project: Path,
                                                                  tmp_path: Path):
    (project / "gameday.toml").write_text('[safety]\nhosts = ["app-1", "app-9"]\n')
    inventory = tmp_path / "broken-host.ini"
    inventory.write_text(f"app-1 {LOCAL}\n"
                         "app-9 ansible_connection=local ansible_python_interpreter=/no/python\n")
    with pytest.raises(ActivityFailed, match="SIGCONT on app-9: .*/no/python"):
        resume_process(["app-1", "app-9"], "nothing-matches-this", inventory=str(inventory))


@pytest.mark.parametrize("task,field,says", [
    ({"delegate_to": "app-2"}, "[0].tasks.0.delegate_to", "'app-2' is not a host"),
    ({"delegate_to": "{{ groups.app[1] }}"}, "[0].tasks.0.delegate_to", "not a template"),
    ({"block": [{"name": "inner", "ansible.builtin.ping": {}, "delegate_to": "app-2"}]},
     "[0].tasks.0.block.0.delegate_to", "'app-2'"),
    ({"ansible.builtin.add_host": {"name": "app-2"}}, "[0].tasks.0", "adds hosts"),
])
def test_a_runbook_reaching_past_its_limit_is_refused(project, inventory, task, field, says):
    """``--limit`` holds a play's hosts, not a task's delegate or hosts a task adds: a
    runbook on app-1 that delegates to app-2, or adds hosts, is refused naming the task."""
    from types import SimpleNamespace

    from gameday.core.errors import ValidationError
    from gameday.game.reach import within_hosts

    book = project / "thaw.yml"
    step = {"name": "step", **({} if "block" in task or "add_host" in str(task)
                               else {"ansible.builtin.ping": {}}), **task}
    book.write_text(yaml.safe_dump([{"name": "thaw", "hosts": "app-1", "tasks": [step]}]))
    sc = SimpleNamespace(inventory=inventory)
    runbook = SimpleNamespace(path=book, task_files=(), unread=())
    with pytest.raises(ValidationError) as caught:
        within_hosts(sc, runbook)  # type: ignore[arg-type]
    assert (caught.value.file, caught.value.field) == (str(book), field)
    assert says in caught.value.message
    step = {"name": "step", "ansible.builtin.ping": {}, "delegate_to": "app-1"}
    book.write_text(yaml.safe_dump([{"name": "thaw", "hosts": "app-1", "tasks": [step]}]))
    within_hosts(sc, runbook)  # type: ignore[arg-type]
