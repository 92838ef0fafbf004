"""Kubernetes targets: the kind config, the shop's manifests, clean failures, and a
real control plane (kwok) where its binaries have been built."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from controlplane import needs_build

from gameday.cli.main import cli
from gameday.targets import cluster as k8s

ROOT = Path(__file__).resolve().parents[2]


def test_kind_config_is_a_game_day_cluster():
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    (mapping,) = config["nodes"][0]["extraPortMappings"]
    assert mapping["listenAddress"] == "127.0.0.1" and mapping["containerPort"] == 30080


def test_shop_manifests_are_consistent():
    docs = [d for d in yaml.safe_load_all((ROOT / "k8s/shop/shop.yaml").read_text()) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "Deployment", "Namespace", "PodDisruptionBudget",
                     "Service", "Service"]
    for d in docs:
        if d["kind"] == "Deployment":
            spec = d["spec"]
            assert spec["selector"]["matchLabels"].items() <= \
                spec["template"]["metadata"]["labels"].items()
            for c in spec["template"]["spec"]["containers"]:
                assert c["readinessProbe"] and c["resources"]["requests"]
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == k8s.NAMESPACE
    frontend = next(d for d in docs if d["kind"] == "Service"
                    and d["metadata"]["name"] == "frontend")
    assert frontend["spec"]["ports"][0]["nodePort"] == 30080


def test_kind_traffic_inside_the_cluster_goes_to_the_frontends_service(monkeypatch):
    """A kind game day sends its traffic to the host's port mapping; inside the cluster
    (a CronJob's pod) there is none, so it goes to the frontend's Service by name, on
    the port the shop's manifest gives it."""
    from gameday.scenarios.scenario import load_scenario
    from gameday.targets.base import KubeTarget

    docs = list(yaml.safe_load_all((ROOT / "k8s" / "shop" / "shop.yaml").read_text()))
    service = next(d for d in docs if d["kind"] == "Service"
                   and d["spec"].get("type") == "NodePort")  # what the host reaches
    sc = load_scenario(ROOT / "scenarios" / "kind-frontend-scaled-to-zero.yaml",
                       check_experiment=False)
    outside = KubeTarget(sc, Path()).sampler(None)
    assert (outside.host, outside.port) == ("127.0.0.1", 30080)
    monkeypatch.setenv(k8s.IN_CLUSTER_ENV, "1")
    inside = KubeTarget(sc, Path()).sampler(None)
    name = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert (inside.host, inside.port) == (name, service["spec"]["ports"][0]["port"])


@pytest.mark.skipif(shutil.which("kind") is not None, reason="kind is installed here")
def test_cluster_up_without_kind_fails_cleanly(tmp_path, monkeypatch):
    result = CliRunner().invoke(cli, ["cluster", "up"])
    assert result.exit_code == 1
    assert "kind" in result.output and "Traceback" not in result.output
    assert not (ROOT / ".gameday" / "kind.kubeconfig").exists()


def test_kwok_without_binaries_names_the_build_script(tmp_path, monkeypatch):
    monkeypatch.setenv("GAMEDAY_K8S_BIN", str(tmp_path / "nothing"))
    result = CliRunner().invoke(cli, ["cluster", "up", "--provider", "kwok"])
    assert result.exit_code == 1 and "scripts/build-controlplane" in result.output


@pytest.mark.skipif(not (k8s.k8s_bin() / "kindconfig").exists(),
                    reason="kindconfig not built (scripts/build-controlplane)")
def test_kind_config_decodes_strictly_into_kinds_own_types(tmp_path):
    check = str(k8s.k8s_bin() / "kindconfig")
    ok = subprocess.run([check, str(ROOT / "kind-config.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    typo = tmp_path / "kind-config.yaml"
    typo.write_text((ROOT / "kind-config.yaml").read_text()
                    .replace("extraPortMappings", "extraPortMapping"))
    bad = subprocess.run([check, str(typo)], capture_output=True, text=True)
    assert bad.returncode == 1 and 'unknown field "extraPortMapping"' in bad.stderr
    exposed = tmp_path / "exposed.yaml"
    exposed.write_text((ROOT / "kind-config.yaml").read_text().replace("127.0.0.1", "0.0.0.0"))
    bad = subprocess.run([check, str(exposed)], capture_output=True, text=True)
    assert bad.returncode == 1 and "not a loopback address" in bad.stderr


@pytest.mark.slow
@needs_build
def test_kwok_cluster_is_a_real_control_plane(monkeypatch, tmp_path):
    monkeypatch.setenv("GAMEDAY_CLUSTER", "gameday-test")  # never touch a user's cluster
    try:
        c = k8s.up("kwok", nodes=3)
        nodes = k8s.kubectl(c, "get", "nodes", "-o", "name").split()
        assert len(nodes) == 3
        version = subprocess.run([str(k8s.k8s_bin() / "kubectl"), "--kubeconfig",
                                  str(c.kubeconfig), "version", "-o", "yaml"],
                                 capture_output=True, text=True, check=True).stdout
        assert "gitVersion: v1.32" in version
        deployments = k8s.kubectl(c, "-n", k8s.NAMESPACE, "get", "deployments", "-o", "name")
        assert "deployment.apps/frontend" in deployments
        # kwok stands in for kubelets: the scheduler places the pods, and they run.
        k8s.kubectl(c, "-n", k8s.NAMESPACE, "rollout", "status", "deployment/frontend",
                    "--timeout=60s")
        pods = k8s.kubectl(c, "-n", k8s.NAMESPACE, "get", "pods", "-l", "app=frontend",
                           "-o", "jsonpath={.items[*].status.phase}").split()
        assert pods == ["Running"] * 3
        # The manifests against the API server's own schemas, strictly: a misspelled
        # field is refused, not dropped.
        k8s.kubectl(c, "apply", "--dry-run=server", "--validate=strict", "-f",
                    str(ROOT / k8s.MANIFESTS))
        typo = tmp_path / "shop.yaml"
        typo.write_text((ROOT / k8s.MANIFESTS).read_text()
                        .replace("readinessProbe", "readinesProbe", 1))
        with pytest.raises(k8s.GamedayError, match="readinesProbe"):
            k8s.kubectl(c, "apply", "--dry-run=server", "--validate=strict", "-f", str(typo))
        # Every component of the control plane listens on loopback only.
        config = (Path.home() / ".kwok" / "clusters" / k8s.cluster_name() / "kwok.yaml").read_text()
        assert "0.0.0.0" not in config
    finally:
        k8s.down("kwok")


def run_scenario(tmp_path: Path, scenario: str) -> dict:
    import json
    import os
    import sys

    env = {**os.environ, "GAMEDAY_DB": str(tmp_path / "g.db"),
           "GAMEDAY_RUNS": str(tmp_path / "runs"), "GAMEDAY_CLUSTER": "gameday-e2e"}
    proc = subprocess.run([sys.executable, "-m", "gameday", "run",
                           f"scenarios/{scenario}.yaml", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]  # the verdict's exit code
    result = json.loads(proc.stdout)
    assert proc.returncode == result["verdict"]["exit_code"]
    return result


@pytest.mark.slow
@needs_build
@pytest.mark.parametrize("scenario,runbook,event", [
    ("kwok-frontend-scaled-to-zero", "k8s-scale-deployment", "ScalingReplicaSet"),
    ("kwok-nodes-cordoned", "k8s-uncordon-nodes", "FailedScheduling"),
    ("kwok-nodes-drained", "k8s-uncordon-nodes", "FailedScheduling"),
    ("kwok-frontend-release-unschedulable", "k8s-rollout-undo", "FailedScheduling")])
def test_kwok_game_day_end_to_end(tmp_path, scenario, runbook, event):
    """A fault through the Kubernetes API; Kubernetes SLIs detect it; the kubectl runbook
    runs through ansible-runner; recovery is observed through the API; what Kubernetes
    reported is on the record and in the review."""
    from gameday.store import Store

    result = run_scenario(tmp_path, scenario)
    assert result["status"] == "resolved"
    assert result["metrics"]["contained_by"] == f"runbook {runbook}"
    assert result["metrics"]["TTM"] is not None
    events = Store(tmp_path / "g.db").events(result["incident_id"])
    kinds = [e.kind for e in events]
    for kind in ("fault.injected", "impact.started", "alert.fired", "runbook.finished",
                 "mitigated", "fault.rolled_back", "incident.resolved"):
        assert kind in kinds
    ok = [e.data for e in events if e.kind == "runbook.task" and e.data["status"] == "ok"]
    assert any("successfully rolled out" in d.get("stdout", "") for d in ok)
    assert not any(e.kind == "severity.changed" and e.at_monotonic_ns >
                   next(m.at_monotonic_ns for m in events if m.kind == "mitigated")
                   for e in events)  # no bump once the fix has landed
    reasons = {e.data["reason"] for e in events if e.kind == "k8s.event"}
    assert event in reasons, reasons
    review = (Path(result["run_dir"]) / "review.md").read_text()
    assert "## Kubernetes" in review and event in review
    replicas = [json.loads(line) for line in
                (Path(result["run_dir"]) / "k8s.jsonl").read_text().splitlines()]
    assert min(r["available"] for r in replicas) < 3 and replicas[-1]["available"] == 3


@pytest.mark.slow
@needs_build
def test_kwok_wrong_runbook_escalates_and_scores_lower(tmp_path):
    """A rolling restart of a release that cannot be scheduled: the runbook fails, the
    incident escalates, the experiment's rollback contains the fault."""
    from gameday.store import Store

    result = run_scenario(tmp_path, "kwok-frontend-release-wrong-runbook")
    m = result["metrics"]
    assert result["status"] == "resolved"
    assert m["runbook"] == "k8s-rollout-restart" and m["runbook_status"] == "failed"
    assert m["escalated"] and m["contained_by"] == "experiment rollback"
    kinds = [e.kind for e in Store(tmp_path / "g.db").events(result["incident_id"])]
    assert kinds.index("runbook.finished") < kinds.index("incident.escalated") \
        < kinds.index("fault.rolled_back") < kinds.index("mitigated")
    assert result["score"] < 100
    assert any(d["metric"] == "runbook" for d in result["deductions"]), result["deductions"]
