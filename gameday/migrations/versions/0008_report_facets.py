"""The report's kept facts name their facets by number (``report_facets``).

What an incident was (kind, scenario, team, severities, runbook, containment, verdict,
the alert it waited for: ``report.facts.Facets``) is one JSON text that incidents alike
share; a few hundred distinct texts among a hundred thousand incidents. Each text is
now kept once, in ``report_facets``, and ``incident_facts.facets_id`` names it: the
report reads a number a row instead of the same text again and again (a quarter of
what it read), and decodes each distinct text once.

``incident_facts`` holds only what is derived from the events, so it is made again,
empty: the next report derives every incident again (``report.facts.refresh``).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    key = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    number = "BIGINT" if postgres else "INTEGER"
    real = "DOUBLE PRECISION" if postgres else "REAL"
    op.execute(f"CREATE TABLE IF NOT EXISTS report_facets (id {key},"
               " facets TEXT NOT NULL UNIQUE)")
    op.execute("DROP TABLE IF EXISTS incident_facts")
    op.execute(f"CREATE TABLE incident_facts (incident_id {number} PRIMARY KEY"
               f" REFERENCES incidents(id), upto {number} NOT NULL, version {number} NOT NULL,"
               f" facets_id {number} NOT NULL REFERENCES report_facets(id),"
               f" ttd {real}, tta {real}, tte {real}, ttfc {real}, ttm {real}, ttr {real},"
               f" requests {number}, bad {number}, budget {real}, score {number})")


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
