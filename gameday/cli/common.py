"""Click command groups of the ``gameday`` CLI, and the state they share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from gameday.core.settings import Settings

if TYPE_CHECKING:
    from gameday.store import Store


@dataclass
class State:
    """Shared CLI state on the Click context: the settings, resolved once when the
    command starts, and the store, opened on first use."""

    settings: Settings
    _store: Store | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        if self._store is None:
            from gameday.store import Store

            self._store = Store(self.settings.db)
            ctx = click.get_current_context(silent=True)
            if ctx is not None:  # its connections close with the command
                ctx.find_root().call_on_close(self._store.close)
        return self._store


pass_state = click.make_pass_decorator(State)


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class Duration(click.ParamType[float]):
    """``500ms``, ``2s``, ``5m``, ``1h`` or a number of seconds, as in scenarios."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        from gameday.core.spec import parse_duration

        seconds = parse_duration(value)
        if seconds is None:
            self.fail(f"{value!r} is not a duration like 30s, 5m or 1h", param, ctx)
        return seconds


class Since(click.ParamType[datetime]):
    """``30d``, ``2w``, ``12h`` back from now, or a date (``2026-11-01``, UTC)."""

    name = "since"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        from gameday.core.errors import ValidationError
        from gameday.report.insights import parse_since

        try:
            return parse_since(str(value))
        except ValidationError as exc:
            self.fail(str(exc), param, ctx)


def person(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback: a person's handle as the timeline records it and they sign in
    (``spec.PERSON``), else a usage error (exit 2)."""
    if value is None:
        return value
    from gameday.core.errors import ValidationError
    from gameday.incidents.moves import person as checked

    try:
        return checked(value)
    except ValidationError as exc:
        raise click.BadParameter(exc.message) from None
