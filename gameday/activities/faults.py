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
  and ``gameday run`` refuse an experiment that reaches outside the allowlist;
- ``acts_on``: what, given its arguments (the function's defaults filled in), it acts on,
  as ``Part``s: each a tuple of (argument, value) pairs, say the toxic
  ``(("name", "gameday-latency"), ("proxy", "checkout-payments"), ("api", ...))``. A fault
  and the rollbacks that undo it declare the same one, so ``not_undone`` can tell a
  rollback that undoes something else (another toxic, another host) from one that
  undoes the fault: the first would report success and leave the fault in.

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
from dataclasses import dataclass, replace
from typing import Any, TypeVar

# A fault's Kubernetes rules are the runbooks' kind: one home (``runbooks.kubectl``).
from gameday.runbooks.kubectl import Rule as Rule
from gameday.runbooks.kubectl import cluster as cluster
from gameday.runbooks.kubectl import ns as ns

F = TypeVar("F", bound=Callable[..., object])
Part = tuple[tuple[str, str], ...]  # one thing an activity acts on: (argument, value)s
# an activity's arguments -> what it acts on (the values made strings into Parts); None
# where its arguments leave that open (every replica of a service, say)
ActsOn = Callable[[Mapping[str, Any]], Iterable[tuple[tuple[str, Any], ...]] | None]

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
    # what it acts on, from an activity's arguments as given; None: it cannot tell
    acts_on: Callable[[Mapping[str, Any]], frozenset[Part] | None] | None = None

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
            defaults: Mapping[str, object] | None = None,
            acts_on: ActsOn | None = None) -> Fault:
    """Declare an activity of a module you cannot decorate (a third party's); its
    ``acts_on`` is given the arguments as the experiment writes them."""
    key, undo = _key(module, function, rollback)
    declared = Fault(key, undo, tuple(rbac), local, factor, action, probe,
                     tuple((touches or {}).items()), tuple((defaults or {}).items()),
                     None if acts_on is None else _parts(acts_on))
    _REGISTRY[key] = declared
    return declared


def _parts(acts_on: ActsOn, bind: Callable[[Mapping[str, Any]], Mapping[str, Any] | None]
           = dict) -> Callable[[Mapping[str, Any]], frozenset[Part] | None]:
    def parts(arguments: Mapping[str, Any]) -> frozenset[Part] | None:
        bound = bind(arguments)
        found = None if bound is None else acts_on(bound)
        if found is None:
            return None
        return frozenset(tuple((str(argument), str(value)) for argument, value in part)
                         for part in found)
    return parts


