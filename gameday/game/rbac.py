"""Least privilege for a scenario in a cluster, derived, never guessed.

The fault registry (``gameday.activities.faults``) says which Kubernetes API calls each
Chaos Toolkit activity makes; ``KUBECTL`` maps each kubectl command a runbook may run to
the requests kubectl sends for it (as ``kubectl -v=6`` lists them); gameday's own view of
the workload (``OBSERVER``) is granted always. The experiment's probes, actions and
rollbacks, and the tasks of the runbook its alert routes to (``routing``), are looked up
there. Anything not there (an undeclared function, a ``process`` provider, a shell task,
a kubectl command not listed) is refused, naming it, rather than granted ``*``.
``grants`` is what a scenario needs, by namespace; ``role_rules`` writes one scope as a
Role's rules (``cronjob.manifests`` uses both).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gameday.activities import faults
from gameday.activities.faults import Rule
from gameday.activities.toolkit import CORDON
from gameday.core.errors import ValidationError
from gameday.core.spec import read_yaml
from gameday.runbooks.routing import route
from gameday.runbooks.runbook import Runbook
from gameday.scenarios.scenario import Scenario
from gameday.targets.cluster import IN_CLUSTER_CONTEXT

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # a namespace, a name


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


# -- deriving the permissions ----------------------------------------------------------------
Grants = dict[str | None, dict[tuple[str, str], set[str]]]  # namespace (None: cluster)


@dataclass(frozen=True)
class Need:
    """What one activity or runbook task needs: ``rules`` in ``namespace`` (cluster-wide
    rules anywhere), from ``file`` at ``where``; ``context``: the kubeconfig context a
    kubectl command names (``--context``), as it will run. ``source``: ``workload``
    (gameday's own view), ``experiment`` or ``runbook``."""

    rules: tuple[Rule, ...]
    namespace: str
    file: str
    where: str
    context: str | None = None
    source: str = "runbook"


def all_needs(scenario: Scenario, context: str = IN_CLUSTER_CONTEXT) -> list[Need]:
    """Everything the scenario's game day does on the Kubernetes API: gameday's own view
    of the workload, the experiment's activities, and the tasks of the runbook its alert
    links (with ``context`` as the label the target adds)."""
    found = [Need(OBSERVER, scenario.workload["namespace"], str(scenario.path),
                  "workload.namespace", source="workload")]
    found += _experiment_needs(scenario.experiment)
    book, params = linked_runbook(scenario, context)
    if book is not None:
        found += _runbook_needs(book, params)
    return found


def grants(scenario: Scenario, context: str = IN_CLUSTER_CONTEXT) -> Grants:
    grants: Grants = {}
    for need in all_needs(scenario, context):
        _grant(grants, need.rules, need.namespace)
    return grants


def _grant(grants: Grants, rules: Iterable[Rule], namespace: str) -> None:
    for rule in rules:
        scope = grants.setdefault(None if rule.cluster else namespace, {})
        scope.setdefault((rule.group, rule.resource), set()).update(rule.verbs)


def role_rules(scope: dict[tuple[str, str], set[str]]) -> list[dict[str, Any]]:
    return [{"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
            for (group, resource), verbs in sorted(scope.items())]


def _experiment_needs(path: Path) -> list[Need]:
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
            needs.append(Need(rules, _configured(ns, configuration, file, f"{where} ({label})"),
                              file, f"{where}.provider.arguments.ns", source="experiment"))
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


def linked_runbook(scenario: Scenario, context: str = IN_CLUSTER_CONTEXT
                   ) -> tuple[Runbook | None, dict[str, Any]]:
    """The runbook a game day would run for the scenario's alert (auto mode only: in a
    drill people run it, elsewhere), with its parameters as the target would give them
    (its ``context`` label: in the cluster, or the team's)."""
    if scenario.response.mode != "auto":
        return None, {}
    alert = scenario.alert
    labels = {**alert.labels, "context": context}  # what the target adds
    found = route(alert.name, labels, alert.annotations, runbook=scenario.response.runbook,
                  overrides=scenario.response.params)
    if found.error is not None:
        field = "response.runbook" if scenario.response.runbook else "alert"
        raise ValidationError(f"the runbook for {alert.name} cannot run: {found.error}",
                              file=str(scenario.path), field=field)
    return found.runbook, dict(found.params or {})


def _runbook_needs(book: Runbook, params: Mapping[str, Any]) -> list[Need]:
    """What each kubectl command of the runbook needs, and where."""
    file = str(book.path)
    plays = read_yaml(book.path)
    needs: list[Need] = []
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
                needs: list[Need]) -> None:
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
                   where: str) -> Need:
    shown = " ".join(argv)

    def refuse(why: str) -> ValidationError:
        return ValidationError(f"{what} runs `{shown}`: {why}", file=file, field=where)

    if PurePosixPath(argv[0]).name != "kubectl":
        raise refuse("only kubectl commands have permissions gameday can derive")
    words: list[str] = []
    namespace: str | None = None
    context: str | None = None
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
            elif flag == "--context":
                context = value
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
                     + "); add it to gameday.game.rbac.KUBECTL rather than grant '*'")
    ns = _template(namespace, params) if namespace is not None else "default"
    if ns is None or not DNS_LABEL.match(ns):
        raise refuse(f"its namespace {namespace!r} is not known before it runs")
    in_context = _template(context, params) if context is not None else None
    if context is not None and in_context is None:
        raise refuse(f"its context {context!r} is not known before it runs")
    return Need(rules, ns, file, where, in_context)


def _template(value: str, params: Mapping[str, Any]) -> str | None:
    """A value written as a literal or as one ``{{ parameter }}``, from the parameters."""
    if "{{" not in value and "{%" not in value:
        return value
    m = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", value.strip())
    if m and params.get(m.group(1)) is not None:
        return str(params[m.group(1)])
    return None
