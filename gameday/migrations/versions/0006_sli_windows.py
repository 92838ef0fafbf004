"""A game day's SLI windows in the store (``sli_windows``), as its detector computes
them: every ``gameday serve`` replica on the database reads a drill's live SLIs (the
console's chart, a status update's facts), not only the one whose host holds the run
directory's ``sli.jsonl``. ``body_json`` is the window as ``sli.jsonl`` has it.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    key = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    number = "BIGINT" if postgres else "INTEGER"
    op.execute(f"CREATE TABLE IF NOT EXISTS sli_windows (id {key},"
               f" incident_id {number} NOT NULL REFERENCES incidents(id),"
               f" at_ns {number} NOT NULL, body_json TEXT NOT NULL)")
    op.execute("CREATE INDEX IF NOT EXISTS sli_windows_incident ON sli_windows"
               " (incident_id, id)")


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
