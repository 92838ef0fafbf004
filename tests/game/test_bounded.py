"""A game day's experiment stays within the project's allowlist as far as its providers
say where they act: an ``http`` provider's URL (its configuration substituted) must be
among ``[safety] urls``, and a ``process`` provider, which could run anything, is
refused; both before anything is injected, naming the file and the field. The same
experiment run by hand (``gameday experiment run``) is the user's own business."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def gameday(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bounded") / "p"
    assert gameday(ROOT, "init", str(root)).returncode == 0
    return root


def with_activity(project: Path, name: str, activity: dict, *, where: str = "method",
                  configuration: dict | None = None) -> Path:
    """The project's first game day, its experiment with ``activity`` added first in
    ``where``: the scenario's path."""
    experiment = yaml.safe_load((project / "experiments" / "kill-a-checkout-replica.yaml")
                                .read_text())
    if where == "probes":
        experiment["steady-state-hypothesis"]["probes"].insert(0, activity)
    else:
        experiment[where].insert(0, activity)
    if configuration:
        experiment["configuration"] = configuration
    (project / "experiments" / f"{name}.yaml").write_text(yaml.safe_dump(experiment))
    scenario = (project / "scenarios" / "first-game-day.yaml").read_text().replace(
        "../experiments/kill-a-checkout-replica.yaml", f"../experiments/{name}.yaml")
    path = project / "scenarios" / f"{name}.yaml"
    path.write_text(scenario)
    return path


def test_a_process_provider_is_refused_before_anything_runs(project, tmp_path):
    marker = tmp_path / "ran"
    scenario = with_activity(project, "process", {
        "type": "action", "name": "anything-at-all",
        "provider": {"type": "process", "path": "touch", "arguments": [str(marker)]}},
        where="rollbacks")
    checked = gameday(project, "validate", str(scenario))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "experiments/process.yaml: rollbacks[0].provider: a process provider" \
        in checked.stderr and "Traceback" not in checked.stderr
    ran = gameday(project, "run", str(scenario))
    assert ran.returncode == 2 and "a process provider" in ran.stderr, ran.stderr
    assert not marker.exists() and not (project / ".gameday" / "runs").exists()
    # by hand, as any Chaos Toolkit user runs it, it is theirs to run
    plain = gameday(project, "validate", str(project / "experiments" / "process.yaml"))
    assert plain.returncode == 0, plain.stderr


@pytest.mark.parametrize("url,configuration", [
    ("http://evil.example.com/", None),
    ("${base}/health", {"base": "http://evil.example.com"}),
])
def test_an_http_provider_outside_the_allowlist_is_refused(project, url, configuration):
    scenario = with_activity(project, "http", {
        "type": "probe", "name": "their-health", "tolerance": 200,
        "provider": {"type": "http", "url": url}}, where="probes",
        configuration=configuration)
    checked = gameday(project, "validate", str(scenario))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "steady-state-hypothesis.probes[0].provider.url" in checked.stderr
    assert "evil.example.com" in checked.stderr and "no allowlist" in checked.stderr


def test_an_http_provider_the_allowlist_admits_is_fine(project):
    (project / "gameday.toml").write_text((project / "gameday.toml").read_text()
                                          + '\n[safety]\nurls = ["http://127.0.0.1:1/"]\n')
    scenario = with_activity(project, "allowed", {
        "type": "probe", "name": "their-health", "tolerance": 200,
        "provider": {"type": "http", "url": "${base}/health"}}, where="probes",
        configuration={"base": "http://127.0.0.1:1"})
    checked = gameday(project, "validate", str(scenario))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    outside = with_activity(project, "outside", {
        "type": "probe", "name": "their-health", "tolerance": 200,
        "provider": {"type": "http", "url": "http://127.0.0.1:2/health"}}, where="probes")
    refused = gameday(project, "validate", str(outside))
    assert refused.returncode == 2 and "outside the project's allowlist" in refused.stderr


@pytest.mark.parametrize("change,field", [
    (lambda e: e.update(method="kill"), "method"),
    (lambda e: e.update(rollbacks=["undo"]), "rollbacks[0]"),
    (lambda e: e["steady-state-hypothesis"].update(probes="all"),
     "steady-state-hypothesis.probes"),
])
def test_an_experiment_of_the_wrong_shape_is_named(project, change, field):
    experiment = yaml.safe_load((project / "experiments" / "kill-a-checkout-replica.yaml")
                                .read_text())
    change(experiment)
    path = project / "experiments" / "shape.yaml"
    path.write_text(yaml.safe_dump(experiment))
    checked = gameday(project, "validate", str(path))
    assert checked.returncode == 2 and f"shape.yaml: {field}: must be" in checked.stderr, \
        checked.stderr


@pytest.mark.parametrize("activity,where,field,said", [
    ({"type": "action", "name": "anything", "provider": {
        "type": "python", "module": "os", "func": "system",
        "arguments": {"command": "touch /tmp/never"}}},
     "method", "method[0].provider", "os.system is declared by nothing"),
    ({"type": "action", "name": "their-api", "provider": {
        "type": "python", "module": "chaoslib.provider.http", "func": "run_http_activity",
        "arguments": {"activity": {"provider": {"type": "http",
                                                "url": "http://evil.example.com/"}}}}},
     "method", "method[0].provider", "declared by nothing"),
    ({"type": "probe", "name": "looks-fine", "provider": {
        "type": "python", "module": "gameday.activities.sandbox", "func": "slo_met",
        "arguments": {"success_ratio": 0.99, "latency_p99_ms": 300, "window_s": 2}},
      "tolerance": {"type": "probe", "name": "and-this", "provider": {
          "type": "process", "path": "sh", "arguments": ["-c", "true"]}}},
     "probes", "steady-state-hypothesis.probes[0].tolerance.provider", "a process provider"),
    ({"type": "action", "name": "traced", "controls": [{"name": "x", "provider": {
        "type": "python", "module": "os"}}], "provider": {
        "type": "python", "module": "gameday.activities.sandbox", "func": "slo_met",
        "arguments": {"success_ratio": 0.99, "latency_p99_ms": 300, "window_s": 2}}},
     "method", "method[0].controls", "controls run any Python"),
])
def test_what_gameday_cannot_bound_is_refused_in_a_game_day(project, activity, where, field,
                                                            said):
    scenario = with_activity(project, "unbound", activity, where=where)
    checked = gameday(project, "validate", str(scenario))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"unbound.yaml: {field}: " in checked.stderr and said in checked.stderr, \
        checked.stderr


def test_a_url_the_allowlist_would_only_see_at_run_time_or_past_its_prefix_is_refused(
        project):
    from gameday.core import safety
    from gameday.core.errors import ValidationError
    from gameday.core.settings import Safety

    allowed = Safety(urls=("http://api.example.com/v1/faults",), declared=True)
    for url in ("http://api.example.com/v1/faults/../../admin",
                "http://api.example.com/v1/faults/%2e%2e/admin",
                "http://api.example.com/v1/faults/./x/../../../admin"):
        with pytest.raises(ValidationError):
            safety.allowed("urls", url, field="url", safety=allowed)
    assert safety.allowed("urls", "http://api.example.com/v1/faults/x", field="url",
                          safety=allowed)
    scenario = with_activity(project, "secret", {
        "type": "probe", "name": "their-health", "tolerance": 200,
        "provider": {"type": "http", "url": "http://127.0.0.1:1/${token}"}}, where="probes")
    checked = gameday(project, "validate", str(scenario))
    assert checked.returncode == 2 and "known only when the game day runs" in checked.stderr
