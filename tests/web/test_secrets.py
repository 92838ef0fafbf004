"""Secrets stay out of what runs leave behind. ansible-runner writes a run's whole
environment into its artifacts (``artifacts/*/command``, ``env/envvars``): so `gameday
serve`'s token never reaches a runbook's environment, and a PostgreSQL password reaches
a runbook (which may call `gameday` on the same store) only through a libpq password
file, never through ``GAMEDAY_DB``. Checked against a real PostgreSQL that asks for the
password (scram-sha-256) and a real `gameday serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest
import yaml

from gameday.store.urls import child_env

ROLE = "secretive"
PASSWORD = "Sup3r:S3cret\\pw'x"  # a colon and a backslash: escaped in the password file
TOKEN = "serve-token-that-must-stay-home-0123456789"


@pytest.fixture
def guarded(postgres) -> str:
    """A store whose role must give its password: its URL, the password in it."""
    plain = postgres.database()
    name = plain.rsplit("/", 1)[1]
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is None:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD "
                         f"'{PASSWORD.replace(chr(39), chr(39) * 2)}'")
        hba = postgres.dir / "data" / "pg_hba.conf"
        rule = f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
        if rule not in hba.read_text():
            hba.write_text(rule + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
    return (f"postgresql://{ROLE}:{urllib.parse.quote(PASSWORD, safe='')}"
            f"@127.0.0.1:{postgres.port}/{name}")


def reaches(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import os, psycopg; psycopg.connect(os.environ['GAMEDAY_DB']).close()"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_child_reaches_the_store_through_the_password_file_only(guarded):
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "GAMEDAY_"))}
    told = child_env(guarded)
    assert PASSWORD not in json.dumps(told) and urllib.parse.quote(PASSWORD, safe="") \
        not in json.dumps(told)
    assert told["GAMEDAY_DB"].startswith(f"postgresql://{ROLE}@127.0.0.1:")
    passfile = Path(told["PGPASSFILE"])
    assert passfile.stat().st_mode & 0o077 == 0 and passfile.parent.stat().st_mode & 0o077 == 0
    done = reaches({**bare, **told})
    assert done.returncode == 0, done.stderr
    # the password file is what lets it in: without it the server refuses
    refused = reaches({**bare, "GAMEDAY_DB": told["GAMEDAY_DB"]})
    assert refused.returncode != 0 and "password" in refused.stderr
    assert child_env("/srv/gameday.db") == {"GAMEDAY_DB": "/srv/gameday.db"}


@pytest.mark.slow
def test_serves_runs_keep_no_token_and_no_password(tmp_path, guarded, gameday_serve):
    """A run started through `gameday serve` whose runbook calls `gameday` on the store:
    it reaches the store, and neither the token nor the password is anywhere in what
    the run leaves (its artifacts, its environment files, the project's state)."""
    project = tmp_path / "proj"
    subprocess.run([sys.executable, "-m", "gameday", "init", str(project)], check=True,
                   capture_output=True)
    (project / "runbooks" / "list-incidents.yml").write_text(yaml.safe_dump([{
        "name": "list-incidents", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                 "gameday_runbook": {"summary": "read the store", "alerts": ["Never"],
                                     "auto": False, "parameters": {}}},
        "tasks": [{"name": "list", "ansible.builtin.command": {
            "argv": ["gameday", "incident", "list"]}}]}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    served = gameday_serve({**env, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": guarded},
                           "--no-scheduler", "--data-dir", str(tmp_path / "data"),
                           cwd=project)
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(
        served.base + "/api/v1/runbooks/list-incidents/run", headers=auth,
        data=json.dumps({"params": {}, "as": "ana"}).encode())
    run_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["run_id"]
    deadline = time.monotonic() + 120
    while True:
        run = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{served.base}/api/v1/runs/{run_id}", headers=auth), timeout=30).read())
        if run.get("finished_at") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert run["status"] == "successful", run
    secrets = [TOKEN, PASSWORD, urllib.parse.quote(PASSWORD, safe="")]
    kept = [p for where in (tmp_path / "data", project) for p in where.rglob("*")
            if p.is_file() and not p.name.endswith((".db", ".db-wal", ".db-shm"))]
    assert any(p.name == "command" for p in kept)  # ansible-runner's, with the environment
    leaks = [(str(p), s) for p in kept for s in secrets
             if s.encode() in p.read_bytes()]
    assert leaks == []


def test_a_password_in_the_query_is_kept_out_as_well(tmp_path, monkeypatch):
    """libpq takes ``?password=`` too; and the user's own password file still follows
    gameday's line, so a runbook's own ``psql`` keeps finding what it found before."""
    from gameday.store.urls import redacted

    own = tmp_path / "my.pgpass"
    own.write_text("proddb:5432:*:ops:their-own\n")
    own.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(own))
    url = "postgresql://u@db:5433/gd?password=s3cr:et&sslmode=require"
    told = child_env(url)
    assert "s3cr" not in json.dumps(told) and "sslmode=require" in told["GAMEDAY_DB"]
    assert Path(told["PGPASSFILE"]).read_text() == \
        "db:5433:gd:u:s3cr\\:et\nproddb:5432:*:ops:their-own\n"
    assert "s3cr" not in redacted(url) and "***" in redacted(url)
    with pytest.raises(Exception, match="line break"):
        child_env("postgresql://u:a%0Ab@db/gd")
