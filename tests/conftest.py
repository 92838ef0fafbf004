from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _project_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs from the repository (runbooks/, scenarios/) with its own store
    and run directories under tmp_path."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("GAMEDAY_DB", str(tmp_path / "gameday.db"))
    monkeypatch.setenv("GAMEDAY_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("GAMEDAY_SANDBOX", raising=False)
    # The CLI's own bin/ first, as a user's activated venv would have it.
    bindir = str(Path(os.sys.executable).parent)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture(autouse=True)
def _fresh_settings():
    """A CLI invocation (CliRunner) makes its settings the process's; the next test
    resolves its own from its environment."""
    from gameday.core import settings

    settings.use(None)
    yield
    settings.use(None)


@pytest.fixture
def store(tmp_path: Path):
    from gameday.store import Store

    return Store(tmp_path / "gameday.db")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (``tests/pg.py``); skips without one."""
    import pg

    if not pg.available():
        pytest.skip(f"no PostgreSQL in {pg.BIN} (scripts/system-deps installs it)")
    server = pg.Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory):
    """A real Matrix homeserver for the session (``tests/chatserver.py``), its log in its
    directory under pytest's temporary directory; skips where Synapse is not installed.
    Tests share it: each registers users of its own names."""
    import chatserver

    if not chatserver.available():
        pytest.skip(chatserver.NOT_BUILT)
    server = chatserver.Synapse(tmp_path_factory.mktemp("synapse"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path: Path):
    """The store on each database it runs on: a SQLite file, and a fresh PostgreSQL
    database on the session's server."""
    from gameday.store import Store

    if request.param == "sqlite":
        store = Store(tmp_path / "gameday.db")
    else:
        store = Store(request.getfixturevalue("postgres").database())
    yield store
    store.close()


@pytest.fixture
def scenario():
    from gameday.scenarios.scenario import load_scenario

    return load_scenario(ROOT / "scenarios" / "checkout-replica-crash.yaml")


# -- the clock, pinned -------------------------------------------------------------------
@dataclass(frozen=True)
class Moment:
    """A moment a date-sensitive test runs at: where the clock is pinned (in the local
    zone it names, which becomes the process's) and the ISO week that makes it."""

    name: str
    at: datetime
    iso_week: int


MOMENTS = (
    Moment("even-iso-week", datetime(2026, 12, 7, 9, 30, tzinfo=UTC), 50),
    Moment("odd-iso-week", datetime(2026, 12, 16, 14, 0, tzinfo=UTC), 51),
    # the year's last half minute, in its 53rd ISO week; 2027 begins during the test
    Moment("year-end", datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC), 53),
    # 30 s before Berlin's clocks jump from 02:00 to 03:00
    Moment("dst-spring-berlin", datetime(2027, 3, 28, 1, 59, 30,
                                         tzinfo=ZoneInfo("Europe/Berlin")), 12),
    # the first 01:30 of New York's repeated hour
    Moment("dst-fall-new-york", datetime(2026, 11, 1, 1, 30,
                                         tzinfo=ZoneInfo("America/New_York")), 44),
)


@pytest.fixture(params=MOMENTS, ids=lambda m: m.name)
def moment(request):
    """Runs the test once at each of ``MOMENTS``: ``gameday.core.clock`` (and anything else
    in this process that reads the wall clock or the local zone) starts there and
    ticks on. Other processes the test starts keep the real clock (they inherit the
    moment's zone, through TZ)."""
    import time_machine

    with time_machine.travel(request.param.at, tick=True):
        yield request.param


# -- gameday serve as a real process ---------------------------------------------------------
@dataclass
class Served:
    """A ``gameday serve`` started for a test: where it answers, its process, its log."""

    base: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def gameday_serve(tmp_path: Path):
    """Start ``gameday serve`` (loopback, a free port unless ``port`` is given: for
    ``GAMEDAY_URL``) with ``env`` and more ``args``, in ``cwd`` (the repository unless
    given), its output in ``tmp_path/NAME.log``; by default it is waited for until it
    answers. Every one started is stopped when the test ends."""
    import sys

    from serving import wait_until_serving

    from gameday.targets.sandbox.supervisor import free_port

    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(env: dict[str, str], *args: str, name: str = "serve", wait: bool = True,
              port: int | None = None, cwd: Path = ROOT) -> Served:
        port = port or free_port()
        log_path = tmp_path / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed when the test ends
        proc = subprocess.Popen([sys.executable, "-m", "gameday", "serve", "--port", str(port),
                                 *args], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        started.append((proc, log))
        served = Served(f"http://127.0.0.1:{port}", port, proc, log_path)
        if wait:
            wait_until_serving(served.base)
        return served

    yield start
    for proc, log in started:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
