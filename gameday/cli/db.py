"""``gameday db``: the store's schema.

A SQLite store is brought to the newest schema whenever it is opened. A PostgreSQL
store is shared by replicas, so its schema moves only when someone says so: ``gameday
db upgrade`` (a store whose schema is behind is refused until then, exit 1).
"""

from __future__ import annotations

import click

from gameday.cli.common import State, emit, pass_state


@click.group()
def db() -> None:
    """The store's schema (Alembic migrations)."""


@db.command()
@click.option("--json", "as_json", is_flag=True)
@pass_state
def upgrade(state: State, as_json: bool) -> None:
    """Bring the store (--db, GAMEDAY_DB, or the project's) to the newest schema."""
    from gameday.store import upgrade as upgrade_store

    revision = upgrade_store(state.settings.db)
    if as_json:
        emit({"db": state.settings.db.split("@")[-1], "revision": revision})
    else:
        click.echo(f"store at schema {revision}")
