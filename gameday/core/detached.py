"""A game day in a process of its own, detached from the one that starts it: how
scheduled game days (``scheduler``) and training drills (``drillmaster``) run, so
that ``gameday serve`` stopping, or a browser closing, never takes a game day down
half-way (it ends by its own rules: its lease, its rollbacks, its record).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def spawn_gameday(scenario: Path, *, cwd: Path, store_env: Mapping[str, str],
                  flag: tuple[str, int],
                  log: Path | None, env: Mapping[str, str] | None = None
                  ) -> subprocess.Popen[bytes]:
    """``gameday run SCENARIO --FLAG ID`` (``--schedule-run`` or ``--drill``) against the
    store ``store_env`` names (``Store.child_env``), in its own session, its output
    appended to ``log`` (or this terminal's, when ``log`` is None)."""
    argv = [sys.executable, "-m", "gameday", "run", str(scenario), flag[0], str(flag[1])]
    environ = {**os.environ, **(env or {}), **store_env}
    if log is None:
        return subprocess.Popen(argv, cwd=cwd, env=environ)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=cwd, env=environ, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
