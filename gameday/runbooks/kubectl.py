"""What a runbook's kubectl commands do on the Kubernetes API, read from the runbook.

``KUBECTL`` maps each kubectl command a runbook may run to the requests kubectl sends
for it (as ``kubectl -v=6`` lists them); ``runbook_needs`` reads a runbook's tasks and
says, for each, the rules it needs, in which namespace (``--namespace``, default
"default") and which context (``--context``), with the runbook's parameters filled in.
Anything it cannot read (a shell task, a module other than ``command``, a kubectl
command not listed, a flag acting as someone else or everywhere) is refused, naming the
task. ``gameday.game.rbac`` builds a game day's Roles from it; ``gameday serve`` checks
a run against the project's allowlist with it before it starts.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from gameday.core.errors import ValidationError
from gameday.core.spec import read_yaml
from gameday.runbooks.runbook import Runbook

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # a namespace, a name


@dataclass(frozen=True)
class Rule:
    """Verbs on one resource of one API group (``""`` is the core group; a subresource is
    written ``deployments/scale``). ``cluster``: granted cluster-wide by the ClusterRole
    (cluster-scoped resources, or calls across every namespace); otherwise in the
    namespace the activity acts on (its ``ns`` argument, default "default")."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    cluster: bool = False


def ns(group: str, resource: str, *verbs: str) -> Rule:
    return Rule(group, resource, verbs)


def cluster(group: str, resource: str, *verbs: str) -> Rule:
    return Rule(group, resource, verbs, cluster=True)


_ns, _cluster = ns, cluster
CORDON = (cluster("", "nodes", "list", "patch"),)
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



def runbook_needs(book: Runbook, params: Mapping[str, Any]) -> list[Need]:
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
        try:
            argv = _split(argv)
        except ValueError as exc:
            raise ValidationError(f"task {label} of runbook {book.name}: {exc}", file=file,
                                  field=where) from None
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

    try:
        words = shlex.split(re.sub(r"\{\{.*?\}\}", hold, command))
    except ValueError as exc:  # unbalanced quotes: Ansible would not run it either
        raise ValueError(f"cannot split {command[:200]!r} into words: {exc}") from None
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
