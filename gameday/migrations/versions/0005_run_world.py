"""Runs keep their world: where a run acts (``runbook_runs.world``: the variables that
choose its target, a game day's sandbox or its cluster's kubeconfig, or ``default``,
the process's own environment) and what it serves (``runbook_runs.kind``: ``incident``
for a real incident or a run by hand, ``gameday``, ``drill``). An alert joins only a
run of its own world and kind, and a runbook's concurrency counts per world, real runs
first: a rehearsal never absorbs or delays real work.

A run ends once: a result that arrives after another process ended the run (it took
the run for orphaned) is kept beside it (``late_status``, ``late_rc``, ``late_at``),
not written over its end.

Runs from before keep what can be told: their incident's kind, and for a rehearsal a
world of its own (``incident:ID``), so no real alert ever joins one.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in ("world TEXT", "kind TEXT", "late_status TEXT", "late_rc INTEGER",
                   "late_at TEXT"):
        op.execute(f"ALTER TABLE runbook_runs ADD COLUMN {column}")
    # an incident from before its kind was kept is a game day when it has a scenario
    # (incident_facts.kind_sql)
    op.execute("UPDATE runbook_runs SET kind = COALESCE((SELECT COALESCE(kind, CASE WHEN"
               " scenario IS NULL THEN 'incident' ELSE 'gameday' END) FROM incidents WHERE"
               " incidents.id = runbook_runs.incident_id), 'incident')")
    op.execute("UPDATE runbook_runs SET world = CASE WHEN kind = 'incident' THEN 'default'"
               " ELSE 'incident:' || incident_id END")
    op.execute("DROP INDEX IF EXISTS runbook_runs_same")
    op.execute("CREATE INDEX IF NOT EXISTS runbook_runs_same ON runbook_runs"
               " (runbook, world, kind, params_json, status)")


def downgrade() -> None:
    raise NotImplementedError("gameday does not go back a schema; restore a backup")
