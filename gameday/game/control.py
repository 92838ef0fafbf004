"""The gameday control for chaoslib: the seam between an experiment and a game day.

chaoslib calls these functions around the experiment's phases. They forward to the
game day's hooks object (installed by ``chaos.run``): it records the fault and the
rollbacks on the incident's timeline and, after the method, holds the experiment
while the incident response runs against the live fault. The rollbacks run inside
the ``shield`` ``chaos.run`` installs (``interrupts.shielded``): a signal then is
remembered (``chaos.run`` ends the experiment ``interrupted``), never raised inside a
rollback, which chaoslib would give up on with the rest of them, the fault left in.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

_hooks: Any | None = None
_shield: Callable[[], AbstractContextManager[Any]] = nullcontext
_shielding = ExitStack()  # held while the rollbacks run


def install(hooks: Any,
            shield: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
    global _hooks, _shield
    _hooks, _shield = hooks, shield


def uninstall() -> None:
    global _hooks
    _hooks = None
    _shielding.close()


def before_method_control(context: dict[str, Any], **kwargs: Any) -> None:
    if _hooks:
        _hooks.phase("method")


def after_method_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    if _hooks:
        _hooks.phase("hold")
        _hooks.hold()
        _hooks.phase("after")


def before_rollback_control(context: dict[str, Any], **kwargs: Any) -> None:
    if _hooks:
        _shielding.close()  # one shield, however often chaoslib says the rollbacks begin
        _shielding.enter_context(_shield())
        _hooks.phase("rollbacks")


def after_rollback_control(context: dict[str, Any], state: Any = None,
                           **kwargs: Any) -> None:
    _shielding.close()


def before_activity_control(context: dict[str, Any], **kwargs: Any) -> None:
    if _hooks:
        _hooks.activity_starting(context)


def after_activity_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    if _hooks:
        _hooks.activity(context, state or {})


def after_hypothesis_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    if _hooks and state is not None:
        _hooks.hypothesis(state)
