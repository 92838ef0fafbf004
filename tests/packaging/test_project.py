"""Game-day projects: `gameday init`, and gameday working from any directory once
installed, with the sandbox's runbooks and rules shipped inside the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from gameday.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """A user's shell: no GAMEDAY_* settings from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    return {**env, **extra}


def test_init_scaffolds_a_project_and_never_overwrites(tmp_path):
    target = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["init", str(target)])
    assert result.exit_code == 0, result.output
    for rel in ("gameday.toml", ".gitignore", "README.md", "scenarios/first-game-day.yaml",
                "experiments/kill-a-checkout-replica.yaml", "runbooks/restart-replica.yml",
                "alerting/sandbox.rules.yml"):
        assert (target / rel).is_file(), rel
    assert 'name = "demo"' in (target / "gameday.toml").read_text()
    again = CliRunner().invoke(cli, ["init", str(target)])
    assert again.exit_code == 1 and "already a game-day project" in again.output


def test_init_into_a_directory_with_clashing_files_writes_nothing(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "first-game-day.yaml").write_text("mine\n")
    result = CliRunner().invoke(cli, ["init", str(tmp_path)])
    assert result.exit_code == 1 and "nothing written" in result.output
    assert not (tmp_path / "gameday.toml").exists()
    assert (tmp_path / "scenarios" / "first-game-day.yaml").read_text() == "mine\n"


def test_commands_find_the_project_from_a_subdirectory(tmp_path, monkeypatch):
    CliRunner().invoke(cli, ["init", str(tmp_path / "demo")])
    sub = tmp_path / "demo" / "scenarios"
    monkeypatch.chdir(sub)
    for var in ("GAMEDAY_DB", "GAMEDAY_RUNS"):
        monkeypatch.delenv(var)
    result = CliRunner().invoke(cli, ["runbook", "show", "restart-replica", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["path"] == str(tmp_path / "demo" / "runbooks" / "restart-replica.yml")
    listed = CliRunner().invoke(cli, ["runbook", "list", "--json"])
    names = {rb["name"] for rb in json.loads(listed.output)}
    assert {"restart-replica", "rollback-release", "disable-flag"} <= names  # built in
    CliRunner().invoke(cli, ["incident", "list"])
    assert (tmp_path / "demo" / ".gameday" / "gameday.db").exists()
    assert not (sub / ".gameday").exists()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The checkout built as a wheel and installed into a fresh virtualenv, as `pip
    install` would; its dependencies come from the test venv (no registry needed)."""
    work = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(work / "dist"), str(ROOT)], check=True, timeout=300)
    wheel = next((work / "dist").glob("gameday-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("gameday/targets/sandbox/runbooks/restart-replica.yml",
                    "gameday/targets/sandbox/alerting/sandbox.rules.yml",
                    "gameday/targets/sandbox/shop.yaml", "gameday/scaffold/gameday.toml",
                    "gameday/scaffold_service/scenarios/dependency-latency.yaml",
                    "gameday/scaffold_service/slos/service.yaml",
                    "gameday/activities/plays/signal.yml",
                    "gameday/scaffold/scenarios/first-game-day.yaml",
                    "gameday/templates/review.html.j2", "gameday/templates/comms/internal.md.j2"):
        assert shipped in names, shipped
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    return venv / "bin"


@pytest.mark.slow
def test_a_game_day_outside_the_repository(installed, tmp_path):
    """pip install, `gameday init`, validate and run from the new project: resolved, and
    the linked runbook contained the fault."""
    env = clean_env(PATH=f"{installed}{os.pathsep}{os.environ['PATH']}")
    gameday = str(installed / "gameday")
    subprocess.run([gameday, "init", "demo"], cwd=tmp_path, env=env, check=True, timeout=60)
    demo = tmp_path / "demo"
    ok = subprocess.run([gameday, "validate", "scenarios/"], cwd=demo, env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    proc = subprocess.run([gameday, "run", "scenarios/first-game-day.yaml", "--json"],
                          cwd=demo, env=env, capture_output=True, text=True, timeout=240)
    result = json.loads(proc.stdout or "{}")
    assert proc.returncode == 0, (result.get("verdict"), proc.stderr[-3000:])
    assert result["status"] == "resolved"
    assert result["metrics"]["runbook"] == "restart-replica"
    assert result["metrics"]["runbook_status"] == "successful"
    assert result["metrics"]["contained_by"] == "runbook restart-replica"
    assert Path(result["run_dir"]).is_relative_to(demo / ".gameday" / "runs")
    assert (Path(result["run_dir"]) / "review.md").exists()
    assert not (ROOT / ".gameday" / "runs").exists() or not any(
        p.name.endswith("first-game-day") for p in (ROOT / ".gameday" / "runs").iterdir())
