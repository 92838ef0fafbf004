"""Kubernetes targets: the kind config, the shop's manifests, clean failures, and a
real control plane (kwok) where its binaries have been built."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gameday import cluster as k8s
from gameday.cli import cli

ROOT = Path(__file__).resolve().parent.parent


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


BUILT = all((k8s.k8s_bin() / b).exists() for b in k8s.CONTROLPLANE)


@pytest.mark.slow
@pytest.mark.skipif(not BUILT, reason="control-plane binaries not built "
                                      "(scripts/build-controlplane)")
def test_kwok_cluster_is_a_real_control_plane(monkeypatch):
    monkeypatch.setattr(k8s, "NAME", "gameday-test")  # never touch a user's cluster
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
    finally:
        k8s.down("kwok")


@pytest.mark.slow
@pytest.mark.skipif(not BUILT, reason="control-plane binaries not built "
                                      "(scripts/build-controlplane)")
@pytest.mark.parametrize("scenario,runbook", [
    ("kwok-frontend-scaled-to-zero", "k8s-scale-deployment"),
    ("kwok-nodes-cordoned", "k8s-uncordon-nodes")])
def test_kwok_game_day_end_to_end(tmp_path, scenario, runbook):
    """A chaosk8s fault; Kubernetes SLIs detect it; the kubectl runbook runs through
    ansible-runner; recovery is observed through the API."""
    import json
    import os
    import sys

    from gameday.store import Store

    env = {**os.environ, "GAMEDAY_DB": str(tmp_path / "g.db"),
           "GAMEDAY_RUNS": str(tmp_path / "runs"), "GAMEDAY_CLUSTER": "gameday-e2e"}
    proc = subprocess.run([sys.executable, "-m", "gameday", "run",
                           f"scenarios/{scenario}.yaml", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
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
    assert (Path(result["run_dir"]) / "review.md").exists()
