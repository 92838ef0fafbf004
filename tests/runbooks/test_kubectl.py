"""What ``gameday.runbooks.kubectl`` reads of a runbook's kubectl commands: the namespace
and context however kubectl's flag parser would read them, and a refusal (a
ValidationError naming the file and the play or task) for whatever it cannot see: flags
run together or acting elsewhere, playbooks, roles and task files brought in from
elsewhere, an ``environment:`` that could point kubectl at another cluster, and
shapes Ansible would not run. The export and a cluster's game day read it the same way
(tests/schedules/test_cronjob.py, tests/targets/test_kubernetes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.core.errors import ValidationError
from gameday.runbooks.kubectl import runbook_needs
from gameday.runbooks.runbook import load_runbook

PARAMS = {"k8s_namespace": "payments", "context": "team"}


def play(tasks: Any = None, **keys: Any) -> dict[str, Any]:
    return {"name": "Act", "hosts": "localhost", "gather_facts": False,
            "vars": {"gameday_runbook": {
                "summary": "Act in the cluster.", "alerts": ["Down"], "auto": True,
                "destructive": False,
                "parameters": {name: {"type": "string", "required": True}
                               for name in PARAMS}}},
            **({"tasks": tasks} if tasks is not None else {}), **keys}


def needs(tmp_path: Path, *plays: dict[str, Any]) -> list[Any]:
    path = tmp_path / "act.yml"
    path.write_text(yaml.safe_dump(list(plays), sort_keys=False))
    return runbook_needs(load_runbook(path), PARAMS)


def refused(tmp_path: Path, *plays: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        needs(tmp_path, *plays)
    assert caught.value.file == str(tmp_path / "act.yml")
    return caught.value


def kubectl(*args: str, name: str = "Look") -> dict[str, Any]:
    return {"name": name, "ansible.builtin.command": {"argv": ["kubectl", *args]}}


# -- the namespace and the context, as kubectl reads them ------------------------------------
@pytest.mark.parametrize("args,namespace,context", [
    (("-nledger", "get", "pods"), "ledger", None),
    (("-n=ledger", "get", "pods"), "ledger", None),
    (("-n", "ledger", "get", "pods"), "ledger", None),
    (("--namespace=ledger", "get", "pods"), "ledger", None),
    (("--namespace", "ledger", "get", "pods"), "ledger", None),
    (("-n{{ k8s_namespace }}", "get", "pods"), "payments", None),
    (("-v6", "-oname", "-nledger", "get", "pods"), "ledger", None),
    (("-n", "ledger", "-npayments", "get", "pods"), "payments", None),  # the last one wins
    (("--context=team", "get", "pods"), "default", "team"),
    (("--context", "{{ context }}", "get", "pods"), "default", "team"),
    # after "--" nothing is a flag: pods named "-n" and "ledger", in "default"
    (("get", "pods", "--", "-n", "ledger"), "default", None),
])
def test_the_namespace_and_context_are_read_however_they_are_written(
        tmp_path, args, namespace, context):
    (need,) = needs(tmp_path, play([kubectl(*args)]))
    assert (need.namespace, need.context) == (namespace, context)


def test_a_free_form_command_with_an_attached_namespace_is_read(tmp_path):
    (need,) = needs(tmp_path, play([{"name": "Count", "command":
                                      "kubectl -nledger --context=team get pods"}]))
    assert (need.namespace, need.context) == ("ledger", "team")


@pytest.mark.parametrize("args,says", [
    (("-An", "ledger", "get", "pods"), "-A acts as someone else"),
    (("-A", "get", "pods"), "-A acts as someone else"),
    (("-wn", "ledger", "get", "pods"), "runs short flags together"),
    (("-shttps://elsewhere:6443", "get", "pods"), "-s acts as someone else"),
    (("-f", "policy.yaml", "delete", "networkpolicies"), "-f acts as someone else"),
    (("--filename=policy.yaml", "get", "pods"), "--filename acts as someone else"),
    (("--client-certificate=me.crt", "get", "pods"), "--client-certificate acts as"),
    (("-n=", "get", "pods"), "its namespace '' is not known"),
    (("-nLedger", "get", "pods"), "its namespace 'Ledger' is not known"),
    (("--context=", "get", "pods"), "names no context"),
    (("--context", "{{ elsewhere }}", "get", "pods"), "is not known before it runs"),
])
def test_flags_it_cannot_read_safely_are_refused_naming_the_task(tmp_path, args, says):
    error = refused(tmp_path, play([kubectl("get", "nodes", name="Nodes"),
                                    kubectl(*args)]))
    assert error.field == "0.tasks.1"
    assert "task 'Look' of runbook act" in error.message and says in error.message


# -- what it cannot see ------------------------------------------------------------------------
@pytest.mark.parametrize("extra,field,says", [
    ({"import_playbook": "other.yml"}, "1.import_playbook", "play 'More' of runbook act"),
    ({"ansible.builtin.import_playbook": "other.yml"}, "1.ansible.builtin.import_playbook",
     "play 'More' of runbook act"),
    ({"roles": ["cluster-admin"]}, "1.roles", "play 'More' of runbook act"),
])
def test_a_play_that_brings_in_what_it_cannot_see_is_refused(tmp_path, extra, field, says):
    error = refused(tmp_path, play([kubectl("get", "pods")]), {"name": "More", **extra})
    assert error.field == field
    assert says in error.message and "cannot see" in error.message


def test_a_runbook_that_is_only_an_import_is_refused(tmp_path):
    first = play()
    first.pop("hosts")
    error = refused(tmp_path, {"import_playbook": "elsewhere.yml", **first})
    assert error.field == "0.import_playbook" and "cannot see" in error.message


@pytest.mark.parametrize("module", ["include_tasks", "ansible.builtin.import_tasks",
                                    "include_role", "ansible.builtin.import_role"])
def test_a_task_that_brings_in_other_tasks_is_refused(tmp_path, module):
    task = {"name": "More steps", module: "steps.yml"}
    error = refused(tmp_path, play([{"name": "Try", "block": [kubectl("get", "pods")],
                                     "rescue": [task]}]))
    assert error.field == "0.tasks.0.rescue.0"
    assert "task 'More steps' of runbook act" in error.message
    assert f"{module} runs tasks gameday cannot see" in error.message


@pytest.mark.parametrize("where,field", [
    ("play", "0.environment"), ("block", "0.tasks.0.environment"),
    ("task", "0.tasks.0.block.0.environment"), ("quiet", "0.tasks.1.environment"),
])
def test_an_environment_anywhere_is_refused(tmp_path, where, field):
    """KUBECONFIG, KUBERNETES_*, HOME or PATH could send kubectl to another cluster."""
    def env(here: str) -> dict[str, Any]:
        return {"environment": {"KUBECONFIG": "/etc/elsewhere.conf"}} if where == here else {}

    block = {"name": "Try", "block": [{**kubectl("get", "pods"), **env("task")}],
             **env("block")}
    quiet = {"name": "Say", "debug": {"msg": "hi"}, **env("quiet")}
    error = refused(tmp_path, play([block, quiet], **env("play")))
    assert error.field == field and "environment" in error.message
    assert "another cluster" in error.message


# -- blocks, and shapes Ansible would not run ------------------------------------------------
def test_blocks_rescues_and_always_are_read_however_deep(tmp_path):
    found = needs(tmp_path, play([{"name": "Try", "block": [
        kubectl("-nledger", "get", "pods"),
        {"block": [], "rescue": [{"name": "Again", "block": [
            kubectl("--namespace=payments", "rollout", "restart", "deployment/api")]}],
         "always": [kubectl("get", "nodes")]}]}]))
    assert [(n.where, n.namespace) for n in found] == [
        ("0.tasks.0.block.0", "ledger"),
        ("0.tasks.0.block.1.rescue.0.block.0", "payments"),
        ("0.tasks.0.block.1.always.0", "default")]


def test_a_block_acting_on_another_host_is_refused(tmp_path):
    error = refused(tmp_path, play([{"name": "Elsewhere", "delegate_to": "bastion",
                                     "block": [kubectl("get", "pods")]}]))
    assert error.field == "0.tasks.0" and "delegate_to" in error.message
    assert "block 'Elsewhere' of runbook act" in error.message


@pytest.mark.parametrize("plays,field", [
    ([play([]), "not a play"], "1"),
    ([play(5)], "0.tasks"),
    ([play([], handlers="restart")], "0.handlers"),
    ([play(["kubectl get pods"])], "0.tasks.0"),
    ([play([{"name": "Try", "block": 5}])], "0.tasks.0.block"),
    ([play([{"name": "Try", "block": [kubectl("get", "pods")], "always": "x"}])],
     "0.tasks.0.always"),
])
def test_a_shape_ansible_would_not_run_is_a_validation_error(tmp_path, plays, field):
    error = refused(tmp_path, *plays)
    assert error.field == field
