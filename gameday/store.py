"""Persistence: incidents, their append-only timelines, runbook runs, action items.

SQLite (the project's ``.gameday/gameday.db``, or ``--db`` / ``GAMEDAY_DB``), in WAL mode
so a game day, ``gameday serve`` and a responder's CLI can share it; or PostgreSQL
(``postgresql://...``), so several ``gameday serve`` replicas can. SQLAlchemy Core
connects (SQL is written once, with ``?`` placeholders, in the dialect both share);
Alembic keeps the schema (``gameday/migrations``). Events are never
updated or deleted; the incident row is a projection kept in step with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday import clock
from gameday.errors import AlreadyRecorded, GamedayError, NotFound, StoreUnavailable
from gameday.events import Kind
from gameday.states import IncidentKind, RunStatus

KINDS = frozenset(k.value for k in Kind)

# The schema lives in Alembic revisions (``gameday/migrations/versions``); this is the
# newest. SQLite stores are brought to it when opened; PostgreSQL by ``gameday db upgrade``.
HEAD = "0005"


def _null_pool() -> Any:
    """SQLite connections are this store's per thread; SQLAlchemy need not pool them."""
    from sqlalchemy.pool import NullPool

    return NullPool


def _boot_id() -> str:
    """This boot of this host: monotonic clocks compare only within one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: this process's own clock, at least
        return f"pid-{os.getpid()}"


BOOT_ID = _boot_id()


def clock_ns(incident: Mapping[str, Any], local_ns: int | None = None,
             epoch_ns: int | None = None) -> int:
    """Now on ``incident``'s clock (its row, or the clock columns of it): this host's
    monotonic clock if it opened the incident (or the incident is older than clocks),
    else the opener's, reached through the wall clock."""
    local = time.monotonic_ns() if local_ns is None else local_ns
    boot = incident.get("clock_boot")
    if boot is None or boot == BOOT_ID:
        return local
    epoch = clock.epoch_ns() if epoch_ns is None else epoch_ns
    return int(incident["clock_mono_ns"]) + (epoch - int(incident["clock_epoch_ns"]))


def params_key(params: dict[str, Any]) -> str:
    """A run's parameters as stored, and compared: the same values, the same text."""
    return json.dumps(params, sort_keys=True, default=str)


def utc_now() -> str:
    return clock.now().isoformat(timespec="microseconds")


def _inserted_id(cur: Cursor) -> int:
    """The id of the row an ``INSERT ... RETURNING id`` just added."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("INSERT did not return a row id")
    return int(row[0])


@dataclass(frozen=True)
class Event:
    incident_id: int
    seq: int
    at_utc: str
    at_monotonic_ns: int
    kind: str
    actor: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at_utc": self.at_utc, "at_monotonic_ns": self.at_monotonic_ns,
                "kind": self.kind, "actor": self.actor, "data": self.data}


def _schedule_run(row: Row) -> dict[str, Any]:
    data = dict(row)
    data["summary"] = json.loads(data.pop("summary_json") or "null")
    return data


class Row:
    """A result row read as sqlite3.Row is: by position, by column name, ``dict(row)``."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: dict[str, int], values: tuple[Any, ...]) -> None:
        self._keys, self._values = keys, values

    def __getitem__(self, key: int | str | slice) -> Any:
        return self._values[self._keys[key] if isinstance(key, str) else key]

    def keys(self) -> list[str]:
        return list(self._keys)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Cursor:
    """What ``Connection.execute`` returns: rows on demand, ``rowcount``."""

    def __init__(self, result: Any) -> None:
        self._result = result
        self.rowcount: int = result.rowcount
        self._keys = ({k: i for i, k in enumerate(result.keys())} if result.returns_rows
                      else {})

    def _row(self, raw: Any) -> Row:
        return Row(self._keys, tuple(raw))

    def fetchone(self) -> Any:  # Row | None
        if not self._result.returns_rows:
            return None
        raw = self._result.fetchone()
        return None if raw is None else self._row(raw)

    def fetchall(self) -> list[Row]:
        return list(self)

    def __iter__(self) -> Iterator[Row]:
        if not self._result.returns_rows:
            return iter(())
        return (self._row(raw) for raw in self._result)


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # :name, not a ::cast


