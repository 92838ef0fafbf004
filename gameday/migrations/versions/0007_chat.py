"""Incident rooms in chat.

- ``chat_accounts``: a chat account (``@ana:example.org``, a Slack user id) and the
  gameday person it is: who may do what in a room comes from that person, never from a
  name typed in a message.
- ``chat_rooms``: an incident's room (claimed by one ``gameday serve`` replica before it
  is made, so every incident gets one), and the last event of its timeline posted there
  (advanced by compare-and-set, so each event is posted once by whichever replica).
- ``chat_seen``: messages from a room already acted on (one move per message, whichever
  replica read it first).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    number = "BIGINT" if postgres else "INTEGER"
    real = "DOUBLE PRECISION" if postgres else "REAL"
    op.execute("CREATE TABLE IF NOT EXISTS chat_accounts (account TEXT PRIMARY KEY,"
               " person TEXT NOT NULL, added_at TEXT NOT NULL)")
    op.execute(f"CREATE TABLE IF NOT EXISTS chat_rooms (incident_id {number} PRIMARY KEY"
               " REFERENCES incidents(id), chat TEXT NOT NULL, room TEXT,"
               f" state TEXT NOT NULL, last_seq {number} NOT NULL DEFAULT 0,"
               f" claimed_by TEXT NOT NULL, claimed_at {real} NOT NULL, error TEXT)")
    op.execute("CREATE TABLE IF NOT EXISTS chat_seen (message TEXT PRIMARY KEY,"
               f" incident_id {number}, seen_at TEXT NOT NULL)")


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
