"""gameday serve on Kubernetes (deploy/kubernetes/serve): the manifests' promises (two
replicas rolled one at a time, probes on /healthz, secrets by reference, a budget and a
Service that select the Deployment's pods and nothing else, the CronJobs' least-privilege
pod), the kustomize build that is applied; the Deployment's container run here as the pod
runs it; and, on the real kwok control plane, strict server-side apply into a namespace
that enforces the restricted Pod Security Standard, two Ready replicas behind the
Service, the budget's status, and a rolling restart that never has fewer than two
available.

kwok has no kubelet: it marks pods Running and Ready without running a container, so
on kwok the probes are accepted, not exercised. The container run here exercises them.
"""

from __future__ import annotations

import inspect
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from controlplane import apply_strictly, kubectl_binary, kustomize, kwok_cluster, needs_build

from gameday.cli.main import cli
from gameday.cli.serve import serve
from gameday.core.errors import GamedayError
from gameday.core.settings import Settings
from gameday.scenarios.scenario import load_scenario
from gameday.schedules import cronjob
from gameday.store import Store
from gameday.targets import cluster as k8s
from gameday.targets.sandbox.supervisor import free_port

ROOT = Path(__file__).resolve().parents[2]
DIR = ROOT / "deploy" / "kubernetes" / "serve"
EXAMPLE = DIR / "secret.example.yaml"
# The namespace the CronJobs of scheduled game days go to unless told otherwise.
NAMESPACE = inspect.signature(cronjob.manifests).parameters["namespace"].default
SECRET_NAMES = ("TOKEN", "DB", "PASSWORD", "SECRET", "KEY")
needs_kubectl = pytest.mark.skipif(kubectl_binary() is None, reason="no kubectl to build "
                                   "the kustomization with (scripts/build-controlplane)")


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((DIR / "kustomization.yaml").read_text())


