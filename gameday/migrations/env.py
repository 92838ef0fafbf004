"""Alembic's environment for the store: ``gameday db upgrade`` (and, for SQLite, opening
a store) runs the revisions in ``versions/`` on the connection the store hands over."""

from typing import Any

from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")


def _run(conn: Any) -> None:
    context.configure(connection=conn)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
