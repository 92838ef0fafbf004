"""Process faults on a team's own hosts, through Ansible and the team's inventory.

Use them from an experiment with a ``python`` provider, module
``gameday.activities.hosts``: ``pause_process`` freezes (SIGSTOP) every process on the
given hosts whose full command line matches an extended regex (``pkill -f``), the
frozen-but-alive failure health checks that only ask "is it running?" miss;
``resume_process`` thaws them (SIGCONT), and is a rollback that does not fail when
nothing matches any more (so it names the fault's hosts and process:
``gameday validate`` refuses one that would thaw something else). The signal is sent by
a small play shipped with gameday (``plays/signal.yml``) run through ansible-runner
against the team's inventory (``inventory``, else ``GAMEDAY_INVENTORY``, which a game
day sets from its target). Only hosts on the project's allowlist (``[safety] hosts`` in
``gameday.toml``) that are hosts of that inventory are touched, checked before anything
runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gameday.activities.faults import fault

__all__ = ["pause_process", "resume_process"]

PLAY = Path(__file__).resolve().parent / "plays" / "signal.yml"
VARIABLE = "GAMEDAY_INVENTORY"
MAX_PROCESS = 200
TIMEOUT_S = 300  # the whole play, connections included
TOUCHES = {"hosts": "hosts"}


def _processes(arguments: Mapping[str, Any]) -> list[tuple[tuple[str, Any], ...]]:
    """What a process activity acts on: on each host, the processes ``process`` matches
    (a host by its name: an inventory of its own, say one a rollback only has later,
    names the same host)."""
    hosts = arguments.get("hosts")
    return [(("hosts", host), ("process", arguments.get("process")))
            for host in (hosts if isinstance(hosts, list) else [hosts])]


def _checked(hosts: Any, process: Any, inventory: str | None) -> Path:
    """The inventory to use, once ``hosts`` and ``process`` are what the activity takes
    and every host is allowlisted and in the inventory; ActivityFailed otherwise."""
    from chaoslib.exceptions import ActivityFailed

    from gameday.core import safety
    from gameday.core.errors import ValidationError
    from gameday.core.settings import current
    from gameday.targets.inventory import load_inventory

    if not isinstance(hosts, list) or not hosts or not all(
            isinstance(h, str) and h.strip() for h in hosts):
        raise ActivityFailed("hosts must be a non-empty list of host names")
    if not isinstance(process, str) or not process.strip():
        raise ActivityFailed("process must be a non-empty regular expression")
    if any(c in process for c in "\n\r\0") or len(process) > MAX_PROCESS:
        raise ActivityFailed(f"process must be one line of at most {MAX_PROCESS} characters")
    if any(mark in process for mark in ("{{", "{%", "{#")):  # Ansible would template it
        raise ActivityFailed("process must not contain a Jinja template ({{, {% or {#)")
    given = inventory or os.environ.get(VARIABLE)
    if not given:
        raise ActivityFailed(f"no inventory: give the activity an inventory argument, or "
                             f"set {VARIABLE} (a game day sets it from its target)")
    # an experiment's path is the project's; the environment's, the working directory's
    path = current().resolve(given) if inventory else Path(given).resolve()
    try:  # once more, as it acts: nothing outside the allowlist or the inventory
        for host in hosts:
            safety.allowed("hosts", host, field="hosts")
        found = load_inventory(path)
    except ValidationError as exc:
        raise ActivityFailed(str(exc)) from None
    missing = [h for h in hosts if h not in found.hosts]
    if missing:
        raise ActivityFailed(f"not hosts of the inventory {path}: {', '.join(missing)}")
    return path


def _short(text: Any, limit: int = 300) -> str:
    said = " ".join(str(text or "").split())
    return said if len(said) <= limit else said[:limit - 1] + "…"


def _tail(runner: Any) -> str:
    """The end of a failed play's output (what Ansible said last)."""
    try:
        with runner.stdout as out:
            return _short(out.read()[-300:])
    except Exception:  # no output written
        return ""


def _signal(hosts: list[str], process: str, inventory: str | None, signal: str, *,
            must_match: bool) -> dict[str, Any]:
    """Run the play sending ``signal`` on ``hosts``; what each host's pkill found."""
    import shutil
    import tempfile

    import ansible_runner
    from chaoslib.exceptions import ActivityFailed

    from gameday.core.states import RunStatus
    from gameday.runbooks.executor import ansible_envvars

    path = _checked(hosts, process, inventory)
    results: dict[str, dict[str, Any]] = {}

    def collect(event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            data = event.get("event_data") or {}
            results[str(data.get("host"))] = {"event": kind, **(data.get("res") or {})}
        return True

    data_dir = tempfile.mkdtemp(prefix="gameday-hosts-")
    try:
        runner = ansible_runner.run(
            private_data_dir=data_dir, playbook=str(PLAY), inventory=str(path),
            extravars={"gameday_hosts": list(hosts), "gameday_signal": signal,
                       "gameday_process": process, "gameday_must_match": must_match},
            limit=",".join(hosts), quiet=True, envvars=ansible_envvars(None),
            event_handler=collect, timeout=TIMEOUT_S,
            # without one, ansible-runner takes over SIGINT and SIGTERM for good, and a
            # game day's own handlers (gameday.game.interrupts) would never hear them
            cancel_callback=lambda: False)
        ran = runner.status == RunStatus.SUCCESSFUL
        tail = "" if ran else _tail(runner)
    except Exception as exc:  # ansible-runner could not start the play
        raise ActivityFailed(f"SIG{signal} on {', '.join(hosts)}: {_short(exc)}") from None
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    for host in hosts:
        res = results.get(host)
        if res is None:
            raise ActivityFailed(f"SIG{signal} on {host}: no result ({runner.status}: "
                                 f"{tail or 'nothing said'})")
        if res["event"] != "runner_on_ok":
            said = res.get("stderr") or res.get("msg") or f"pkill exit status {res.get('rc')}"
            if res["event"] == "runner_on_failed" and res.get("rc") == 1:
                said = f"no process matches {process!r}"
            raise ActivityFailed(f"SIG{signal} on {host}: {_short(said)}")
    if not ran:
        raise ActivityFailed(f"SIG{signal} on {', '.join(hosts)}: {runner.status}: {tail}")
    return {"hosts": list(hosts), "process": process, "signal": signal,
            "matched": {h: results[h].get("rc") == 0 for h in hosts}}


@fault(local=True, rollback=("resume_process",), touches=TOUCHES, acts_on=_processes,
       factor="A process that hangs without exiting (frozen, deadlocked, stalled on I/O) "
              "still looks alive: it is neither restarted nor taken out of rotation.",
       action="Check that the process answers (a liveness probe or heartbeat with a "
              "timeout), not only that it runs, and restart or fence it when it does not")
def pause_process(hosts: list[str], process: str,
                  inventory: str | None = None) -> dict[str, Any]:
    """Freeze (SIGSTOP) every process on ``hosts`` whose full command line matches the
    extended regex ``process``; finding none on a host is a failure."""
    return _signal(hosts, process, inventory, "STOP", must_match=True)


@fault(local=True, touches=TOUCHES, acts_on=_processes)
def resume_process(hosts: list[str], process: str,
                   inventory: str | None = None) -> dict[str, Any]:
    """Thaw (SIGCONT) every process on ``hosts`` whose full command line matches
    ``process``; finding none (gone, or never frozen) is not an error."""
    return _signal(hosts, process, inventory, "CONT", must_match=False)
