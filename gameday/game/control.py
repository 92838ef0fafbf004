"""The gameday control for chaoslib: the seam between an experiment and a game day.

chaoslib calls these functions around the experiment's phases. They forward to the
game day's hooks object (installed by ``chaos.run``): it records the fault and the
rollbacks on the incident's timeline and, after the method, holds the experiment
while the incident response runs against the live fault.
"""

from __future__ import annotations

from typing import Any

_hooks: Any | None = None


def install(hooks: Any) -> None:
    global _hooks
    _hooks = hooks


def uninstall() -> None:
    global _hooks
    _hooks = None


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
        _hooks.phase("rollbacks")


def before_activity_control(context: dict[str, Any], **kwargs: Any) -> None:
    if _hooks:
        _hooks.activity_starting(context)


def after_activity_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    if _hooks:
        _hooks.activity(context, state or {})


def after_hypothesis_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    if _hooks and state is not None:
        _hooks.hypothesis(state)
