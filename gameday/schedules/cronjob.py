"""Scheduled game days as Kubernetes CronJobs (``gameday schedule export NAME --kubernetes``).

``manifests`` turns a kind or kwok scenario and its schedule into the objects that run
``gameday run`` inside the cluster each time the schedule comes round; ``to_yaml``
writes them as one stream for ``kubectl apply``. The stream holds:

- a ConfigMap with the kubeconfig the pod uses: the cluster it runs in, through its
  ServiceAccount's token, under the context ``in-cluster``. kubectl in the runbooks
  needs a named context (they pass ``--context``); the Kubernetes client and
  chaostoolkit-kubernetes read the same file through ``$KUBECONFIG``;
- the ServiceAccount, and exactly the permissions the scenario needs: a Role and a
  RoleBinding in each namespace it acts on, and a ClusterRole and ClusterRoleBinding only
  when a fault or a runbook touches cluster-scoped resources (nodes);
- the CronJob: one run at a time, no retries, a deadline from the scenario's time boxes,
  non-root on a read-only root filesystem, its state in emptyDirs.

The namespace they live in is not in the stream: several schedules share it, and deleting
one schedule's objects must not delete the others'. The header says to create it once.

Permissions are derived, never guessed (``rbac``): a Role per namespace the scenario
touches, a ClusterRole for what is cluster-wide, nothing granted ``*``.

The pod runs the project's image: gameday's base image (the ``gameday`` target of the
repository's ``Dockerfile``, ``gameday:VERSION``) with the project's files
(``IMAGE_HOLDS``) copied into ``PROJECT_DIR`` by the project's ``Dockerfile`` (the one
``gameday init`` writes, ``gameday/scaffold/Dockerfile``). Given the project's
directory, ``manifests`` refuses a scenario whose files the image would not hold.
"""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from gameday import __version__
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.settings import BUILTIN_RUNBOOKS
from gameday.game import rbac
from gameday.game.reach import within_cluster
from gameday.runbooks.kubectl import DNS_LABEL
from gameday.scenarios.scenario import Scenario
from gameday.targets.cluster import IN_CLUSTER_CONTEXT, IN_CLUSTER_ENV

# -- where things are in the pod ---------------------------------------------------------
PROJECT_DIR = "/app"                         # the Dockerfile's WORKDIR: the project
STATE_DIR = f"{PROJECT_DIR}/.gameday"        # the project's state directory: an emptyDir
HOME_DIR = "/home/gameday"                   # ~/.ansible, ~/.kube/cache: an emptyDir
REPORTS_DIR = "/reports"                     # the JUnit report: an emptyDir
KUBECONFIG_DIR = "/etc/gameday"              # the ConfigMap's kubeconfig
KUBECONFIG_PATH = f"{KUBECONFIG_DIR}/kubeconfig"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
UID = 10001                                  # the image's user (Dockerfile)

# The image: gameday's base (``docker build --target gameday`` in gameday's repository),
# and what a project's Dockerfile copies onto it, into PROJECT_DIR: every file a game day
# reads from the project is in one of these.
BASE_IMAGE = f"gameday:{__version__}"
IMAGE_HOLDS = ("gameday.toml", "scenarios/", "experiments/", "runbooks/")

# The Job's deadline: the scenario's time boxes plus this much for everything they do not
# cover (pulling the image, the runbook's own waits, rollbacks, the review).
RUN_ALLOWANCE_S = 300
# On the deadline (or a deleted Job) the pod gets SIGTERM: gameday rolls the fault back
# and writes the review before it exits 143. This is how long it may take.
TERMINATION_GRACE_S = 120

RESOURCES = {"requests": {"cpu": "250m", "memory": "384Mi"},
             "limits": {"cpu": "1", "memory": "1Gi"}}

MAX_NAME = 52 - len("gameday-")  # a CronJob's name leaves 11 characters for its Jobs'


