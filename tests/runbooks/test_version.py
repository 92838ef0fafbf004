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


def test_the_words_about_it_are_no_change(tmp_path: Path):
    path = write(tmp_path, [{"name": "restart", "ansible.builtin.command": {
        "argv": ["echo", "{{ service }}"]}}])
    first = load_runbook(path).version
    META["summary"] = "restart the service, then check it serves"
    META["parameters"]["service"]["description"] = "the service to restart"
    try:
        write(tmp_path, [{"name": "restart", "ansible.builtin.command": {
            "argv": ["echo", "{{ service }}"]}}])
        assert load_runbook(path).version == first
    finally:
        META["summary"] = "restart it"
        META["parameters"]["service"].pop("description")


def steps(tmp_path: Path) -> tuple[Path, Path]:
    """A runbook importing tasks/a.yml, which imports b.yml: Ansible finds it in the
    playbook's tasks/ too."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.yml").write_text(yaml.safe_dump([
        {"name": "then b", "ansible.builtin.import_tasks": "b.yml"}]))
    b = tmp_path / "tasks" / "b.yml"
    b.write_text(yaml.safe_dump([{"name": "step b", "ansible.builtin.command": {
        "argv": ["echo", "{{ service }}"]}}]))
    path = write(tmp_path, [{"name": "a", "ansible.builtin.import_tasks": "a.yml"}])
    return path, b


def test_a_file_an_included_file_includes_is_in_the_version(tmp_path: Path):
    path, b = steps(tmp_path)
    runbook = load_runbook(path)
    assert {p.name for p in runbook.includes} == {"a.yml", "b.yml"}
    b.write_text(yaml.safe_dump([{"name": "step b", "ansible.builtin.command": {
        "argv": ["rm", "-rf", "/tmp/{{ service }}"]}}]))
    assert load_runbook(path).version != runbook.version


def test_serve_routes_an_alert_to_the_version_on_disk_after_an_included_file_changes(
        tmp_path: Path):
    """``runs.routes`` looks at the runbook files without reading them while they stay
    the same: the task files they include are looked at too."""
    import os

    from gameday.runs.alerts import AlertInstance
    from gameday.runs.routes import Routes

    path, b = steps(tmp_path)
    for file in (path, b, tmp_path / "tasks" / "a.yml"):  # settled: not written lately
        os.utime(file, (file.stat().st_atime - 60, file.stat().st_mtime - 60))
    routes = Routes(tmp_path)
    alert = AlertInstance("{}:{}", "f1", "firing", "2026-11-22T10:00:00Z", "",
                          {"alertname": "Down", "service": "checkout"}, {}, "")
    routes.check()
    before = routes.route(alert).runbook
    assert before is not None
    b.write_text(yaml.safe_dump([{"name": "step b", "ansible.builtin.command": {
        "argv": ["rm", "-rf", "/tmp/{{ service }}"]}}]))
    os.utime(b, (b.stat().st_atime - 60, b.stat().st_mtime - 60))
    routes.check()
    after = routes.route(alert).runbook
    assert after is not None and after.version == load_runbook(path).version
    assert after.version != before.version


def reading(tmp_path: Path) -> Path:
    """A runbook whose play reads a vars file and a role, and whose tasks read a
    template, a file to copy, a script and a vars file, each where Ansible looks for it;
    and two it cannot cover: a name decided when it runs, a file on the managed host."""
    for name, text in (("templates/app.conf.j2", "port={{ port }}\n"),
                       ("files/motd", "hello\n"), ("files/fix.sh", "#!/bin/sh\necho ok\n"),
                       ("vars/limits.yml", "limit: 3\n"), ("settings.yml", "port: 80\n"),
                       ("roles/web/tasks/main.yml", "- ansible.builtin.debug: {msg: hi}\n"),
                       ("roles/web/defaults/main.yml", "colour: blue\n")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    path = tmp_path / "restart.yml"
    path.write_text(yaml.safe_dump([{
        "name": "restart", "hosts": "localhost", "gather_facts": False,
        "vars": {"gameday_runbook": META}, "vars_files": ["settings.yml"],
        "roles": [{"role": "web"}],
        "tasks": [
            {"ansible.builtin.template": {"src": "app.conf.j2", "dest": "/tmp/app.conf"}},
            {"copy": "src=motd dest=/tmp/motd"},
            {"ansible.builtin.script": "fix.sh --now"},
            {"ansible.builtin.include_vars": {"file": "limits.yml"}},
            {"ansible.builtin.template": {"src": "{{ service }}.j2", "dest": "/tmp/x"}},
            {"ansible.builtin.copy": {"src": "/etc/hosts", "dest": "/tmp/h",
                                      "remote_src": True}}]}]))
    return path


def test_the_files_its_plays_and_tasks_read_are_in_the_version(tmp_path: Path):
    path = reading(tmp_path)
    runbook = load_runbook(path)
    read = {str(p.relative_to(tmp_path.resolve())) for p in runbook.includes}
    assert read == {"templates/app.conf.j2", "files/motd", "files/fix.sh", "vars/limits.yml",
                    "settings.yml", "roles/web/tasks/main.yml", "roles/web/defaults/main.yml"}
    versions = {runbook.version}
    for name in sorted(read):
        file = tmp_path / name
        file.write_text(file.read_text() + "# changed\n")
        versions.add(load_runbook(path).version)
    assert len(versions) == len(read) + 1  # each edit, a new version
    (tmp_path / "other.j2").write_text("not read\n")  # a file nothing reads: no change
    assert load_runbook(path).version in versions


def test_a_runbook_that_reads_no_file_keeps_the_version_it_had(tmp_path: Path):
    """Proofs recorded before files counted still hold for a runbook that reads none."""
    from gameday.runbooks.dry_run import version_of

    plays = [{"name": "restart", "tasks": [{"ansible.builtin.command": "true"}]}]
    assert version_of(plays, {}, {}) == version_of(plays, {})
    included = {"tasks/a.yml": [{"ansible.builtin.command": "true"}]}
    assert version_of(plays, included, {}) == version_of(plays, included)


def test_the_same_project_anywhere_on_disk_has_the_same_versions(tmp_path: Path):
    """Files are named by their path from the runbook, not where the project sits; a
    file outside the project (``copy: src=/etc/hosts``) is not read at all."""
    import shutil

    first = tmp_path / "a" / "project"
    (first / "runbooks").mkdir(parents=True)
    (first / "templates").mkdir()
    (first / "templates" / "app.j2").write_text("port={{ port }}\n")
    (first / "runbooks" / "restart.yml").write_text(yaml.safe_dump([{
        "name": "restart", "hosts": "localhost", "gather_facts": False,
        "vars": {"gameday_runbook": META},
        "tasks": [{"ansible.builtin.template": {"src": "../templates/app.j2",
                                                "dest": "/tmp/app.conf"}},
                  {"ansible.builtin.copy": {"src": "/etc/hosts", "dest": "/tmp/h"}}]}]))
    second = tmp_path / "b" / "elsewhere" / "project"
    shutil.copytree(first, second)
    one, two = (load_runbook(p / "runbooks" / "restart.yml") for p in (first, second))
    assert one.version == two.version
    assert [p.name for p in one.includes] == ["app.j2"]  # not /etc/hosts
