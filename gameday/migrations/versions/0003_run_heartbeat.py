"""A runbook run's heartbeat (``runbook_runs.heartbeat``, Unix time): the process that
holds a run (queued in a ``gameday serve``, or running anywhere) refreshes it every few
seconds, so a replica can tell that a run whose server died on another host, a
Kubernetes pod that is gone, will never finish (``runs.orphaned``), and end it: no
alert joins it and it no longer holds its runbook's concurrency slot.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("ALTER TABLE runbook_runs ADD COLUMN heartbeat "
               + ("DOUBLE PRECISION" if postgres else "REAL"))
    op.execute("CREATE INDEX IF NOT EXISTS runbook_runs_unfinished ON runbook_runs"
               " (status, runbook)")


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