class Connection:
    """One thread's connection to the store, through SQLAlchemy Core: SQL with ``?``
    placeholders on either database (PostgreSQL's driver is handed ``%s``), the
    driver's own exceptions (``store.integrity_errors`` names them)."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self._conn = conn
        self._postgres = postgres
        self._dbapi = conn.connection.dbapi_connection

    row_factory: Any = None  # rows are always ``Row``s; sqlite3's knob, accepted

    @property
    def postgres(self) -> bool:
        """On PostgreSQL (else SQLite): for the few statements written twice."""
        return self._postgres

    def _sql(self, sql: str) -> str:
        if not self._postgres:
            return sql
        sql = sql.replace("%", "%%").replace("?", "%s")
        return _NAMED.sub(r"%(\1)s", sql)

    def execute(self, sql: str, args: Any = ()) -> Cursor:
        from sqlalchemy.exc import DBAPIError

        args = dict(args) if isinstance(args, Mapping) else tuple(args)
        try:
            return Cursor(self._conn.exec_driver_sql(self._sql(sql), args))
        except DBAPIError as exc:
            raise self._driver_error(exc) from None

    def executemany(self, sql: str, rows: Any) -> None:
        from sqlalchemy.exc import DBAPIError

        rows = [tuple(r) for r in rows]
        if not rows:
            return
        try:
            self._conn.exec_driver_sql(self._sql(sql), rows)
        except DBAPIError as exc:
            raise self._driver_error(exc) from None

    def _driver_error(self, exc: Any) -> Exception:
        """The driver's own exception; on PostgreSQL a lost connection, a server
        shutting down or a transaction it rolled back (deadlock, serialization) is
        ``StoreUnavailable``: try again. The next statement opens a new connection."""
        orig: Exception = exc.orig
        if self._postgres:
            import psycopg

            if isinstance(orig, psycopg.OperationalError):
                first = str(orig).strip().splitlines()[0] if str(orig).strip() else "lost"
                return StoreUnavailable(f"the store's database connection failed: {first}")
        return orig

    def cursor(self) -> Connection:
        return self

    @property
    def invalidated(self) -> bool:
        """SQLAlchemy dropped the driver's connection: a signal (KeyboardInterrupt, our
        ``Terminated``) landed inside a statement. What it held is rolled back."""
        return bool(self._conn.invalidated or self._conn.closed)

    @property
    def in_transaction(self) -> bool:
        if self.invalidated:
            return False
        if self._postgres:
            return int(self._dbapi.info.transaction_status) != 0  # 0: idle
        return bool(self._dbapi.in_transaction)


def _redacted(url: str) -> str:
    """A store's address as it may be shown: a password never is."""
    if "://" not in url:  # a SQLite file
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _engine_url(target: str) -> str:
    """The SQLAlchemy URL of a store setting (a SQLite path, or a postgresql:// URL,
    driven by psycopg 3)."""
    if target.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    return target


def integrity_errors() -> tuple[type[Exception], ...]:
    """The drivers' constraint-violation exceptions (both, whatever the store)."""
    errors: list[type[Exception]] = [sqlite3.IntegrityError]
    with contextlib.suppress(ImportError):
        import psycopg

        errors.append(psycopg.IntegrityError)
    return tuple(errors)


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


