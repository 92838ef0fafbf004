"""Runs keep the runbook's version they were asked for.

``runbook_runs.runbook_version``: the version (``Runbook.version``, a digest of its
plays) of the runbook when the run was asked for. A run waiting for a second person is
approved only while the runbook still reads so: an approver approves what was asked
for, never a runbook changed since.

Runs from before have none; one still waiting is not approved (someone asks again).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE runbook_runs ADD COLUMN runbook_version TEXT")


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
