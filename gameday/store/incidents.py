"""Incidents and their append-only timelines, action items, the alert instances that
opened them (at-least-once delivery), and the leases of running game days.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from gameday.core import clock
from gameday.core.errors import AlreadyRecorded, GamedayError, NotFound
from gameday.core.states import IncidentKind
from gameday.store.base import (
    BOOT_ID,
    KINDS,
    Database,
    Event,
    _inserted_id,
    clock_ns,
    json_value,
    utc_now,
)
from gameday.store.rows import ActionRow, AlertInstanceRow, IncidentRow, LeaseRow

SAID_WITHIN_S = 600.0  # a move dated by when it was said (a chat message) is this recent
CLAIMS_PER_STATEMENT = 500  # alert instances claimed by one INSERT (6 values each)


def kind_sql(alias: str = "i") -> str:
    """Which kind an incident row is: its ``kind`` (written when it was opened), else,
    for a row from before that column, ``gameday`` with a scenario and ``incident``
    without (``report.facts.kind_of`` then tells a drill by its declaration). A new
    kind (a tabletop exercise with no fault, say) is a new value of the column and a
    member of ``IncidentKind``: every figure of the report gets a column for it."""
    return (f"COALESCE({alias}.kind, CASE WHEN {alias}.scenario IS NULL THEN"
            f" '{IncidentKind.INCIDENT}' ELSE '{IncidentKind.GAMEDAY}' END)")


# A real incident (``i``): what an alert joins. A game day's or a drill's never takes in
# a real alert, even of an alert group its own Alertmanager used.
REAL = f"{kind_sql()} = '{IncidentKind.INCIDENT}'"


@dataclass(frozen=True)
class Pending:
    """An event taken now and written a little later (``append_many``), dated by the
    clocks read when it was taken, as ``append`` would have dated it then."""

    kind: str
    actor: str
    data: dict[str, Any]
    at_utc: str = field(default_factory=utc_now)
    local_ns: int = field(default_factory=time.monotonic_ns)
    epoch_ns: int = field(default_factory=clock.epoch_ns)


class IncidentStore(Database):
    # -- incidents -------------------------------------------------------------------
    def create_incident(self, title: str, *, service: str | None = None,
                        scenario: str | None = None, run_dir: str | None = None,
                        kind: str | None = None) -> int:
        """``kind``: ``gameday`` when a scenario is given, else ``incident`` (a real one,
        from an alert), unless said (``drill``). Metrics never mix them."""
        now = utc_now()
        kind = kind or ("gameday" if scenario else "incident")
        mono, epoch = time.monotonic_ns(), clock.epoch_ns()  # the incident's clock
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO incidents (title, service, scenario, run_dir, state, created_at,"
                " updated_at, kind, clock_boot, clock_mono_ns, clock_epoch_ns) VALUES"
                " (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?) RETURNING id",
                (title, service, scenario, run_dir, now, now, kind, BOOT_ID, mono, epoch))
            return _inserted_id(cur)

    def incident(self, incident_id: int) -> IncidentRow:
        row = self._db.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        return cast(IncidentRow, dict(row))

    def incidents(self, *, since: str | None = None, limit: int | None = None,
                  kind: str | None = None, before: int | None = None) -> list[IncidentRow]:
        """Oldest first; ``since`` (UTC ISO), ``before`` (an id: the ones opened before
        it) and ``limit`` (the newest that many) page; ``kind``: only real incidents,
        game days or drills."""
        sql = "SELECT * FROM incidents WHERE 1 = 1"
        args: list[object] = []
        if since:
            sql, args = sql + " AND created_at >= ?", [since]
        if before is not None:
            sql, args = sql + " AND id < ?", [*args, before]
        if kind:
            sql, args = sql + f" AND {kind_sql('incidents')} = ?", [*args, kind]
        if limit:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
            return [cast(IncidentRow, dict(r)) for r in rows][::-1]
        return [cast(IncidentRow, dict(r)) for r in self._db.execute(sql + " ORDER BY id", args)]

    def past_outages(self) -> tuple[set[str], set[str]]:
        """What the Wheel of Misfortune can replay: the scenarios game days ran, and the
        alerts that opened real incidents."""
        ran = {r[0] for r in self._db.execute(
            "SELECT DISTINCT scenario FROM incidents WHERE kind = 'gameday'"
            " AND scenario IS NOT NULL")}
        fired = {r[0] for r in self._db.execute(
            "SELECT DISTINCT a.alertname FROM alert_instances a JOIN incidents i"
            " ON i.id = a.incident_id WHERE i.kind = 'incident'")}
        return ran, fired

    def update_incident(self, incident_id: int, **fields: Any) -> None:
        allowed = {"state", "severity", "title", "run_dir"}
        assert set(fields) <= allowed, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE incidents SET {sets}, updated_at = ? WHERE id = ?",
                       (*fields.values(), utc_now(), incident_id))

    # -- events ----------------------------------------------------------------------
    def append(self, incident_id: int, kind: str, actor: str, data: dict[str, Any],
               *, at_monotonic_ns: int | None = None, at_utc: str | None = None,
               incident_updates: dict[str, Any] | None = None,
               state_check: Callable[[str], None] | None = None,
               once: tuple[str, Any] | None = None,
               at_epoch_ns: int | None = None) -> Event:
        """Append one event (and update the incident's projection in the same
        transaction). Timestamps are read here, at the moment it is recorded, unless
        the caller measured the moment itself (for example a request's end), or knows
        the wall-clock moment a person made the move (``at_epoch_ns``: a chat message's
        time, within ``SAID_WITHIN_S`` before now). A kind
        that is not in the vocabulary (``events.Kind``) is refused: a typo would
        otherwise score silently wrong.

        Decided under the incident's lock, so two processes (two replicas, a game day
        and a person) cannot both pass: ``state_check`` is called with the incident's
        state and may refuse; ``once`` (a field of the payload, its value) refuses an
        event of this kind whose payload already has that value."""
        if kind not in KINDS:
            raise GamedayError(f"unknown event kind {kind!r} (see gameday.core.events.Kind)")
        local, epoch = time.monotonic_ns(), clock.epoch_ns()  # the moment it is recorded
        utc = at_utc or utc_now()
        if at_epoch_ns is not None and 0 <= epoch - at_epoch_ns <= SAID_WITHIN_S * 1e9:
            local, epoch = local - (epoch - at_epoch_ns), at_epoch_ns  # when it was said
            utc = clock.iso(at_epoch_ns)
        with self._tx() as db:
            # The incident's ``last_seq`` (a trigger raises it with every event): on
            # PostgreSQL its row lock orders the incident's appends, no gap, no duplicate
            # seq (SQLite's BEGIN IMMEDIATE already takes the write lock). NO KEY: rows
            # that reference the incident (the report's kept facts) are not held up.
            row = db.execute("SELECT last_seq + 1 AS seq, state, clock_boot, clock_mono_ns,"
                             " clock_epoch_ns FROM incidents WHERE id = ?"
                             + (" FOR NO KEY UPDATE" if self.postgres else ""),
                             (incident_id,)).fetchone()
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            if state_check is not None:
                state_check(str(row["state"]))
            if once is not None:
                field, value = once
                if any(json.loads(r[0]).get(field) == value for r in db.execute(
                        "SELECT data_json FROM events WHERE incident_id = ? AND kind = ?",
                        (incident_id, kind))):
                    raise AlreadyRecorded(f"{kind} {value} was already recorded")
            seq = int(row["seq"])
            # measured by the caller, on this host; else now, on the incident's clock
            mono = (at_monotonic_ns if at_monotonic_ns is not None
                    else clock_ns(dict(row), local, epoch))
            try:
                db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (incident_id, seq, utc, mono, kind, actor,
                            json.dumps(data, sort_keys=True, default=str)))
            except self._integrity:  # the incident's foreign key
                raise NotFound(f"no incident {incident_id}") from None
            if incident_updates:
                assert set(incident_updates) <= {"state", "severity"}, incident_updates
                sets = ", ".join(f"{k} = ?" for k in incident_updates)
                db.execute(f"UPDATE incidents SET {sets}, updated_at = ? WHERE id = ?",
                           (*incident_updates.values(), utc, incident_id))
        return Event(incident_id, seq, utc, mono, kind, actor, data)

    def append_many(self, pending: Mapping[int, Sequence[Pending]]) -> None:
        """Append each incident's ``pending`` events, in order: the rows ``append`` would
        have written one at a time when each was taken, for kinds that change nothing
        about the incident (no state, no ``once``), in two statements whatever their
        number (an alert storm's intake records two such events per alert)."""
        for event in (e for events in pending.values() for e in events):
            if event.kind not in KINDS:
                raise GamedayError(f"unknown event kind {event.kind!r} (see "
                                   "gameday.core.events.Kind)")
        ids = sorted(i for i, events in pending.items() if events)
        if not ids:
            return
        with self._tx() as db:  # the incidents' row locks, as ``append`` takes them
            found = {int(r["id"]): dict(r) for r in db.execute(
                "SELECT id, last_seq + 1 AS seq, clock_boot, clock_mono_ns, clock_epoch_ns"
                f" FROM incidents WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY id"
                + (" FOR NO KEY UPDATE" if self.postgres else ""), ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFound(f"no incident {missing[0]}")
            rows = [(i, int(found[i]["seq"]) + n, e.at_utc,
                     clock_ns(found[i], e.local_ns, e.epoch_ns), e.kind, e.actor,
                     json.dumps(e.data, sort_keys=True, default=str))
                    for i in ids for n, e in enumerate(pending[i])]
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def events(self, incident_id: int, *, after_seq: int = 0,
               kinds: Sequence[str] | None = None, having: Sequence[str] = (),
               seqs: Sequence[int] | None = None, limit: int | None = None) -> list[Event]:
        """The incident's events in recording order: after ``after_seq``, and only
        those of ``kinds``, or with a value at one of the payload paths ``having``
        (``$.sli``), or numbered ``seqs``, when given; the first ``limit`` of them,
        when given (with ``seqs``: not both)."""
        where = "incident_id = ? AND seq > ?"
        args: list[Any] = [incident_id, after_seq]
        if kinds is not None:
            where += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args += kinds
        if having:
            where += " AND ({})".format(" OR ".join(
                f"{json_value(path, postgres=self.postgres)} IS NOT NULL" for path in having))
        if seqs is None:
            return self._events(where, args, incident_id, limit)
        assert limit is None, "seqs and limit together"
        wanted, found = sorted(set(seqs)), []
        for start in range(0, len(wanted), CLAIMS_PER_STATEMENT):
            chunk = wanted[start:start + CLAIMS_PER_STATEMENT]
            found += self._events(f"{where} AND seq IN ({', '.join('?' * len(chunk))})",
                                  [*args, *chunk], incident_id)
        return found

    def _events(self, where: str, args: Sequence[Any], incident_id: int,
                limit: int | None = None) -> list[Event]:
        if limit is not None:
            where, args = f"{where} ORDER BY seq LIMIT ?", [*args, limit]
        else:
            where += " ORDER BY seq"
        rows = self._db.execute(  # by position: a storm's incident has many
            "SELECT seq, at_utc, at_monotonic_ns, kind, actor, data_json FROM events"
            f" WHERE {where}", args)
        loads = json.loads
        return [Event(incident_id, seq, at_utc, at_ns, kind, actor, loads(data))
                for seq, at_utc, at_ns, kind, actor, data in rows]

    def outline(self, incident_id: int, words: Mapping[str, str]
                ) -> list[tuple[int, int, str, str | None]]:
        """The incident's events in time order (``events.in_time_order``'s: when each
        happened, ties by sequence) without their payloads: each one's ``seq``,
        ``at_monotonic_ns``, kind, and for the kinds in ``words`` the payload's value
        at that path (``$.alertname``), as text. For an alert storm's incident page,
        which shows a few of its hundreds of thousands of events."""
        cases = " ".join(f"WHEN ? THEN {json_value(path, postgres=self.postgres)}"
                         for path in words.values())
        word = f"CASE kind {cases} END" if words else "NULL"
        return [(seq, at_ns, kind, None if value is None else str(value))
                for seq, at_ns, kind, value in self._db.tuples(
                    f"SELECT seq, at_monotonic_ns, kind, {word} FROM events"
                    " WHERE incident_id = ? ORDER BY at_monotonic_ns, seq",
                    [*words, incident_id])]

    # -- action items ----------------------------------------------------------------
    def upsert_action(self, incident_id: int, key: str, title: str, owner: str,
                      due: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO action_items (incident_id, key, title, owner, due, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id, key) DO UPDATE SET"
                " title = excluded.title, owner = excluded.owner",
                (incident_id, key, title, owner, due, utc_now()))

    def actions(self, *, incident_id: int | None = None,
                status: str | None = None) -> list[ActionRow]:
        sql = "SELECT * FROM action_items WHERE 1=1"
        args: list[object] = []
        if incident_id is not None:
            sql, args = sql + " AND incident_id = ?", [*args, incident_id]
        if status:
            sql, args = sql + " AND status = ?", [*args, status]
        return [cast(ActionRow, dict(r)) for r in self._db.execute(sql + " ORDER BY id", args)]

    def close_action(self, action_id: int) -> None:
        with self._tx() as db:
            if db.execute("UPDATE action_items SET status = 'done' WHERE id = ?",
                          (action_id,)).rowcount == 0:
                raise NotFound(f"no action item {action_id}")

    # -- alert instances (at-least-once delivery) ------------------------------------
    def claim_alert(self, key: str, *, alertname: str, group_key: str,
                    fingerprint: str, incident_id: int | None = None) -> bool:
        """Record an alert instance (in ``incident_id``, when that is known already);
        False if it was seen before (a redelivery)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO alert_instances (key, alertname, group_key, fingerprint,"
                " received_at, incident_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (key, alertname, group_key, fingerprint, utc_now(), incident_id))
            return cur.rowcount == 1

    def claim_alerts(self, claims: Sequence[tuple[str, str, str, str, int | None]]
                     ) -> set[str]:
        """``claim_alert`` for many instances at once (key, alertname, group key,
        fingerprint, incident id; each key once): the keys that were new."""
        new: set[str] = set()
        received = utc_now()
        with self._tx() as db:
            for start in range(0, len(claims), CLAIMS_PER_STATEMENT):
                chunk = claims[start:start + CLAIMS_PER_STATEMENT]
                values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
                args = [v for c in chunk for v in (c[0], c[1], c[2], c[3], received, c[4])]
                new.update(key for (key,) in db.execute(
                    "INSERT INTO alert_instances (key, alertname, group_key, fingerprint,"
                    f" received_at, incident_id) VALUES {values} ON CONFLICT DO NOTHING"
                    " RETURNING key", args))
        return new

    def bind_alert(self, key: str, incident_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE alert_instances SET incident_id = ? WHERE key = ?",
                       (incident_id, key))

    def alert_incidents(self, keys: Sequence[str]) -> dict[str, int | None]:
        """The incident each of these alert instances is in (the ones stored)."""
        found: dict[str, int | None] = {}
        for start in range(0, len(keys), CLAIMS_PER_STATEMENT):
            chunk = keys[start:start + CLAIMS_PER_STATEMENT]
            found.update((str(r[0]), r[1]) for r in self._db.execute(
                "SELECT key, incident_id FROM alert_instances WHERE key IN"
                f" ({', '.join('?' * len(chunk))})", chunk))
        return found

    def alert_instance(self, key: str) -> AlertInstanceRow | None:
        row = self._db.execute("SELECT * FROM alert_instances WHERE key = ?", (key,)).fetchone()
        return cast(AlertInstanceRow, dict(row)) if row else None

    def open_incidents_for_groups(self, group_keys: Sequence[str]) -> dict[str, int | None]:
        """``open_incident_for_group`` for several groups, in one statement."""
        if not group_keys:
            return {}
        keys = list(dict.fromkeys(group_keys))
        rows = self._db.execute(  # the same lookup per group as one at a time
            f"WITH g(group_key) AS (VALUES {', '.join(['(?)'] * len(keys))})"
            " SELECT g.group_key, (SELECT i.id FROM incidents i WHERE i.state IN"
            f" ('pending', 'declared', 'acknowledged', 'mitigated') AND {REAL} AND EXISTS"
            " (SELECT 1 FROM alert_instances a WHERE a.group_key = g.group_key"
            " AND a.incident_id = i.id) ORDER BY i.id DESC LIMIT 1) AS id FROM g", keys)
        found = {str(r[0]): (int(r[1]) if r[1] is not None else None) for r in rows}
        return {key: found.get(key) for key in keys}

    def open_incident_for_group(self, group_key: str) -> int | None:
        row = self._db.execute(  # few incidents are open; each is checked by the index
            "SELECT i.id FROM incidents i WHERE i.state IN ('pending', 'declared',"
            f" 'acknowledged', 'mitigated') AND {REAL} AND EXISTS (SELECT 1 FROM"
            " alert_instances a WHERE a.group_key = ? AND a.incident_id = i.id)"
            " ORDER BY i.id DESC LIMIT 1",
            (group_key,)).fetchone()
        return int(row[0]) if row else None

    # -- leases: a running game day and what undoes it ---------------------------------
    def take_lease(self, incident_id: int, *, run_dir: str, host: str, pid: int,
                   started: int, target: str) -> None:
        """``started``: the process's start time (clock ticks since boot), so a pid
        reused by another process is not taken for the game day."""
        with self._tx() as db:
            db.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?, '{}',"
                       f" {self._clock_sql}, 'running')",
                       (incident_id, run_dir, host, pid, started, target))

    def heartbeat(self, incident_id: int) -> None:
        """By the database's clock, as every lease's age is read: hosts sharing the
        store never compare their own clocks."""
        with self._tx() as db:
            db.execute(f"UPDATE leases SET heartbeat = {self._clock_sql} WHERE"
                       " incident_id = ? AND state = 'running'", (incident_id,))

    def record_undo(self, incident_id: int, undo: dict[str, Any]) -> None:
        """What undoes the game day's faults, written before each one is injected."""
        with self._tx() as db:
            db.execute("UPDATE leases SET undo_json = ? WHERE incident_id = ?",
                       (json.dumps(undo, sort_keys=True, default=str), incident_id))

    def release_lease(self, incident_id: int, state: str = "finished") -> bool:
        """End a running lease; False if it was not running (someone else ended it)."""
        with self._tx() as db:
            cur = db.execute("UPDATE leases SET state = ? WHERE incident_id = ? AND"
                             " state = 'running'", (state, incident_id))
            return cur.rowcount == 1

    def claim_lease(self, lease: LeaseRow, *, host: str, pid: int, started: int,
                    hold_s: float) -> bool:
        """A recover takes over ``lease`` (as it read it) for its process, with a
        heartbeat ``hold_s`` ahead (by the database's clock): it stays held meanwhile,
        and only one recover wins (the lease must still be as read). False if another
        got it first."""
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE leases SET host = ?, pid = ?, started = ?, heartbeat ="
                f" {self._clock_sql} + ? WHERE"
                " incident_id = ? AND state = 'running' AND host = ? AND pid = ? AND"
                " started = ? AND heartbeat = ?",
                (host, pid, started, hold_s, lease["incident_id"], lease["host"],
                 lease["pid"], lease["started"], lease["heartbeat"]))
            return cur.rowcount == 1

    def give_back_lease(self, lease: LeaseRow) -> None:
        """A recover that could not undo everything gives ``lease`` back as it found it:
        held by a process that is gone, for the next recover."""
        with self._tx() as db:
            db.execute("UPDATE leases SET host = ?, pid = ?, started = ?, heartbeat = ?"
                       " WHERE incident_id = ? AND state = 'running'",
                       (lease["host"], lease["pid"], lease["started"], lease["heartbeat"],
                        lease["incident_id"]))

    def running_leases(self) -> list[LeaseRow]:
        """With each one's ``age``: seconds since its heartbeat, by the database's
        clock (negative while a recover holds it)."""
        return [cast(LeaseRow, {**dict(r), "undo": json.loads(r["undo_json"])})
                for r in self._db.execute(
            f"SELECT *, {self._clock_sql} - heartbeat AS age FROM leases"
            " WHERE state = 'running' ORDER BY incident_id")]

    def live_rehearsals(self, service: str) -> list[IncidentRow]:
        """Game days and drills still open for ``service`` on the team's own systems
        (their ``target.ready`` names a ``service`` or ``kubernetes`` target, not a world
        gameday builds), with that ``target``: the faults that can fire the team's real
        alerts."""
        target = json_value("$.target", postgres=self.postgres)
        return [cast(IncidentRow, dict(r)) for r in self._db.execute(
            "SELECT i.*, t.target FROM incidents i JOIN (SELECT DISTINCT incident_id,"
            f" {target} AS target FROM events WHERE kind = 'target.ready') t"
            " ON t.incident_id = i.id WHERE i.kind IN ('gameday', 'drill') AND i.service = ?"
            " AND i.state IN ('pending', 'declared', 'acknowledged', 'mitigated')"
            " AND t.target IN ('service', 'kubernetes') ORDER BY i.id", (service,))]

    def open_alert_incidents(self, service: str) -> list[IncidentRow]:
        """Real incidents (opened by an alert, not by a game day) still open for
        ``service``."""
        return [cast(IncidentRow, dict(r)) for r in self._db.execute(
            "SELECT * FROM incidents WHERE COALESCE(kind, 'incident') = 'incident' AND"
            " scenario IS NULL AND service = ? AND state IN"
            " ('pending', 'declared', 'acknowledged', 'mitigated') ORDER BY id", (service,))]
