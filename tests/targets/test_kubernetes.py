"""Game days in a team's own Kubernetes cluster: a kwok cluster this test makes itself
(kwokctl, not ``gameday cluster up``), the test's own Deployments in two namespaces,
one the project's allowlist names and one it does not. gameday gets the kubeconfig and
the context; it never creates, changes or deletes the cluster, and nothing in the
other namespace moves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from controlplane import kubectl_binary, needs_build, own_kwok_cluster
from kubestate import ClusterMonitoring
from serving import eventually

from gameday.store import Store
from gameday.targets.sandbox.alerting import missing_binaries

pytestmark = [pytest.mark.slow, needs_build]
ROOT = Path(__file__).resolve().parents[2]
GAMEDAY = [sys.executable, "-m", "gameday"]
ALLOWED, OTHER = "payments", "ledger"

MANIFESTS = "\n---\n".join(yaml.safe_dump(doc) for ns in (ALLOWED, OTHER) for doc in (
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
     "data": {"mode": "live"}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "api", "namespace": ns, "labels": {"app": "api"}},
     "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
              "template": {"metadata": {"labels": {"app": "api"}},
                           "spec": {"containers": [{"name": "api",
                                                    "image": "registry.invalid/api:1"}]}}}}))


class TeamCluster:
    def __init__(self, kubeconfig: Path, context: str):
        self.kubeconfig, self.context = kubeconfig, context

    def kubectl(self, *args: str) -> str:
        binary = kubectl_binary()
        assert binary
        return subprocess.run([binary, "--kubeconfig", str(self.kubeconfig), "--context",
                               self.context, *args], capture_output=True, text=True,
                              timeout=60, check=True).stdout

    def available(self, ns: str = ALLOWED) -> int:
        found = json.loads(self.kubectl("-n", ns, "get", "deployment", "api", "-o", "json"))
        return int(found["status"].get("availableReplicas") or 0)

    def versions(self, ns: str = OTHER) -> dict[str, str]:
        """Every object in ``ns`` and its resourceVersion."""
        found = json.loads(self.kubectl("-n", ns, "get", "deployments,replicasets,pods,"
                                        "configmaps,services", "-o", "json"))
        return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
                for o in found["items"]}

    def running(self) -> bool:
        return self.kubectl("get", "--raw", "/readyz").strip() == "ok"


@contextmanager
def team_cluster(prefix: str, manifests_dir: Path) -> Iterator[TeamCluster]:
    """A kwok cluster the test makes itself, the team's api running three replicas in
    both namespaces; deleted afterwards."""
    with own_kwok_cluster(f"{prefix}-{uuid.uuid4().hex[:6]}") as made:
        team = TeamCluster(made.kubeconfig, made.context)
        manifests = manifests_dir / "team.yaml"
        manifests.write_text(MANIFESTS)
        team.kubectl("apply", "-f", str(manifests))
        for ns in (ALLOWED, OTHER):
            eventually(lambda ns=ns: team.available(ns) == 3, 60, f"api in {ns} available")
        yield team


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with team_cluster("team", tmp_path_factory.mktemp("manifests")) as team:
        yield team


def experiment(ns: str = ALLOWED) -> dict:
    def scale(replicas: int) -> dict:
        return {"type": "python", "module": "chaosk8s.deployment.actions",
                "func": "scale_deployment",
                "arguments": {"name": "api", "replicas": replicas, "ns": ns}}

    return {"version": "1.0.0", "title": "The api Deployment is scaled to zero",
            "description": "A bad automation run scales the payments api to zero.",
            "method": [{"type": "action", "name": "scale-api-to-zero",
                        "provider": scale(0)}],
            "rollbacks": [{"type": "action", "name": "scale-api-back",
                           "provider": scale(3)}]}


def write_project(root: Path, team: TeamCluster, *, namespaces: tuple[str, ...] = (ALLOWED,),
                  doc: dict | None = None, runbook: str | None = None) -> Path:
    for d in ("experiments", "runbooks", "scenarios"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "gameday.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "payments-team"

        [safety]
        contexts = ["{team.context}"]
        namespaces = {json.dumps(list(namespaces))}
        """))
    (root / "experiments" / "api-scaled-to-zero.yaml").write_text(
        yaml.safe_dump(doc or experiment(), sort_keys=False))
    (root / "runbooks" / "k8s-scale-deployment.yml").write_text(
        runbook or (ROOT / "runbooks" / "k8s-scale-deployment.yml").read_text())
    scenario = {
        "name": "api-scaled-to-zero", "title": "The payments api is scaled to zero",
        "target": "kubernetes",
        "cluster": {"kubeconfig": str(team.kubeconfig), "context": team.context},
        "workload": {"namespace": ALLOWED, "deployment": "api"},
        "experiment": "../experiments/api-scaled-to-zero.yaml", "service": "payments-api",
        "team": {"name": "payments-team", "model": "hybrid", "oncall": ["ana"],
                 "ic_rotation": ["chidi"]},
        "slo": {"success_ratio": 0.99, "latency_p99_ms": 1000, "window": "2s"},
        "alert": {"name": "DeploymentReplicasUnavailable", "for": "500ms",
                  "labels": {"namespace": ALLOWED, "deployment": "api"},
                  "annotations": {"runbook_url": "http://127.0.0.1:8080/runbooks/"
                                                 "k8s-scale-deployment?replicas=3"}},
        "response": {"mode": "auto"}, "recovery_window": "2s",
        "timeouts": {"steady": "30s", "detect": "20s", "mitigate": "30s", "recover": "30s"},
        "targets": {"SEV-1": {"ack": "5s", "engage_ic": "5s", "first_comms": "5s",
                              "mitigate": "45s", "update_every": "20s"}}}
    path = root / "scenarios" / "api-scaled-to-zero.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def gameday(root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GAMEDAY_", "KUBE"))}
    env["GAMEDAY_K8S_BIN"] = str(ROOT / ".gameday" / "k8s" / "bin")
    return subprocess.run([*GAMEDAY, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_a_game_day_in_the_teams_cluster_is_contained_by_its_runbook(tmp_path, cluster):
    before = cluster.versions()
    assert {"Deployment/api", "ConfigMap/settings"} <= set(before)
    scenario = write_project(tmp_path, cluster)
    checked = gameday(tmp_path, "validate", str(scenario))
    assert checked.returncode == 0, checked.stderr
    done = gameday(tmp_path, "run", str(scenario), "--json")
    assert done.returncode in (0, 1) and done.stdout, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "resolved", result
    assert result["metrics"]["contained_by"] == "runbook k8s-scale-deployment"
    events = Store(tmp_path / ".gameday" / "gameday.db").events(result["incident_id"])
    ready = next(e for e in events if e.kind == "target.ready")
    assert ready.data["context"] == cluster.context and ready.data["target"] == "kubernetes"
    started = next(e for e in events if e.kind == "runbook.started")
    assert started.data["params"]["context"] == cluster.context
    assert cluster.available() == 3
    assert cluster.versions() == before          # the other namespace, object for object
    assert cluster.running()                     # and the cluster is still there


# The team's objective for the api, in their PromQL over kube-state-metrics' series: the
# share of the replicas it ran with lately (the most its spec asked for in ten minutes)
# that are available now. A Deployment scaled to zero has a spec of zero too, so
# available against the spec of the moment would read 0/0 (no number) and compare equal.
API = f'{{namespace="{ALLOWED}",deployment="api"}}'
TEAM_SUCCESS_RATIO = (f"kube_deployment_status_replicas_available{API} / "
                      f"max_over_time(kube_deployment_spec_replicas{API}[10m])")
TEAM_ALERT = "KubeDeploymentReplicasUnavailable"


def team_rules() -> str:
    """The team's own rule, as they would write it over kube-state-metrics: fewer
    replicas available than the Deployment ran with lately, held for a second."""
    return yaml.safe_dump({"groups": [{"name": "deployments", "interval": "1s", "rules": [{
        "alert": TEAM_ALERT,
        "expr": ("kube_deployment_status_replicas_available < "
                 "max_over_time(kube_deployment_spec_replicas[10m])"),
        "for": "1s", "labels": {"severity": "page"},
        "annotations": {"summary": "{{ $labels.namespace }}/{{ $labels.deployment }} has "
                                   "fewer replicas available than it ran with",
                        "runbook_url": "http://127.0.0.1:8080/runbooks/"
                                       "k8s-scale-deployment?replicas=3"}}]}]})


@pytest.fixture
def team_monitoring(tmp_path, cluster):
    """The team's monitoring of their cluster, fresh for the test (no alert of an earlier
    test's outage still active in it)."""
    if missing_binaries():
        pytest.skip(f"needs Debian's {', '.join(missing_binaries())} (make test installs them)")
    watching = ClusterMonitoring(tmp_path / "monitoring", cluster.kubeconfig, cluster.context,
                                 ALLOWED, team_rules()).start()
    try:
        yield watching
    finally:
        watching.stop()


def test_the_teams_own_alert_detects_it_in_their_cluster(tmp_path, cluster, team_monitoring):
    """The team's own monitoring of the cluster: SLIs read with their PromQL from their
    Prometheus, which scrapes kube-state-metrics' series of the allowed namespace; TTD
    measured to the moment their Alertmanager reports their alert active, its
    runbook_url routing the runbook, run in the scenario's context."""
    watching = team_monitoring
    before = cluster.versions()
    scenario = write_project(tmp_path, cluster)
    with (tmp_path / "gameday.toml").open("a") as toml:
        toml.write(f'urls = ["{watching.prometheus}", "{watching.alertmanager}"]\n')
    raw = yaml.safe_load(scenario.read_text())
    # their alert's name and labels: matchers for their Alertmanager
    raw["alert"]["name"] = TEAM_ALERT
    raw["alerting"], raw["alertmanager"] = "alertmanager", watching.alertmanager
    raw["sli"] = {"source": "prometheus", "prometheus": watching.prometheus,
                  "success_ratio": TEAM_SUCCESS_RATIO,
                  "latency_p99_ms": "vector(0)",  # replicas have no latency
                  "interval": "1s"}
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    checked = gameday(tmp_path, "validate", str(scenario))
    assert checked.returncode == 0, checked.stderr
    done = gameday(tmp_path, "run", str(scenario), "--json")
    assert done.returncode in (0, 1) and done.stdout, done.stderr[-3000:]  # targets may miss
    result = json.loads(done.stdout)
    assert result["status"] == "resolved", result
    assert result["metrics"]["runbook_status"] == "successful"
    assert result["metrics"]["contained_by"] == "runbook k8s-scale-deployment"
    events = Store(tmp_path / ".gameday" / "gameday.db").events(result["incident_id"])
    assert not any(e.kind == "detection.missed" for e in events)
    fired = next(e for e in events if e.kind == "alert.fired")
    assert fired.actor == "alertmanager" and not fired.data["fallback"], fired
    assert fired.data["alertname"] == TEAM_ALERT and fired.data["starts_at"]
    labels = fired.data["labels"]
    assert labels["severity"] == "page" and labels["job"] == "kube-state-metrics"  # theirs
    assert (labels["namespace"], labels["deployment"]) == (ALLOWED, "api")
    assert any(e.kind == "impact.started" for e in events)  # their PromQL saw it too
    injected = next(e for e in events if e.kind == "fault.injected")
    assert fired.at_monotonic_ns > injected.at_monotonic_ns
    ttd = (fired.at_monotonic_ns - injected.at_monotonic_ns) / 1e9
    assert result["metrics"]["TTD"] == pytest.approx(ttd, abs=0.01)
    started = next(e for e in events if e.kind == "runbook.started")
    assert started.data["runbook"] == "k8s-scale-deployment"
    assert started.data["params"]["context"] == cluster.context
    assert started.at_monotonic_ns > fired.at_monotonic_ns
    assert cluster.available() == 3
    assert cluster.versions() == before          # the other namespace, object for object
    assert cluster.running() and watching.running()
    assert watching.exporter.scrapes > 0


@pytest.mark.parametrize("change,field", [
    ("namespace", "workload.namespace"),
    ("fault", "method.0.provider.arguments.ns"),
    ("all-namespaces", "0.tasks.0"),
    ("no-context", "0.tasks.0"),
])
def test_what_the_allowlist_does_not_name_is_refused(tmp_path, cluster, change, field):
    before = cluster.versions()
    book = (ROOT / "runbooks" / "k8s-scale-deployment.yml").read_text()
    if change == "all-namespaces":
        book = book.replace('--namespace, "{{ k8s_namespace }}",\n               get,',
                            '--all-namespaces,\n               get,')
    if change == "no-context":
        book = book.replace('argv: [kubectl, --context, "{{ context }}", --namespace, '
                            '"{{ k8s_namespace }}",\n               get,',
                            'argv: [kubectl, --namespace, "{{ k8s_namespace }}",\n'
                            '               get,')
    assert change in ("namespace", "fault") or book != (
        ROOT / "runbooks" / "k8s-scale-deployment.yml").read_text()
    scenario = write_project(
        tmp_path, cluster, namespaces=(OTHER,) if change == "namespace" else (ALLOWED,),
        doc=experiment(OTHER) if change == "fault" else None, runbook=book)
    for command in (["validate", str(scenario)], ["run", str(scenario), "--json"]):
        refused = gameday(tmp_path, *command)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert field in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert cluster.available() == 3 and cluster.versions() == before


def test_a_context_not_in_the_kubeconfig_is_refused(tmp_path, cluster):
    scenario = write_project(tmp_path, cluster)
    raw = yaml.safe_load(scenario.read_text())
    raw["cluster"]["context"] = "kwok-elsewhere"
    scenario.write_text(yaml.safe_dump(raw))
    (tmp_path / "gameday.toml").write_text((tmp_path / "gameday.toml").read_text().replace(
        f'contexts = ["{cluster.context}"]', 'contexts = ["kwok-elsewhere"]'))
    refused = gameday(tmp_path, "validate", str(scenario))
    assert refused.returncode == 2 and "cluster.context" in refused.stderr
    assert "no context 'kwok-elsewhere'" in refused.stderr


def test_a_crashed_game_day_is_put_back_by_recover(tmp_path, cluster):
    """SIGKILL while the api is scaled to zero: ``gameday recover`` scales it back, in
    the team's context, and leaves the cluster running."""
    scenario = write_project(tmp_path, cluster)
    raw = yaml.safe_load(scenario.read_text())
    raw["response"] = {"mode": "none"}
    raw["timeouts"]["mitigate"] = "60s"
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEDAY_", "KUBE"))}
    env["GAMEDAY_K8S_BIN"] = str(ROOT / ".gameday" / "k8s" / "bin")
    run = subprocess.Popen([*GAMEDAY, "run", str(scenario)], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        eventually(lambda: cluster.available() == 0, 90, "the api scaled to zero")
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    recovered = gameday(tmp_path, "recover")
    assert recovered.returncode == 0, recovered.stderr
    eventually(lambda: cluster.available() == 3, 60, "the api back at three")
    assert cluster.running()  # recover rolls faults back; it never deletes a team's cluster


def post_alerts(base: str, *alerts: dict) -> dict:
    import urllib.request

    from webhooks import AUTH, payload

    request = urllib.request.Request(
        base + "/api/v1/alerts", data=json.dumps(payload(*alerts)).encode(),
        headers={**AUTH, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_serve_runs_a_real_alerts_runbook_in_the_cluster_its_labels_choose(
        tmp_path, cluster, gameday_serve):
    """``[[targets]]`` in gameday.toml: the alert's labels choose the team's cluster, its
    runbook runs in that target's context (the alert's own context label is not
    believed), and an alert that matches no target is refused with the reason on its
    incident."""
    from webhooks import TOKEN

    write_project(tmp_path, cluster)
    with (tmp_path / "gameday.toml").open("a") as toml:
        toml.write(textwrap.dedent(f"""
            [[targets]]
            name = "payments-staging"
            kind = "kubernetes"
            match = {{cluster = "staging", namespace = "{ALLOWED}"}}
            kubeconfig = "{cluster.kubeconfig}"
            context = "{cluster.context}"
            """))
    before = cluster.versions()
    cluster.kubectl("-n", ALLOWED, "scale", "deployment/api", "--replicas=1")  # the outage
    eventually(lambda: cluster.available() == 1, 60, "the api down to one replica")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEDAY_", "KUBE"))}
    bindir = ROOT / ".gameday" / "k8s" / "bin"  # the built kubectl, not whatever is on PATH
    env |= {"GAMEDAY_TOKEN": TOKEN, "GAMEDAY_K8S_BIN": str(bindir),
            "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}"}
    served = gameday_serve(env, "--no-scheduler", cwd=tmp_path)
    runbook_url = f"{served.base}/runbooks/k8s-scale-deployment?replicas=3"

    def alert(fingerprint: str, **labels: str) -> dict:
        return {"status": "firing", "labels": {"alertname": "DeploymentReplicasUnavailable",
                                               "deployment": "api", **labels},
                "annotations": {"summary": "api has too few replicas",
                                "runbook_url": runbook_url},
                "startsAt": "2026-11-22T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "", "fingerprint": fingerprint}

    answer = post_alerts(served.base, alert("a1", cluster="staging", namespace=ALLOWED,
                                            context="kwok-somewhere-else"))
    first = answer["alerts"][0]
    assert first["target"] == "payments-staging" and first.get("run_id"), answer
    store = Store(tmp_path / ".gameday" / "gameday.db")
    eventually(lambda: store.run(first["run_id"])["status"] == "successful", 90,
               "the runbook's run")
    assert store.run(first["run_id"])["params"]["context"] == cluster.context
    assert cluster.available() == 3 and cluster.versions() == before
    stray = post_alerts(served.base, alert("b2", cluster="prod", namespace=ALLOWED))
    refused = stray["alerts"][0]
    assert refused["runbook"] is None and "match none of the project's targets" in \
        refused["error"]
    events = store.events(refused["incident_id"])
    assert any(e.kind == "runbook.rejected" and "payments-staging" in e.data["error"]
               for e in events)
    assert len(store.runs()) == 1 and cluster.running()


def test_the_exported_cronjob_is_limited_to_the_allowed_namespace(tmp_path, cluster):
    """``gameday schedule export --kubernetes`` for a ``kubernetes`` target: applied
    strictly in the team's cluster, its ServiceAccount may scale the api where the
    allowlist says and nothing in the other namespace (the API server's own answer); a
    fault in the other namespace is refused at export."""
    scenario = write_project(tmp_path, cluster)
    added = gameday(tmp_path, "schedule", "add", "api-nightly",
                    str(scenario.relative_to(tmp_path)), "--cron", "0 3 * * 1-5")
    assert added.returncode == 0, added.stderr
    exported = gameday(tmp_path, "schedule", "export", "api-nightly", "--kubernetes",
                       "--namespace", ALLOWED, "--image", "registry.example/gameday:0.1")
    assert exported.returncode == 0, exported.stderr
    docs = [d for d in yaml.safe_load_all(exported.stdout) if d]
    roles = [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    assert [(r["kind"], r["metadata"]["namespace"]) for r in roles] == [("Role", ALLOWED)]
    (tmp_path / "cronjob.yaml").write_text(exported.stdout)
    cluster.kubectl("apply", "--server-side", "--field-manager=gameday", "--validate=strict",
                    "-f", str(tmp_path / "cronjob.yaml"))
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]

    def can_i(*args: str) -> bool:
        binary = kubectl_binary()
        assert binary
        proc = subprocess.run([binary, "--kubeconfig", str(cluster.kubeconfig), "--context",
                               cluster.context, "auth", "can-i",
                               f"--as=system:serviceaccount:{ALLOWED}:{sa}", *args],
                              capture_output=True, text=True, timeout=30)
        return proc.stdout.strip() == "yes"

    assert can_i("patch", "deployments/scale", "-n", ALLOWED)
    assert not can_i("patch", "deployments/scale", "-n", OTHER)
    assert not can_i("get", "configmaps", "-n", OTHER)
    assert not can_i("delete", "deployments", "-n", ALLOWED)
    (tmp_path / "experiments" / "api-scaled-to-zero.yaml").write_text(
        yaml.safe_dump(experiment(OTHER)))
    refused = gameday(tmp_path, "schedule", "export", "api-nightly", "--kubernetes",
                      "--namespace", ALLOWED, "--image", "registry.example/gameday:0.1")
    assert refused.returncode == 2 and "method.0.provider.arguments.ns" in refused.stderr
