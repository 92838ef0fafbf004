"""docs/extending.md is true: its fault walk-through runs exactly as written, and each
registry agrees with the names scenarios and the command line accept."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "extending.md"
GAMEDAY = Path(sys.executable).parent / "gameday"
FENCE = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```",
                   re.S)


def walkthrough() -> list[tuple[str, str | None, str]]:
    """The "Add a fault type" section's blocks, in order: (language, file, body)."""
    text = PAGE.read_text()
    section = text[text.index("## Add a fault type"):text.index("## Add a target")]
    return [(m["lang"], m["file"], m["body"]) for m in FENCE.finditer(section)]


def commands(body: str) -> list[tuple[str, list[str]]]:
    """A console block's commands, each with the output the page shows for it."""
    out: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


def shown(expected: list[str], actual: list[str]) -> bool:
    """Output as the page shows it, ``...`` standing for what differs run to run (a
    port, a directory, a time stamp)."""
    return len(expected) == len(actual) and all(
        fnmatchcase(a, e.replace("[", "[[]").replace("...", "*"))
        for e, a in zip(expected, actual, strict=True))


@pytest.mark.slow
def test_adding_a_fault_type_works_exactly_as_the_page_says(tmp_path):
    project = tmp_path / "shop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}  # a shell
    subprocess.run([str(GAMEDAY), "init", str(project)], check=True, env=env,
                   capture_output=True, timeout=60)
    env["PATH"] = f"{GAMEDAY.parent}{os.pathsep}{env['PATH']}"
    blocks = walkthrough()
    assert [lang for lang, _, _ in blocks] == ["python", "yaml", "console", "yaml",
                                               "console", "console"]
    ran: list[str] = []
    try:
        for lang, file, body in blocks:
            if file:
                (project / file).write_text(body)
                continue
            assert lang == "console"
            for command, expected in commands(body):
                if command.startswith("export "):
                    name, _, value = command[len("export "):].partition("=")
                    env[name] = value
                    continue
                proc = subprocess.run(command, shell=True, cwd=project, env=env, text=True,
                                      capture_output=True, timeout=120)
                ran.append(command)
                refused = "fraud-never-recovers" in command  # the page: exit status 2
                assert proc.returncode == (2 if refused else 0), (command, proc.stderr)
                actual = (proc.stdout + proc.stderr).splitlines()
                assert shown(expected, actual), (command, expected, actual)
    finally:
        subprocess.run([str(GAMEDAY), "sandbox", "down"], cwd=project, env=env,
                       capture_output=True, timeout=60)
    assert ran == ["gameday validate experiments/fraud-slows-down.yaml",
                   "gameday validate experiments/fraud-never-recovers.yaml",
                   "gameday sandbox up",
                   "gameday experiment run experiments/fraud-slows-down.yaml",
                   "gameday sandbox down"]
    journal = next((project / ".gameday" / "runs").glob("*/journal.json")).read_text()
    assert '"fraud_slows_down"' in journal and '"fraud_fast_again"' in journal


def test_the_declared_fault_is_what_the_review_and_the_cronjob_read(tmp_path, monkeypatch):
    """The walk-through's module, imported as an experiment names it: the registry has
    its rollback and its factor, and the review lists them when a game day injects it."""
    from gameday.activities import faults
    from gameday.game.review import findings
    from gameday.game.scoring import Scorecard, compute_metrics

    (_, _, body), *_ = walkthrough()
    (tmp_path / "shopfaults_doc.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = faults.lookup("shopfaults_doc:fraud_slows_down")
    assert declared is not None and declared.local
    assert declared.rollback == ("shopfaults_doc:fraud_fast_again",)
    injected = [{"kind": "fault.injected", "at_monotonic_ns": 1, "seq": 1, "data": {"provider": {
        "type": "python", "module": "shopfaults_doc", "func": "fraud_slows_down"}}}]
    card = Scorecard(100, compute_metrics(injected), {})
    (finding,) = [f for f in findings(injected, card) if f.key == "fraud_slows_down"]
    assert finding.factor == declared.factor and finding.action == declared.action


def test_every_fault_gameday_ships_declares_what_it_needs():
    """Each action that changes something says what undoes it or why nothing has to;
    every activity used by a shipped experiment is declared."""
    import yaml

    from gameday.activities import faults

    declared = {f.key: f for f in faults.known()}
    for path in [*(ROOT / "experiments").glob("*.yaml"),
                 *(ROOT / "gameday" / "scaffold" / "experiments").glob("*.yaml")]:
        experiment = yaml.safe_load(path.read_text())
        for activity in [*experiment.get("method", []), *experiment.get("rollbacks", []),
                         *(experiment.get("steady-state-hypothesis") or {}).get("probes", [])]:
            provider = activity["provider"]
            if provider["type"] == "python":
                assert f"{provider['module']}:{provider['func']}" in declared, path
    for fault in declared.values():
        assert fault.local or fault.rbac, fault.key
        for undo in fault.rollback:
            assert undo in declared, (fault.key, undo)


def test_the_registries_and_the_names_scenarios_accept_agree():
    from gameday.cli.main import run
    from gameday.game.alert_sources import ALERT_SOURCES
    from gameday.scenarios.scenario import ALERTING
    from gameday.scenarios.scenario import TARGETS as NAMES
    from gameday.targets.base import TARGETS

    assert sorted(TARGETS) == sorted(NAMES)
    assert sorted(ALERT_SOURCES) == sorted(ALERTING)
    (option,) = [p for p in run.params if p.name == "alerting"]
    assert sorted(option.type.choices) == sorted(ALERTING)
