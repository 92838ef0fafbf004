"""Click command groups of the ``gameday`` CLI, and the state they share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from gameday.core.settings import Settings
from gameday.core.text import LARGEST

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


class Whole(click.ParamType[int]):
    """A whole number from ``least`` to ``most`` (or at least ``least``), else a usage
    error (exit 2) naming the parameter: ``ID``, ``COUNT`` and ``DAYS`` below, the one
    rule for every id, count and age the command line takes."""

    DIGITS = re.compile(r"[+-]?[0-9]{1,30}")  # more is past every bound (and any age) here

    def __init__(self, name: str, what: str, least: int, most: int | None = None) -> None:
        self.name, self.what, self.least, self.most = name, what, least, most

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif self.DIGITS.fullmatch(text := str(value).strip()):
            number = int(text)
        else:
            number = None
        if number is None or number < self.least or (self.most is not None
                                                     and number > self.most):
            bounds = (f" from {self.least} to {self.most}" if self.most is not None
                      else f", at least {self.least}")
            self.fail(f"{str(value)[:40]!r} is not {self.what} (a whole number{bounds})",
                      param, ctx)
        return number


# An id of an incident, drill, action item...: what the store's 64-bit INTEGER keeps.
# One that fits but is not there is the command's own answer (``no incident 12``, exit 1).
ID = Whole("id", "an id", 1, LARGEST)
# How many (``--limit``): any count the store's LIMIT takes, the largest meaning "all".
COUNT = Whole("count", "a count", 1, LARGEST)
# How old, in days (``--max-age``): the rule of ``[automation] max_age_days``.
DAYS = Whole("days", "a number of days", 1)


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