# -- the manifests -------------------------------------------------------------------------
def manifests(*, name: str, scenario: Scenario, scenario_path: str, cron: str | None,
              every_s: float | None, tz: str, image: str, namespace: str = "gameday",
              max_late_s: float | None = None, history: int = 3,
              jitter_s: float = 0.0, project: Path | None = None) -> list[dict[str, Any]]:
    """The objects that run ``scenario`` on a schedule in the cluster it targets.

    ``scenario_path`` is the scenario's path inside the image, relative to the project
    (``scenarios/kwok-nodes-cordoned.yaml``). Exactly one of ``cron`` (five fields or a
    macro such as ``@hourly``, read in ``tz``) and ``every_s`` (whole minutes that divide
    an hour, whole hours that divide a day, a day or a week) gives the schedule.
    ``max_late_s`` becomes the CronJob's starting deadline: a run that could not start
    that late is skipped. ``history`` finished Jobs of each outcome are kept. A CronJob
    has no jitter: ``jitter_s`` other than 0 is refused (``--jitter``). ``project``, the
    project's directory, when given: the scenario, its experiment and a runbook of the
    project must be where its image holds them (``IMAGE_HOLDS``). Every refusal is a
    ValidationError naming the flag, the scenario's field, or the experiment's activity
    or runbook's task it is about.
    """
    _exportable(scenario)
    _check_name(name, "name", MAX_NAME)
    _check_name(namespace, "--namespace", 63)
    if not image.strip() or any(c.isspace() for c in image):
        raise ValidationError(f"{image!r} is not an image reference", field="--image")
    if history < 0:
        raise ValidationError("must be 0 or more", field="--history")
    if max_late_s is not None and not (math.isfinite(max_late_s) and max_late_s > 0):
        raise ValidationError("must be a positive number of seconds", field="--max-late")
    if jitter_s:
        raise ValidationError(
            "Kubernetes CronJobs start on the minute, without jitter: export without it, or "
            "give a cron expression whose minute is the offset you want (e.g. '7 * * * *')",
            field="--jitter")
    path = _scenario_path(scenario_path)
    if project is not None:
        _check_in_image(project, scenario, path)
    schedule, zone = _schedule(cron, every_s, tz)
    workload_ns = scenario.workload["namespace"]

    grants = rbac.grants(scenario)
    labels = {"app.kubernetes.io/name": "gameday", "app.kubernetes.io/instance": name}
    sa = f"gameday-{name}"
    rbac_name = f"gameday:{namespace}:{name}"
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": namespace}

    def meta(obj_name: str, ns: str | None = namespace) -> dict[str, Any]:
        out: dict[str, Any] = {"name": obj_name}
        if ns is not None:
            out["namespace"] = ns
        out["labels"] = dict(labels)
        return out

    docs: list[dict[str, Any]] = []
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{sa}-kubeconfig"),
                 "data": {"kubeconfig": _kubeconfig(workload_ns)}})
    docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(sa),
                 "automountServiceAccountToken": True})
    namespaces = sorted((ns for ns in grants if ns is not None),
                        key=lambda ns: (ns != workload_ns, ns))
    for ns in namespaces:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": meta(rbac_name, ns), "rules": rbac.role_rules(grants[ns])})
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": meta(rbac_name, ns),
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": rbac_name},
                     "subjects": [subject]})
    if None in grants:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": meta(rbac_name, None), "rules": rbac.role_rules(grants[None])})
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1",
                     "kind": "ClusterRoleBinding", "metadata": meta(rbac_name, None),
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                 "kind": "ClusterRole", "name": rbac_name},
                     "subjects": [subject]})
    docs.append(_cronjob(name, sa, meta(sa), labels, scenario, str(path), schedule, zone,
                         image, max_late_s, history))
    return docs


def _cronjob(name: str, sa: str, metadata: dict[str, Any], labels: dict[str, str],
             scenario: Scenario, path: str, schedule: str, zone: str | None, image: str,
             max_late_s: float | None, history: int) -> dict[str, Any]:
    t = scenario.timeouts
    deadline = math.ceil(t.steady + t.detect + t.mitigate + t.recover) + RUN_ALLOWANCE_S
    env = {
        IN_CLUSTER_ENV: "1",
        "KUBECONFIG": KUBECONFIG_PATH,
        "GAMEDAY_DB": f"{STATE_DIR}/gameday.db",
        "GAMEDAY_RUNS": f"{STATE_DIR}/runs",
        "HOME": HOME_DIR,
        "TMPDIR": "/tmp",
    }
    scratch = {"state": (STATE_DIR, "1Gi"), "home": (HOME_DIR, "64Mi"),
               "tmp": ("/tmp", "256Mi"), "reports": (REPORTS_DIR, "16Mi")}
    container = {
        "name": "gameday",
        "image": image,
        "args": ["run", path, "--junit", f"{REPORTS_DIR}/{name}.xml"],
        "workingDir": PROJECT_DIR,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {k: dict(v) for k, v in RESOURCES.items()},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [*({"name": vol, "mountPath": where}
                           for vol, (where, _) in scratch.items()),
                         {"name": "kubeconfig", "mountPath": KUBECONFIG_DIR,
                          "readOnly": True}],
    }
    pod = {
        "serviceAccountName": sa,
        "automountServiceAccountToken": True,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [*({"name": vol, "emptyDir": {"sizeLimit": size}}
                      for vol, (_, size) in scratch.items()),
                    {"name": "kubeconfig", "configMap": {"name": f"{sa}-kubeconfig"}}],
    }
    spec: dict[str, Any] = {"schedule": schedule}
    if zone is not None:
        spec["timeZone"] = zone
    spec["concurrencyPolicy"] = "Forbid"
    if max_late_s is not None:
        spec["startingDeadlineSeconds"] = math.ceil(max_late_s)
    spec["successfulJobsHistoryLimit"] = history
    spec["failedJobsHistoryLimit"] = history
    spec["jobTemplate"] = {
        "metadata": {"labels": dict(labels)},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline,
                 "template": {"metadata": {"labels": dict(labels)}, "spec": pod}}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata, "spec": spec}


