"""A rollback undoes its fault only if it acts on what the fault acts on: a
``remove_toxic`` that removes another toxic (or the toxic of another proxy), or a
``resume_process`` that thaws other hosts or another process, would report success and
leave the fault in. ``gameday validate`` (and so ``gameday run``, before anything is
injected) refuses it, naming the file and the rollback's argument, exit 2; the same for a
drill's second fault and its rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gameday.cli.main import cli

API = "http://127.0.0.1:8474"
SAFETY = f"""[safety]
toxiproxy = ["{API}", "http://127.0.0.1:18474"]
proxies = ["checkout-payments", "checkout-fraud"]
hosts = ["checkout-1", "checkout-2"]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "gameday.toml").write_text('[project]\nname = "checkout"\n\n' + SAFETY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def action(label: str, module: str, func: str, arguments: dict) -> dict:
    return {"type": "action", "name": label,
            "provider": {"type": "python", "module": f"gameday.activities.{module}",
                         "func": func, "arguments": arguments}}


def validate(project: Path, method: list[dict], rollbacks: list[dict]):
    path = project / "experiment.yaml"
    path.write_text(yaml.safe_dump({"version": "1.0.0", "title": "t", "description": "d",
                                    "method": method, "rollbacks": rollbacks}))
    return CliRunner().invoke(cli, ["validate", str(path)])


def slow_payments(**more: object) -> dict:
    return action("slow-payments", "toxiproxy", "add_toxic",
                  {"api": API, "proxy": "checkout-payments", "type": "latency",
                   "attributes": {"latency": 400}, **more})


def fast_again(**arguments: object) -> dict:
    return action("payments-fast-again", "toxiproxy", "remove_toxic",
                  {"api": API, "proxy": "checkout-payments", **arguments})


@pytest.mark.parametrize("fault,rollback,field,says", [
    # the audit's case: the fault's toxic is named, the rollback removes gameday-latency
    (slow_payments(name="slow-payments"), fast_again(type="latency"), "name",
     "acts on name 'slow-payments', the rollback on name 'gameday-latency'"),
    (slow_payments(name="slow-payments"), fast_again(name="slow-checkout"), "name",
     "'slow-checkout'"),
    (slow_payments(), fast_again(type="timeout"), "name", "'gameday-timeout'"),
    (slow_payments(), fast_again(type="latency", proxy="checkout-fraud"), "proxy",
     "proxy 'checkout-fraud'"),
    (slow_payments(), fast_again(type="latency", api="http://127.0.0.1:18474"), "api",
     "api 'http://127.0.0.1:18474'"),
])
def test_a_rollback_that_removes_another_toxic_is_refused(project, fault, rollback, field,
                                                          says):
    refused = validate(project, [fault], [rollback])
    assert refused.exit_code == 2, refused.output
    assert f"experiment.yaml: rollbacks[0].provider.arguments.{field}:" in refused.output
    assert "rollback 'payments-fast-again' does not undo action 'slow-payments'" \
        in refused.output and says in refused.output, refused.output
    assert "Traceback" not in refused.output


@pytest.mark.parametrize("fault,rollback", [
    (slow_payments(name="slow-payments"), fast_again(name="slow-payments")),
    (slow_payments(), fast_again(type="latency")),                  # both gameday-latency
    (slow_payments(type="timeout"), fast_again(name="gameday-timeout")),
    (slow_payments(), fast_again(type="latency", api=f"{API}/")),   # the same API
])
def test_a_rollback_that_removes_the_faults_toxic_is_fine(project, fault, rollback):
    checked = validate(project, [fault], [rollback])
    assert checked.exit_code == 0, checked.output


def test_each_toxic_needs_a_rollback_of_its_own(project):
    slow, cut = slow_payments(), {**slow_payments(type="timeout"), "name": "cut-payments"}
    refused = validate(project, [slow, cut], [fast_again(type="latency")])
    assert refused.exit_code == 2
    assert "rollbacks[0].provider.arguments.name" in refused.output
    assert "action 'cut-payments' (method[1])" in refused.output, refused.output
    both = validate(project, [slow, cut],
                    [fast_again(type="latency"), fast_again(type="timeout")])
    assert both.exit_code == 0, both.output


def freeze(**arguments: object) -> dict:
    return action("freeze-nginx", "hosts", "pause_process",
                  {"hosts": ["checkout-1", "checkout-2"], "process": "nginx", **arguments})


def thaw(**arguments: object) -> dict:
    return action("thaw-nginx", "hosts", "resume_process",
                  {"hosts": ["checkout-1", "checkout-2"], "process": "nginx", **arguments})


@pytest.mark.parametrize("rollback,field,says", [
    (thaw(hosts=["checkout-1"]), "hosts", "hosts 'checkout-2'"),
    (thaw(process="nginx: worker"), "process", "process 'nginx: worker'"),
])
def test_a_rollback_that_thaws_something_else_is_refused(project, rollback, field, says):
    refused = validate(project, [freeze()], [rollback])
    assert refused.exit_code == 2, refused.output
    assert f"rollbacks[0].provider.arguments.{field}:" in refused.output, refused.output
    assert "does not undo action 'freeze-nginx'" in refused.output and says in refused.output


def test_a_rollback_that_thaws_what_was_frozen_is_fine(project):
    for rollback in (thaw(), thaw(hosts=["checkout-2", "checkout-1"]),
                     thaw(inventory="staging.ini"),  # the same hosts, by their names
                     [thaw(hosts=["checkout-1"]), thaw(hosts=["checkout-2"])]):
        checked = validate(project, [freeze()],
                           rollback if isinstance(rollback, list) else [rollback])
        assert checked.exit_code == 0, checked.output


def test_a_drills_second_fault_is_undone_by_its_own_rollback(project):
    """A drill's inject adds a toxic; its rollback removes another: refused as the
    experiment's would be, naming the inject's rollback."""
    root = Path(__file__).resolve().parents[2]
    scenario = yaml.safe_load((root / "scenarios" / "checkout-replica-crash.yaml").read_text())
    at, inject = next((at, i) for at, i in enumerate(scenario["drill"]["injects"])
                      if i.get("fault"))
    inject["fault"] = slow_payments(name="slow-payments")
    inject["rollback"] = fast_again(type="latency")
    (project / "experiments").mkdir()
    (project / "scenarios").mkdir()
    experiment = root / "experiments" / Path(scenario["experiment"]).name
    (project / "experiments" / experiment.name).write_text(experiment.read_text())
    path = project / "scenarios" / "drill.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    refused = CliRunner().invoke(cli, ["validate", str(path)])
    assert refused.exit_code == 2, refused.output
    assert f"drill.yaml: drill.injects.{at}.rollback.provider.arguments.name:" \
        in refused.output
    assert f"does not undo action 'slow-payments' (drill.injects.{at}.fault)" \
        in refused.output


def sandbox(label: str, func: str, **arguments: object) -> dict:
    return action(label, "sandbox", func, arguments)


KILL = sandbox("kill-checkout-2", "kill_replica", service="checkout", replica=2)
FREEZE = sandbox("freeze-payments-1", "freeze_replica", service="payments")  # replica 1
DEPLOY = sandbox("bad-release", "deploy_release", service="checkout", version="2.0.0")
FLAG = sandbox("flag-off", "set_flag", service="checkout", name="fraud_check", value=False)


@pytest.mark.parametrize("fault,rollback,field,says", [
    (KILL, sandbox("restart", "restart_replica", service="checkout", replica=1),
     "replica", "the rollback on replica '1'"),
    (KILL, sandbox("restart", "restart_replica", service="payments", replica=2),
     "service", "the rollback on service 'payments'"),
    (FREEZE, sandbox("thaw", "unfreeze_replica", service="payments", replica=3),
     "replica", "replica '3'"),
    (DEPLOY, sandbox("back", "rollback_release", service="fraud"), "service", "'fraud'"),
    (FLAG, sandbox("back", "set_flag", service="checkout", name="new_cart", value=True),
     "name", "'new_cart'"),
])
def test_a_sandbox_rollback_for_another_replica_or_service_is_refused(project, fault,
                                                                     rollback, field, says):
    refused = validate(project, [fault], [rollback])
    assert refused.exit_code == 2, refused.output
    assert f"rollbacks[0].provider.arguments.{field}:" in refused.output, refused.output
    assert f"does not undo action {fault['name']!r}" in refused.output
    assert says in refused.output, refused.output


@pytest.mark.parametrize("fault,rollback", [
    (KILL, sandbox("restart", "restart_replica", service="checkout", replica="2")),
    (KILL, sandbox("restart", "restart_replica", service="checkout")),  # every replica
    (KILL, sandbox("restart", "restart_replica", service="checkout", replica=2,
                   state_dir=".gameday/sandbox")),  # the sandbox named, the fault's found
    (FREEZE, sandbox("thaw", "unfreeze_replica", service="payments", replica=1)),
    (FREEZE, sandbox("restart", "restart_replica", service="payments", only_failed=False)),
    (DEPLOY, sandbox("back", "rollback_release", service="checkout")),
    (FLAG, sandbox("back", "set_flag", service="checkout", name="fraud_check", value=True)),
])
def test_a_sandbox_rollback_for_the_faults_replica_or_service_is_fine(project, fault,
                                                                     rollback):
    checked = validate(project, [fault], [rollback])
    assert checked.exit_code == 0, checked.output
