"""A runbook knows whether its dry run is dry: a task that runs for real in check mode
(``check_mode: false`` on it, its block or its play, templated, or in a task file it
includes) makes its ``--check`` run one that changes things, as real Ansible shows."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gameday.runbooks.runbook import load_runbook, run_runbook

HEAD = """\
- name: Probe
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    gameday_runbook:
      summary: Probe.
"""


def book(tmp_path: Path, body: str, files: dict[str, str] | None = None):
    """A runbook of the play ``HEAD`` and ``body`` (indented as the play's keys), with
    task ``files`` beside it."""
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    path = tmp_path / "probe.yml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(body), "  "))
    return load_runbook(path)


def touch(marker: Path, **keywords: str) -> str:
    extra = "".join(f"\n  {k}: {v}" for k, v in keywords.items())
    return f"""\
- name: Touch
  ansible.builtin.command:
    argv: [touch, "{marker}"]{extra}
"""


def test_real_ansible_runs_a_check_mode_false_task_in_a_dry_run_and_the_runbook_says_so(
        tmp_path):
    """What the reading stands on: in ``--check``, Ansible skips the plain task and runs
    the ``check_mode: false`` one for real."""
    plain, forced = tmp_path / "plain", tmp_path / "forced"
    rb = book(tmp_path, "tasks:\n" + textwrap.indent(
        touch(plain) + touch(forced, check_mode="false"), "  "))
    result = run_runbook(rb, {}, tmp_path / "run", check=True)
    assert result.ok, result
    assert not plain.exists() and forced.exists()      # the dry run changed something
    assert not rb.dry_run_changes_nothing and not rb.changes_nothing(True)
    (why,) = rb.dry_run_acts
    assert why == "'Touch' (play 1): check_mode: false"


def test_a_runbook_without_such_tasks_has_a_dry_dry_run(tmp_path):
    marker = tmp_path / "marker"
    rb = book(tmp_path, "tasks:\n" + textwrap.indent(touch(marker, check_mode="true"), "  "))
    assert rb.dry_run_changes_nothing and rb.changes_nothing(True)
    assert not rb.changes_nothing(False)                # a real run always changes things
    assert run_runbook(rb, {}, tmp_path / "run", check=True).ok and not marker.exists()


@pytest.mark.parametrize("body, files, acts", [
    # the task's own, its block's (rescue and always too), its play's, and templated
    ("tasks:\n  - name: T\n    command: date\n    check_mode: no\n", {}, "check_mode: false"),
    ("tasks:\n  - block:\n      - {name: T, command: date}\n    check_mode: false\n", {},
     "'T' (play 1): check_mode: false"),
    ("tasks:\n  - block: []\n    rescue: []\n    always:\n      - name: T\n"
     "        command: date\n        check_mode: false\n", {}, "'T'"),
    ("check_mode: false\ntasks:\n  - {name: T, command: date}\n", {}, "'T'"),
    ("handlers:\n  - {name: H, command: date, check_mode: false}\n", {}, "'H'"),
    ("tasks:\n  - name: T\n    command: date\n    check_mode: \"{{ real | bool }}\"\n", {},
     "decided when it runs"),
    # included or imported by a name written out, read; else taken as acting
    ("tasks:\n  - include_tasks: more.yml\n",
     {"more.yml": "- {name: Inner, command: date, check_mode: false}\n"}, "'Inner'"),
    ("tasks:\n  - ansible.builtin.import_tasks: {file: more.yml}\n",
     {"tasks/more.yml": "- block:\n    - {name: Deep, command: date}\n  check_mode: false\n"},
     "'Deep'"),
    ("tasks:\n  - import_tasks: more.yml\n    check_mode: false\n",
     {"more.yml": "- {name: Inherits, command: date}\n"}, "'Inherits'"),
    ("tasks:\n  - include_tasks: {file: more.yml, apply: {check_mode: false}}\n",
     {"more.yml": "- {name: Applied, command: date}\n"}, "'Applied'"),
    ("tasks:\n  - include_tasks: \"{{ which }}.yml\"\n", {}, "not read here"),
    ("tasks:\n  - include_tasks: gone.yml\n", {}, "gone.yml (not found)"),
    ("tasks:\n  - include_role: {name: web}\n", {}, "a role"),
    ("roles: [web]\n", {}, "roles (not read here)"),
])
def test_what_runs_for_real_in_check_mode_is_read_wherever_it_is(tmp_path, body, files,
                                                                  acts):
    rb = book(tmp_path, body, files)
    assert not rb.dry_run_changes_nothing
    assert any(acts in line for line in rb.dry_run_acts), rb.dry_run_acts


@pytest.mark.parametrize("body, files", [
    ("tasks:\n  - block:\n      - {name: T, command: date, check_mode: true}\n"
     "    check_mode: false\n", {}),                  # the task's own setting wins
    ("check_mode: false\ntasks:\n  - {name: T, command: date, check_mode: yes}\n", {}),
    ("tasks:\n  - include_tasks: more.yml\n  - include_tasks: more.yml\n",
     {"more.yml": "- {name: Inner, command: date}\n- include_tasks: more.yml\n"}),
])
def test_what_stays_in_check_mode_is_not_counted(tmp_path, body, files):
    assert book(tmp_path, body, files).dry_run_acts == ()


def test_an_included_file_is_read_again_when_it_changes(tmp_path):
    """A runbook is parsed again only when its bytes change; one that includes a task
    file is read again every time, so a ``check_mode: false`` added there counts."""
    rb = book(tmp_path, "tasks:\n  - include_tasks: more.yml\n",
              {"more.yml": "- {name: Inner, command: date}\n"})
    assert rb.dry_run_changes_nothing
    (tmp_path / "more.yml").write_text("- {name: Inner, command: date, check_mode: false}\n")
    assert not load_runbook(rb.path).dry_run_changes_nothing
