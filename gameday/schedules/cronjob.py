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

Permissions are derived, never guessed. The fault registry
(``gameday.activities.faults``) says which API calls each Chaos Toolkit activity gameday
knows makes; ``KUBECTL`` maps each kubectl command a runbook may run to the requests
kubectl sends for it (as ``kubectl -v=6`` lists them); gameday's own view of the
workload (``OBSERVER``) is granted always. The experiment's probes, actions and
rollbacks, and the tasks of the runbook its alert routes to (``routing``), are read and
looked up there. Anything not in the tables (an unknown function, a ``process``
provider, a shell task, a kubectl command not listed) is refused, naming it, rather than
granted ``*``.

The pod runs the project's image: gameday's base image (the ``gameday`` target of the
repository's ``Dockerfile``, ``gameday:VERSION``) with the project's files
(``IMAGE_HOLDS``) copied into ``PROJECT_DIR`` by the project's ``Dockerfile`` (the one
``gameday init`` writes, ``gameday/scaffold/Dockerfile``). Given the project's
directory, ``manifests`` refuses a scenario whose files the image would not hold.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from gameday import __version__
from gameday.activities import faults
from gameday.activities.faults import Rule
from gameday.activities.toolkit import CORDON
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.settings import BUILTIN_RUNBOOKS
from gameday.core.spec import read_yaml
from gameday.runbooks.routing import route
from gameday.runbooks.runbook import Runbook
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

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 52 - len("gameday-")  # a CronJob's name leaves 11 characters for its Jobs'


# -- the permission table ------------------------------------------------------------------
_ns, _cluster = faults.ns, faults.cluster
_CORDON = CORDON

# kubectl commands in runbooks: (the command, with " NAME" when it names objects, the
# resource) and the requests kubectl v1.32 sends for them. Namespaced rules apply in the
# namespace of ``--namespace``/``-n`` (default "default").
KUBECTL: dict[tuple[str, str], tuple[Rule, ...]] = {
    ("get", "deployments"): (_ns("apps", "deployments", "list"),),
    ("get NAME", "deployments"): (_ns("apps", "deployments", "get"),),
    ("get", "pods"): (_ns("", "pods", "list"),),
    ("get NAME", "pods"): (_ns("", "pods", "get"),),
    ("get", "events"): (_ns("", "events", "list"),),
    ("get", "networkpolicies"): (_ns("networking.k8s.io", "networkpolicies", "list"),),
    ("get NAME", "networkpolicies"): (_ns("networking.k8s.io", "networkpolicies", "get"),),
    ("get", "nodes"): (_cluster("", "nodes", "list"),),
    ("get NAME", "nodes"): (_cluster("", "nodes", "get"),),
    # deletes, then reads it back to see it gone
    ("delete NAME", "networkpolicies"): (_ns("networking.k8s.io", "networkpolicies",
                                            "delete", "get"),),
    ("scale NAME", "deployments"): (_ns("apps", "deployments", "get"),
                                    _ns("apps", "deployments/scale", "patch")),
    ("rollout status NAME", "deployments"): (_ns("apps", "deployments", "get", "list",
                                                 "watch"),),
    ("rollout history NAME", "deployments"): (_ns("apps", "deployments", "get"),
                                              _ns("apps", "replicasets", "list")),
    ("rollout undo NAME", "deployments"): (_ns("apps", "deployments", "get", "patch"),
                                           _ns("apps", "replicasets", "list")),
    ("rollout restart NAME", "deployments"): (_ns("apps", "deployments", "get", "patch"),),
    ("cordon", "nodes"): _CORDON,      # with --selector
    ("uncordon", "nodes"): _CORDON,
    ("cordon NAME", "nodes"): (_cluster("", "nodes", "get", "patch"),),
    ("uncordon NAME", "nodes"): (_cluster("", "nodes", "get", "patch"),),
}

# gameday's own view of the workload, whatever the fault (``gameday.targets.kube``): the
# Deployment's status (the kwok SLIs, the replica counts in k8s.jsonl) and the
# namespace's events (the timeline). The node events it also looks for in "default"
# are not granted: the watch goes on without them.
OBSERVER = (_ns("apps", "deployments/status", "get"), _ns("", "events", "list"))

