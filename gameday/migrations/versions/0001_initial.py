"""The schema as gameday 0.x left it (the raw-sqlite3 store): every table, the columns
added after they first shipped, the indexes, and the append-only triggers of the
timeline and the audit log. Idempotent on SQLite, so a store made before Alembic
upgrades in place (its tables exist; missing columns are added).

Revision ID: 0001
Revises:
"""

from alembic import op
from sqlalchemy import inspect

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    service TEXT,
    scenario TEXT,
    run_dir TEXT,
    state TEXT NOT NULL,
    severity TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    kind TEXT
);
CREATE TABLE IF NOT EXISTS events (
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    seq INTEGER NOT NULL,
    at_utc TEXT NOT NULL,
    at_monotonic_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    data_json TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
CREATE TABLE IF NOT EXISTS action_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    owner TEXT NOT NULL,
    due TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at TEXT NOT NULL,
    UNIQUE (incident_id, key)
);
CREATE TABLE IF NOT EXISTS alert_instances (
    key TEXT PRIMARY KEY,
    incident_id INTEGER REFERENCES incidents(id),
    alertname TEXT NOT NULL,
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    received_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE TABLE IF NOT EXISTS runbook_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER REFERENCES incidents(id),
    runbook TEXT NOT NULL,
    params_json TEXT NOT NULL,
    check_mode INTEGER NOT NULL,
    started_by TEXT NOT NULL,
    status TEXT NOT NULL,
    rc INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    owner TEXT,
    approve_by TEXT,
    approved_by TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_utc TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    data_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents(id),
    run_dir TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started INTEGER NOT NULL,
    target TEXT NOT NULL,
    undo_json TEXT NOT NULL,
    heartbeat REAL NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    last_due TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule TEXT NOT NULL,
    due_at TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    claimed_by TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    incident_id INTEGER,
    run_dir TEXT,
    score REAL,
    owner TEXT,
    started_at TEXT,
    finished_at TEXT,
    summary_json TEXT,
    UNIQUE (schedule, due_at)
);
CREATE TABLE IF NOT EXISTS drills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    game_master TEXT NOT NULL,
    difficulty TEXT NOT NULL,
    oncall TEXT,
    state TEXT NOT NULL,
    incident_id INTEGER REFERENCES incidents(id),
    run_dir TEXT,
    created_at TEXT NOT NULL
);
-- The report's figures of one incident (incident_facts), derived from its events up to
-- event rowid ``upto``, kept in step lazily. ``facets``: what the incident was, as one
-- JSON array (kind, scenario, team, severities, runbook, containment, verdict, ...).
CREATE TABLE IF NOT EXISTS incident_facts (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents(id),
    upto INTEGER NOT NULL,
    version INTEGER NOT NULL,
    facets TEXT NOT NULL,
    ttd REAL, tta REAL, tte REAL, ttfc REAL, ttm REAL, ttr REAL,
    requests INTEGER, bad INTEGER, budget REAL, score INTEGER
);
-- People of ``gameday serve`` and their access roles (``gameday user add``); tokens are
-- stored as their SHA-256, never as given.
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS "freeze" (  -- FREEZE is a keyword in PostgreSQL
    id INTEGER PRIMARY KEY CHECK (id = 1),
    frozen INTEGER NOT NULL,
    reason TEXT,
    who TEXT NOT NULL,
    at TEXT NOT NULL
);
"""

# Columns a table gained after it first shipped: a store made before gets them.
ADDED_COLUMNS = {"runbook_runs": {"owner": "TEXT", "approve_by": "TEXT", "approved_by": "TEXT"},
                 "incidents": {"kind": "TEXT"}}

INDEXES = """
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, incident_id, at_monotonic_ns);
CREATE INDEX IF NOT EXISTS incidents_created ON incidents (created_at);
CREATE INDEX IF NOT EXISTS incidents_by_scenario ON incidents (scenario, id);
CREATE INDEX IF NOT EXISTS incident_facts_version ON incident_facts (version, upto);
CREATE INDEX IF NOT EXISTS action_items_by_incident
    ON action_items (incident_id, status, owner, due, created_at);
CREATE INDEX IF NOT EXISTS alert_instances_group ON alert_instances (group_key, incident_id);
CREATE INDEX IF NOT EXISTS schedule_runs_by_schedule ON schedule_runs (schedule, id);
CREATE INDEX IF NOT EXISTS runbook_runs_same ON runbook_runs (runbook, params_json, status);
"""

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_append_only_{op_} BEFORE {op_.upper()} ON {table}"
    f" BEGIN SELECT RAISE(ABORT, '{message}'); END"
    for table, message in (("audit", "the audit log is append-only"),
                           ("events", "timelines are append-only"))
    for op_ in ("update", "delete")]

POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION gameday_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
    END $$""",
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW"
    " EXECUTE FUNCTION gameday_append_only('the audit log is append-only')",
    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events FOR EACH ROW"
    " EXECUTE FUNCTION gameday_append_only('timelines are append-only')",
    "CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events"
    " EXECUTE FUNCTION gameday_append_only('timelines are append-only')",
]


def _postgres(ddl: str) -> str:
    """SQLite's types as PostgreSQL's: 64-bit integers and doubles (monotonic
    nanoseconds and Unix times do not fit the narrower ones)."""
    return (ddl.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
            .replace("INTEGER", "BIGINT").replace("REAL", "DOUBLE PRECISION"))


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _statements(TABLES):
        op.execute(_postgres(statement) if postgres else statement)
    bind = op.get_bind()
    for table, columns in ADDED_COLUMNS.items():
        have = {c["name"] for c in inspect(bind).get_columns(table)}
        for column, kind in columns.items():
            if column not in have:
                op.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    for statement in _statements(INDEXES):
        op.execute(statement)
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the first schema has nothing to go back to")
