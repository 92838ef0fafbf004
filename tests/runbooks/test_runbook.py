"""Runbooks: metadata, parameter validation, and real playbooks through ansible-runner."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gameday.core.errors import ValidationError
from gameday.runbooks.runbook import discover, find, load_runbook, run_runbook, validate_params

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
    books = {rb.name: rb for rb in discover()}  # the project's and the built-in ones
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
                         on_event=lambda e: events.append((e.kind, e.data)))
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
                         on_event=lambda e: events.append((e.kind, e.data)))
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
    thread is; starting a playbook must let it through, not report a failed runbook.
    (The ansible-runner path; tests/runbooks/test_executor.py has the warm executor's.)"""
    import ansible_runner
    from chaoslib.exceptions import InterruptExecution

    def interrupted(**kwargs):
        raise InterruptExecution("SIGTERM signal received")

    monkeypatch.setenv("GAMEDAY_WARM_EXECUTOR", "0")
    monkeypatch.setattr(ansible_runner, "run_async", interrupted)
    rb = load_runbook(playbook(tmp_path, [{"name": "x", "ansible.builtin.command":
                                           {"argv": ["true"]}}]))
    events = []
    with pytest.raises(InterruptExecution):
        run_runbook(rb, {}, tmp_path / "data", on_event=lambda e: events.append(e.kind))
    assert events == ["runbook.started"]


def metadata(tmp_path: Path, meta: dict) -> Path:
    path = tmp_path / "meta.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "vars": {"gameday_runbook": meta},
                                     "tasks": [{"name": "t", "command": "true"}]}]))
    return path


@pytest.mark.parametrize("meta,field,words", [
    ({"summary": "x", "colour": "blue"}, "colour", "unknown field"),
    ({"alerts": ["A"]}, "summary", "is required"),
    ({"summary": ""}, "summary", "non-empty"),
    ({"summary": "x", "auto": "yes"}, "auto", "true or false"),
    ({"summary": "x", "destructive": 1}, "destructive", "true or false"),
    ({"summary": "x", "alerts": "A"}, "alerts", "must be a list"),
    ({"summary": "x", "alerts": ["Bad alert"]}, "alerts.0", "letters, digits and _"),
    ({"summary": "x", "parameters": ["n"]}, "parameters", "mapping"),
    ({"summary": "x", "parameters": {"n": "string"}}, "parameters.n", "mapping"),
    ({"summary": "x", "parameters": {"bad-name": {}}}, "parameters.bad-name", "letters"),
    ({"summary": "x", "parameters": {"n": {"kind": "string"}}}, "parameters.n.kind",
     "unknown field (expected one of choices, default, description, label, pattern, "
     "required, type)"),
    ({"summary": "x", "parameters": {"n": {"pattern": "(["}}}, "parameters.n.pattern",
     "not a valid regular expression"),
    ({"summary": "x", "parameters": {"n": {"required": "yes"}}}, "parameters.n.required",
     "true or false"),
    ({"summary": "x", "parameters": {"n": {"choices": "a"}}}, "parameters.n.choices",
     "must be a list"),
    ({"summary": "x", "parameters": {"n": {"default": {"a": 1}}}}, "parameters.n.default",
     "string or a number"),
    ({"summary": "x", "parameters": {"n": {"label": "bad label"}}}, "parameters.n.label",
     "letters"),
    ({"summary": "x", "parameters": {"range": {}}}, "parameters.range", "label: range"),
])
def test_metadata_rules(tmp_path, meta, field, words):
    path = metadata(tmp_path, meta)
    with pytest.raises(ValidationError) as err:
        load_runbook(path)
    assert err.value.file == str(path)
    assert err.value.field == f"vars.gameday_runbook.{field}"
    assert words in err.value.message
    assert "pydantic" not in err.value.message and "http" not in err.value.message


