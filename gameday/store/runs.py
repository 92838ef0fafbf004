"""Runbook runs (queued, slot-claimed, heartbeated, ended once, late results, four-eyes
approval), a run's output when it is on no timeline, and the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from gameday.core.errors import NotFound
from gameday.core.states import IncidentKind, RunStatus
from gameday.store.base import (
    Database,
    Row,
    _inserted_id,
    params_key,
    utc_now,
)
from gameday.store.rows import AuditRow, RunRow


class RunStore(Database):
    # -- a run's output, when it is on no incident's timeline -------------------------
    def record_run_output(self, run_id: int, kind: str, data: dict[str, Any]) -> None:
        """One event of a run outside any incident (its one writer is the process
        running it), so every replica can show the run (``runs.recorded``)."""
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM run_output WHERE"
                             " run_id = ?", (run_id,)).fetchone()[0]
            db.execute("INSERT INTO run_output VALUES (?, ?, ?, ?, ?)",
                       (run_id, seq, utc_now(), kind,
                        json.dumps(data, sort_keys=True, default=str)))

    def run_output(self, run_id: int) -> list[tuple[str, dict[str, Any]]]:
        return [(r["kind"], json.loads(r["data_json"])) for r in self._db.execute(
            "SELECT kind, data_json FROM run_output WHERE run_id = ? ORDER BY seq",
            (run_id,))]

    # -- runbook runs and the audit log -----------------------------------------------
    def create_run(self, incident_id: int | None, runbook: str, params: dict[str, Any],
                   started_by: str, check: bool, owner: str | None = None,
                   approve_by: str | None = None, *, world: str = "default",
                   kind: str = "incident", version: str | None = None) -> int:
        """``owner``: the process that will run it (``lease.owner()``), so a run whose
        process died is not waited for, nor joined, forever. With ``approve_by`` the run
        waits (``awaiting_approval``) for a second person until then. ``world``: where it
        acts (``runs.world``); ``kind``: what it serves (a real ``incident``, a
        ``gameday``, a ``drill``); ``version``: the runbook's as it was asked for
        (``Runbook.version``: an approval holds for that one only)."""
        status = "awaiting_approval" if approve_by else "queued"
        owned = None if approve_by else owner
        beat = self._clock_sql if owned else "NULL"
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runbook_runs (incident_id, runbook, params_json, check_mode,"
                " started_by, status, created_at, owner, approve_by, heartbeat, world, kind,"
                f" runbook_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {beat}, ?, ?, ?)"
                " RETURNING id",
                (incident_id, runbook, params_key(params), int(check), started_by, status,
                 utc_now(), owned, approve_by, world, kind, version))
            return _inserted_id(cur)

    def claim_run_slot(self, run_id: int, runbook: str, concurrency: int) -> str:
        """Start a queued run if its runbook has fewer than ``concurrency`` runs going in
        the run's world, counted in the store (every replica's, and game days'):
        ``started`` (it is ``running`` now), ``busy`` (try again when one ends) or
        ``gone`` (it is not queued any more: cancelled, or ended by another process).
        A real run counts real runs only: a rehearsal never delays one."""
        with self._tx() as db:
            row = db.execute("SELECT status, world, kind FROM runbook_runs WHERE id = ?",
                             (run_id,)).fetchone()
            if row is None:
                return "gone"
            world = row["world"] or "default"
            real = (row["kind"] or IncidentKind.INCIDENT) == IncidentKind.INCIDENT
            self.serialize(f"runbook:{runbook}:{world}")
            going = db.execute("SELECT COUNT(*) FROM runbook_runs WHERE status = 'running'"
                               " AND runbook = ? AND world = ?"
                               + (" AND kind = 'incident'" if real else ""),
                               (runbook, world)).fetchone()[0]
            if going >= concurrency:
                state = db.execute("SELECT status FROM runbook_runs WHERE id = ?",
                                   (run_id,)).fetchone()
                return "busy" if state is not None and state[0] == RunStatus.QUEUED else "gone"
            cur = db.execute("UPDATE runbook_runs SET status = 'running', started_at = ?,"
                             f" heartbeat = {self._clock_sql} WHERE id = ? AND"
                             " status = 'queued'", (utc_now(), run_id))
            return "started" if cur.rowcount == 1 else "gone"

    def heartbeat_runs(self, owner: str, run_ids: Iterable[int]) -> None:
        """The runs ``owner`` holds are still in hand. Only where several hosts share
        the store (PostgreSQL): a SQLite store's runs are judged by their process."""
        ids = sorted(set(run_ids))
        if not self.postgres or not ids:
            return
        marks = ", ".join("?" for _ in ids)
        with self._tx() as db:
            db.execute(f"UPDATE runbook_runs SET heartbeat = {self._clock_sql} WHERE"
                       f" owner = ? AND status IN ('queued', 'running') AND id IN ({marks})",
                       (owner, *ids))

    def adopt_runs(self, owner: str, run_ids: Iterable[int]) -> None:
        """Queued runs another process recorded for ``owner`` to run (the intake's
        writer process, ``web.writer``): ``owner``'s from now on, heartbeat and all."""
        ids = sorted(set(run_ids))
        if not ids:
            return
        marks = ", ".join("?" for _ in ids)
        with self._tx() as db:
            db.execute(f"UPDATE runbook_runs SET owner = ?, heartbeat = {self._clock_sql} "
                       f"WHERE status = 'queued' AND id IN ({marks})", (owner, *ids))

    def stale_runs(self, ttl_s: float) -> list[RunRow]:
        """Unfinished runs whose heartbeat is older than ``ttl_s`` by the database's
        clock (PostgreSQL; none on SQLite)."""
        if not self.postgres:
            return []
        return [cast(RunRow, dict(r)) for r in self._db.execute(
            "SELECT * FROM runbook_runs WHERE status IN ('queued', 'running') AND"
            f" heartbeat < {self._clock_sql} - ? ORDER BY id", (ttl_s,))]

    def end_orphan_run(self, run_id: int, *, stale_for: float | None) -> bool:
        """End a run nobody will finish (``runs.orphaned``): cancelled, once, by whoever
        gets there first; with ``stale_for``, only if its heartbeat is still that old."""
        sql = ("UPDATE runbook_runs SET status = 'canceled', finished_at = ? WHERE id = ?"
               " AND status IN ('queued', 'running')")
        args: list[Any] = [utc_now(), run_id]
        if stale_for is not None:
            sql, args = sql + f" AND heartbeat < {self._clock_sql} - ?", [*args, stale_for]
        with self._tx() as db:
            return db.execute(sql, args).rowcount == 1

    def approve_run(self, run_id: int, approver: str, owner: str) -> bool:
        """Approve a waiting run, in one statement so that of two replicas (or two people)
        only one wins: not its requester's, not after ``approve_by``. False if it was not
        waiting, has expired, or the approver asked for it."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runbook_runs SET status = 'queued', approved_by = ?, owner = ?,"
                f" heartbeat = {self._clock_sql} WHERE id = ? AND"
                " status = 'awaiting_approval' AND approve_by > ? AND started_by != ?",
                (approver, owner, run_id, utc_now(), approver))
            return cur.rowcount == 1

    def expire_approvals(self) -> list[RunRow]:
        """End the runs whose approval time ran out; they can never be approved now. In
        one statement: of two replicas sweeping at once, each run is returned (and so
        recorded as expired) by the one that ended it."""
        now = utc_now()
        with self._tx() as db:
            rows = [cast(RunRow, dict(r)) for r in db.execute(
                "UPDATE runbook_runs SET status = 'expired', finished_at = ? WHERE"
                " status = 'awaiting_approval' AND approve_by <= ? RETURNING *", (now, now))]
        return sorted(rows, key=lambda row: row["id"])

    def joinable_run(self, runbook: str, params: dict[str, Any], *, world: str = "default",
                     kind: str = "incident",
                     succeeded_since: str | None) -> dict[str, Any] | None:
        """The latest run of ``runbook`` with these parameters (not in check mode), in
        ``world`` and of ``kind``, that is queued or running, or that succeeded at or
        after ``succeeded_since``."""
        row = self._db.execute(
            "SELECT * FROM runbook_runs WHERE runbook = ? AND world = ? AND kind = ? AND"
            " params_json = ? AND check_mode = 0 AND (status IN ('queued', 'running') OR"
            " (status = 'successful' AND finished_at >= ?)) ORDER BY id DESC LIMIT 1",
            (runbook, world, kind, params_key(params), succeeded_since or "9999")).fetchone()
        return {**dict(row), "params": json.loads(row["params_json"])} if row else None

    def start_run(self, run_id: int, owner: str) -> bool:
        """A queued (or slot-claimed) run starts in ``owner``; False if it had ended
        already (another process ended it for orphaned, or it was cancelled)."""
        with self._tx() as db:
            return db.execute(
                "UPDATE runbook_runs SET status = 'running', started_at = ?, owner = ? WHERE"
                " id = ? AND status IN ('queued', 'running')",
                (utc_now(), owner, run_id)).rowcount == 1

    def end_run(self, run_id: int, status: str, rc: int | None) -> bool:
        """A run's end, once: False if it had ended already (another process took it
        for orphaned and cancelled it); then ``late_result`` keeps what came."""
        with self._tx() as db:
            return db.execute(
                "UPDATE runbook_runs SET status = ?, rc = ?, finished_at = ? WHERE id = ?"
                " AND status IN ('queued', 'running')",
                (status, rc, utc_now(), run_id)).rowcount == 1

    def late_result(self, run_id: int, status: str, rc: int | None) -> None:
        """The result of a run that arrived after its end, kept beside it."""
        with self._tx() as db:
            db.execute("UPDATE runbook_runs SET late_status = ?, late_rc = ?, late_at = ?"
                       " WHERE id = ?", (status, rc, utc_now(), run_id))

    def unfinished_runs(self) -> list[RunRow]:
        return [_run(r) for r in self._db.execute(
            "SELECT * FROM runbook_runs WHERE status IN ('queued', 'running') ORDER BY id")]

    def update_run(self, run_id: int, **fields: Any) -> None:
        allowed = {"status", "rc", "started_at", "finished_at", "owner"}
        assert set(fields) <= allowed, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE runbook_runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def run(self, run_id: int) -> RunRow:
        row = self._db.execute("SELECT * FROM runbook_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"no runbook run {run_id}")
        return _run(row)

    def runs(self, *, incident_id: int | None = None) -> list[RunRow]:
        sql = "SELECT * FROM runbook_runs"
        args: tuple[int, ...] = ()
        if incident_id is not None:
            sql, args = sql + " WHERE incident_id = ?", (incident_id,)
        return [_run(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def audit(self, who: str, action: str, data: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO audit (at_utc, who, action, data_json) VALUES (?, ?, ?, ?)",
                       (utc_now(), who, action, json.dumps(data, sort_keys=True, default=str)))

    def audit_many(self, entries: Sequence[tuple[str, str, str, dict[str, Any]]]) -> None:
        """Several audit entries (when, who, action, data), in order, in one statement."""
        with self._tx() as db:
            db.executemany("INSERT INTO audit (at_utc, who, action, data_json) VALUES"
                           " (?, ?, ?, ?)", [(at, who, action, json.dumps(data, sort_keys=True,
                                                                         default=str))
                                             for at, who, action, data in entries])

    def audit_log(self) -> list[AuditRow]:
        return [cast(AuditRow, {**dict(r), "data": json.loads(r["data_json"])})
                for r in self._db.execute("SELECT * FROM audit ORDER BY id")]


def _run(row: Row) -> RunRow:
    return cast(RunRow, {**dict(row), "params": json.loads(row["params_json"])})
