"""A store's address: as it may be shown (``redacted``: never its password), and as a
child process is told it (``child_env``: the password, if any, in a libpq password
file, never in an environment)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from gameday.core.errors import GamedayError


def _parts(url: str) -> tuple[Any, str | None]:
    """``url`` parsed, without its password wherever it was written (``USER:PASSWORD@``
    or ``?password=``, both of which libpq takes), and that password."""
    from sqlalchemy.engine import URL, make_url

    parsed = make_url(url)
    query = dict(parsed.query)
    given = query.pop("password", None)
    password = parsed.password if parsed.password is not None else (
        given if isinstance(given, str) else given[0] if given else None)
    bare = URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                      port=parsed.port, database=parsed.database, query=query)
    return bare, password


def redacted(url: str) -> str:
    """A store's address as it may be shown: a password never is."""
    if "://" not in url:  # a SQLite file
        return url
    bare, password = _parts(url)
    shown: str = (bare if password is None else bare.set(password=password)
                  ).render_as_string(hide_password=True)
    return shown


def _escaped(field: object) -> str:
    return "*" if field is None else str(field).replace("\\", "\\\\").replace(":", "\\:")


def child_env(url: str) -> dict[str, str]:
    """How a child process (a runbook, a game day, a drill) is told the store at ``url``
    (``GAMEDAY_DB``). A PostgreSQL password never goes into an environment: ansible-runner
    writes a run's whole environment into its artifacts (``artifacts/*/command``). It
    goes into a libpq password file of this user's (0600, in a 0700 directory of the
    temporary directory), which ``PGPASSFILE`` names and psycopg reads when it connects;
    the user's own password file (``PGPASSFILE``, else ``~/.pgpass``) follows it there,
    so a runbook's own ``psql`` still finds the passwords it found before."""
    if "://" not in url:
        return {"GAMEDAY_DB": url}
    bare, password = _parts(url)
    if password is None:
        return {"GAMEDAY_DB": url}
    if "\n" in password or "\r" in password:
        raise GamedayError("the store's password holds a line break: no password file "
                           "can keep it")
    private = Path(tempfile.gettempdir()) / f"gameday-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    st = private.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise GamedayError(f"{private} is not a directory of this user's: cannot keep the "
                           "store's password for the runs it starts")
    os.chmod(private, 0o700)
    text = ":".join(_escaped(f) for f in (bare.host, bare.port, bare.database,
                                            bare.username, password)) + "\n"
    own = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    passfile = private / f"pgpass-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    if own.resolve() != passfile.resolve():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text += own.read_text()
    if not passfile.exists() or passfile.read_text() != text:  # a child may be reading it
        fd, staged = tempfile.mkstemp(dir=private, prefix=".pgpass-")
        with os.fdopen(fd, "w") as f:  # mkstemp: 0600
            f.write(text)
        os.replace(staged, passfile)
    return {"GAMEDAY_DB": bare.render_as_string(hide_password=False),
            "PGPASSFILE": str(passfile)}
