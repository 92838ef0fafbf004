"""The warm executor's fast path: Mitogen keeps a Python interpreter for the runs' tasks.

Ansible runs every task the same way: a worker forked, the module packed into a
temporary directory, a new Python interpreter started for the module, then the command.
On these machines that is 250 to 300 ms before a runbook's first command starts, however
warm the process that forked the run. Mitogen's strategy (``mitogen_linear``) sends the
module to an interpreter that is already running instead, and a task starts in tens of
milliseconds.

How gameday uses it:

- The zygote loads Mitogen's strategy plugins and runs its warm-up with them: Mitogen's
  connection multiplexer and a warm local interpreter (with Ansible's module utilities
  imported) then live under the zygote, for every run after. Mitogen's CPU pinning is
  turned off: on a small machine it would tie the zygote and everything it starts to
  one core.
- A run takes the fast path only when everything it touches is local: gameday's own
  inventory (localhost, local connection), no play choosing its own strategy or
  connection, nothing delegated elsewhere, and no roles or included files (which
  cannot be checked before the run). Otherwise it runs with Ansible's own ``linear``
  strategy in the same warm child, and a log line says why.
- Every task runs in a process of its own, forked from the warm interpreter (Mitogen's
  task isolation ``fork``, forced for every module): runs never share a module's
  process, and two runs never wait for each other.
- Those processes live under the zygote's multiplexer, not under the run, so killing
  the run's process tree would not reach them. The run records each task process as it
  starts (``TASKS``: a file the zygote names), and a cancel kills those too, with
  everything below them.

ansible-core 2.19 warns that third-party strategy plugins are deprecated. The fast path
is pinned to one Mitogen release, sits behind the classic path, and
``GAMEDAY_MITOGEN=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from gameday.runbooks import plays

SETTING = "GAMEDAY_MITOGEN"
STRATEGY = "mitogen_linear"
TASKS = "GAMEDAY_EXECUTOR_TASKS"  # the file a fast run writes its task processes' pids to
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
UNSEEN = ("roles", *sorted(plays.PLAYBOOKS | plays.INCLUDES | plays.ROLES))
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where built in


def available() -> str | None:
    """Why this process cannot offer the fast path (None: it can)."""
    value = os.environ.get(SETTING, "1").strip().lower()
    if value in ("0", "false", "no", "off"):
        return f"turned off ({SETTING}={os.environ[SETTING]})"
    if importlib.util.find_spec("ansible_mitogen") is None:
        return "Mitogen is not installed"
    return None


def strategy_dir() -> str:
    spec = importlib.util.find_spec("ansible_mitogen")
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent / "plugins" / "strategy")


def why_not(playbook: str | os.PathLike[str], env: Mapping[str, str],
            team_inventory: str) -> str | None:
    """Why this run cannot take the fast path (None: it can)."""
    if env.get(team_inventory):
        return "it runs against the target's own inventory (only local runs are fast)"
    if env.get("ANSIBLE_MODULE_UTILS") or (Path(playbook).parent / "module_utils").is_dir():
        # the warm interpreter has Ansible's own module utilities imported
        return "it brings module utilities of its own"
    try:
        seen = os.stat(playbook)
        return _plays_why_not(os.fspath(playbook), (seen.st_dev, seen.st_ino, seen.st_size,
                                                    seen.st_mtime_ns, seen.st_ctime_ns))
    except (OSError, yaml.YAMLError) as exc:  # not kept: it is read again next time
        return f"its playbook could not be read ({exc})"


@functools.lru_cache(maxsize=256)
def _plays_why_not(playbook: str, version: tuple[int, ...]) -> str | None:
    """What in the playbook keeps it off the fast path, read once per version of the
    file (its device, inode, size, and modification and change times). Raises when it
    cannot be read (nothing is kept)."""
    plays = yaml.load(Path(playbook).read_text(), Loader=_LOADER)
    if not isinstance(plays, list):
        return "its playbook is not a list of plays"
    for play in plays:
        if not isinstance(play, dict):
            return "a play is not a mapping"
        if play.get("strategy"):
            return f"a play chooses its own strategy ({play['strategy']})"
        for node in _nodes(play):
            why = _node_why_not(node)
            if why:
                return why
    return None


def _nodes(play: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The play, then every task, block and handler in it."""
    todo = [play]
    while todo:
        node = todo.pop()
        yield node
        for key in plays.TASK_KEYS:
            children = node.get(key)
            if isinstance(children, list):
                todo.extend(c for c in children if isinstance(c, dict))


