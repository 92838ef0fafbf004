"""``gameday validate`` reads a runbook as Ansible will (``ansible-playbook
--syntax-check``): a module Ansible cannot resolve, or tasks that are not a list, fail
validation (exit 2, naming the file), not a run whose failure would count against the
runbook's trust; and a directory with nothing to check is not "ok"."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gameday.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
BUILT_IN = ROOT / "gameday" / "targets" / "sandbox" / "runbooks" / "restart-replica.yml"


@pytest.mark.parametrize("break_it,said", [
    (lambda play: play["tasks"][0].update(
        {"no.such.module": play["tasks"][0].pop("ansible.builtin.command")}),
     "couldn't resolve module/action 'no.such.module'"),
    (lambda play: play.update(tasks="x"), "malformed block"),
])
def test_a_runbook_ansible_cannot_run_does_not_validate(tmp_path, monkeypatch, break_it, said):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runbooks").mkdir()
    plays = yaml.safe_load(BUILT_IN.read_text())
    break_it(plays[0])
    broken = tmp_path / "runbooks" / "restart-replica.yml"
    broken.write_text(yaml.safe_dump(plays))
    result = CliRunner().invoke(cli, ["validate", str(broken)])
    assert result.exit_code == 2, result.output
    assert f"{broken}: Ansible cannot run it" in result.output and said in result.output
    assert CliRunner().invoke(cli, ["validate", str(BUILT_IN)]).exit_code == 0


def test_a_directory_with_nothing_to_check_is_not_ok(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["validate", "empty"])
    assert result.exit_code == 2 and "no .yaml or .yml file" in result.output, result.output


@pytest.mark.parametrize("spec,said", [
    ({"type": "string", "pattern": "^[a-z]+$", "default": "BAD VALUE; rm"}, "does not match"),
    ({"type": "integer", "default": "x"}, "must be an integer"),
    ({"type": "string", "default": "-rf"}, "would read it as an option"),
])
def test_a_default_that_fails_its_own_checks_does_not_validate(tmp_path, spec, said):
    plays = yaml.safe_load(BUILT_IN.read_text())
    plays[0]["vars"]["gameday_runbook"]["parameters"]["service"] = spec
    path = tmp_path / "restart-replica.yml"
    path.write_text(yaml.safe_dump(plays))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "vars.gameday_runbook.parameters.service.default: the default" in result.output
    assert said in result.output


def test_a_scenarios_own_parameter_is_named_where_it_was_written(tmp_path, monkeypatch):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "gameday", "init", str(tmp_path / "p")],
                   check=True, capture_output=True)
    monkeypatch.chdir(tmp_path / "p")
    scenario = tmp_path / "p" / "scenarios" / "first-game-day.yaml"
    scenario.write_text(scenario.read_text().replace(
        "response: {mode: auto}", 'response: {mode: auto, params: {service: "$(id)"}}'))
    result = CliRunner().invoke(cli, ["validate", str(scenario)])
    assert result.exit_code == 2, result.output
    assert "first-game-day.yaml: response.params.service: runbook restart-replica" \
        in result.output


def test_a_runbook_whose_imports_name_a_parameter_validates(tmp_path, monkeypatch):
    """The syntax check gives the parameters as a run does, and reads the runbook from a
    directory of its own: a static import named by a parameter is found."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "restart.yml").write_text("- ansible.builtin.debug: {msg: hi}\n")
    (tmp_path / "act.yml").write_text(yaml.safe_dump([{
        "name": "act", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"gameday_runbook": {"summary": "act", "parameters": {
            "action": {"type": "string", "choices": ["restart", "reload"],
                       "required": True}}}},
        "tasks": [{"ansible.builtin.import_tasks": "tasks/{{ action }}.yml"}]}]))
    result = CliRunner().invoke(cli, ["validate", "act.yml"])
    assert result.exit_code == 0, result.output
