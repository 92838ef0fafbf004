"""The store's engine: one connection per thread, transactions with savepoints, the
schema's revision (upgraded on open for SQLite), and the rows SQL returns, read the
same on SQLite and PostgreSQL. Each aggregate's reads and writes are a mixin of
``Database`` in a module of its own; ``gameday.store.Store`` is all of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from gameday.core import clock
from gameday.core.errors import GamedayError, StoreUnavailable, ValidationError
from gameday.core.events import Kind
from gameday.store.rows import ScheduleRunRow
from gameday.store.urls import child_env, redacted

KINDS = frozenset(k.value for k in Kind)

# The schema lives in Alembic revisions (``gameday/migrations/versions``); this is the
# newest. SQLite stores are brought to it when opened; PostgreSQL by ``gameday db upgrade``.
HEAD = "0010"


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


def _schedule_run(row: Row) -> ScheduleRunRow:
    data = dict(row)
    data["summary"] = json.loads(data.pop("summary_json") or "null")
    return cast(ScheduleRunRow, data)


def json_value(path: str, *, postgres: bool, cast: str | None = None) -> str:
    """SQL for the value at ``path`` (``$.labels.team``) of an event's ``data_json``:
    SQLite's ``json_extract``; PostgreSQL's ``#>>`` (text, ``cast`` to a number)."""
    if not postgres:
        return f"json_extract(data_json, '{path}')"
    value = f"(data_json::jsonb #>> '{{{','.join(path.removeprefix('$.').split('.'))}}}')"
    return f"{value}::{cast}" if cast else value


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

    def __init__(self, rows: Any, keys: list[str] | None, rowcount: int) -> None:
        self._rows = rows  # a DBAPI cursor or a SQLAlchemy result; None: no rows
        self.rowcount = rowcount
        self._keys = {k: i for i, k in enumerate(keys)} if keys is not None else {}

    @classmethod
    def of_driver(cls, cursor: Any) -> Cursor:
        description = cursor.description
        if description is None:
            return cls(None, None, cursor.rowcount)
        return cls(cursor, [column[0] for column in description], cursor.rowcount)

    @classmethod
    def of_result(cls, result: Any) -> Cursor:
        if not result.returns_rows:
            return cls(None, None, result.rowcount)
        return cls(result, list(result.keys()), result.rowcount)

    def _row(self, raw: Any) -> Row:
        return Row(self._keys, tuple(raw))

    def fetchone(self) -> Any:  # Row | None
        if self._rows is None:
            return None
        raw = self._rows.fetchone()
        return None if raw is None else self._row(raw)

    def fetchall(self) -> list[Row]:
        return list(self)

    def __iter__(self) -> Iterator[Row]:
        if self._rows is None:
            return iter(())
        return (self._row(raw) for raw in self._rows)


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # :name, not a ::cast


