"""``within_cluster`` (gameday.game.reach) on a game day in a team's cluster, checked
before anything runs, so no cluster is needed: a runbook whose kubectl commands act
outside the allowlist, or that it cannot read, is refused naming its file and task,
however the namespace is written. The same game days against a real cluster are
tests/targets/test_kubernetes.py's."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.core.errors import ValidationError
from gameday.game.reach import within_cluster
from gameday.scenarios.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
BOOK = "k8s-scale-deployment"
# The shipped runbook's first task: the one each case below rewrites.
FIRST = ('argv: [kubectl, --context, "{{ context }}", --namespace, "{{ k8s_namespace }}",\n'
         '               get, deployment, "{{ deployment }}"]')


def project(root: Path, runbook: str) -> Scenario:
    """A team's project whose allowlist names "payments" and "default" in context
    "team"; its alert links the runbook ``runbook``."""
    (root / "gameday.toml").write_text(textwrap.dedent("""\
        [project]
        name = "payments-team"

        [safety]
        contexts = ["team"]
        namespaces = ["payments", "default"]
        """))
    (root / "runbooks").mkdir()
    (root / "runbooks" / f"{BOOK}.yml").write_text(runbook)
    scale = {"type": "python", "module": "chaosk8s.deployment.actions",
             "func": "scale_deployment", "arguments": {"name": "api", "replicas": 0,
                                                       "ns": "payments"}}
    (root / "experiment.yaml").write_text(yaml.safe_dump({
        "version": "1.0.0", "title": "The api is scaled to zero", "description": "x",
        "method": [{"type": "action", "name": "scale-api", "provider": scale}]}))
    raw = yaml.safe_load((ROOT / "scenarios" / "kwok-frontend-scaled-to-zero.yaml")
                         .read_text())
    raw.update(target="kubernetes", experiment="experiment.yaml",
               cluster={"kubeconfig": "kubeconfig.yaml", "context": "team"},
               workload={"namespace": "payments", "deployment": "api"})
    raw["alert"].update(name="DeploymentReplicasUnavailable",
                        labels={"namespace": "payments", "deployment": "api"},
                        annotations={"runbook_url": f"http://127.0.0.1:8080/runbooks/{BOOK}"
                                                    "?replicas=3"})
    raw["response"] = {"mode": "auto"}
    (root / "scenario.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_scenario(root / "scenario.yaml")


def shipped(first: str = FIRST, **task: Any) -> str:
    """The shipped runbook, its first task's command replaced by ``first`` and that task
    given ``task``'s keys."""
    book = (ROOT / "runbooks" / f"{BOOK}.yml").read_text()
    assert FIRST in book
    book = book.replace(FIRST, first)
    for key, value in task.items():
        book = book.replace("      changed_when: false\n",
                            f"      changed_when: false\n      {key}: {value}\n", 1)
    return book


def test_the_shipped_runbook_acts_within_the_allowlist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    within_cluster(project(tmp_path, shipped()))


@pytest.mark.parametrize("first,task,says", [
    # ledger is outside the allowlist, however kubectl is told so
    ('argv: [kubectl, --context, "{{ context }}", -nledger, get, pods]', {},
     "'ledger' is outside the project's allowlist"),
    ('argv: [kubectl, --context=team, -n=ledger, get, pods]', {},
     "'ledger' is outside the project's allowlist"),
    ('argv: [kubectl, --context, "{{ context }}", -An, ledger, get, pods]', {},
     "-A acts as someone else, elsewhere or everywhere"),
    # another cluster, through the environment kubectl runs in
    ('argv: [kubectl, --context, "{{ context }}", get, pods]',
     {"environment": "{KUBECONFIG: /etc/elsewhere.conf}"}, "sets environment"),
])
def test_a_runbook_acting_elsewhere_is_refused_naming_its_task(
        tmp_path, monkeypatch, first, task, says):
    monkeypatch.chdir(tmp_path)
    sc = project(tmp_path, shipped(first, **task))
    with pytest.raises(ValidationError) as caught:
        within_cluster(sc)
    assert caught.value.file == str(tmp_path / "runbooks" / f"{BOOK}.yml")
    assert caught.value.field.startswith("0.tasks.0"), caught.value
    assert says in caught.value.message


def test_a_runbook_importing_another_playbook_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    book = shipped() + "\n- import_playbook: elsewhere.yml\n"
    with pytest.raises(ValidationError) as caught:
        within_cluster(project(tmp_path, book))
    assert caught.value.field == "1.import_playbook"
    assert "cannot see" in caught.value.message


@pytest.mark.parametrize("section,where", [
    ({"secrets": {"k8s": {"KUBERNETES_CONTEXT": "prod"}}}, "secrets.k8s.KUBERNETES_CONTEXT"),
    ({"secrets": {"k8s": {"kubernetes_host": "https://elsewhere:6443"}}},
     "secrets.k8s.kubernetes_host"),
    ({"configuration": {"KUBECONFIG": "/etc/prod.conf"}}, "configuration.KUBECONFIG"),
])
def test_an_experiment_pointing_the_client_elsewhere_is_refused(tmp_path, monkeypatch,
                                                                section, where):
    """chaosk8s reads the context, host and credentials from an activity's secrets before
    the environment the target sets: such a key is refused, naming it."""
    monkeypatch.chdir(tmp_path)
    sc = project(tmp_path, shipped())
    experiment = yaml.safe_load(sc.experiment.read_text()) | section
    sc.experiment.write_text(yaml.safe_dump(experiment))
    with pytest.raises(ValidationError) as caught:
        within_cluster(sc)
    assert (caught.value.file, caught.value.field) == (str(sc.experiment), where)
    assert "away from the target's cluster" in caught.value.message


def test_a_fault_off_the_kubernetes_api_needs_no_namespace(tmp_path, monkeypatch):
    """A Toxiproxy toxic beside the cluster's fault acts on no Kubernetes API: it needs
    no namespace (not "default") on the allowlist."""
    monkeypatch.chdir(tmp_path)
    sc = project(tmp_path, shipped())
    (tmp_path / "gameday.toml").write_text((tmp_path / "gameday.toml").read_text().replace(
        'namespaces = ["payments", "default"]', 'namespaces = ["payments"]\n'
        'proxies = ["podinfo-backend"]\nurls = ["http://127.0.0.1:8474"]'))
    experiment = yaml.safe_load(sc.experiment.read_text())
    experiment["method"].append({
        "type": "action", "name": "slow-backend", "provider": {
            "type": "python", "module": "gameday.activities.toxiproxy", "func": "add_toxic",
            "arguments": {"proxy": "podinfo-backend", "type": "latency",
                          "attributes": {"latency": 300}}}})
    sc.experiment.write_text(yaml.safe_dump(experiment))
    within_cluster(sc)