def manifests() -> dict[str, dict[str, Any]]:
    """The resources the kustomization lists, as written, by kind."""
    docs = [d for name in kustomization()["resources"]
            for d in yaml.safe_load_all((DIR / name).read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return by_kind


def built() -> dict[str, dict[str, Any]]:
    """What ``kubectl apply -k`` sends, by kind."""
    return {d["kind"]: d for d in yaml.safe_load_all(kustomize(DIR)) if d}


def pod_spec(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return docs["Deployment"]["spec"]["template"]["spec"]


def container(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = pod_spec(docs)["containers"]
    return c


def init_container(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = pod_spec(docs)["initContainers"]
    return c


def port_number(c: dict[str, Any], port: int | str) -> int:
    """A port as a probe, the Service or a NetworkPolicy names it: the container's."""
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c["env"]}


def example_secret() -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    return doc


# -- the manifests ------------------------------------------------------------------------------
def test_the_kustomization_lists_every_manifest_but_the_secret_example():
    files = {p.name for p in DIR.glob("*.yaml")} - {"kustomization.yaml"}
    listed = set(kustomization()["resources"])
    assert listed == files - {EXAMPLE.name}
    assert set(manifests()) == {"ServiceAccount", "Deployment", "Service",
                                "PodDisruptionBudget", "NetworkPolicy"}
    assert kustomization()["namespace"] == NAMESPACE  # beside the scheduled game days


def test_two_replicas_are_rolled_one_at_a_time_and_drains_take_one():
    docs = manifests()
    spec = docs["Deployment"]["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    budget = docs["PodDisruptionBudget"]["spec"]
    # At least one serves through a drain, and a drain can always proceed.
    assert 1 <= budget["minAvailable"] < spec["replicas"] and "maxUnavailable" not in budget
    # Spread over nodes, never left Pending for it.
    spread = {t["topologyKey"]: t for t in pod_spec(docs)["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in spread
    for t in spread.values():
        assert t["whenUnsatisfiable"] == "ScheduleAnyway"
        assert t["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_the_service_the_budget_and_the_policy_select_the_deployments_pods_only():
    docs = manifests()
    deployment = docs["Deployment"]["spec"]
    selector = deployment["selector"]["matchLabels"]
    labels = deployment["template"]["metadata"]["labels"]
    assert selects(selector, labels)
    chosen = {"Service": docs["Service"]["spec"]["selector"],
              "PodDisruptionBudget": docs["PodDisruptionBudget"]["spec"]["selector"]
              ["matchLabels"],
              "NetworkPolicy": docs["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"]}
    for kind, chooses in chosen.items():
        assert chooses == selector, kind
    # Not the pods of a scheduled game day in the same namespace, even one named "serve".
    sc = load_scenario(ROOT / "scenarios" / "kwok-nodes-cordoned.yaml")
    exported = cronjob.manifests(name="serve", scenario=sc,
                                 scenario_path="scenarios/kwok-nodes-cordoned.yaml",
                                 cron="0 3 * * *", every_s=None, tz="UTC",
                                 image="gameday:test")
    (job,) = [d for d in exported if d["kind"] == "CronJob"]
    job_pods = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert not selects(selector, job_pods)
    assert docs["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == \
        docs["ServiceAccount"]["metadata"]["name"]


def test_the_probes_ask_healthz_on_the_port_the_service_and_the_policy_open():
    docs = manifests()
    c = container(docs)
    served = int(c["args"][c["args"].index("--port") + 1])
    assert port_number(c, docs["Service"]["spec"]["ports"][0]["targetPort"]) == served
    assert docs["Service"]["spec"]["type"] == "ClusterIP"
    assert docs["Service"]["spec"]["ports"][0]["port"] == 80
    (rule,) = docs["NetworkPolicy"]["spec"]["ingress"]
    assert "from" not in rule and [port_number(c, p["port"]) for p in rule["ports"]] == [served]
    assert docs["NetworkPolicy"]["spec"]["policyTypes"] == ["Ingress"]
    probes = {kind: c[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    for kind, probe in probes.items():
        assert probe["httpGet"]["path"] == "/healthz", kind
        assert port_number(c, probe["httpGet"]["port"]) == served, kind
        assert probe["timeoutSeconds"] <= probe["periodSeconds"], kind

    def budget(p: dict[str, Any]) -> int:
        return p["periodSeconds"] * p["failureThreshold"]

    # Out of the Service well before a restart; a minute to start (Ansible's import, the
    # recovery of crashed game days) before liveness counts.
    assert budget(probes["readinessProbe"]) < budget(probes["livenessProbe"])
    assert budget(probes["startupProbe"]) >= 60
    # Running playbooks finish within the grace period, after the preStop pause.
    grace = pod_spec(docs)["terminationGracePeriodSeconds"]
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] < grace


def test_the_database_and_the_token_come_from_the_secret_by_reference():
    docs = manifests()
    c = container(docs)
    env = env_of(c)
    secret = example_secret()
    name = secret["metadata"]["name"]
    for var, key in (("GAMEDAY_DB", "db-url"), ("GAMEDAY_TOKEN", "token")):
        assert env[var]["valueFrom"] == {"secretKeyRef": {"name": name, "key": key}}, var
        assert key in secret["stringData"]
    assert set(secret["stringData"]) == {"db-url", "token"}
    assert secret["metadata"]["namespace"] == kustomization()["namespace"]
    # Nothing secret spelled out: not in a value, not on the command line.
    for var, e in env.items():
        if any(word in var for word in SECRET_NAMES):
            assert "value" not in e, var
    assert not any("://" in e.get("value", "") for e in env.values())
    assert "--token" not in c["args"] and "--db" not in c["args"]
    assert env["GAMEDAY_URL"]["valueFrom"]["configMapKeyRef"]["key"] == "url"
    # The schema's upgrade before it: the same database, by the same reference, and
    # nothing else secret (no token: it serves nothing).
    init = env_of(init_container(docs))
    assert init["GAMEDAY_DB"] == env["GAMEDAY_DB"]
    assert not any("value" in e for var, e in init.items()
                   if any(word in var for word in SECRET_NAMES))
    assert "GAMEDAY_TOKEN" not in init


def test_the_example_secret_is_a_placeholder_gameday_serve_refuses():
    token = example_secret()["stringData"]["token"]
    result = CliRunner().invoke(cli, ["serve", "--no-scheduler"],
                                env={"GAMEDAY_TOKEN": token})
    assert result.exit_code == 2 and "16 characters" in result.output, result.output
    assert example_secret()["stringData"]["db-url"].startswith("postgresql://")


def test_the_pod_is_least_privilege_like_a_scheduled_game_days():
    """The same pod and container security as the CronJob gameday.schedules.cronjob writes, and
    no token for the Kubernetes API: gameday serve never calls it."""
    docs = manifests()
    pod, c = pod_spec(docs), container(docs)
    sc = load_scenario(ROOT / "scenarios" / "kwok-nodes-cordoned.yaml")
    exported = cronjob.manifests(name="nightly", scenario=sc,
                                 scenario_path="scenarios/kwok-nodes-cordoned.yaml",
                                 cron="0 3 * * *", every_s=None, tz="UTC", image="gameday:t")
    (job,) = [d for d in exported if d["kind"] == "CronJob"]
    job_pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (job_c,) = job_pod["containers"]
    assert pod["securityContext"] == job_pod["securityContext"]
    assert c["securityContext"] == job_c["securityContext"]
    assert pod["securityContext"]["runAsUser"] == cronjob.UID != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    assert docs["ServiceAccount"]["automountServiceAccountToken"] is False
    # The Service's links would be GAMEDAY_SERVE_* variables: gameday's own prefix.
    assert pod["enableServiceLinks"] is False
    # What gameday writes, in emptyDirs, where the CronJob's pod has them.
    assert c["workingDir"] == cronjob.PROJECT_DIR
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all(set(v) == {"name", "emptyDir"} and v["emptyDir"]["sizeLimit"]
               for v in volumes.values())
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert set(mounts) == {cronjob.STATE_DIR, cronjob.HOME_DIR, "/tmp"}
    assert set(mounts.values()) == set(volumes)
    env = env_of(c)
    assert (env["HOME"]["value"], env["TMPDIR"]["value"]) == (cronjob.HOME_DIR, "/tmp")
    for bound in ("requests", "limits"):
        assert set(c["resources"][bound]) == {"cpu", "memory"}, bound
    # The schema's upgrade runs as the server does, in the same image and emptyDirs.
    init = init_container(docs)
    assert init["securityContext"] == c["securityContext"]
    assert (init["image"], init["workingDir"]) == (c["image"], c["workingDir"])
    assert {m["mountPath"]: m["name"] for m in init["volumeMounts"]} == mounts
    assert {k: env_of(init)[k] for k in ("HOME", "TMPDIR")} == \
        {k: env[k] for k in ("HOME", "TMPDIR")}
    for bound in ("requests", "limits"):
        assert set(init["resources"][bound]) == {"cpu", "memory"}, bound


def test_the_args_are_what_gameday_serve_takes():
    """The image's entrypoint is ``gameday``: the args are a serve command line."""
    c = container(manifests())
    args = c["args"]
    assert args[0] == "serve"
    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    for flag in (a for a in args if a.startswith("--")):
        assert flag in help_text, flag
    ctx = serve.make_context("serve", list(args[1:]),
                             default_map={"token": "x" * 32})  # the Secret's, in the pod
    assert ctx.params["host"] == "0.0.0.0"  # every interface of the pod
    assert ctx.params["port"] == port_number(c, "http")
    assert ctx.params["scheduler"] is False  # scheduled game days run as CronJobs
    init = init_container(manifests())
    assert init["args"] == ["db", "upgrade"]
    assert CliRunner().invoke(cli, [*init["args"], "--help"]).exit_code == 0


@needs_kubectl
def test_the_build_is_namespaced_pinned_and_configured():
    docs, raw = built(), manifests()
    assert set(docs) == set(raw) | {"ConfigMap"} and "Secret" not in docs
    assert {d["metadata"]["namespace"] for d in docs.values()} == {NAMESPACE}
    # The image: the kustomization's, with a pinned tag.
    (image,) = kustomization()["images"]
    assert container(raw)["image"].rsplit(":", 1)[0] == image["name"]  # it applies
    got = container(docs)["image"]
    assert got == f"{image['newName']}:{image['newTag']}" == init_container(docs)["image"]
    assert image["newTag"] not in ("", "latest")
    # GAMEDAY_URL from the generated ConfigMap (its name carries a hash: a change rolls
    # the pods), a URL gameday takes.
    config = docs["ConfigMap"]
    ref = env_of(container(docs))["GAMEDAY_URL"]["valueFrom"]["configMapKeyRef"]
    assert ref["name"] == config["metadata"]["name"] != "gameday-serve"
    url = config["data"][ref["key"]]
    assert Settings.load(cwd=ROOT, environ={"GAMEDAY_URL": url}).url == url
    assert selects(config["metadata"]["labels"],
                   docs["Deployment"]["spec"]["template"]["metadata"]["labels"])


# -- the container, run here as the pod runs it --------------------------------------------


def tree(directory: Path, skip: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in directory.rglob("*") if p.is_file() and not p.is_relative_to(skip)}


@pytest.fixture
def pod(tmp_path: Path, postgres) -> Iterator[dict[str, Any]]:
    """The Deployment's pod started here, as the kubelet starts it: its init container
    to the end (exit 0), then its container. Their args, their environment (the
    Secret's keys: a new, empty database on the suite's real PostgreSQL, and a token),
    the working directory (what the project's image holds in /app,
    cronjob.IMAGE_HOLDS) and the emptyDirs as directories under tmp_path. It binds
    loopback on a free port: 0.0.0.0 and 8080 are the pod's own network's."""
    docs = manifests()
    c = container(docs)
    app = tmp_path / "app"
    app.mkdir()
    for held in cronjob.IMAGE_HOLDS:
        source = ROOT / held
        if source.is_dir():
            shutil.copytree(source, app / held)
        else:
            shutil.copy(source, app / held)
    here = {cronjob.PROJECT_DIR: str(app)}
    for mount in c["volumeMounts"]:
        if not mount["mountPath"].startswith(cronjob.PROJECT_DIR + "/"):
            here[mount["mountPath"]] = str(tmp_path / mount["name"])

    def local(value: str) -> str:
        for pod_path in sorted(here, key=len, reverse=True):
            if value == pod_path or value.startswith(pod_path + "/"):
                return here[pod_path] + value[len(pod_path):]
        return value

    for mount in c["volumeMounts"]:
        Path(local(mount["mountPath"])).mkdir(parents=True)
    token = secrets.token_hex(32)
    db_url = postgres.database(upgrade=False)
    secret = {"db-url": db_url, "token": token}
    url = {"url": "https://gameday.example.com"}

    def environment(of: dict[str, Any]) -> dict[str, str]:
        env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONUNBUFFERED": "1"}  # the image's ENV
        for e in of["env"]:
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref:
                env[e["name"]] = secret[ref["secretKeyRef"]["key"]]
            elif "configMapKeyRef" in ref:
                env[e["name"]] = url[ref["configMapKeyRef"]["key"]]
            else:
                env[e["name"]] = local(e["value"])
        return env

    before = tree(app, app / ".gameday")
    for init in pod_spec(docs)["initContainers"]:
        done = subprocess.run([sys.executable, "-m", "gameday", *init["args"]],
                              cwd=local(init["workingDir"]), env=environment(init),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    args = list(c["args"])
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = environment(c)
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "gameday", *args],
                            cwd=local(c["workingDir"]), env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        yield {"proc": proc, "base": f"http://127.0.0.1:{port}", "token": token, "c": c,
               "grace": pod_spec(docs)["terminationGracePeriodSeconds"], "app": app,
               "before": before, "log": log, "db": db_url}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def http_get(url: str, *, token: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
def test_the_container_answers_its_probes_and_stops_on_sigterm(pod):
    c, proc, base = pod["c"], pod["proc"], pod["base"]
    startup = c["startupProbe"]
    path = startup["httpGet"]["path"]
    # Ready within the startup probe's budget, as the kubelet would count it.
    deadline = time.monotonic() + startup["periodSeconds"] * startup["failureThreshold"]
    while True:
        assert proc.poll() is None, pod["log"].name
        try:
            status, body = http_get(base + path, timeout=startup["timeoutSeconds"])
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, f"no answer on {path} in time"
            time.sleep(0.1)
    # The probes send no token, and need none; the rest of the API does.
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert http_get(f"{base}/api/v1/incidents/1")[0] == 401
    assert http_get(f"{base}/api/v1/incidents/1", token=pod["token"])[0] == 404
    # What the kubelet sends after the preStop pause: the server stops within the grace
    # period. (uvicorn shuts down, then raises the signal it caught again: the process
    # ends by SIGTERM, as whoever sent it expects.)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=pod["grace"]) in (0, -signal.SIGTERM)
    # It wrote into its emptyDirs only: the project in /app is as the image holds it.
    app = pod["app"]
    assert tree(app, app / ".gameday") == pod["before"]
    assert not (app / ".gameday" / "gameday.db").exists()  # the store is the database
    store = Store(pod["db"])  # at the newest schema: the init container upgraded it
    store.close()


def test_without_the_schema_upgrade_the_server_refuses_to_start(tmp_path, postgres):
    """Why the init container is there: a PostgreSQL store behind this gameday's schema
    is refused, with what to run, before the server listens."""
    result = subprocess.run(
        [sys.executable, "-m", "gameday", "serve", "--no-scheduler", "--port",
         str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "GAMEDAY_DB": postgres.database(upgrade=False),
             "GAMEDAY_TOKEN": secrets.token_hex(32)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gameday db upgrade" in result.stderr and "Traceback" not in result.stderr


# -- on the real kwok control plane -------------------------------------------------------------
@pytest.fixture(scope="module")
def kwok():
    with kwok_cluster("gameday-serve", nodes=3) as cluster:
        yield cluster


def kubectl(kwok, *args: str, timeout: float = 120) -> str:
    return k8s.kubectl(kwok, "-n", NAMESPACE, *args, timeout=timeout)


def get(kwok, *args: str) -> Any:
    return json.loads(kubectl(kwok, "get", *args, "-o", "json"))


@pytest.fixture(scope="module")
def applied(kwok, tmp_path_factory) -> dict[str, Any]:
    """As the kustomization's header says: the namespace, enforcing the restricted Pod
    Security Standard; the Secret from the command line; the build, applied strictly."""
    out = tmp_path_factory.mktemp("serve-k8s")
    k8s.kubectl(kwok, "create", "namespace", NAMESPACE)
    k8s.kubectl(kwok, "label", "namespace", NAMESPACE,
                "pod-security.kubernetes.io/enforce=restricted",
                "pod-security.kubernetes.io/warn=restricted")
    kubectl(kwok, "create", "secret", "generic", "gameday-serve",
            "--from-literal=db-url=postgresql://gameday:pw@postgres.invalid:5432/gameday",
            f"--from-literal=token={secrets.token_hex(32)}")
    stream = out / "serve.yaml"
    stream.write_text(kustomize(DIR))
    warnings = apply_strictly(kwok, stream)
    return {"stream": stream, "warnings": warnings, "dir": out}


@pytest.mark.slow
@needs_build
def test_the_build_is_applied_strictly_and_two_ready_replicas_serve(kwok, applied):
    assert "PodSecurity" not in applied["warnings"], applied["warnings"]
    kubectl(kwok, "rollout", "status", "deployment/gameday-serve", "--timeout=120s")
    deployment = get(kwok, "deployment", "gameday-serve")
    replicas = deployment["spec"]["replicas"]
    status = deployment["status"]
    assert replicas >= 2 and status["readyReplicas"] == status["availableReplicas"] == replicas
    selector = ",".join(f"{k}={v}" for k, v in
                        deployment["spec"]["selector"]["matchLabels"].items())
    pods = get(kwok, "pods", "-l", selector)["items"]
    assert len(pods) == replicas
    for p in pods:
        ready = {c["type"]: c["status"] for c in p["status"]["conditions"]}
        assert p["status"]["phase"] == "Running" and ready["Ready"] == "True"
        # No API token was mounted into it.
        assert not any("projected" in v for v in p["spec"].get("volumes", [])), p["spec"]
        assert p["spec"]["securityContext"]["runAsUser"] == cronjob.UID
    # The Service's endpoints are those pods, on the port gameday serves.
    slices = get(kwok, "endpointslices", "-l", "kubernetes.io/service-name=gameday-serve")
    ready_ips = {a for s in slices["items"] for e in s.get("endpoints") or []
                 if e["conditions"].get("ready") for a in e["addresses"]}
    assert ready_ips == {p["status"]["podIP"] for p in pods}
    (served,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {p["port"] for s in slices["items"] for p in s["ports"]} == \
        {port_number(served, "http")}
    # The budget counts them, and allows one disruption.
    kubectl(kwok, "wait", "pdb/gameday-serve",
            f"--for=jsonpath={{.status.currentHealthy}}={replicas}", "--timeout=60s")
    budget = get(kwok, "pdb", "gameday-serve")["status"]
    assert (budget["expectedPods"], budget["desiredHealthy"], budget["disruptionsAllowed"]) \
        == (replicas, 1, replicas - 1)


@pytest.mark.slow
@needs_build
def test_strict_validation_and_the_namespace_refuse_what_they_should(kwok, applied):
    """The checks above have teeth: a misspelled field is refused, not dropped, and a
    pod with privilege escalation is refused in this namespace. The Secret's example is
    one the API server takes, should someone apply it after all."""
    apply_strictly(kwok, EXAMPLE, dry_run=True)
    stream = applied["stream"].read_text()
    typo = applied["dir"] / "typo.yaml"
    typo.write_text(stream.replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"))
    with pytest.raises(GamedayError, match="readOnlyRootFileSystem"):
        apply_strictly(kwok, typo, dry_run=True)
    template = get(kwok, "deployment", "gameday-serve")["spec"]["template"]
    template["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    loose = applied["dir"] / "loose-pod.yaml"
    loose.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod",
                                     "metadata": {"name": "loose", "namespace": NAMESPACE},
                                     "spec": template["spec"]}))
    with pytest.raises(GamedayError, match="PodSecurity"):
        apply_strictly(kwok, loose, dry_run=True)


def watch_events(text: str) -> list[dict[str, Any]]:
    """The JSON objects ``kubectl get -w -o json`` wrote, one after another."""
    decoder, out, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return out
        try:
            obj, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:  # the last one, cut off when the watch stopped
            return out
        out.append(obj)


@pytest.mark.slow
@needs_build
def test_a_rolling_restart_never_has_fewer_than_two_available(kwok, applied, tmp_path):
    kubectl(kwok, "rollout", "status", "deployment/gameday-serve", "--timeout=120s")
    seen = tmp_path / "watch.json"
    with seen.open("w") as sink:
        watch = subprocess.Popen([str(k8s.k8s_bin() / "kubectl"), "--kubeconfig",
                                  str(kwok.kubeconfig), "-n", NAMESPACE, "get", "deployment",
                                  "gameday-serve", "--watch", "-o", "json"],
                                 stdout=sink, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not watch_events(seen.read_text()):  # the watch has begun
                assert watch.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            kubectl(kwok, "rollout", "restart", "deployment/gameday-serve")
            kubectl(kwok, "rollout", "status", "deployment/gameday-serve", "--timeout=120s")
        finally:
            watch.terminate()
            watch.wait(timeout=30)
    states = [d for d in watch_events(seen.read_text()) if d.get("kind") == "Deployment"]
    replicas = states[0]["spec"]["replicas"]
    restarted = [d for d in states if d["metadata"]["generation"] > states[0]["metadata"]
                 ["generation"]]
    assert restarted, "the watch saw no restart"
    # Seen mid-way: more pods than replicas (the surge), and never fewer available.
    assert any(d["status"].get("replicas", 0) > replicas for d in restarted), \
        [d["status"] for d in restarted]
    assert min(d["status"].get("availableReplicas", 0) for d in states) >= replicas, \
        [d["status"] for d in states]
    final = get(kwok, "deployment", "gameday-serve")["status"]
    assert final["updatedReplicas"] == final["availableReplicas"] == replicas