def upgrade(url: str) -> str:
    """Bring the store at ``url`` to the newest schema (``gameday db upgrade``); returns
    the revision it is at now."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    engine_url = _engine_url(url) if "://" in url else f"sqlite:///{Path(url).resolve()}"
    if engine_url.startswith("sqlite:///"):
        Path(engine_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(engine_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":  # one upgrader at a time
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242015)")
            command.upgrade(_alembic_config(conn), "head")
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the store at {_redacted(engine_url)}: "
                               f"{str(exc.orig).strip()}") from None
    finally:
        engine.dispose()
    return HEAD


class Store:
    def __init__(self, path: str | os.PathLike[str] | None = None):
        """Open the store at ``path``: a SQLite file (created and brought to the newest
        schema if needed) or a ``postgresql://`` URL (whose schema ``gameday db upgrade``
        keeps current); else the project's (``settings``: ``--db``, ``GAMEDAY_DB``,
        ``gameday.toml``, ``.gameday/gameday.db``).

        ``url``: the store as a child process is told it (``GAMEDAY_DB``). ``path``: the
        SQLite file, or for PostgreSQL the URL as a ``Path`` (never a file)."""
        if path is None:
            from gameday.settings import current

            path = current().db
        target = os.fspath(path)
        self.postgres = target.startswith(("postgresql://", "postgresql+psycopg://",
                                           "postgres://"))
        if self.postgres:
            self.url = target
            self.path = Path(target)
            engine_url = _engine_url(target)
        else:
            if target.startswith("sqlite:"):
                from gameday.settings import store_path

                target = str(store_path(target))
            self.path = Path(target)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.url = str(self.path.resolve())
            engine_url = f"sqlite:///{self.path.resolve()}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self._integrity = integrity_errors()
        from sqlalchemy import create_engine, event

        if self.postgres:
            self._engine = create_engine(engine_url, pool_size=2, max_overflow=30,
                                         pool_pre_ping=True)
        else:
            self._engine = create_engine(engine_url, connect_args={"timeout": 30},
                                         poolclass=_null_pool())

            @event.listens_for(self._engine, "connect")
            def _pragmas(dbapi: Any, _record: Any) -> None:
                dbapi.isolation_level = None
                dbapi.execute("PRAGMA journal_mode=WAL")
                dbapi.execute("PRAGMA foreign_keys=ON")
        self._check_schema()

    def _check_schema(self) -> None:
        at = self._revision()
        if at == HEAD:
            return
        if at is not None and at.isdigit() and int(at) > int(HEAD):
            self.close()
            raise GamedayError(
                f"the store at {_redacted(self.url)} has schema {at}, newer than this "
                f"gameday's ({HEAD}): run the gameday that upgraded it, or a newer one")
        if self.postgres:
            self.close()
            raise GamedayError(
                f"the store at {_redacted(self.url)} has schema {at or 'none'}, this gameday "
                f"needs {HEAD}: run `gameday db upgrade` (with the same --db / GAMEDAY_DB)")
        self._upgrade_sqlite()

    def _revision(self) -> str | None:
        db = self._db
        try:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        except Exception:  # no table yet: a new store, or one made before Alembic
            if db.in_transaction:
                db.execute("ROLLBACK")
            return None
        return str(row[0]) if row else None

    def _upgrade_sqlite(self) -> None:
        """A SQLite store is brought to the newest schema when opened: under the write
        lock, so two processes opening a new file do not both migrate it. A store made
        before Alembic has the tables already; the first revision is idempotent."""
        from alembic import command

        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._revision_in_tx() != HEAD:
                command.upgrade(_alembic_config(self._local.sa), "head")
            if db.in_transaction:
                db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _revision_in_tx(self) -> str | None:
        db = self._db
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'"
                      ).fetchone() is None:
            return None
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else None

    @property
    def _db(self) -> Connection:
        db: Connection | None = getattr(self._local, "db", None)
        if db is not None and db.invalidated:  # a signal landed mid-statement: start over
            with contextlib.suppress(Exception):
                self._local.sa.close()
            db = None
        if db is None:
            from sqlalchemy.exc import OperationalError

            try:
                sa = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except OperationalError as exc:
                raise StoreUnavailable(f"cannot reach the store at {_redacted(self.url)}: "
                                       f"{str(exc.orig).strip()}") from None
            db = Connection(sa, self.postgres)
            self._local.sa = sa
            self._local.db = db
            with self._lock:
                self._open.append(sa)
        return db

    def close(self) -> None:
        """Close every thread's connection (a store used after opens new ones)."""
        with self._lock:
            open_, self._open = self._open, []
        for sa in open_:
            with contextlib.suppress(Exception):
                sa.close()
        self._local = threading.local()
        self._engine.dispose()

    @contextmanager
    def _tx(self, savepoint: bool = False) -> Iterator[Connection]:
        """A write transaction. Inside another, a store call joins it (an exception
        rolls back whatever encloses it), and ``transaction()`` is a savepoint: it
        commits with the outer one, or alone rolls back what it wrote."""
        db = self._db
        depth = getattr(self._local, "depth", 0)
        if depth and not savepoint:
            yield db
            return
        if depth:
            name = f"nested_{depth}"
            db.execute(f"SAVEPOINT {name}")
            self._local.depth = depth + 1
            try:
                yield db
                db.execute(f"RELEASE SAVEPOINT {name}")
            except BaseException:
                db.execute(f"ROLLBACK TO SAVEPOINT {name}")
                db.execute(f"RELEASE SAVEPOINT {name}")
                raise
            finally:
                self._local.depth = depth
            return
        # A signal (Ctrl-C, SIGTERM) can land between any two statements here; never
        # leave a transaction open behind it.
        if db.in_transaction:
            db.execute("ROLLBACK")
        self._local.depth = 1
        try:
            db.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            self._local.depth = 0

    def reader(self) -> Connection:
        """This thread's connection, for read-only aggregates a module owns (insights,
        ``incident_facts``); where their SQL differs between the databases they ask
        ``Connection.postgres``."""
        return self._db

    def transaction(self) -> contextlib.AbstractContextManager[Connection]:
        """Many writes committed at once (one fsync); nested, a savepoint that rolls
        back alone. The intake commits a batch of notifications this way, each in its
        own savepoint."""
        return self._tx(savepoint=True)

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

    def incident(self, incident_id: int) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        return dict(row)

    def incidents(self, *, since: str | None = None, limit: int | None = None,
                  kind: str | None = None) -> list[dict[str, Any]]:
        """Oldest first; ``since`` (UTC ISO) and ``limit`` (the newest that many) page;
        ``kind``: only real incidents, game days or drills."""
        sql, args = "SELECT * FROM incidents WHERE 1 = 1", []
        if since:
            sql, args = sql + " AND created_at >= ?", [since]
        if kind:  # a row from before kinds were kept: a game day if it has a scenario
            sql, args = sql + (" AND COALESCE(kind, CASE WHEN scenario IS NULL THEN"
                               " 'incident' ELSE 'gameday' END) = ?"), [*args, kind]
        if limit:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
            return [dict(r) for r in rows][::-1]
        return [dict(r) for r in self._db.execute(sql + " ORDER BY id", args)]

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
               once: tuple[str, Any] | None = None) -> Event:
        """Append one event (and update the incident's projection in the same
        transaction). Timestamps are read here, at the moment it is recorded, unless
        the caller measured the moment itself (for example a request's end). A kind
        that is not in the vocabulary (``events.Kind``) is refused: a typo would
        otherwise score silently wrong.

        Decided under the incident's lock, so two processes (two replicas, a game day
        and a person) cannot both pass: ``state_check`` is called with the incident's
        state and may refuse; ``once`` (a field of the payload, its value) refuses an
        event of this kind whose payload already has that value."""
        if kind not in KINDS:
            raise GamedayError(f"unknown event kind {kind!r} (see gameday.events.Kind)")
        local, epoch = time.monotonic_ns(), clock.epoch_ns()  # the moment it is recorded
        utc = at_utc or utc_now()
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

    def events(self, incident_id: int, *, after_seq: int = 0) -> list[Event]:
        rows = self._db.execute(
            "SELECT * FROM events WHERE incident_id = ? AND seq > ? ORDER BY seq",
            (incident_id, after_seq))
        return [Event(r["incident_id"], r["seq"], r["at_utc"], r["at_monotonic_ns"], r["kind"],
                      r["actor"], json.loads(r["data_json"])) for r in rows]

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
                status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM action_items WHERE 1=1"
        args: list[object] = []
        if incident_id is not None:
            sql, args = sql + " AND incident_id = ?", [*args, incident_id]
        if status:
            sql, args = sql + " AND status = ?", [*args, status]
        return [dict(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def close_action(self, action_id: int) -> None:
        with self._tx() as db:
            if db.execute("UPDATE action_items SET status = 'done' WHERE id = ?",
                          (action_id,)).rowcount == 0:
                raise NotFound(f"no action item {action_id}")

    # -- alert instances (at-least-once delivery) ------------------------------------
    def claim_alert(self, key: str, *, alertname: str, group_key: str,
                    fingerprint: str) -> bool:
        """Record an alert instance; False if it was seen before (a redelivery)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO alert_instances (key, alertname, group_key, fingerprint,"
                " received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (key, alertname, group_key, fingerprint, utc_now()))
            return cur.rowcount == 1

    def bind_alert(self, key: str, incident_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE alert_instances SET incident_id = ? WHERE key = ?",
                       (incident_id, key))

    def alert_instance(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM alert_instances WHERE key = ?", (key,)).fetchone()
        return dict(row) if row else None

    def open_incident_for_group(self, group_key: str) -> int | None:
        row = self._db.execute(  # few incidents are open; each is checked by the index
            "SELECT i.id FROM incidents i WHERE i.state IN ('pending', 'declared',"
            " 'acknowledged', 'mitigated') AND EXISTS (SELECT 1 FROM alert_instances a"
            " WHERE a.group_key = ? AND a.incident_id = i.id) ORDER BY i.id DESC LIMIT 1",
            (group_key,)).fetchone()
        return int(row[0]) if row else None

    # -- leases: a running game day and what undoes it ---------------------------------
    def take_lease(self, incident_id: int, *, run_dir: str, host: str, pid: int,
                   started: int, target: str) -> None:
        """``started``: the process's start time (clock ticks since boot), so a pid
        reused by another process is not taken for the game day."""
        with self._tx() as db:
            db.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?, '{}', ?, 'running')",
                       (incident_id, run_dir, host, pid, started, target, clock.epoch()))

    def heartbeat(self, incident_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE leases SET heartbeat = ? WHERE incident_id = ? AND"
                       " state = 'running'", (clock.epoch(), incident_id))

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

    def running_leases(self) -> list[dict[str, Any]]:
        return [{**dict(r), "undo": json.loads(r["undo_json"])} for r in self._db.execute(
            "SELECT * FROM leases WHERE state = 'running' ORDER BY incident_id")]

    # -- runbook runs and the audit log -----------------------------------------------
    @property
    def _clock_sql(self) -> str:
        """Now, in Unix seconds, by the database's clock: one clock for every host."""
        return ("EXTRACT(EPOCH FROM clock_timestamp())" if self.postgres
                else "(julianday('now') - 2440587.5) * 86400.0")

    def create_run(self, incident_id: int | None, runbook: str, params: dict[str, Any],
                   started_by: str, check: bool, owner: str | None = None,
                   approve_by: str | None = None, *, world: str = "default",
                   kind: str = "incident") -> int:
        """``owner``: the process that will run it (``lease.owner()``), so a run whose
        process died is not waited for, nor joined, forever. With ``approve_by`` the run
        waits (``awaiting_approval``) for a second person until then. ``world``: where it
        acts (``runs.world``); ``kind``: what it serves (a real ``incident``, a
        ``gameday``, a ``drill``)."""
        status = "awaiting_approval" if approve_by else "queued"
        owned = None if approve_by else owner
        beat = self._clock_sql if owned else "NULL"
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runbook_runs (incident_id, runbook, params_json, check_mode,"
                " started_by, status, created_at, owner, approve_by, heartbeat, world, kind)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {beat}, ?, ?) RETURNING id",
                (incident_id, runbook, params_key(params), int(check), started_by, status,
                 utc_now(), owned, approve_by, world, kind))
            return _inserted_id(cur)

    def serialize(self, key: str) -> None:
        """Inside a transaction: hold ``key`` until it ends, so that writers deciding
        the same thing (which run an alert joins, whether a runbook has a free slot) on
        several ``gameday serve`` replicas decide one after the other. PostgreSQL: an
        advisory transaction lock; SQLite's write transactions are one at a time
        already."""
        assert getattr(self._local, "depth", 0), "serialize() outside a transaction"
        if self.postgres:
            self._db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))

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

    def stale_runs(self, ttl_s: float) -> list[dict[str, Any]]:
        """Unfinished runs whose heartbeat is older than ``ttl_s`` by the database's
        clock (PostgreSQL; none on SQLite)."""
        if not self.postgres:
            return []
        return [dict(r) for r in self._db.execute(
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

    def expire_approvals(self) -> list[dict[str, Any]]:
        """End the runs whose approval time ran out; they can never be approved now."""
        now = utc_now()
        with self._tx() as db:
            rows = [dict(r) for r in db.execute(
                "SELECT * FROM runbook_runs WHERE status = 'awaiting_approval'"
                " AND approve_by <= ?", (now,))]
            for row in rows:
                db.execute("UPDATE runbook_runs SET status = 'expired', finished_at = ?"
                           " WHERE id = ? AND status = 'awaiting_approval'", (now, row["id"]))
        return rows

    # -- people ---------------------------------------------------------------------------
    def add_user(self, name: str, role: str, token_sha256: str, created_by: str) -> bool:
        """Add a person, or give one who was revoked a new token and role (True: they
        were there before; the audit log keeps what happened in between). An active
        person is refused."""
        with self._tx() as db:
            before = db.execute("SELECT revoked_at FROM users WHERE name = ?",
                                (name,)).fetchone()
            row = db.execute(
                "INSERT INTO users (name, role, token_sha256, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " role = excluded.role, token_sha256 = excluded.token_sha256,"
                " created_at = excluded.created_at, created_by = excluded.created_by,"
                " revoked_at = NULL WHERE users.revoked_at IS NOT NULL RETURNING name",
                (name, role, token_sha256, utc_now(), created_by)).fetchone()
            if row is None:
                raise GamedayError(f"there is already a user {name} (gameday user rotate "
                                   f"{name} gives them a new token; gameday user role "
                                   f"{name} ROLE changes their role)")
            return before is not None

    def rotate_user(self, name: str, token_sha256: str) -> bool:
        """A new token for an active person: the old one, and the sessions it made, stop
        working at once."""
        with self._tx() as db:
            return db.execute("UPDATE users SET token_sha256 = ? WHERE name = ? AND"
                              " revoked_at IS NULL", (token_sha256, name)).rowcount == 1

    def set_user_role(self, name: str, role: str) -> str | None:
        """Change an active person's role (their sessions follow at once); the role they
        had, or None if there is no such person."""
        with self._tx() as db:
            row = db.execute("SELECT role FROM users WHERE name = ? AND revoked_at IS NULL",
                             (name,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
            return str(row[0])

    def user_by_token(self, token_sha256: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM users WHERE token_sha256 = ? AND"
                               " revoked_at IS NULL", (token_sha256,)).fetchone()
        return dict(row) if row else None

    def user(self, name: str) -> dict[str, Any] | None:
        """An active user by name (None if there is none, or they were revoked)."""
        row = self._db.execute("SELECT * FROM users WHERE name = ? AND revoked_at IS NULL",
                               (name,)).fetchone()
        return dict(row) if row else None

    def users(self) -> list[dict[str, Any]]:
        return [{k: r[k] for k in r.keys() if k != "token_sha256"}  # noqa: SIM118
                for r in self._db.execute("SELECT * FROM users ORDER BY name")]

    def has_users(self) -> bool:
        return self._db.execute("SELECT 1 FROM users WHERE revoked_at IS NULL"
                                " LIMIT 1").fetchone() is not None

    def revoke_user(self, name: str) -> bool:
        with self._tx() as db:
            return db.execute("UPDATE users SET revoked_at = ? WHERE name = ? AND"
                              " revoked_at IS NULL", (utc_now(), name)).rowcount == 1

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

    def unfinished_runs(self) -> list[dict[str, Any]]:
        return [{**dict(r), "params": json.loads(r["params_json"])} for r in self._db.execute(
            "SELECT * FROM runbook_runs WHERE status IN ('queued', 'running') ORDER BY id")]

    def update_run(self, run_id: int, **fields: Any) -> None:
        allowed = {"status", "rc", "started_at", "finished_at", "owner"}
        assert set(fields) <= allowed, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE runbook_runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def run(self, run_id: int) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM runbook_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"no runbook run {run_id}")
        return {**dict(row), "params": json.loads(row["params_json"])}

    def runs(self, *, incident_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runbook_runs"
        args: tuple[int, ...] = ()
        if incident_id is not None:
            sql, args = sql + " WHERE incident_id = ?", (incident_id,)
        return [{**dict(r), "params": json.loads(r["params_json"])}
                for r in self._db.execute(sql + " ORDER BY id", args)]

    # -- schedules, their runs, and the freeze ------------------------------------------
    def add_schedule(self, name: str, scenario: str, spec: dict[str, Any],
                     created_at: str) -> None:
        try:
            with self._tx() as db:
                db.execute("INSERT INTO schedules (name, scenario, spec_json, created_at,"
                           " updated_at) VALUES (?, ?, ?, ?, ?)",
                           (name, scenario, json.dumps(spec, sort_keys=True), created_at,
                            utc_now()))
        except self._integrity:
            raise GamedayError(f"a schedule named {name!r} exists (gameday schedule "
                               f"remove {name}, or pick another name)") from None

    def schedules(self) -> list[dict[str, Any]]:
        return [{**dict(r), "spec": json.loads(r["spec_json"])}
                for r in self._db.execute("SELECT * FROM schedules ORDER BY name")]

    def schedule(self, name: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(r["name"] for r in self.schedules()) or "none"
            raise NotFound(f"no schedule {name!r} (known: {known})")
        return {**dict(row), "spec": json.loads(row["spec_json"])}

    def update_schedule(self, name: str, **fields: Any) -> None:
        assert set(fields) <= {"paused", "last_due"}, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            if db.execute(f"UPDATE schedules SET {sets}, updated_at = ? WHERE name = ?",
                          (*fields.values(), utc_now(), name)).rowcount == 0:
                raise NotFound(f"no schedule {name!r}")

    def remove_schedule(self, name: str) -> None:
        """The schedule goes; its history stays (``schedule_runs``)."""
        with self._tx() as db:
            if db.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no schedule {name!r}")

    def claim_schedule_run(self, name: str, due_at: str, *, target: str, by: str,
                           advance: bool = True) -> int | None:
        """Claim the game day ``name`` owes at ``due_at``: its id, or None when another
        process claimed it first. ``advance`` moves the schedule past ``due_at``."""
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO schedule_runs (schedule, due_at, claimed_at, claimed_by,"
                " target, status) VALUES (?, ?, ?, ?, ?, 'claimed') ON CONFLICT DO NOTHING"
                " RETURNING id", (name, due_at, utc_now(), by, target)).fetchone()
            if row is None:
                return None
            run_id = int(row[0])
            if advance:
                db.execute("UPDATE schedules SET last_due = ?, updated_at = ? WHERE name = ?"
                           " AND (last_due IS NULL OR last_due < ?)",
                           (due_at, utc_now(), name, due_at))
            return run_id

    def update_schedule_run(self, run_id: int, **fields: Any) -> None:
        allowed = {"status", "reason", "incident_id", "run_dir", "score", "owner",
                   "started_at", "finished_at", "summary"}
        assert set(fields) <= allowed, fields
        if "summary" in fields:
            fields["summary_json"] = json.dumps(fields.pop("summary"), default=str)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE schedule_runs SET {sets} WHERE id = ?",
                       (*fields.values(), run_id))

    def schedule_run(self, run_id: int) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM schedule_runs WHERE id = ?",
                               (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"no scheduled run {run_id}")
        return _schedule_run(row)

    def schedule_runs(self, name: str | None = None, *, limit: int = 20,
                      unfinished: bool = False) -> list[dict[str, Any]]:
        """Newest first."""
        sql, args = "SELECT * FROM schedule_runs WHERE 1=1", []
        if name is not None:
            sql, args = sql + " AND schedule = ?", [name]
        if unfinished:
            sql += " AND status IN ('claimed', 'running')"
        rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])
        return [_schedule_run(r) for r in rows]

    def create_drill(self, scenario: str, *, game_master: str, difficulty: str,
                     oncall: str | None) -> int:
        with self._tx() as db:
            return _inserted_id(db.execute(
                "INSERT INTO drills (scenario, game_master, difficulty, oncall, state,"
                " created_at) VALUES (?, ?, ?, ?, 'starting', ?) RETURNING id",
                (scenario, game_master, difficulty, oncall, utc_now())))

    def drill(self, drill_id: int) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM drills WHERE id = ?", (drill_id,)).fetchone()
        if row is None:
            raise NotFound(f"no drill {drill_id}")
        return dict(row)

    def drills(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM drills ORDER BY id DESC")]

    def update_drill(self, drill_id: int, **fields: Any) -> None:
        assert set(fields) <= {"state", "incident_id", "run_dir"}, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE drills SET {sets} WHERE id = ?", (*fields.values(), drill_id))

    def set_freeze(self, frozen: bool, reason: str | None, who: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO \"freeze\" (id, frozen, reason, who, at) VALUES (1, ?, ?, ?, ?)"
                       " ON CONFLICT (id) DO UPDATE SET frozen = excluded.frozen,"
                       " reason = excluded.reason, who = excluded.who, at = excluded.at",
                       (int(frozen), reason, who, utc_now()))

    def freeze(self) -> dict[str, Any] | None:
        """The safety lever, when it is on: who pulled it, when and why."""
        row = self._db.execute("SELECT * FROM \"freeze\" WHERE id = 1 AND frozen = 1").fetchone()
        return dict(row) if row else None

    def open_alert_incidents(self, service: str) -> list[dict[str, Any]]:
        """Real incidents (opened by an alert, not by a game day) still open for
        ``service``."""
        return [dict(r) for r in self._db.execute(
            "SELECT * FROM incidents WHERE COALESCE(kind, 'incident') = 'incident' AND"
            " scenario IS NULL AND service = ? AND state IN"
            " ('pending', 'declared', 'acknowledged', 'mitigated') ORDER BY id", (service,))]

    def audit(self, who: str, action: str, data: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO audit (at_utc, who, action, data_json) VALUES (?, ?, ?, ?)",
                       (utc_now(), who, action, json.dumps(data, sort_keys=True, default=str)))

    def audit_log(self) -> list[dict[str, Any]]:
        return [{**dict(r), "data": json.loads(r["data_json"])}
                for r in self._db.execute("SELECT * FROM audit ORDER BY id")]
