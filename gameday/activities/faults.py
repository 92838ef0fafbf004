"""The fault registry: what gameday knows about each Chaos Toolkit activity, said once.

An activity is a ``python`` provider's ``module:function``. Its declaration says:

- ``rollback``: the activities that undo it (an experiment that runs the fault must list
  one of them in its ``rollbacks``, so the fault cannot outlive the game day), or none
  when the system heals by itself (a deleted pod is replaced) or it is a probe;
- ``rbac``: the Kubernetes API calls it makes (``Rule``), from which ``gameday schedule
  export --kubernetes`` derives a CronJob's least-privilege Role (an activity with no
  rules that is not declared ``local`` is refused there rather than granted ``*``);
- ``factor`` and ``action``: the contributing factor a review lists when a game day
  injects it, and the action item that follows (systems and processes, never people);
- ``touches``: which of its arguments name a part of a team's own system, and the
  ``[safety]`` list that must admit it (``{"proxy": "proxies"}``): ``gameday validate``
  and ``gameday run`` refuse an experiment that reaches outside the allowlist.

gameday's own activities declare themselves with ``@fault`` beside their code
(``gameday.activities.sandbox``, ``gameday.activities.kubernetes``);
chaostoolkit-kubernetes' are declared with ``declare`` in
``gameday.activities.toolkit``. A team's own module does the same (docs/extending.md):
``lookup`` imports the module an experiment names, so its ``@fault`` declarations are
known wherever the experiment is checked or run.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

# A fault's Kubernetes rules are the runbooks' kind: one home (``runbooks.kubectl``).
from gameday.runbooks.kubectl import Rule as Rule
from gameday.runbooks.kubectl import cluster as cluster
from gameday.runbooks.kubectl import ns as ns

F = TypeVar("F", bound=Callable[..., object])

BUILTIN = ("gameday.activities.toolkit", "gameday.activities.sandbox",
           "gameday.activities.kubernetes", "gameday.activities.toxiproxy",
           "gameday.activities.hosts")


@dataclass(frozen=True)
class Fault:
    key: str                              # "module:function"
    rollback: tuple[str, ...] = ()        # "module:function"s that undo it
    rbac: tuple[Rule, ...] = ()           # the Kubernetes API calls it makes
    local: bool = False                   # touches no Kubernetes API at all (the sandbox)
    factor: str | None = None             # the review's contributing factor
    action: str | None = None             # and its action item
    probe: bool = False                   # reads, never changes anything
    touches: tuple[tuple[str, str], ...] = ()  # (argument, [safety] list) it reaches
    defaults: tuple[tuple[str, object], ...] = ()  # those arguments' defaults

    @property
    def module(self) -> str:
        return self.key.partition(":")[0]

    @property
    def function(self) -> str:
        return self.key.partition(":")[2]


_REGISTRY: dict[str, Fault] = {}
_loaded: set[str] = set()


def _key(module: str, function: str, rollback: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    # a rollback written as a bare function name is in the same module
    return f"{module}:{function}", tuple(r if ":" in r else f"{module}:{r}" for r in rollback)


def declare(module: str, function: str, *, rollback: Iterable[str] = (),
            rbac: Iterable[Rule] = (), local: bool = False, factor: str | None = None,
            action: str | None = None, probe: bool = False,
            touches: Mapping[str, str] | None = None,
            defaults: Mapping[str, object] | None = None) -> Fault:
    """Declare an activity of a module you cannot decorate (a third party's)."""
    key, undo = _key(module, function, rollback)
    declared = Fault(key, undo, tuple(rbac), local, factor, action, probe,
                     tuple((touches or {}).items()), tuple((defaults or {}).items()))
    _REGISTRY[key] = declared
    return declared


def fault(*, rollback: Iterable[str] = (), rbac: Iterable[Rule] = (), local: bool = False,
          factor: str | None = None, action: str | None = None,
          probe: bool = False, touches: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Declare the decorated function (an action, a rollback or a probe); the function
    itself is unchanged, so Chaos Toolkit calls it as it is."""
    def register(func: F) -> F:
        parameters = inspect.signature(func).parameters
        defaults = {name: parameters[name].default for name in touches or {}
                    if name in parameters
                    and parameters[name].default is not inspect.Parameter.empty}
        declare(func.__module__, func.__name__, rollback=rollback, rbac=rbac, local=local,
                factor=factor, action=action, probe=probe, touches=touches,
                defaults=defaults)
        return func
    return register


def _load(module: str) -> None:
    if module in _loaded:
        return
    _loaded.add(module)
    # not importable here: not declared (chaoslib names a missing module itself)
    with contextlib.suppress(ImportError):
        importlib.import_module(module)


def lookup(key: str) -> Fault | None:
    """The declaration of ``module:function``, importing gameday's declarations and the
    activity's own module first; None when nothing declares it."""
    for module in (*BUILTIN, key.partition(":")[0]):
        _load(module)
    return _REGISTRY.get(key)


def known() -> list[Fault]:
    """Every declared activity (gameday's own, and the modules looked up so far)."""
    for module in BUILTIN:
        _load(module)
    return sorted(_REGISTRY.values(), key=lambda f: f.key)


def _python_key(activity: object) -> str | None:
    provider = activity.get("provider") if isinstance(activity, dict) else None
    if not isinstance(provider, dict) or provider.get("type") != "python":
        return None
    return f"{provider.get('module')}:{provider.get('func')}"


def not_undone(experiment: dict[str, object]) -> list[tuple[int, str, Fault]]:
    """The faults ``experiment``'s method injects that none of its rollbacks undoes:
    (index in ``method``, the action's name, its declaration)."""
    method = experiment.get("method")
    rollbacks = experiment.get("rollbacks")
    undo = {_python_key(r) for r in rollbacks} if isinstance(rollbacks, list) else set()
    missing = []
    for index, activity in enumerate(method if isinstance(method, list) else []):
        key = _python_key(activity)
        declared = lookup(key) if key else None
        if declared and declared.rollback and not undo & set(declared.rollback):
            name = activity.get("name") if isinstance(activity, dict) else None
            missing.append((index, str(name or key), declared))
    return missing


def activities(experiment: dict[str, object]) -> list[tuple[str, object]]:
    """Each activity of ``experiment`` (its hypothesis's probes, its method, its
    rollbacks) and where it is (``method[0]``)."""
    hypothesis = experiment.get("steady-state-hypothesis")
    probes = hypothesis.get("probes") if isinstance(hypothesis, dict) else None
    return [(f"{section}[{index}]", activity)
            for section, listed in (("steady-state-hypothesis.probes", probes),
                                    ("method", experiment.get("method")),
                                    ("rollbacks", experiment.get("rollbacks")))
            for index, activity in enumerate(listed if isinstance(listed, list) else [])]


def reaches(experiment: dict[str, object]) -> list[tuple[str, str, object]]:
    """What ``experiment``'s activities touch of a team's own system: (where in the
    experiment, the ``[safety]`` list, the value), from their ``touches`` declarations."""
    found = []
    for where, activity in activities(experiment):
        key = _python_key(activity)
        declared = lookup(key) if key else None
        if not declared or not declared.touches:
            continue
        provider = activity["provider"] if isinstance(activity, dict) else {}
        arguments = provider.get("arguments") if isinstance(provider, dict) else None
        given = arguments if isinstance(arguments, dict) else {}
        defaults = dict(declared.defaults)
        for argument, kind in declared.touches:
            if argument in given or argument in defaults:
                value = given.get(argument, defaults.get(argument))
                found.append((f"{where}.provider.arguments.{argument}", kind, value))
    return found