def _exportable(scenario: Scenario) -> None:
    """A scenario whose game day runs in a cluster; in a team's cluster, one whose
    Roles stay inside the namespaces the allowlist names."""
    if scenario.target in ("sandbox", "service"):
        raise ValidationError(f"a {scenario.target} target does not run in a cluster: export "
                              "a kind, kwok or kubernetes scenario", file=str(scenario.path),
                              field="target")
    within_cluster(scenario, IN_CLUSTER_CONTEXT)


def _kubeconfig(namespace: str) -> str:
    """The cluster the pod runs in, as its ServiceAccount, under one named context."""
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": IN_CLUSTER_CONTEXT, "cluster": {
            "server": "https://kubernetes.default.svc",
            "certificate-authority": f"{SA_DIR}/ca.crt"}}],
        "users": [{"name": IN_CLUSTER_CONTEXT, "user": {"tokenFile": f"{SA_DIR}/token"}}],
        "contexts": [{"name": IN_CLUSTER_CONTEXT, "context": {
            "cluster": IN_CLUSTER_CONTEXT, "user": IN_CLUSTER_CONTEXT,
            "namespace": namespace}}],
        "current-context": IN_CLUSTER_CONTEXT,
    }
    return yaml.safe_dump(config, sort_keys=False)


def _check_name(value: str, field: str, limit: int) -> None:
    if not DNS_LABEL.match(value) or len(value) > limit:
        raise ValidationError(f"{value!r} must be lower-case letters, digits and '-', "
                              f"starting and ending with a letter or digit, at most {limit} "
                              "characters (a Kubernetes name)", field=field)


def _scenario_path(given: str) -> PurePosixPath:
    path = PurePosixPath(given)
    if not given or path.is_absolute() or ".." in path.parts or "\\" in given:
        raise ValidationError(
            f"{given!r} must be the scenario's path relative to the project (the image "
            f"holds the project at {PROJECT_DIR}), e.g. scenarios/NAME.yaml",
            field="scenario")
    return path


def _check_in_image(project: Path, scenario: Scenario, path: PurePosixPath) -> None:
    """The files the game day reads from the project are where its image holds them:
    the scenario (at ``path`` under PROJECT_DIR), its experiment, and the runbook its
    alert routes to unless gameday ships it."""
    project = project.resolve()
    folders = [p for p in IMAGE_HOLDS if p.endswith("/")]

    def held(file: Path) -> PurePosixPath | None:
        try:
            relative = PurePosixPath(file.resolve().relative_to(project).as_posix())
        except ValueError:
            return None
        return relative if f"{relative.parts[0]}/" in folders else None

    def refuse(what: str, file: Path, field: str, where: str) -> ValidationError:
        return ValidationError(
            f"{what} {file.resolve()} is not in the project's image: its Dockerfile copies "
            f"{', '.join(IMAGE_HOLDS)} of {project} into {PROJECT_DIR}; move it into "
            f"{' or '.join(folders)}", file=where, field=field)

    found = held(scenario.path)
    if found is None:
        raise refuse("the scenario", scenario.path, "scenario", str(scenario.path))
    if found != path:
        raise ValidationError(f"the scenario is {found} in the project, not {path}",
                              file=str(scenario.path), field="scenario")
    if held(scenario.experiment) is None:
        raise refuse("the experiment", scenario.experiment, "experiment", str(scenario.path))
    book, _ = rbac.linked_runbook(scenario)
    if book is not None and not book.path.resolve().is_relative_to(BUILTIN_RUNBOOKS) \
            and held(book.path) is None:
        field = "response.runbook" if scenario.response.runbook else "alert"
        raise refuse(f"runbook {book.name}", book.path, field, str(scenario.path))


