"""Runbooks: metadata, parameter validation, and real playbooks through ansible-runner."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gameday.errors import ValidationError
from gameday.runbook import discover, find, load_runbook, run_runbook, validate_params

ATTACKS = ["; rm -rf /", "$(id)", "`id`", "{{ lookup('pipe','id') }}", "{% raw %}",
           "checkout\nrm -rf /", "a" * 200, "checkout && id", "../../etc/passwd"]


def playbook(tmp_path: Path, tasks: list, params: dict | None = None) -> Path:
    path = tmp_path / "probe.yml"
    path.write_text(yaml.safe_dump([{
        "name": "probe", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                 "gameday_runbook": {"summary": "probe", "alerts": ["Probe"],
                                     "parameters": params or {}}},
        "tasks": tasks}]))
    return path


def test_shipped_runbooks_declare_metadata():
    books = {rb.name: rb for rb in discover(Path("runbooks"))}
    assert {"restart-replica", "rollback-release", "disable-flag",
            "k8s-scale-deployment"} <= set(books)
    for rb in books.values():
        assert rb.summary and rb.parameters
        for _, command in rb.commands():
            # argv form: one command a person could type, never a shell string
            assert command.split()[0] in ("gameday", "kubectl"), command


@pytest.mark.parametrize("value", ATTACKS)
def test_hostile_values_never_reach_a_playbook(value, tmp_path):
    rb = find("restart-replica")
    with pytest.raises(ValidationError) as err:
        validate_params(rb, {"service": value})
    assert err.value.field == "service"
    assert not (tmp_path / "artifacts").exists()


def test_parameter_schema():
    rb = find("drain-replica")
    assert validate_params(rb, {"service": "payments", "replica": "2"}) == \
        {"service": "payments", "replica": 2}
    with pytest.raises(ValidationError, match="integer"):
        validate_params(rb, {"service": "payments", "replica": "two"})
    with pytest.raises(ValidationError, match="required"):
        validate_params(rb, {"service": "payments"})
    with pytest.raises(ValidationError, match="unknown parameter"):
        validate_params(rb, {"service": "payments", "replica": "1", "host": "x"})
    flag = find("disable-flag")
    with pytest.raises(ValidationError, match="one of fraud_check"):
        validate_params(flag, {"service": "checkout", "flag": "everything"})


def test_runbook_metadata_errors_name_the_field(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "vars": {"gameday_runbook": {
        "summary": "x", "parameters": {"n": {"type": "float"}}}}}]))
    with pytest.raises(ValidationError) as err:
        load_runbook(path)
    assert err.value.field == "vars.gameday_runbook.parameters.n.type"


def test_parameters_come_from_their_alert_label():
    rb = find("k8s-rollout-undo")
    labels = {"namespace": "gameday-shop", "deployment": "frontend", "context": "kind-x",
              "severity": "page"}
    assert rb.from_labels(labels) == {"k8s_namespace": "gameday-shop",
                                      "deployment": "frontend", "context": "kind-x"}


def test_a_parameter_may_not_shadow_a_jinja_global(tmp_path):
    path = playbook(tmp_path, [], {"namespace": {"type": "string"}})
    with pytest.raises(ValidationError, match="label: namespace") as err:
        load_runbook(path)
    assert err.value.field.endswith("parameters.namespace")


def test_real_playbook_through_ansible_runner(tmp_path):
    path = playbook(tmp_path, [
        {"name": "say it", "ansible.builtin.command": {"argv": ["echo", "{{ word }}"]}},
        {"name": "skip me", "ansible.builtin.command": {"argv": ["false"]}, "when": False}],
        {"word": {"type": "string", "required": True, "pattern": "^[a-z]+$"}})
    rb = load_runbook(path)
    events = []
    result = run_runbook(rb, validate_params(rb, {"word": "hello"}), tmp_path / "data",
                         on_event=lambda kind, data: events.append((kind, data)))
    assert result.ok and result.rc == 0
    assert (result.artifacts / "status").read_text() == "successful"
    tasks = [(d["task"], d["status"]) for k, d in events if k == "runbook.task"]
    assert tasks == [("say it", "started"), ("say it", "ok"), ("skip me", "started"),
                     ("skip me", "skipped")]
    ok = next(d for k, d in events if k == "runbook.task" and d["status"] == "ok")
    assert ok["stdout"] == "hello" and ok["cmd"] == "echo hello"
    assert events[0][0] == "runbook.started" and events[-1][0] == "runbook.finished"


def test_a_failing_playbook_is_recorded_not_raised(tmp_path):
    rb = load_runbook(playbook(tmp_path, [
        {"name": "break", "ansible.builtin.command": {"argv": ["sh", "-c", "echo no >&2; exit 3"]}},
        {"name": "never", "ansible.builtin.command": {"argv": ["true"]}}]))
    events = []
    result = run_runbook(rb, {}, tmp_path / "data",
                         on_event=lambda kind, data: events.append((kind, data)))
    assert result.status == "failed" and not result.ok
    failed = [d for k, d in events if k == "runbook.task" and d["status"] == "failed"]
    assert failed[0]["rc"] == 3 and "no" in failed[0]["stderr"]
    assert events[-1] == ("runbook.finished", events[-1][1])
    assert events[-1][1]["status"] == "failed"
    assert "never" not in [d["task"] for k, d in events if k == "runbook.task"]


def test_check_mode_changes_nothing(tmp_path):
    target = tmp_path / "made"
    rb = load_runbook(playbook(tmp_path, [
        {"name": "touch", "ansible.builtin.command": {"argv": ["touch", str(target)],
                                                      "creates": str(target)}}]))
    result = run_runbook(rb, {}, tmp_path / "data", check=True)
    assert result.ok and not target.exists()


def test_an_interrupt_while_starting_is_not_swallowed(tmp_path, monkeypatch):
    """SIGTERM during a game day raises chaoslib's InterruptExecution wherever the main
    thread is; starting a playbook must let it through, not report a failed runbook."""
    import ansible_runner
    from chaoslib.exceptions import InterruptExecution

    def interrupted(**kwargs):
        raise InterruptExecution("SIGTERM signal received")

    monkeypatch.setattr(ansible_runner, "run_async", interrupted)
    rb = load_runbook(playbook(tmp_path, [{"name": "x", "ansible.builtin.command":
                                           {"argv": ["true"]}}]))
    events = []
    with pytest.raises(InterruptExecution):
        run_runbook(rb, {}, tmp_path / "data", on_event=lambda k, d: events.append(k))
    assert events == ["runbook.started"]
