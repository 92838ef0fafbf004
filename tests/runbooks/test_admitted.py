"""Every run in a team's cluster is held to the project's allowlist, however it was
asked for: a one-click page or ``gameday runbook run --incident`` for a real alert's
incident (the ``[[targets]]`` cluster its world names), a hand run in a drill on a
team's cluster (its lease's context), and four eyes' request. Refused before anything
is queued, with the reason on the incident and in the audit log; nothing needs a
cluster, because nothing runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gameday.core import events
from gameday.core.errors import GamedayError
from gameday.incidents.incident import Incident
from gameday.runbooks.runbook import find
from gameday.runs import run as runs
from gameday.store import Store

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "runbooks" / "k8s-scale-deployment.yml"


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A team's project: its allowlist names namespace payments in context staging, its
    one cluster target is that context; the shipped scale runbook, and the same one
    rewritten to act in namespace ledger."""
    (tmp_path / "gameday.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "payments-team"

        [safety]
        contexts = ["staging"]
        namespaces = ["payments"]

        [[targets]]
        name = "payments-staging"
        kind = "kubernetes"
        match = {{cluster = "staging"}}
        kubeconfig = "{tmp_path / 'kubeconfig'}"
        context = "staging"
        """))
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "k8s-scale-deployment.yml").write_text(BOOK.read_text())
    (tmp_path / "runbooks" / "k8s-scale-ledger.yml").write_text(BOOK.read_text().replace(
        '--namespace, "{{ k8s_namespace }}",\n               get,',
        '--namespace, ledger,\n               get,'))
    monkeypatch.chdir(tmp_path)
    for k in ("GAMEDAY_DB", "GAMEDAY_RUNBOOKS", "KUBECONFIG"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path


def params(namespace: str = "payments") -> dict:
    return {"context": "staging", "k8s_namespace": namespace, "deployment": "api",
            "replicas": 3}


def real_incident(store: Store) -> Incident:
    incident = Incident.open(store, "api has too few replicas", service="payments-api")
    incident.record(events.alert_fired("DeploymentReplicasUnavailable",
                                       {"cluster": "staging", "namespace": "payments"},
                                       {}), "alertmanager")
    incident.declare("SEV-2", "gameday")
    return incident


def refused_on_record(store: Store, incident: Incident) -> str:
    (rejected,) = [e for e in incident.events() if e.kind == "runbook.rejected"]
    assert [a for a in store.audit_log() if a["action"] == "runbook.rejected"]
    assert store.runs() == []  # nothing queued
    return str(rejected.data["error"])


def test_a_hand_run_for_a_real_alert_in_another_namespace_is_refused(team):
    store = Store(team / "g.db")
    incident = real_incident(store)
    env, _ = runs.environment(incident)
    assert env["KUBERNETES_CONTEXT"] == "staging"
    fine = runs.queue(store, find("k8s-scale-deployment"), params(), incident=incident,
                      who="ana", env=env)
    assert store.run(fine)["status"] == "queued"
    with pytest.raises(GamedayError, match="not run in payments-staging: .*ledger"):
        runs.queue(store, find("k8s-scale-deployment"), params("ledger"), incident=incident,
                   who="ana", env=env)
    with pytest.raises(GamedayError, match="ledger"):  # four eyes asks the same
        runs.ask_approval(store, find("k8s-scale-ledger"), params(), incident=incident,
                          who="ana", check=False, within_s=60, env=env)
    assert len(store.runs()) == 1
    assert len([e for e in incident.events() if e.kind == "runbook.rejected"]) == 2


def test_a_hand_run_in_a_drill_on_a_teams_cluster_is_held_to_its_context(team):
    store = Store(team / "g.db")
    drill = Incident.open(store, "Drill: the api is scaled to zero", service="payments-api",
                          scenario="api-scaled-to-zero", run_dir=str(team / "run"),
                          kind="drill")
    (team / "run").mkdir()
    drill.declare("SEV-3", "gameday")
    store.take_lease(drill.id, run_dir=str(team / "run"), host="here", pid=1, started=1,
                     target="kubernetes")
    store.record_undo(drill.id, {"target": "kubernetes", "faults": [], "rollbacks": [],
                                 "env": {"KUBECONFIG": str(team / "kubeconfig"),
                                         "KUBERNETES_CONTEXT": "staging"}})
    env, _ = runs.environment(drill)
    with pytest.raises(GamedayError, match="acts in context 'prod'"):
        runs.queue(store, find("k8s-scale-deployment"), params() | {"context": "prod"},
                   incident=drill, who="ana", env=env)
    assert "prod" in refused_on_record(store, drill)
    with pytest.raises(GamedayError, match="ledger"):
        runs.queue(store, find("k8s-scale-ledger"), params(), incident=drill, who="ana",
                   env=env)
    runs.queue(store, find("k8s-scale-deployment"), params(), incident=drill, who="ana",
               env=env)
    assert [r["runbook"] for r in store.runs()] == ["k8s-scale-deployment"]


def test_a_run_outside_any_cluster_is_not_held_to_it(team):
    """A run by hand with no incident, or a real incident whose world names no cluster,
    acts where the process does: nothing to check against the cluster allowlist."""
    store = Store(team / "g.db")
    runs.queue(store, find("k8s-scale-ledger"), params(), incident=None, who="ana")
    assert len(store.runs()) == 1


def test_an_alert_from_a_second_cluster_runs_in_its_own(team):
    """Two alerts from two clusters join one incident (same service): each alert's run
    is checked for, and starts in, the cluster its own labels choose, not the first
    alert's."""
    from webhooks import alert, payload

    from gameday.core.settings import current
    from gameday.runs.alerts import parse
    from gameday.runs.intake import Delivery, Intake

    with (team / "gameday.toml").open("a") as toml:
        toml.write(textwrap.dedent(f"""
            [[targets]]
            name = "payments-canary"
            kind = "kubernetes"
            match = {{cluster = "canary"}}
            kubeconfig = "{team / 'kubeconfig'}"
            context = "canary"
            """))
    (team / "gameday.toml").write_text((team / "gameday.toml").read_text().replace(
        'contexts = ["staging"]', 'contexts = ["staging", "canary"]'))
    assert [t.name for t in current().targets] == ["payments-staging", "payments-canary"]
    store = Store(team / "g.db")
    intake = Intake(store, runbook_dir=team / "runbooks", env={})
    starts = []
    for n, cluster in enumerate(("staging", "canary")):
        fired = alert("DeploymentReplicasUnavailable", fingerprint=f"f{n}",
                      service="payments-api", annotations={
                          "runbook_url": "http://127.0.0.1:8080/runbooks/"
                                         "k8s-scale-deployment?replicas=3"})
        fired["labels"] |= {"cluster": cluster, "namespace": "payments", "deployment": "api"}
        answers, started = intake.handle([Delivery(parse(payload(fired)), "alertmanager")])
        (answer,) = answers
        assert isinstance(answer, dict) and answer["alerts"][0].get("run_id"), answer
        starts += started
    assert starts[0].incident_id == starts[1].incident_id     # one incident
    assert [s.env["KUBERNETES_CONTEXT"] for s in starts if s.env] == ["staging", "canary"]
    assert [s.params["context"] for s in starts] == ["staging", "canary"]
    assert [r["world"].split("KUBERNETES_CONTEXT=")[1] for r in store.runs()] == \
        ["staging", "canary"]
