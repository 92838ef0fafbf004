"""A runbook's version (``Runbook.version``) is what a game day's proof and a run's
approval hold for: the plays as Ansible reads them and the task files they include,
so a comment or the layout is no change, and an edit to an included file is one."""

from __future__ import annotations

from pathlib import Path

import yaml

from gameday.runbooks.runbook import load_runbook

META = {"summary": "restart it", "alerts": ["Down"], "auto": True,
        "parameters": {"service": {"type": "string", "required": True,
                                   "pattern": "^[a-z]+$"}}}


def write(directory: Path, tasks: list[dict]) -> Path:
    path = directory / "restart.yml"
    path.write_text(yaml.safe_dump([{"name": "restart", "hosts": "localhost",
                                     "gather_facts": False,
                                     "vars": {"gameday_runbook": META}, "tasks": tasks}]))
    return path


def test_comments_and_layout_are_no_change_a_task_is(tmp_path: Path):
    path = write(tmp_path, [{"name": "restart", "ansible.builtin.command": {
        "argv": ["echo", "{{ service }}"]}}])
    first = load_runbook(path).version
    path.write_text("# restarts the service\n\n" + path.read_text().replace("\n", "\n\n"))
    assert load_runbook(path).version == first
    write(tmp_path, [{"name": "restart", "ansible.builtin.command": {
        "argv": ["echo", "{{ service }}", "--force"]}}])
    assert load_runbook(path).version != first


def test_an_edit_to_an_included_task_file_is_a_new_version(tmp_path: Path):
    (tmp_path / "tasks").mkdir()
    included = tmp_path / "tasks" / "steps.yml"
    included.write_text(yaml.safe_dump([{"name": "restart", "ansible.builtin.command": {
        "argv": ["echo", "{{ service }}"]}}]))
    path = write(tmp_path, [{"name": "the restart", "ansible.builtin.include_tasks": {
        "file": "steps.yml"}}])
    first = load_runbook(path).version
    included.write_text("# the same task\n" + included.read_text())
    assert load_runbook(path).version == first
    included.write_text(yaml.safe_dump([{"name": "restart", "ansible.builtin.command": {
        "argv": ["rm", "-rf", "/tmp/{{ service }}"]}}]))
    assert load_runbook(path).version != first