def _binder(func: Callable[..., object]) -> Callable[[Mapping[str, Any]], dict[str, Any] | None]:
    """An activity's arguments as ``func`` takes them, its defaults filled in; None for
    arguments it does not take (chaoslib refuses those itself)."""
    signature = inspect.signature(func)

    def bind(arguments: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            bound = signature.bind_partial(**arguments)
        except TypeError:
            return None
        bound.apply_defaults()
        return dict(bound.arguments)
    return bind


def fault(*, rollback: Iterable[str] = (), rbac: Iterable[Rule] = (), local: bool = False,
          factor: str | None = None, action: str | None = None,
          probe: bool = False, touches: Mapping[str, str] | None = None,
          acts_on: ActsOn | None = None) -> Callable[[F], F]:
    """Declare the decorated function (an action, a rollback or a probe); the function
    itself is unchanged, so Chaos Toolkit calls it as it is. Its ``acts_on`` is given
    the arguments as the function binds them, its defaults filled in."""
    def register(func: F) -> F:
        parameters = inspect.signature(func).parameters
        defaults = {name: parameters[name].default for name in touches or {}
                    if name in parameters
                    and parameters[name].default is not inspect.Parameter.empty}
        declared = declare(func.__module__, func.__name__, rollback=rollback, rbac=rbac,
                           local=local, factor=factor, action=action, probe=probe,
                           touches=touches, defaults=defaults)
        if acts_on is not None:
            _REGISTRY[declared.key] = replace(declared,
                                              acts_on=_parts(acts_on, _binder(func)))
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


@dataclass(frozen=True)
class NotUndone:
    """A fault that no rollback undoes: ``field``, where to put it right (the fault, or
    the argument of the rollback that acts on something else), and why."""

    field: str
    reason: str


def _arguments(activity: object) -> dict[str, Any]:
    provider = activity.get("provider") if isinstance(activity, dict) else None
    arguments = provider.get("arguments") if isinstance(provider, dict) else None
    return arguments if isinstance(arguments, dict) else {}


def _dotted(key: str) -> str:
    return key.replace(":", ".")


def not_undone(experiment: dict[str, object]) -> list[NotUndone]:
    """The faults ``experiment``'s method injects that none of its rollbacks undoes: no
    rollback of a function that undoes it, or (where both declare ``acts_on``) none
    that acts on what the fault acts on."""
    method, rollbacks = experiment.get("method"), experiment.get("rollbacks")
    undo = [(f"rollbacks[{i}]", r)
            for i, r in enumerate(rollbacks if isinstance(rollbacks, list) else [])]
    found = [undone_by(f"method[{index}]", activity, undo)
             for index, activity in enumerate(method if isinstance(method, list) else [])]
    return [one for one in found if one is not None]


def undone_by(where: str, activity: object,
              rollbacks: list[tuple[str, object]]) -> NotUndone | None:
    """Why none of ``rollbacks`` ((where, activity) each) undoes the fault ``activity``
    (at ``where``); None when one does, or it is no fault to undo."""
    key = _python_key(activity)
    declared = lookup(key) if key else None
    if key is None or declared is None or not declared.rollback:
        return None
    name = str((activity.get("name") if isinstance(activity, dict) else None) or key)
    candidates = [(at, r) for at, r in rollbacks if _python_key(r) in declared.rollback]
    if not candidates:
        return NotUndone(where, (
            f"action {name!r} injects {_dotted(key)}, and no rollback undoes it: add one of "
            f"{', '.join(_dotted(k) for k in declared.rollback)} to rollbacks, so the fault "
            "cannot outlive the game day"))
    wanted = declared.acts_on(_arguments(activity)) if declared.acts_on else None
    if wanted is None:
        return None  # it does not say what it acts on: a rollback of its kind undoes it
    undone: list[tuple[str, object, frozenset[Part]]] = []
    for at, rollback in candidates:
        undo = lookup(str(_python_key(rollback)))
        parts = undo.acts_on(_arguments(rollback)) if undo and undo.acts_on else None
        if parts is None:
            return None  # nor does this rollback: its kind undoes the fault
        undone.append((at, rollback, parts))
    covered: frozenset[Part] = frozenset().union(*(parts for _, _, parts in undone))
    left = sorted(wanted - covered)
    return _acts_elsewhere(where, name, left[0], undone) if left else None


def _acts_elsewhere(where: str, name: str, part: Part,
                    undone: list[tuple[str, object, frozenset[Part]]]) -> NotUndone:
    """The rollback nearest to undoing ``part`` (the most arguments alike), and what it
    acts on instead."""
    ours = dict(part)

    def alike(theirs: Part) -> int:
        return sum(ours.get(argument) == value for argument, value in theirs)

    at, rollback, theirs = max(((at, rb, p) for at, rb, parts in undone for p in parts),
                               key=lambda found: alike(found[2]),
                               default=(undone[0][0], undone[0][1], ()))
    other = dict(theirs)
    differ = [argument for argument in ours if other.get(argument) != ours[argument]] \
        or list(ours)
    label = (rollback.get("name") if isinstance(rollback, dict) else None) or at
    said = ", ".join(f"{a} {other[a]!r}" for a in differ if a in other) or "nothing"
    return NotUndone(f"{at}.provider.arguments.{differ[0]}", (
        f"rollback {label!r} does not undo action {name!r} ({where}): the action acts on "
        f"{', '.join(f'{a} {ours[a]!r}' for a in differ)}, the rollback on {said}, so it "
        "would report success and leave the fault in: give the rollback the action's "
        f"{', '.join(differ)}"))


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