class Connection:
    """One thread's connection to the store, through SQLAlchemy Core: SQL with ``?``
    placeholders on either database (PostgreSQL's driver is handed ``%s``), the
    driver's own exceptions (``store.integrity_errors`` names them).

    Statements go to the driver's cursor directly: SQLAlchemy's execution path (its
    result objects, column metadata, events) cost five times what SQLite takes to run a
    small statement, and an alert storm runs a dozen per alert. Its engine still opens,
    pools and drops the connections; when something listens to its cursor events
    (instrumentation, a test), statements go through SQLAlchemy so that they fire."""

    def __init__(self, conn: Any, postgres: bool, *, lost: Callable[[], None] | None = None,
                 generation: int = 0) -> None:
        self._conn = conn
        self._postgres = postgres
        self._lost = lost  # told when the server went away (``Database._db``)
        self.generation = generation  # the store's, when it was opened
        self._dbapi = conn.connection.dbapi_connection
        self._translated: dict[str, str] = {}

    row_factory: Any = None  # rows are always ``Row``s; sqlite3's knob, accepted

    @property
    def postgres(self) -> bool:
        """On PostgreSQL (else SQLite): for the few statements written twice."""
        return self._postgres

    def _sql(self, sql: str) -> str:
        if not self._postgres:
            return sql
        translated = self._translated.get(sql)
        if translated is None:
            translated = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))
            if len(self._translated) < 4096:
                self._translated[sql] = translated
        return translated

    @property
    def _observed(self) -> bool:
        """Something listens to SQLAlchemy's cursor events on this engine (first the
        flags SQLAlchemy itself checks before it looks for listeners)."""
        conn = self._conn
        if not (conn._has_events or conn.engine._has_events):
            return False
        dispatch = conn.dispatch
        return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)

    def execute(self, sql: str, args: Any = ()) -> Cursor:
        args = dict(args) if isinstance(args, Mapping) else tuple(args)
        if self._observed:
            return Cursor.of_result(self._through_sqlalchemy(sql, args))
        cursor = self._dbapi.cursor()
        self._run(cursor.execute, self._sql(sql), args)
        return Cursor.of_driver(cursor)

    def executemany(self, sql: str, rows: Any) -> None:
        rows = [tuple(r) for r in rows]
        if not rows:
            return
        if self._observed:
            self._through_sqlalchemy(sql, rows)
            return
        self._run(self._dbapi.cursor().executemany, self._sql(sql), rows)

    def tuples(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        """Every row of a read as a plain tuple, straight from the driver's cursor: for
        the report's reads of a hundred thousand rows, where a row object per row costs
        more than the query itself. PostgreSQL sends them in its binary format (the same
        Python values; numbers are not parsed from text)."""
        args = dict(args) if isinstance(args, Mapping) else tuple(args)
        cur = self._dbapi.cursor(binary=True) if self._postgres else self._dbapi.cursor()
        try:
            self._run(cur.execute, self._sql(sql), args)
            return cast("list[tuple[Any, ...]]", cur.fetchall())
        finally:
            cur.close()

    def _run(self, call: Any, sql: str, args: Any) -> None:
        """One statement on the driver: its error as ``_driver_error`` says; a signal
        landing inside it (KeyboardInterrupt, our ``Terminated``) drops the connection,
        as SQLAlchemy does, so what it held is rolled back and the next statement opens
        another (``invalidated``)."""
        try:
            call(sql, args)
        except Exception as exc:
            if self._postgres and (self._dbapi.closed or self._dbapi.broken):
                self._conn.invalidate()  # the server went away: the next one reconnects
                if self._lost is not None:
                    self._lost()
            raise self._driver_error(exc) from None
        except BaseException:
            self._conn.invalidate()
            raise

    def _through_sqlalchemy(self, sql: str, args: Any) -> Any:
        from sqlalchemy.exc import DBAPIError

        try:
            return self._conn.exec_driver_sql(self._sql(sql), args)
        except DBAPIError as exc:
            raise self._driver_error(exc.orig or exc) from None

    def _driver_error(self, orig: Exception) -> Exception:
        """The driver's own exception; on PostgreSQL a lost connection, a server
        shutting down or a transaction it rolled back (deadlock, serialization) is
        ``StoreUnavailable``: try again. The next statement opens a new connection."""
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
    config.set_main_option("script_location", str(Path(__file__).parent.parent / "migrations"))
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
        raise StoreUnavailable(f"cannot reach the store at {redacted(engine_url)}: "
                               f"{str(exc.orig).strip()}") from None
    finally:
        engine.dispose()
    return HEAD


class Database:
    def __init__(self, path: str | os.PathLike[str] | None = None):
        """Open the store at ``path``: a SQLite file (created and brought to the newest
        schema if needed) or a ``postgresql://`` URL (whose schema ``gameday db upgrade``
        keeps current); else the project's (``settings``: ``--db``, ``GAMEDAY_DB``,
        ``gameday.toml``, ``.gameday/gameday.db``).

        ``url``: the store's address (``child_env``: as a child process is told it;
        ``shown_url``: as it may be shown or written). ``path``: the SQLite file, or for
        PostgreSQL the URL as a ``Path`` (never a file)."""
        if path is None:
            from gameday.core.settings import current

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
                from gameday.core.settings import store_path

                target = str(store_path(target))
            self.path = Path(target)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.url = str(self.path.resolve())
            engine_url = f"sqlite:///{self.path.resolve()}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self._generation = 0  # one more each time a connection found the server gone
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
        try:
            self._check_schema()
        except Exception as exc:  # the file's first read: no SQLite store at all?
            cause = getattr(exc, "orig", exc)
            if isinstance(cause, sqlite3.DatabaseError) and not isinstance(
                    cause, sqlite3.OperationalError):  # not locked or unreachable: garbage
                self.close()
                raise ValidationError(f"is not a SQLite store ({cause})",
                                      file=str(self.path)) from None
            raise

    def _check_schema(self) -> None:
        at = self._revision()
        if at == HEAD:
            return
        if at is not None and at.isdigit() and int(at) > int(HEAD):
            self.close()
            raise GamedayError(
                f"the store at {redacted(self.url)} has schema {at}, newer than this "
                f"gameday's ({HEAD}): run the gameday that upgraded it, or a newer one")
        if self.postgres:
            self.close()
            raise GamedayError(
                f"the store at {redacted(self.url)} has schema {at or 'none'}, this gameday "
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
        # Through SQLAlchemy, so that it knows a transaction is open: Alembic then runs
        # every revision inside this one instead of committing it (and the lock) early.
        db._through_sqlalchemy("BEGIN IMMEDIATE", ())
        try:
            if self._revision_in_tx() != HEAD:
                command.upgrade(_alembic_config(self._local.sa), "head")
            if db.in_transaction:
                db._through_sqlalchemy("COMMIT", ())
        except BaseException:
            if db.in_transaction:
                db._through_sqlalchemy("ROLLBACK", ())
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
        # A signal landed mid-statement, or (for a thread between transactions) another
        # thread's connection found the server gone, as this one's then is: start over.
        if db is not None and (db.invalidated or (db.generation != self._generation
                                                  and not db.in_transaction)):
            with contextlib.suppress(Exception):
                self._local.sa.close()
            db = None
        if db is None:
            from sqlalchemy.exc import OperationalError

            try:
                sa = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except OperationalError as exc:
                raise StoreUnavailable(f"cannot reach the store at {redacted(self.url)}: "
                                       f"{str(exc.orig).strip()}") from None
            db = Connection(sa, self.postgres, lost=self._server_lost,
                            generation=self._generation)
            self._local.sa = sa
            self._local.db = db
            with self._lock:
                self._open.append(sa)
        return db

    def _server_lost(self) -> None:
        with self._lock:
            self._generation += 1

    def child_env(self) -> dict[str, str]:
        """How a child process is told this store (``child_env``)."""
        return child_env(self.url)

    @property
    def shown_url(self) -> str:
        """The store's address as it may be shown or written: never its password."""
        return redacted(self.url)

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

    @property
    def _clock_sql(self) -> str:
        """Now, in Unix seconds, by the database's clock: one clock for every host."""
        return ("EXTRACT(EPOCH FROM clock_timestamp())" if self.postgres
                else "(julianday('now') - 2440587.5) * 86400.0")

    def serialize(self, key: str) -> None:
        """Inside a transaction: hold ``key`` until it ends, so that writers deciding
        the same thing (which run an alert joins, whether a runbook has a free slot) on
        several ``gameday serve`` replicas decide one after the other. PostgreSQL: an
        advisory transaction lock; SQLite's write transactions are one at a time
        already."""
        assert getattr(self._local, "depth", 0), "serialize() outside a transaction"
        if self.postgres:
            self._db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))
