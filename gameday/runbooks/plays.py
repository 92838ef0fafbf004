"""The words of a playbook that every reader of one here shares: where a play keeps its
tasks, what runs other tasks (an include, a role, another playbook), under each name
Ansible answers to (bare, ``ansible.builtin.``, ``ansible.legacy.``). The readers
themselves (``dry_run``, ``hosts``, ``kubectl``, ``fastpath``) each want something else
of a playbook; what they read it for is theirs."""

from __future__ import annotations

PREFIXES = ("", "ansible.builtin.", "ansible.legacy.")


def named(*names: str) -> frozenset[str]:
    """Each of ``names`` under every name Ansible answers to."""
    return frozenset(prefix + name for prefix in PREFIXES for name in names)


INCLUDES = named("include_tasks", "import_tasks", "include")  # task files
ROLES = named("include_role", "import_role")
PLAYBOOKS = named("import_playbook")
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")  # a play's
BLOCKS = ("block", "rescue", "always")  # a block's
TASK_KEYS = TASK_LISTS + BLOCKS  # every key that holds a list of tasks
