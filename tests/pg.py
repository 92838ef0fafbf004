"""A real PostgreSQL server for the tests: Debian's, started in a temporary directory
on 127.0.0.1 with a free port, a database per test, stopped at the end of the session.

PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, in a
directory handed to that user. Without the binaries the tests that need it skip.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from gameday.targets.sandbox.supervisor import free_port

BIN = Path(os.environ.get("GAMEDAY_PG_BIN", "/usr/lib/postgresql/15/bin"))




class Postgres:
    """One server; ``database()`` makes a fresh, empty database and returns its URL."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gameday-pg-"))
        self.port = free_port()
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        subprocess.run([*self._as, str(BIN / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "gameday", "--no-sync"], check=True, capture_output=True)
        self._log = open(self.dir / "log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*self._as, str(BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(self.dir), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdout=self._log, stderr=subprocess.STDOUT)
        self._wait()

    def url(self, name: str = "postgres") -> str:
        return f"postgresql://gameday@127.0.0.1:{self.port}/{name}"

    def _wait(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start: "
                                       + (self.dir / "log").read_text()) from None
                time.sleep(0.1)

    def database(self, upgrade: bool = True) -> str:
        """A new database; with ``upgrade`` at the newest schema (``gameday db upgrade``)."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = self.url(name)
        if upgrade:
            from gameday.store import upgrade as upgrade_store

            upgrade_store(url)
        return url

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def available() -> bool:
    return (BIN / "postgres").exists()
