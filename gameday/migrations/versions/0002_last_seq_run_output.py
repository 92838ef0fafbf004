"""Each incident knows the last ``seq`` of its timeline (``incidents.last_seq``), kept by
the database on every event written, so the report's kept figures (``incident_facts``)
know which incidents changed since they were derived on either database.

A global high-water mark (SQLite's event rowid) does not carry over to PostgreSQL:
sequence values are handed out when rows are written, not when they commit, so a
transaction that commits late can leave an event below a mark already read. Per
incident, the event and the ``last_seq`` it raises commit together: a kept row derived
up to ``upto`` is stale exactly when ``upto < last_seq``. A trigger keeps the column, so
a writer that does not know it (a replica still on the previous release, during a
rolling upgrade) keeps it right too.

A run outside any incident keeps its output in ``run_output`` (a run in an incident has
it on the incident's timeline), so any replica can show it, live or after a restart.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQLITE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS events_last_seq AFTER INSERT ON events BEGIN"
    " UPDATE incidents SET last_seq = NEW.seq WHERE id = NEW.incident_id"
    " AND last_seq < NEW.seq; END")

POSTGRES_TRIGGER = [
    """CREATE OR REPLACE FUNCTION gameday_last_seq() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE incidents SET last_seq = NEW.seq WHERE id = NEW.incident_id
            AND last_seq < NEW.seq;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER events_last_seq AFTER INSERT ON events FOR EACH ROW"
    " EXECUTE FUNCTION gameday_last_seq()",
]


RUN_OUTPUT = """
CREATE TABLE IF NOT EXISTS run_output (
    run_id INTEGER NOT NULL REFERENCES runbook_runs(id),
    seq INTEGER NOT NULL,
    at_utc TEXT NOT NULL,
    kind TEXT NOT NULL,
    data_json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
)"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(RUN_OUTPUT.replace("INTEGER", "BIGINT") if postgres else RUN_OUTPUT)
    op.execute(f"ALTER TABLE incidents ADD COLUMN last_seq {'BIGINT' if postgres else 'INTEGER'}"
               " NOT NULL DEFAULT 0")
    op.execute("UPDATE incidents SET last_seq = COALESCE((SELECT MAX(seq) FROM events e"
               " WHERE e.incident_id = incidents.id), 0)")
    # ``upto`` was a global event rowid; now it is the incident's own last seq.
    op.execute("DELETE FROM incident_facts")
    op.execute("DROP INDEX IF EXISTS incident_facts_version")
    for statement in POSTGRES_TRIGGER if postgres else [SQLITE_TRIGGER]:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
