"""What a runbook's tasks reach beyond the hosts its plays name (``runbooks.hosts``):
``--limit`` holds a play's hosts, not a task's ``delegate_to`` or hosts a task adds, in
the playbook or in the task files and roles it uses; every run on a team's inventory is
checked before it is queued."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gameday.core.errors import GamedayError, ValidationError
from gameday.runbooks.hosts import tasks_within
from gameday.runbooks.runbook import load_runbook

META = {"summary": "thaw it", "alerts": ["Frozen"],
        "parameters": {"service": {"type": "string", "required": True,
                                   "pattern": "^[a-z]+$"}}}


def runbook(directory: Path, tasks: list[dict], **play: object) -> Path:
    path = directory / "thaw.yml"
    path.write_text(yaml.safe_dump([{"name": "thaw", "hosts": "app-1", "gather_facts": False,
                                     "vars": {"gameday_runbook": META}, **play,
                                     "tasks": tasks}]))
    return path


def write(path: Path, tasks: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tasks))


PING_APP_2 = [{"name": "ping", "ansible.builtin.ping": {}}, {
    "name": "from app-2", "ansible.builtin.ping": {}, "delegate_to": "app-2"}]


def test_a_delegate_in_an_included_task_file_is_seen(tmp_path: Path):
    write(tmp_path / "tasks" / "steps.yml", PING_APP_2)
    book = load_runbook(runbook(tmp_path, [{"ansible.builtin.include_tasks": "steps.yml"}]))
    with pytest.raises(ValidationError) as caught:
        tasks_within(book, ["app-1"])
    assert (caught.value.file, caught.value.field) == \
        (str((tmp_path / "tasks" / "steps.yml").resolve()), "[1].delegate_to")
    assert "'app-2' is not a host the allowlist names" in caught.value.message
    tasks_within(book, ["app-1", "app-2"])  # allowlisted: fine


def test_hosts_a_role_adds_are_seen(tmp_path: Path):
    write(tmp_path / "roles" / "thaw" / "tasks" / "main.yml", [{"name": "ping"}])
    write(tmp_path / "roles" / "thaw" / "handlers" / "main.yml", [
        {"name": "more hosts", "ansible.builtin.add_host": {"name": "app-2"}}])
    book = load_runbook(runbook(tmp_path, [], roles=["thaw"]))
    with pytest.raises(ValidationError) as caught:
        tasks_within(book, ["app-1"])
    assert caught.value.file.endswith("roles/thaw/handlers/main.yml")
    assert caught.value.field == "[0]" and "adds hosts" in caught.value.message


@pytest.mark.parametrize("tasks,play,unread", [
    ([{"ansible.builtin.include_tasks": "{{ which }}.yml"}], {}, "{{ which }}.yml"),
    ([{"ansible.builtin.import_tasks": "missing.yml"}], {}, "missing.yml (not found)"),
    ([], {"roles": ["elsewhere"]}, "role elsewhere (not read here)"),
])
def test_tasks_that_cannot_be_read_here_are_refused(tmp_path: Path, tasks, play, unread):
    """Whose delegates nobody could check: refused rather than trusted."""
    book = load_runbook(runbook(tmp_path, tasks, **play))
    with pytest.raises(ValidationError) as caught:
        tasks_within(book, ["app-1"])
    assert unread in caught.value.message and "cannot read them" in caught.value.message
    assert caught.value.file == str(tmp_path / "thaw.yml")


def test_a_run_on_a_teams_hosts_is_refused_before_it_is_queued(tmp_path: Path, monkeypatch):
    """However it was asked for (``admit_run``): a one-click page, an alert, four eyes."""
    from gameday.runs.targets import admit_run

    root = tmp_path / "team"
    root.mkdir()
    (root / "gameday.toml").write_text('[safety]\nhosts = ["app-1"]\n')
    monkeypatch.chdir(root)
    write(root / "runbooks" / "tasks" / "steps.yml", PING_APP_2)
    book = load_runbook(runbook(root / "runbooks", [
        {"ansible.builtin.include_tasks": "steps.yml"}]))
    with pytest.raises(GamedayError, match="not run on the team's hosts: .*'app-2'"):
        admit_run(None, book, {"service": "shop"}, {"GAMEDAY_INVENTORY": "hosts.ini"})
    admit_run(None, book, {"service": "shop"}, {})  # gameday's own localhost: no limit


@pytest.mark.parametrize("layout,play,field", [
    ({}, {"roles": [{"role": "thaw", "delegate_to": "app-2"}]}, "[0].roles.0.delegate_to"),
    ({"tasks/steps.yml": PING_APP_2[:1]},
     {"tasks": [{"ansible.builtin.include_tasks": {
         "file": "steps.yml", "apply": {"delegate_to": "app-2"}}}]},
     "[0].tasks.0.ansible.builtin.include_tasks.apply.delegate_to"),
    ({"roles/thaw/tasks/main.yml": [{"ansible.builtin.include_tasks": "sub/more.yml"}],
      "roles/thaw/tasks/sub/more.yml": PING_APP_2}, {"roles": ["thaw"]}, "[1].delegate_to"),
    ({"roles/thaw/meta/main.yml": {"dependencies": [{"role": "base"}]},
      "roles/base/tasks/main.yml": PING_APP_2}, {"roles": ["thaw"]}, "[1].delegate_to"),
    ({"roles/thaw/tasks/main.yml": [{"ansible.builtin.include_role": {"name": "base"}}],
      "roles/base/handlers/main.yml": PING_APP_2}, {"roles": ["thaw"]}, "[1].delegate_to"),
    ({"roles/base/tasks/main.yml": PING_APP_2},
     {"tasks": [{"ansible.builtin.import_role": "name=base"}]}, "[1].delegate_to"),
])
def test_every_way_a_role_or_an_include_delegates_is_seen(tmp_path: Path, layout, play,
                                                          field):
    """A role entry's keywords, what an include applies, a role's own includes, the
    roles it depends on or includes: each delegates as a task does."""
    (tmp_path / "roles" / "thaw" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "thaw" / "tasks" / "main.yml").write_text("[]\n")
    for name, content in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(yaml.safe_dump(content))
    tasks = play.pop("tasks", [])
    book = load_runbook(runbook(tmp_path, tasks, **play))
    with pytest.raises(ValidationError) as caught:
        tasks_within(book, ["app-1"])
    assert caught.value.field == field and "'app-2'" in caught.value.message, caught.value
