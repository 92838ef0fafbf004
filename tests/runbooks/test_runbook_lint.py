"""The shipped runbooks (the project's and the sandbox's built-in ones) as Ansible
sees them: they parse (ansible-playbook --syntax-check) and pass ansible-lint's
production profile (.ansible-lint)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DIRS = ("runbooks/", "gameday/targets/sandbox/runbooks/")  # the project's, and the built-in ones
RUNBOOKS = sorted(p for d in DIRS for p in (ROOT / d).glob("*.yml"))
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"}


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.stem)
def test_runbook_passes_syntax_check(path):
    proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", str(path)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runbooks_pass_ansible_lint():
    proc = subprocess.run([str(BIN / "ansible-lint"), "--nocolor", *DIRS], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_ansible_lint_catches_a_command_that_hides_its_changes(tmp_path):
    """The lint is real: a mutating command without changed_when fails it."""
    bad = tmp_path / "runbooks" / "bad.yml"
    bad.parent.mkdir()
    bad.write_text((ROOT / "runbooks" / "k8s-rollout-restart.yml").read_text()
                   .replace("      changed_when: true\n", "", 1))
    (tmp_path / ".ansible-lint").write_text((ROOT / ".ansible-lint").read_text())
    proc = subprocess.run([str(BIN / "ansible-lint"), "--nocolor", "runbooks/"], cwd=tmp_path,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "no-changed-when" in proc.stdout + proc.stderr