# What kubectl resource names (and their short and qualified forms) mean.
RESOURCE_NAMES = {
    alias: plural
    for plural, aliases in {
        "deployments": ("deployment", "deploy", "deployment.apps", "deployments.apps"),
        "pods": ("pod", "po"),
        "events": ("event", "ev"),
        "networkpolicies": ("networkpolicy", "netpol", "networkpolicy.networking.k8s.io",
                            "networkpolicies.networking.k8s.io"),
        "nodes": ("node", "no"),
    }.items()
    for alias in (plural, *aliases)
}
NODE_COMMANDS = ("cordon", "uncordon", "drain")
# kubectl flags that take a value (as the next argument unless written --flag=value).
VALUE_FLAGS = frozenset({"--context", "--namespace", "-n", "--output", "-o", "--selector",
                         "-l", "--timeout", "--replicas", "--to-revision",
                         "--field-selector", "--request-timeout", "--grace-period",
                         "--current-replicas", "--resource-version", "-v", "--v"})
# Flags that act as someone else, somewhere else, or everywhere: never derived.
REFUSED_FLAGS = frozenset({"--as", "--as-group", "--as-uid", "--all-namespaces", "-A",
                           "--kubeconfig", "--server", "-s", "--token", "--user",
                           "--cluster", "--certificate-authority"})
# Ansible modules that never reach the cluster.
QUIET_MODULES = frozenset(f"{prefix}{name}" for prefix in ("", "ansible.builtin.")
                          for name in ("debug", "set_fact", "assert", "fail", "pause",
                                       "meta"))
COMMAND_MODULES = frozenset({"command", "ansible.builtin.command"})
TASK_KEYWORDS = frozenset({
    "name", "when", "register", "changed_when", "failed_when", "vars", "tags", "loop",
    "loop_control", "with_items", "ignore_errors", "retries", "delay", "until", "no_log",
    "args", "notify", "listen", "timeout", "check_mode", "diff", "run_once", "throttle",
    "any_errors_fatal", "environment", "become", "become_user", "collections",
    "module_defaults", "debugger", "ignore_unreachable"})
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")


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
    if scenario.target == "sandbox":
        raise ValidationError("the sandbox runs inside the game day's own process: export "
                              "a kind or kwok scenario", file=str(scenario.path),
                              field="target")
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

    grants = _grants(scenario)
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
                     "metadata": meta(rbac_name, ns), "rules": _rules(grants[ns])})
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": meta(rbac_name, ns),
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": rbac_name},
                     "subjects": [subject]})
    if None in grants:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": meta(rbac_name, None), "rules": _rules(grants[None])})
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
    book, _ = _runbook(scenario)
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


# -- deriving the permissions ----------------------------------------------------------------
Grants = dict[str | None, dict[tuple[str, str], set[str]]]  # namespace (None: cluster)


def _grants(scenario: Scenario) -> Grants:
    grants: Grants = {}
    workload_ns = scenario.workload["namespace"]
    _grant(grants, OBSERVER, workload_ns)
    for rules, ns in _experiment_needs(scenario.experiment):
        _grant(grants, rules, ns)
    book, params = _runbook(scenario)
    if book is not None:
        for rules, ns in _runbook_needs(book, params):
            _grant(grants, rules, ns)
    return grants


def _grant(grants: Grants, rules: Iterable[Rule], namespace: str) -> None:
    for rule in rules:
        scope = grants.setdefault(None if rule.cluster else namespace, {})
        scope.setdefault((rule.group, rule.resource), set()).update(rule.verbs)


