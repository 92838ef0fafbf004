"""What a runbook's tasks reach beyond the hosts its plays name.

A run on a team's inventory is limited to the allowlist's hosts (``--limit``, the
executor's), which holds the hosts a play targets but not a task's ``delegate_to`` nor
hosts a task adds as the play runs (``add_host``, ``group_by``). ``tasks_within`` reads
every task list of the runbook, in its plays and in the files they include or whose
roles they use, for those: a delegate must be an allowlisted host by name, adding hosts
is refused, and so is a runbook with tasks that cannot be read here (a name decided
when it runs, a role from elsewhere), whose delegates nobody could check.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from gameday.core.errors import ValidationError
from gameday.core.spec import parse_yaml, read_bytes
from gameday.runbooks import plays
from gameday.runbooks.runbook import Runbook

ADDS_HOSTS = plays.named("add_host", "group_by")
INCLUDES = plays.INCLUDES | plays.ROLES
LOCAL = frozenset({"localhost", "127.0.0.1"})


def tasks_within(runbook: Runbook, allowed: Collection[str]) -> None:
    """ValidationError (naming the file and the task) for a task of ``runbook`` that
    delegates to a host outside ``allowed`` or adds hosts, or for tasks it names that
    cannot be read here."""
    hosts = set(allowed) | LOCAL
    plays = parse_yaml(read_bytes(runbook.path), str(runbook.path))
    for index, play in enumerate(plays if isinstance(plays, list) else []):
        if isinstance(play, dict):
            roles = play.get("roles")
            for r, role in enumerate(roles if isinstance(roles, list) else []):
                if isinstance(role, dict):  # a role entry carries task keywords too
                    _delegate(role, hosts, str(runbook.path), f"[{index}].roles.{r}")
            _within(play, hosts, str(runbook.path), f"[{index}]")
    for path in runbook.task_files:
        tasks = parse_yaml(read_bytes(path), str(path))
        _within({"tasks": tasks}, hosts, str(path), "")
    if runbook.unread:
        raise ValidationError(f"{runbook.unread[0]}: its tasks could delegate to any host, "
                              "and gameday cannot read them to check (name the file, or "
                              "keep the role in roles/ beside the runbook)",
                              file=str(runbook.path), field="(tasks)")


def _within(node: dict[str, Any], hosts: set[str], file: str, where: str) -> None:
    for key in plays.TASK_KEYS:
        tasks = node.get(key)
        for i, task in enumerate(tasks if isinstance(tasks, list) else []):
            if not isinstance(task, dict):
                continue
            at = f"{where}.{key}.{i}" if where else f"[{i}]"  # a task file: a list
            added = ADDS_HOSTS & set(task)
            if added:
                raise ValidationError(f"{sorted(added)[0]} adds hosts as the play runs, "
                                      "where the allowlist cannot hold them", file=file,
                                      field=at)
            _delegate(task, hosts, file, at)
            for module in INCLUDES & set(task):  # what it applies to the tasks it includes
                args = task[module] if isinstance(task[module], dict) else task.get("args")
                applied = args.get("apply") if isinstance(args, dict) else None
                if isinstance(applied, dict):
                    _delegate(applied, hosts, file, f"{at}.{module}.apply")
            _within(task, hosts, file, at)


def _delegate(node: dict[str, Any], hosts: set[str], file: str, at: str) -> None:
    delegate = node.get("delegate_to")
    if delegate is not None and str(delegate) not in hosts:
        raise ValidationError(f"delegate_to {delegate!r} is not a host the allowlist "
                              "names ([safety] hosts; by name, not a template)", file=file,
                              field=f"{at}.delegate_to")
