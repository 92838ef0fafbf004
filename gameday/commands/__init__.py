"""Click command groups of the ``gameday`` CLI, and the state they share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from gameday.settings import Settings

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

            self._store = Store(self.settings.db_path)
        return self._store


pass_state = click.make_pass_decorator(State)


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
