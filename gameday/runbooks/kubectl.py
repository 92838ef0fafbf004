"""What a runbook's kubectl commands do on the Kubernetes API, read from the runbook.

``KUBECTL`` maps each kubectl command a runbook may run to the requests kubectl sends
for it (as ``kubectl -v=6`` lists them); ``runbook_needs`` reads a runbook's tasks and
says, for each, the rules it needs, in which namespace (``--namespace``, default
"default") and which context (``--context``), with the runbook's parameters filled in.
``gameday.game.rbac`` builds a game day's Roles from it; ``gameday serve`` checks a run
against the project's allowlist with it before it starts.

It is read as kubectl would read it or not at all: flags as kubectl's parser (pflag)
takes them (``-nledger``, ``-n=ledger``, ``-n ledger``, ``--namespace=ledger`` and
``--namespace ledger`` alike; nothing after ``--`` is a flag). Anything it cannot read
is refused, naming the play or task, rather than read as acting in "default":

- a shell task, a module other than ``command``, a kubectl command not listed;
- a flag acting as someone else, elsewhere or everywhere (``REFUSED_FLAGS``, ``-A``
  among them), or short flags run together (``-wn``), which it does not unpick;
- what it cannot see: a play that imports a playbook or uses roles, a task that
  includes or imports tasks or a role, a block on another host (``delegate_to``);
- any ``environment:``, on a play, a block or a task, whatever it sets and whichever
  tasks it covers. The target gives kubectl its cluster (``KUBECONFIG``); a variable
  set there (``KUBECONFIG``, ``KUBERNETES_*``, ``HOME``, ``PATH``) could send kubectl to
  another cluster, as another user or to another kubectl. Telling the harmless ones
  apart is not worth the risk: a runbook for a cluster needs none.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from gameday.core.errors import ValidationError
from gameday.core.spec import read_yaml
from gameday.runbooks import plays
from gameday.runbooks.plays import BLOCKS, TASK_LISTS
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
# kubectl flags that take a value: the next argument, unless written --flag=value or, for
# a short flag, -fvalue or -f=value. A flag not here is read as taking none.
VALUE_FLAGS = frozenset({"--context", "--namespace", "-n", "--output", "-o", "--selector",
                         "-l", "--timeout", "--replicas", "--to-revision",
                         "--field-selector", "--request-timeout", "--grace-period",
                         "--current-replicas", "--resource-version", "-v", "--v",
                         "--sort-by", "--label-columns", "-L", "--chunk-size", "--template",
                         "--revision", "--field-manager", "--cache-dir", "--subresource"})
# Flags that act as someone else, somewhere else (objects named in a file, a raw path)
# or everywhere: never derived.
REFUSED_FLAGS = frozenset({"--as", "--as-group", "--as-uid", "--all-namespaces", "-A",
                           "--kubeconfig", "--server", "-s", "--token", "--user",
                           "--cluster", "--certificate-authority", "--client-certificate",
                           "--client-key", "--username", "--password", "--filename", "-f",
                           "--kustomize", "-k", "--raw"})
# Ansible modules that never reach the cluster.
QUIET_MODULES = plays.named("debug", "set_fact", "assert", "fail", "pause", "meta")
COMMAND_MODULES = plays.named("command")
# Tasks that run other tasks, from files gameday does not read.
INCLUDES = plays.INCLUDES | plays.ROLES
# Play keys that run a playbook or roles gameday does not read.
PLAY_IMPORTS = (*sorted(plays.PLAYBOOKS), "include", "roles")
TASK_KEYWORDS = frozenset({
    "name", "when", "register", "changed_when", "failed_when", "vars", "tags", "loop",
    "loop_control", "with_items", "ignore_errors", "retries", "delay", "until", "no_log",
    "args", "notify", "listen", "timeout", "check_mode", "diff", "run_once", "throttle",
    "any_errors_fatal", "environment", "become", "become_user", "collections",
    "module_defaults", "debugger", "ignore_unreachable"})


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
    """What each kubectl command of the runbook needs, and where; a ValidationError
    naming the file and the play or task for anything it cannot read."""
    plays = read_yaml(book.path)
    reader = _Reader(book, params)
    for p, play in enumerate(plays if isinstance(plays, list) else []):
        reader.play(play, str(p))
    return reader.needs


ENVIRONMENT = ("{} sets environment: gameday reads no runbook that does, on a play, a "
               "block or a task, since a variable set there (KUBECONFIG, KUBERNETES_*, "
               "HOME, PATH) could send kubectl to another cluster; the target gives "
               "kubectl its cluster")


@dataclass
class _Reader:
    """One runbook being read, play by play and task by task (blocks, rescues and
    always sections however deep), each kubectl command's need appended to ``needs``."""

    book: Runbook
    params: Mapping[str, Any]
    needs: list[Need] = field(default_factory=list)

    def refuse(self, why: str, where: str) -> ValidationError:
        return ValidationError(why, file=str(self.book.path), field=where)

    def play(self, play: Any, where: str) -> None:
        if not isinstance(play, dict):
            raise self.refuse(f"runbook {self.book.name}: a play is a mapping, not "
                              f"{type(play).__name__}", where)
        named = repr(play["name"]) if "name" in play else where
        what = f"play {named} of runbook {self.book.name}"
        for key in PLAY_IMPORTS:  # a playbook's or roles' tasks are not in this file
            if key in play:
                raise self.refuse(f"{what} uses {key}, whose tasks gameday cannot see, so "
                                  "it cannot tell what they do on the cluster: write them "
                                  "into the runbook", f"{where}.{key}")
        if "environment" in play:
            raise self.refuse(ENVIRONMENT.format(what), f"{where}.environment")
        for key in TASK_LISTS:
            self.tasks(play.get(key), f"{where}.{key}")

    def tasks(self, tasks: Any, where: str) -> None:
        if tasks is None:
            return
        if not isinstance(tasks, list):
            raise self.refuse(f"runbook {self.book.name}: must be a list of tasks, not "
                              f"{type(tasks).__name__}", where)
        for i, task in enumerate(tasks):
            self.task(task, f"{where}.{i}")

    def task(self, task: Any, where: str) -> None:
        if not isinstance(task, dict):
            raise self.refuse(f"runbook {self.book.name}: a task is a mapping, not "
                              f"{type(task).__name__}", where)
        block = any(k in task for k in BLOCKS)
        what = (f"{'block' if block else 'task'} {task.get('name', '?')!r} of runbook "
                f"{self.book.name}")
        if "environment" in task:
            raise self.refuse(ENVIRONMENT.format(what), f"{where}.environment")
        if block:
            self.block(task, what, where)
            return
        module = self.module(task, what, where)
        if module in COMMAND_MODULES:
            argv = self.argv(task, module, what, where)
            self.needs.append(_kubectl_needs(argv, self.params, what,
                                             str(self.book.path), where))

    def block(self, block: dict[str, Any], what: str, where: str) -> None:
        """A block's sections, read as tasks; a keyword that could run them elsewhere or
        as someone else (``delegate_to``) is refused, as it would be on a task."""
        unread = [k for k in block if k not in TASK_KEYWORDS and k not in BLOCKS]
        if unread:
            raise self.refuse(f"{what}: gameday does not read {', '.join(map(str, unread))} "
                              "on a block (it could run its tasks elsewhere)", where)
        for key in BLOCKS:
            self.tasks(block.get(key), f"{where}.{key}")

    def module(self, task: dict[str, Any], what: str, where: str) -> str:
        """The task's module: a kubectl command's or a quiet one, else refused."""
        modules = [str(k) for k in task if k not in TASK_KEYWORDS]
        if len(modules) != 1:
            raise self.refuse(f"{what}: cannot tell its module among "
                              f"{', '.join(modules) or 'nothing'}", where)
        module = modules[0]
        if module in INCLUDES:
            raise self.refuse(f"{what}: {module} runs tasks gameday cannot see, so it "
                              "cannot tell what they do on the cluster: write them into "
                              "the runbook", where)
        if module not in COMMAND_MODULES | QUIET_MODULES:
            raise self.refuse(
                f"{what} uses {module}, whose Kubernetes permissions gameday does not "
                f"know: only kubectl commands ({', '.join(sorted(COMMAND_MODULES))}) and "
                f"{', '.join(sorted(QUIET_MODULES))} are derived", where)
        return module

    def argv(self, task: dict[str, Any], module: str, what: str, where: str) -> list[str]:
        """The command a ``command`` task runs: its argv, or its free-form words."""
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
                raise self.refuse(f"{what}: {exc}", where) from None
        if not isinstance(argv, list) or not argv:
            raise self.refuse(f"{what}: no command to read", where)
        return [str(a) for a in argv]


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
    words, flags = _read_flags(argv[1:], refuse)
    rules = _rules(words, refuse)
    namespace, context = flags.get("--namespace"), flags.get("--context")
    ns = _template(namespace, params) if namespace is not None else "default"
    if ns is None or not DNS_LABEL.match(ns):
        raise refuse(f"its namespace {namespace!r} is not known before it runs")
    in_context = _template(context, params) if context is not None else None
    if context is not None and in_context is None:
        raise refuse(f"its context {context!r} is not known before it runs")
    if in_context == "":
        raise refuse("it names no context: an empty --context is whichever one the "
                     "kubeconfig has current")
    return Need(rules, ns, file, where, in_context)


