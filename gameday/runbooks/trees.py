"""A run's process tree, found and killed whole: the warm executor's children (the
zygote's) and the fallback's ``ansible-playbook`` (ansible-runner's), whichever path ran
it."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def kill_run(pid: int) -> None:
    """SIGKILL a run: the child's process group, and the groups its descendants lead.
    Ansible's workers each start a session of their own (``os.setsid``), so the task's
    command is in the worker's group, not the child's: killing the child's group alone
    (what ansible-runner does) leaves a running ``sleep 30`` behind. The child is
    stopped first so that it starts no new worker while its tree is read."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGSTOP)
    ours = os.getpgid(0)
    for _ in range(3):  # again, for what forked while we looked
        groups = set()
        for descendant in descendants(pid):
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(descendant))
        groups -= {pid, ours}
        if not groups:
            break
        for group in groups:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def kill_fallback_run(private_data_dir: str) -> bool:
    """Kill, at once and whole, the ``ansible-playbook`` that ansible-runner started in
    this process for ``private_data_dir`` (the fallback path): ansible-runner's own
    cancel kills the playbook's process group only, seconds later, and leaves the
    task's command running in its worker's session. Its argv names the run's directory
    (``-i DIR/inventory/...``), which tells it from other runs going on here. False if
    no such process (it ended, or has not started)."""
    marker = os.fsencode(os.path.join(private_data_dir, ""))
    for pid in sorted(descendants(os.getpid())):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            leader = os.getsid(pid) == pid  # pexpect starts it in a session of its own
        except OSError:
            continue
        if leader and any(os.path.basename(a) == b"ansible-playbook" for a in argv[:2]) \
                and any(a.startswith(marker) for a in argv):
            kill_run(pid)
            return True
    return False


def descendants(root: int) -> set[int]:
    """The processes below ``root`` (Linux: read from /proc; elsewhere none)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