# -- the schedule --------------------------------------------------------------------------
CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily",
                         "@midnight", "@hourly"})
CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,-]+$")
EVERY_HELP = ("Kubernetes CronJobs run at most once a minute, on cron boundaries: give "
              "whole minutes that divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30m), "
              "whole hours that divide a day (1, 2, 3, 4, 6, 8, 12h), 1d or 7d, or a cron "
              "expression")


def cron_for_every(every_s: float) -> str:
    """The cron expression that runs every ``every_s`` seconds exactly, on cron
    boundaries; ValidationError (``--every``) when there is none."""
    minutes = every_s / 60
    if not math.isfinite(every_s) or every_s <= 0 or abs(minutes - round(minutes)) > 1e-9:
        raise ValidationError(f"{every_s:g}s is not a whole number of minutes. {EVERY_HELP}",
                              field="--every")
    m = round(minutes)
    if m < 60 and 60 % m == 0:
        return "* * * * *" if m == 1 else f"*/{m} * * * *"
    if m % 60 == 0:
        h = m // 60
        if h < 24 and 24 % h == 0:
            return "0 * * * *" if h == 1 else f"0 */{h} * * *"
        if h == 24:
            return "0 0 * * *"
        if h == 24 * 7:
            return "0 0 * * 0"
    raise ValidationError(f"{every_s:g}s does not divide an hour, a day or a week. "
                          f"{EVERY_HELP}", field="--every")


def _schedule(cron: str | None, every_s: float | None, tz: str) -> tuple[str, str | None]:
    """The CronJob's schedule, and its time zone (for a cron expression)."""
    if (cron is None) == (every_s is None):
        raise ValidationError("give a cron expression or an interval, not both or neither",
                              field="--cron")
    if every_s is not None:
        return cron_for_every(every_s), None
    assert cron is not None
    fields = cron.split()
    if cron.strip().startswith(("TZ=", "CRON_TZ=")):
        raise ValidationError("give the time zone with --tz, not in the expression",
                              field="--cron")
    if not (len(fields) == 1 and fields[0] in CRON_MACROS) and \
            not (len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields)):
        raise ValidationError(f"{cron!r} is not a cron expression: five fields (minute hour "
                              "day-of-month month day-of-week) or one of "
                              + ", ".join(sorted(CRON_MACROS)), field="--cron")
    _check_zone(tz)
    return " ".join(fields), tz


def _check_zone(tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ValueError, ZoneInfoNotFoundError):
        try:
            ZoneInfo("UTC")
        except ZoneInfoNotFoundError:
            return  # no time-zone database here to check against: the API server will
        raise ValidationError(f"{tz!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)",
                              field="--tz") from None


# -- the stream ---------------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the kubeconfig) as literal blocks, readable in the stream."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """``docs`` as one multi-document YAML stream, with a header saying how to apply it."""
    cronjob = next((d for d in docs if d.get("kind") == "CronJob"), None)
    if cronjob is None:
        raise GamedayError("no CronJob among the manifests")
    meta = cronjob["metadata"]
    image = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    header = "\n".join([
        f"# A scheduled game day: CronJob {meta['namespace']}/{meta['name']}, "
        f"schedule {cronjob['spec']['schedule']!r},",
        "# written by `gameday schedule export --kubernetes`. Apply it with server-side apply",
        "# and strict field validation (a misspelled field is refused, not dropped):",
        f"#   kubectl create namespace {meta['namespace']}   # once, if it is not there yet",
        "#   kubectl apply --server-side --field-manager=gameday --validate=strict -f FILE",
        "# and remove it with `kubectl delete -f FILE`.",
        f"# The pod runs {image}, the project's image: gameday's base image with",
        f"# the project's {', '.join(IMAGE_HOLDS)} in {PROJECT_DIR} (user {UID}).",
        "# Build the base once in a checkout of gameday's repository, then the project's",
        "# image in the project's directory (from the Dockerfile `gameday init` wrote; in",
        "# gameday's repository, a project too, the second command builds both), and push it",
        "# where the cluster pulls from:",
        f"#   docker build --target gameday -t {BASE_IMAGE} .",
        f"#   docker build -t {image} .",
        f"#   docker push {image}",
        f"# (a base pushed to a registry: --build-arg GAMEDAY_IMAGE=REGISTRY/{BASE_IMAGE}).",
        "# Its permissions are what the scenario's fault and runbook need, derived by",
        "# gameday.schedules.cronjob, and nothing more.",
        ""])
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         explicit_start=True, width=100)
    return header + body