Refuse = Callable[[str], ValidationError]
SAME_FLAG = {"-n": "--namespace"}


def _read_flags(args: list[str], refuse: Refuse) -> tuple[list[str], dict[str, str]]:
    """A kubectl command line's words, and each flag's value (the last one given), as
    kubectl's flag parser reads them: ``--flag value`` or ``--flag=value``; a short
    flag's value attached (``-nledger``, ``-n=ledger``) or next; after ``--``, words
    only. A flag in ``REFUSED_FLAGS`` is refused however it is written."""
    words: list[str] = []
    flags: dict[str, str] = {}
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            words.extend(rest)
            break
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        flag, value = _flag(arg, refuse)
        if flag in REFUSED_FLAGS:
            raise refuse(f"{flag} acts as someone else, elsewhere or everywhere")
        if value is None and flag in VALUE_FLAGS:
            value = next(rest, "")
        flags[SAME_FLAG.get(flag, flag)] = value or ""
    return words, flags


def _flag(arg: str, refuse: Refuse) -> tuple[str, str | None]:
    """One flag, and its value when the same argument carries it. Short flags run
    together (``-wn``: ``-w`` and ``-n``) are refused rather than unpicked: one read
    wrongly would be a namespace lost."""
    if arg.startswith("--"):
        flag, eq, value = arg.partition("=")
        return flag, value if eq else None
    flag, attached = arg[:2], arg[2:]
    if not attached or flag in REFUSED_FLAGS:
        return flag, None
    if flag in VALUE_FLAGS or attached.startswith("="):  # -nledger, -n=ledger, -w=false
        return flag, attached.removeprefix("=")
    raise refuse(f"{arg} runs short flags together: write each on its own")


def _rules(words: list[str], refuse: Refuse) -> tuple[Rule, ...]:
    """The rules of the kubectl command its words name, from ``KUBECTL``."""
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
    return rules


def _template(value: str, params: Mapping[str, Any]) -> str | None:
    """A value written as a literal or as one ``{{ parameter }}``, from the parameters."""
    if "{{" not in value and "{%" not in value:
        return value
    m = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", value.strip())
    if m and params.get(m.group(1)) is not None:
        return str(params[m.group(1)])
    return None
