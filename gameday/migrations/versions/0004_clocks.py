"""Clocks for several hosts on one store.

Heartbeats are on the database's clock now (``Store._clock_sql``): the runs left
unfinished before this revision get one, so they are judged like the others.

Each incident's clock (``incidents.clock_boot``, ``clock_mono_ns``, ``clock_epoch_ns``):
timelines are timed by the monotonic clock of the host that opened the incident (a
game day's measurements are); an event recorded on another host (a responder's move
through another replica) is placed on that clock through the wall clock
(``Store.append``), since monotonic clocks of two hosts cannot be compared. Incidents
from before keep their events' times as they were recorded.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    now = ("EXTRACT(EPOCH FROM clock_timestamp())" if postgres
           else "(julianday('now') - 2440587.5) * 86400.0")
    op.execute(f"UPDATE runbook_runs SET heartbeat = {now} WHERE status IN"
               " ('queued', 'running') AND heartbeat IS NULL")
    integer = "BIGINT" if postgres else "INTEGER"
    op.execute("ALTER TABLE incidents ADD COLUMN clock_boot TEXT")
    op.execute(f"ALTER TABLE incidents ADD COLUMN clock_mono_ns {integer}")
    op.execute(f"ALTER TABLE incidents ADD COLUMN clock_epoch_ns {integer}")


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