def test_metadata_values_are_normalised(tmp_path):
    rb = load_runbook(metadata(tmp_path, {
        "summary": "Scale it", "alerts": ["Saturated"], "auto": True, "parameters": {
            "replicas": {"type": "integer", "choices": [1, 2, 3], "default": 2,
                         "required": True, "label": "count", "description": "How many."},
            "service": {}}}))
    replicas, service = rb.parameters
    assert (replicas.name, replicas.type, replicas.required, replicas.choices,
            replicas.default, replicas.label) == \
        ("replicas", "integer", True, ("1", "2", "3"), "2", "count")
    assert (service.type, service.required, service.choices, service.default,
            service.description, service.label) == ("string", False, (), None, "", None)
    assert rb.auto and not rb.destructive and rb.alerts == ("Saturated",)
    assert rb.from_labels({"count": "3", "service": "checkout"}) == \
        {"replicas": "3", "service": "checkout"}
    assert validate_params(rb, {"service": "checkout"}) == {"replicas": 2,
                                                             "service": "checkout"}


def test_parameters_may_be_empty(tmp_path):
    rb = load_runbook(metadata(tmp_path, {"summary": "x", "parameters": None}))
    assert rb.parameters == () and rb.alerts == () and not rb.auto


@pytest.mark.parametrize("text,field", [
    ("{a: 1}", "(top level)"),
    ("[]", "(top level)"),
    ("- hosts: localhost\n", "vars.gameday_runbook"),
    ("- {hosts: localhost, vars: [1]}\n", "vars.gameday_runbook"),
    ("- {hosts: localhost, vars: {gameday_runbook: words}}\n", "vars.gameday_runbook"),
])
def test_not_a_runbook(tmp_path, text, field):
    path = tmp_path / "x.yml"
    path.write_text(text)
    with pytest.raises(ValidationError) as err:
        load_runbook(path)
    assert err.value.field == field and err.value.file == str(path)


def test_odd_tasks_do_not_break_loading(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text(yaml.safe_dump([
        {"hosts": "localhost", "vars": {"gameday_runbook": {"summary": "x"}},
         "tasks": {"not": "a list"}},
        {"hosts": "localhost", "tasks": ["not a task", {"name": "real", "command": "true"}]},
        "not a play"]))
    rb = load_runbook(path)
    assert rb.commands() == [("real", "{command: 'true'}")]


@pytest.mark.parametrize("kind", ["binary", "utf-16", "nested", "too long a path", "empty"])
def test_hostile_runbook_files(tmp_path, kind):
    path = tmp_path / "hostile.yml"
    if kind == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "utf-16":
        path.write_text("- hosts: localhost\n", encoding="utf-16")
    elif kind == "nested":
        path.write_text("- " * 10_000 + "x\n")
    elif kind == "too long a path":
        path = tmp_path / ("r" * 5000 + ".yml")
    else:
        path.write_text("")
    with pytest.raises(ValidationError) as err:
        load_runbook(path)
    assert err.value.file == str(path)


def test_a_folded_summary_is_one_line(tmp_path):
    path = tmp_path / "folded.yml"
    path.write_text("- hosts: localhost\n  vars:\n    gameday_runbook:\n      summary: >\n"
                    "        Roll back\n        the release.\n")
    assert load_runbook(path).summary == "Roll back the release."


@pytest.mark.parametrize("value", ["--server=https://elsewhere.example", "-A", "--as=admin"])
def test_a_value_that_a_command_would_read_as_an_option_is_refused(value):
    """Even where the runbook's own pattern would admit it: an alert's label is data."""
    rb = find("k8s-scale-deployment")
    given = {"context": "kwok-gameday", "namespace": "shop", "deployment": value,
             "replicas": "3"}
    with pytest.raises(ValidationError) as err:
        validate_params(rb, rb.from_labels(given) | {"replicas": 3})
    assert "starts with '-'" in str(err.value) and err.value.field == "deployment"
