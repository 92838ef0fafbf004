"""Click command groups of the ``gameday`` CLI, and the state they share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click


@dataclass
class State:
    """Shared CLI state on the Click context: the store is opened on first use."""

    db: str | None = None
    _store: Any = field(default=None, repr=False)

    @property
    def store(self):
        if self._store is None:
            from gameday.store import Store

            self._store = Store(self.db)
        return self._store


pass_state = click.make_pass_decorator(State, ensure=True)


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
