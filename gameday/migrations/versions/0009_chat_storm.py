"""A room's alert storm, kept with its claim.

``chat_rooms.storm``: where the relay stands in an alert storm in the room (how many
storm events in a row it has claimed, and those it holds for one line: their counts,
alerts and runs, the first one's number and when it came), written in the same
compare-and-set as ``last_seq``, so that whichever replica posts next, or this one
after a restart, goes on where it stopped and no held event goes uncounted.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE chat_rooms ADD COLUMN storm TEXT")


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