def _node_why_not(node: dict[str, Any]) -> str | None:
    name = node.get("name", "a task")
    for key in UNSEEN:
        if key in node:
            return f"{name!r} uses {key} (files the fast path cannot check first)"
    connection = node.get("connection")
    if connection not in (None, "local", "ansible.builtin.local"):
        return f"{name!r} uses the {connection} connection"
    variables = node.get("vars")
    if isinstance(variables, dict) and variables.get("ansible_connection") not in (
            None, "local", "ansible.builtin.local"):
        return f"{name!r} sets ansible_connection to {variables['ansible_connection']}"
    delegate = node.get("delegate_to")
    if delegate is not None and str(delegate) not in LOCAL_HOSTS:
        return f"{name!r} is delegated to {delegate}"
    return None


# -- in the zygote ------------------------------------------------------------------------
def zygote_env(env: Mapping[str, str]) -> dict[str, str]:
    """The zygote's environment with Mitogen's strategies findable."""
    found = [strategy_dir(), *filter(None, [env.get("ANSIBLE_STRATEGY_PLUGINS")])]
    return {**env, "ANSIBLE_STRATEGY_PLUGINS": os.pathsep.join(found)}


def prepare_zygote() -> None:
    """Before the warm-up: no CPU pinning (Mitogen pins the controller, its multiplexer
    and workers to cores of their own, which on two cores ties every run to one), and
    every task in a process of its own."""
    import ansible_mitogen.affinity
    import ansible_mitogen.connection
    import ansible_mitogen.planner

    ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()
    ansible_mitogen.planner.Planner.should_fork = _always
    connection = ansible_mitogen.connection.Connection
    spawn = connection.spawn_isolated_child

    def spawn_from_warm_parent(self: Any) -> Any:
        self.init_child_result["fork_context"].call(exec, PRELOAD)
        return spawn(self)

    connection.spawn_isolated_child = spawn_from_warm_parent
    _restore.append(lambda: setattr(connection, "spawn_isolated_child", spawn))


def settle_zygote() -> None:
    """After the warm-up: every connection plugin loaded once, Mitogen's among them
    (its strategy added their directory). A run lists them all as it starts, and one of
    Mitogen's warns as it loads when the kubectl connection is not installed: loaded
    here, where output goes nowhere, it is never loaded (and never warns) in a run."""
    from ansible.plugins.loader import connection_loader  # type: ignore[import-untyped]

    list(connection_loader.all(class_only=True))
    while _restore:
        _restore.pop()()


_restore: list[Any] = []
PRELOAD = "import ansible.module_utils.basic, ansible_mitogen.runner"


def _always(self: Any) -> bool:
    return True


def broken() -> str | None:
    """Why the zygote's Mitogen can no longer take runs (None: it can): its connection
    multiplexer has gone (a run started now would fail before its first task)."""
    import ansible_mitogen.process

    model = ansible_mitogen.process._classic_worker_model
    if model is None:
        return "Mitogen's connection multiplexer was never started"
    for mux in model._muxes:
        try:
            done, _ = os.waitpid(mux.pid, os.WNOHANG)
        except ChildProcessError:
            done = mux.pid
        if done:
            return f"Mitogen's connection multiplexer (pid {mux.pid}) has exited"
    return None


# -- in a run's child -----------------------------------------------------------------------
def enter_run(tasks_file: str) -> None:
    """This run takes the fast path: plays default to Mitogen's strategy, and each
    task's process is written to ``tasks_file`` as it starts."""
    import ansible_mitogen.connection
    from ansible.playbook.play import Play  # type: ignore[import-untyped]
    from ansible.plugins.loader import strategy_loader

    vars(Play)["strategy"].default = STRATEGY
    get = strategy_loader.get

    def get_quietly(name: str, *args: Any, **kwargs: Any) -> Any:
        """Ansible deprecates third-party strategies each time one is loaded; the run's
        author did not choose this one, so its output stays what Ansible's own
        strategy prints (the docs say it instead)."""
        if name == STRATEGY:
            return strategy_loader.get_with_context(name, *args, **kwargs).object
        return get(name, *args, **kwargs)

    strategy_loader.get = get_quietly
    os.environ[TASKS] = tasks_file
    connection = ansible_mitogen.connection.Connection
    spawn = connection.spawn_isolated_child

    def spawn_recorded(self: Any) -> Any:
        context = spawn(self)
        pid = context.call(os.getpid)
        with open(os.environ[TASKS], "a") as f:
            f.write(f"{pid}\n")
        return context

    connection.spawn_isolated_child = spawn_recorded


def task_pids(tasks_file: Path) -> list[int]:
    """The task processes a fast run recorded (``enter_run``)."""
    with contextlib.suppress(OSError, ValueError):
        return [int(line) for line in tasks_file.read_text().split()]
    return []