def _rules(scope: dict[tuple[str, str], set[str]]) -> list[dict[str, Any]]:
    return [{"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
            for (group, resource), verbs in sorted(scope.items())]


def _experiment_needs(path: Path) -> list[tuple[tuple[Rule, ...], str]]:
    """What each probe, action and rollback of the experiment needs, and where."""
    file = str(path)
    experiment = read_yaml(path)
    if not isinstance(experiment, dict):
        raise ValidationError("an experiment must be a mapping", file=file)
    configuration = experiment.get("configuration") or {}
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    sections = [("steady-state-hypothesis.probes",
                 hypothesis.get("probes") if isinstance(hypothesis, dict) else None),
                ("method", experiment.get("method")), ("rollbacks", experiment.get("rollbacks"))]
    needs = []
    for section, activities in sections:
        for i, activity in enumerate(activities or []):
            where = f"{section}.{i}"
            if not isinstance(activity, dict):
                raise ValidationError("an activity must be a mapping", file=file, field=where)
            if "ref" in activity and "provider" not in activity:
                continue  # the activity it refers to is counted where it is defined
            label = repr(activity.get("name", "?"))
            provider = activity.get("provider")
            kind = provider.get("type") if isinstance(provider, dict) else None
            if kind == "http":
                continue  # an HTTP call: nothing on the Kubernetes API
            if kind != "python" or not isinstance(provider, dict):
                raise ValidationError(
                    f"activity {label} has a {kind or 'missing'} provider: gameday cannot "
                    "tell which Kubernetes permissions it needs, and grants none it cannot "
                    "derive", file=file, field=f"{where}.provider")
            function = f"{provider.get('module')}:{provider.get('func')}"
            declared = faults.lookup(function)
            if declared is None or not (declared.rbac or declared.local):
                known = (f.key.replace(":", ".") for f in faults.known() if f.rbac)
                raise ValidationError(
                    f"activity {label} calls {function.replace(':', '.')}, whose Kubernetes "
                    "permissions gameday does not know (known: " + ", ".join(known)
                    + "); declare them with gameday.activities.faults (docs/extending.md) "
                    "rather than grant '*'", file=file, field=f"{where}.provider")
            rules = declared.rbac
            arguments = provider.get("arguments") or {}
            ns = arguments.get("ns", "default") if isinstance(arguments, dict) else "default"
            needs.append((rules, _configured(ns, configuration, file, f"{where} ({label})")))
    return needs


def _configured(value: Any, configuration: Any, file: str, where: str) -> str:
    """An activity's namespace argument, with ``${key}`` taken from the experiment's
    configuration when it is a plain value there."""
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{(\w+)\}", value.strip())
        if m and isinstance(configuration, dict):
            value = configuration.get(m.group(1))
    if not isinstance(value, str) or not DNS_LABEL.match(value):
        raise ValidationError(f"the namespace of {where} is not known before it runs "
                              f"({value!r}): give it as a plain namespace", file=file,
                              field=where)
    return value


def _runbook(scenario: Scenario) -> tuple[Runbook | None, dict[str, Any]]:
    """The runbook a game day would run for the scenario's alert (auto mode only: in a
    drill people run it, elsewhere), with its parameters as the pod would give them."""
    if scenario.response.mode != "auto":
        return None, {}
    alert = scenario.alert
    labels = {**alert.labels, "context": IN_CLUSTER_CONTEXT}  # what the target adds
    found = route(alert.name, labels, alert.annotations, runbook=scenario.response.runbook,
                  overrides=scenario.response.params)
    if found.error is not None:
        field = "response.runbook" if scenario.response.runbook else "alert"
        raise ValidationError(f"the runbook for {alert.name} cannot run: {found.error}",
                              file=str(scenario.path), field=field)
    return found.runbook, dict(found.params or {})


def _runbook_needs(book: Runbook, params: Mapping[str, Any]
                   ) -> list[tuple[tuple[Rule, ...], str]]:
    """What each kubectl command of the runbook needs, and where."""
    file = str(book.path)
    plays = read_yaml(book.path)
    needs: list[tuple[tuple[Rule, ...], str]] = []
    for p, play in enumerate(plays if isinstance(plays, list) else []):
        if not isinstance(play, dict):
            continue
        if play.get("roles"):
            raise ValidationError(f"runbook {book.name} uses roles, whose tasks gameday "
                                  "cannot see to derive their permissions", file=file,
                                  field=f"{p}.roles")
        for key in TASK_LISTS:
            tasks = play.get(key) or []
            for t, task in enumerate(tasks if isinstance(tasks, list) else []):
                _task_needs(book, task, f"{p}.{key}.{t}", params, needs)
    return needs


def _task_needs(book: Runbook, task: Any, where: str, params: Mapping[str, Any],
                needs: list[tuple[tuple[Rule, ...], str]]) -> None:
    file = str(book.path)
    if not isinstance(task, dict):
        return
    label = repr(task.get("name", "?"))
    nested = [k for k in ("block", "rescue", "always") if k in task]
    if nested:
        for k in nested:
            for i, inner in enumerate(task[k] or []):
                _task_needs(book, inner, f"{where}.{k}.{i}", params, needs)
        return
    modules = [k for k in task if k not in TASK_KEYWORDS]
    if len(modules) != 1:
        raise ValidationError(f"task {label} of runbook {book.name}: cannot tell its module "
                              f"among {', '.join(modules) or 'nothing'}", file=file,
                              field=where)
    module = modules[0]
    if module in QUIET_MODULES:
        return
    if module not in COMMAND_MODULES:
        raise ValidationError(
            f"task {label} of runbook {book.name} uses {module}, whose Kubernetes "
            "permissions gameday does not know: only kubectl commands "
            f"({', '.join(sorted(COMMAND_MODULES))}) and {', '.join(sorted(QUIET_MODULES))} "
            "are derived", file=file, field=where)
    spec, args = task[module], task.get("args")
    argv: Any = None
    if isinstance(spec, dict):
        argv = spec.get("argv") or spec.get("cmd")
    elif isinstance(spec, str):
        argv = spec
    if argv is None and isinstance(args, dict):
        argv = args.get("argv") or args.get("cmd")
    if isinstance(argv, str):
        argv = _split(argv)
    if not isinstance(argv, list) or not argv:
        raise ValidationError(f"task {label} of runbook {book.name}: no command to read",
                              file=file, field=where)
    needs.append(_kubectl_needs([str(a) for a in argv], params,
                                f"task {label} of runbook {book.name}", file, where))


def _split(command: str) -> list[str]:
    """A free-form command's words, as Ansible splits them: ``{{ ... }}`` stays one."""
    templates: list[str] = []

    def hold(m: re.Match[str]) -> str:
        templates.append(m.group(0))
        return f"\x00{len(templates) - 1}\x00"

    words = shlex.split(re.sub(r"\{\{.*?\}\}", hold, command))
    return [re.sub(r"\x00(\d+)\x00", lambda m: templates[int(m.group(1))], w) for w in words]


def _kubectl_needs(argv: list[str], params: Mapping[str, Any], what: str, file: str,
                   where: str) -> tuple[tuple[Rule, ...], str]:
    shown = " ".join(argv)

    def refuse(why: str) -> ValidationError:
        return ValidationError(f"{what} runs `{shown}`: {why}", file=file, field=where)

    if PurePosixPath(argv[0]).name != "kubectl":
        raise refuse("only kubectl commands have permissions gameday can derive")
    words: list[str] = []
    namespace: str | None = None
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-":
            flag, eq, value = arg.partition("=")
            if flag in REFUSED_FLAGS:
                raise refuse(f"{flag} acts as someone else, elsewhere or everywhere")
            if flag in VALUE_FLAGS and not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            if flag in ("--namespace", "-n"):
                namespace = value
        else:
            words.append(arg)
        i += 1
    if not words:
        raise refuse("no kubectl command")
    if words[0] == "rollout" and len(words) > 1:
        command, rest = f"rollout {words[1]}", words[2:]
    else:
        command, rest = words[0], words[1:]
    if command in NODE_COMMANDS:
        resource, named = "nodes", bool(rest)
    elif rest:
        kind, slash, _ = rest[0].partition("/")
        resource = RESOURCE_NAMES.get(kind.lower(), kind)
        named = bool(slash) or len(rest) > 1
    else:
        raise refuse("no resource named")
    rules = KUBECTL.get((f"{command} NAME" if named else command, resource))
    if rules is None:
        known = sorted({f"kubectl {c.replace(' NAME', '')} {r}" for c, r in KUBECTL})
        raise refuse("its permissions are not known to gameday (known: " + ", ".join(known)
                     + "); add it to gameday.schedules.cronjob.KUBECTL rather than grant '*'")
    ns = _template(namespace, params) if namespace is not None else "default"
    if ns is None or not DNS_LABEL.match(ns):
        raise refuse(f"its namespace {namespace!r} is not known before it runs")
    return rules, ns


def _template(value: str, params: Mapping[str, Any]) -> str | None:
    """A value written as a literal or as one ``{{ parameter }}``, from the parameters."""
    if "{{" not in value and "{%" not in value:
        return value
    m = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", value.strip())
    if m and params.get(m.group(1)) is not None:
        return str(params[m.group(1)])
    return None


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
