"""A store's address: as it may be shown (``redacted``: never its password), and as a
child process is told it (``child_env``: the password, if any, in a libpq password
file, never in an environment)."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from gameday.core.errors import GamedayError


def redacted(url: str) -> str:
    """A store's address as it may be shown: a password never is."""
    if "://" not in url:  # a SQLite file
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _escaped(field: object) -> str:
    return "*" if field is None else str(field).replace("\\", "\\\\").replace(":", "\\:")


def child_env(url: str) -> dict[str, str]:
    """How a child process (a runbook, a game day, a drill) is told the store at ``url``
    (``GAMEDAY_DB``). A PostgreSQL password never goes into an environment: ansible-runner
    writes a run's whole environment into its artifacts (``artifacts/*/command``). It
    goes into a libpq password file of this user's (0600, in a 0700 directory of the
    temporary directory), which ``PGPASSFILE`` names and psycopg reads when it connects."""
    if "://" not in url:
        return {"GAMEDAY_DB": url}
    from sqlalchemy.engine import URL, make_url

    parsed = make_url(url)
    if parsed.password is None:
        return {"GAMEDAY_DB": url}
    private = Path(tempfile.gettempdir()) / f"gameday-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    st = private.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise GamedayError(f"{private} is not a directory of this user's: cannot keep the "
                           "store's password for the runs it starts")
    os.chmod(private, 0o700)
    line = ":".join(_escaped(f) for f in (parsed.host, parsed.port, parsed.database,
                                            parsed.username, parsed.password))
    passfile = private / f"pgpass-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(line + "\n")
    bare = URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                      port=parsed.port, database=parsed.database, query=parsed.query)
    return {"GAMEDAY_DB": bare.render_as_string(hide_password=False),
            "PGPASSFILE": str(passfile)}
