"""The CLI through Click's runner: help, versions, validation errors, incident views."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from gameday import __version__
from gameday.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", list(commands(cli)))
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    assert cmd.help or cmd.short_help
    docs = "\n".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    assert f"gameday {' '.join(path)}" in docs or f"`{path[-1]}`" in docs, \
        f"gameday {' '.join(path)} is not documented in the README or docs/"


def test_version_and_module_entry_point():
    assert CliRunner().invoke(cli, ["--version"]).output.strip().endswith(__version__)
    out = subprocess.run([sys.executable, "-m", "gameday", "--version"], capture_output=True,
                         text=True, check=True)
    assert __version__ in out.stdout


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from gameday.cli.main import cli; "
            "heavy = [m for m in ('chaoslib', 'ansible_runner', 'jinja2', 'kubernetes', "
            "'rich') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_validate_ok():
    result = CliRunner().invoke(cli, ["validate", "scenarios", "runbooks", "experiments"])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok  scenario") >= 4


def test_validate_bad_scenario_exits_2_without_traceback(tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios/checkout-replica-crash.yaml").read_text())
    raw["slo"]["success_ratio"] = "high"
    raw["experiment"] = str(ROOT / "experiments/checkout-replica-crash.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: slo.success_ratio" in result.output
    assert "Traceback" not in result.output


def test_validate_bad_experiment(tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text(yaml.safe_dump({"title": "x", "description": "y", "method": [
        {"type": "action", "name": "a", "provider": {"type": "python"}}]}))
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2 and str(bad) in result.output
    assert "Traceback" not in result.output


def test_run_with_bad_scenario_starts_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    result = CliRunner().invoke(cli, ["run", str(bad)])
    assert result.exit_code == 2 and "is required" in result.output
    assert not (tmp_path / "runs").exists()


def test_runbook_cli_refuses_hostile_parameter():
    result = CliRunner().invoke(cli, ["runbook", "run", "restart-replica", "-e",
                                      "service=$(id)"])
    assert result.exit_code == 2
    assert "service" in result.output and "Traceback" not in result.output


def test_runbook_list_json_has_the_interface_fields():
    result = CliRunner().invoke(cli, ["runbook", "list", "--json"])
    books = json.loads(result.output)
    assert {"name", "auto", "destructive", "alerts"} <= set(books[0])


def test_incident_commands(store):
    from gameday.incidents.incident import Incident

    inc = Incident.open(store, "practice")
    inc.declare("SEV-3", "gameday")
    inc.page("ana", "incident_commander", "alert")
    runner = CliRunner()
    result = runner.invoke(cli, ["incident", "ack", str(inc.id), "--as", "ana"])
    assert result.exit_code == 0 and "incident.acknowledged" in result.output
    shown = json.loads(runner.invoke(cli, ["incident", "show", str(inc.id), "--json"]).output)
    assert shown["state"] == "acknowledged"
    assert shown["roles"] == {"incident_commander": "ana"}
    listed = json.loads(runner.invoke(cli, ["incident", "list", "--json"]).output)
    assert [i["id"] for i in listed] == [inc.id]
    missing = runner.invoke(cli, ["incident", "show", "999"])
    assert missing.exit_code == 1 and "no incident 999" in missing.output


def test_plain_chaostoolkit_experiment(tmp_path):
    result = CliRunner().invoke(cli, ["experiment", "run", "experiments/plain-process.yaml",
                                      "--run-dir", str(tmp_path / "plain")])
    assert result.exit_code == 0, result.output
    journal = json.loads((tmp_path / "plain" / "journal.json").read_text())
    assert journal["status"] == "completed"
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == ["recreate-scratch-file"]


def test_incident_list_pages(tmp_path):
    from gameday.store import Store

    store = Store(tmp_path / "gameday.db")
    ids = [store.create_incident(f"incident {n}") for n in range(5)]
    out = CliRunner().invoke(cli, ["incident", "list", "--limit", "2", "--json"])
    assert [r["id"] for r in json.loads(out.output)] == ids[-2:]   # the newest, oldest first
    since = CliRunner().invoke(cli, ["incident", "list", "--since", "1d", "--json"])
    assert len(json.loads(since.output)) == 5
    future = CliRunner().invoke(cli, ["incident", "list", "--since", "2999-01-01", "--json"])
    assert json.loads(future.output) == []


def test_rbac_shows_the_roles_a_kubernetes_game_day_needs():
    """The same derivation as the exported CronJob's Role: the workload's namespace,
    the fault (scale) and the linked runbook (kubectl scale and rollout status)."""
    shown = CliRunner().invoke(cli, ["rbac", "scenarios/kwok-frontend-scaled-to-zero.yaml",
                                     "--json"])
    assert shown.exit_code == 0, shown.output
    roles = json.loads(shown.output)
    assert [(r["kind"], r["metadata"]["namespace"]) for r in roles] == [("Role",
                                                                        "gameday-shop")]
    rules = {(r["apiGroups"][0], r["resources"][0]): r["verbs"] for r in roles[0]["rules"]}
    assert rules[("apps", "deployments/scale")] == ["patch"]
    assert "watch" in rules[("apps", "deployments")]
    as_yaml = CliRunner().invoke(cli, ["rbac", "scenarios/kwok-frontend-scaled-to-zero.yaml"])
    assert list(yaml.safe_load_all(as_yaml.output)) == roles
    sandbox = CliRunner().invoke(cli, ["rbac", "scenarios/checkout-bad-deploy.yaml"])
    assert sandbox.exit_code == 2 and "target" in sandbox.output
