from __future__ import annotations

import os
from pathlib import Path

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
    from gameday import settings

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
    from gameday.scenario import load_scenario

    return load_scenario(ROOT / "scenarios" / "checkout-replica-crash.yaml")
