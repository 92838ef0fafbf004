"""Whether a runbook's dry run is dry: the tasks that run for real in check mode.

``--check`` runs a playbook in Ansible's check mode, and ``gameday serve`` lets such a
run skip four eyes and the commander role because it changes nothing. But a task whose
``check_mode`` is false (its own, its block's, its play's, or an include's, ``apply``
too) runs for real in check mode, and so may one whose ``check_mode`` is templated
(decided when it runs): a common idiom for a read-only task that registers output, and
a way for any task to act. ``load_runbook`` reads them here, from the plays and from
the task files they include or import by a name written out, and a check-mode run of
a runbook whose dry run acts gets a real run's gates (``Runbook.changes_nothing``).
What cannot be read here (a role, a file named by a template or not there, a playbook
imported) is taken as acting: nothing is assumed harmless unread. The same reading
gives the runbook's version (``version_of``: the plays and the task files read,
digested, with the files its plays and tasks read by a name written out: ``vars_files``,
roles, and what ``template``, ``copy``, ``script`` and ``include_vars`` take from this
machine), which a game day's proof and a waiting approval hold for.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.core import clock
from gameday.core.errors import ValidationError
from gameday.core.spec import parse_yaml, read_bytes
from gameday.runbooks.plays import BLOCKS, INCLUDES, PLAYBOOKS, PREFIXES, ROLES, TASK_LISTS

# What Ansible's ``boolean()`` reads as true: only these keep a task in check mode.
TRUE = frozenset({"true", "yes", "on", "y", "t", "1"})
MAX_DEPTH = 8  # includes within includes
MAX_FILES = 500  # of a directory a role or a task reads
MAX_BYTES = 16 << 20  # of a file (a role's archive): its size counts beyond
# What a task reads from this machine, and where Ansible looks for it first (beside the
# playbook or the including task file, before that directory itself).
READS = {p + module: (key, first) for p in PREFIXES for module, key, first in (
    ("template", "src", "templates"), ("copy", "src", "files"),
    ("script", "cmd", "files"), ("include_vars", "file", "vars"))}

# A task's check mode: None follows the run's (--check), True stays in check mode, a
# string says why it acts for real.
Mode = bool | str | None


@dataclass(frozen=True)
class Reading:
    """What ``read_plays`` found in a runbook's plays and the files they name."""

    acts: tuple[str, ...]  # what runs for real in a check-mode run, one line each, and why
    included: dict[str, Any]  # task files read, by path from the runbook: their tasks
    files: dict[str, str]  # other files read, by path from the runbook: their digests
    task_files: tuple[Path, ...]  # every task list read: included files, roles' tasks
    unread: tuple[str, ...]  # tasks it names but cannot be read here, one line each


def read_plays(plays: list[Any], path: Path) -> Reading:
    """What runs for real in a check-mode run of ``plays`` (read from ``path``), one
    line each: the task, where it is, and why (``'Read pods' (play 1): check_mode:
    false``), empty when its dry run is dry; the task files read for it, by their path
    from the runbook's directory, with their tasks; the other files the plays and tasks
    read by a name written out (``READS``, ``vars_files``, every file of a role), each
    with the digest of its bytes; and what could not be read. The answer, and the
    runbook's version, hold only as long as none of them changes."""
    walk = _Walk(path.parent)
    for n, play in enumerate(plays, 1):
        if isinstance(play, dict):
            walk.play(play, f"play {n}", path)
    return Reading(
        acts=tuple(dict.fromkeys(walk.found)),
        included={_shown(p, path): tasks for p, tasks in walk.read.items()},
        files={_shown(p, path): digest for p, digest in sorted(walk.files.items())},
        task_files=(*walk.read, *walk.role_tasks), unread=tuple(dict.fromkeys(walk.unread)))


def _shown(p: Path, path: Path) -> str:
    """A file as the version names it: by its path from the runbook's directory, so the
    same project anywhere on disk has the same versions."""
    return os.path.relpath(p, path.parent.resolve())


def setting(value: Any) -> Mode:
    """A ``check_mode`` keyword as Ansible reads it: True keeps check mode; anything
    else (false, a template decided when it runs) says why the task acts."""
    if value is True or value == 1 and not isinstance(value, bool) or \
            isinstance(value, str) and value.strip().lower() in TRUE:
        return True
    if value is False or isinstance(value, str) and value.strip().lower() in (
            "false", "no", "off", "n", "f", "0"):
        return "check_mode: false"
    return f"check_mode: {str(value)[:60]} (decided when it runs)"


class _Walk:
    def __init__(self, root: Path) -> None:
        self.root = root  # the playbook's directory, where Ansible also looks
        self.found: list[str] = []
        self.seen: set[tuple[Path, Mode]] = set()
        self.read: dict[Path, Any] = {}  # each task file read, its tasks
        self.files: dict[Path, str] = {}  # each other file read, the digest of its bytes
        self.role_tasks: list[Path] = []  # the task lists of the roles read
        self.roles: set[Path] = set()  # the roles read (each once)
        self.unread: list[str] = []  # what names tasks that cannot be read here

    def cannot_read(self, line: str) -> None:
        """Tasks named that cannot be read here: taken as acting in check mode."""
        self.found.append(line)
        self.unread.append(line)

    def play(self, play: dict[str, Any], where: str, path: Path) -> None:
        for key in PLAYBOOKS & play.keys():
            self.cannot_read(f"{where}: {key} {str(play[key])[:60]} (not read here)")
        if play.get("roles"):
            self.found.append(f"{where}: roles (not read here)")
        roles = play.get("roles")
        for role in roles if isinstance(roles, list) else [roles] if roles else ():
            self.role(role.get("role") or role.get("name") if isinstance(role, dict) else role,
                      where)
        names = play.get("vars_files")
        for name in names if isinstance(names, list) else [names]:
            self.digest(name, (self.root,))
        mode = _mode(play, None)
        for key in TASK_LISTS:
            self.tasks(play.get(key), mode, where, path, 0)

    def tasks(self, tasks: Any, mode: Mode, where: str, path: Path, depth: int) -> None:
        for task in tasks if isinstance(tasks, list) else ():
            if isinstance(task, dict):
                self.task(task, _mode(task, mode), where, path, depth)

    def task(self, task: dict[str, Any], mode: Mode, where: str, path: Path,
             depth: int) -> None:
        name = f"{str(task.get('name') or 'a task')[:60]!r} ({where})"
        if any(key in task for key in BLOCKS):
            for key in BLOCKS:
                self.tasks(task.get(key), mode, where, path, depth)
            return
        if ROLES & task.keys():
            self.found.append(f"{name}: a role (not read here)")
            role = task[next(iter(ROLES & task.keys()))]
            if isinstance(role, str) and "=" in role:  # free form: ``name=web tasks_from=x``
                role = dict(w.split("=", 1) for w in role.split() if "=" in w)
            self.role(role.get("name") if isinstance(role, dict) else role, name)
            return
        self.reads(task, path)
        keyword = next((key for key in INCLUDES if key in task), None)
        if keyword is not None:
            include = task[keyword] if task[keyword] is not None else task.get("args")
            args = include if isinstance(include, dict) else task.get("args")
            applied = args.get("apply") if isinstance(args, dict) else None
            if isinstance(applied, dict) and "check_mode" in applied:
                mode = setting(applied["check_mode"])
            self.include(include, mode, name, path, depth)
        elif isinstance(mode, str):
            self.found.append(f"{name}: {mode}")

    def include(self, target: Any, mode: Mode, name: str, path: Path, depth: int) -> None:
        """The tasks of an included or imported file, read where Ansible looks (beside
        the file that includes it, or in its ``tasks/``; then from the playbook's
        directory, or its ``tasks/``)."""
        file = target.get("file") if isinstance(target, dict) else target
        if not isinstance(file, str) or "{{" in file or "{%" in file:
            self.cannot_read(f"{name}: includes {str(file)[:60]} (not read here)")
            return
        found = next((c for c in (path.parent / file, path.parent / "tasks" / file,
                                  self.root / file, self.root / "tasks" / file)
                      if c.is_file()), None)
        if found is None or depth >= MAX_DEPTH:
            why = "not found" if found is None else "included too deep"
            self.cannot_read(f"{name}: includes {file[:60]} ({why})")
            return
        if (found.resolve(), mode) in self.seen:
            return
        self.seen.add((found.resolve(), mode))
        try:
            tasks = parse_yaml(read_bytes(found), str(found))
        except (OSError, ValidationError):
            self.cannot_read(f"{name}: includes {file[:60]} (cannot be read)")
            return
        self.read[found.resolve()] = tasks
        self.tasks(tasks, mode, f"{found.name}, included by {name}", found, depth + 1)


    def reads(self, task: dict[str, Any], path: Path) -> None:
        """The file a ``READS`` task takes from this machine, where Ansible looks for it."""
        module = next((m for m in READS if m in task), None)
        if module is None:
            return
        key, first = READS[module]
        args = task[module] if task[module] is not None else task.get("args")
        script = module.endswith("script")
        if isinstance(args, str):  # free form: ``src=a.j2 dest=/b``, ``fix.sh --now``
            words = args.split()
            pairs = dict(w.split("=", 1) for w in words if "=" in w)
            args = pairs if pairs and not script else {key: words[0] if words else ""}
        if not isinstance(args, dict) or str(args.get("remote_src")).lower() in TRUE:
            return
        name = args.get(key) or args.get("src") or args.get("dir") or \
            args.get("_raw_params")
        if script and isinstance(name, str) and name.split():
            name = name.split()[0]
        self.digest(name, tuple(d / sub for d in (path.parent, self.root)
                                for sub in (first, ".")))

    def role(self, name: Any, where: str, depth: int = 0) -> None:
        """A role by a name written out, in ``roles/`` beside the playbook: every file of
        it in the version, and its task lists read as task files (``tasks/main.yml``,
        ``handlers/main.yml``, what they include, the roles ``meta/main.yml`` depends on)."""
        role = self.root / "roles" / name if isinstance(name, str) and name and \
            "{{" not in name and "{%" not in name and "/" not in name else None
        if role is None or not role.is_dir() or depth >= MAX_DEPTH:
            self.unread.append(f"{where}: role {str(name)[:60]} (not read here)")
            return
        if role in self.roles:
            return
        self.roles.add(role)
        self.digest(str(name), (self.root / "roles",))
        for sub in ("tasks", "handlers"):
            main = next((f for f in (role / sub / "main.yml", role / sub / "main.yaml")
                         if f.is_file()), None)
            tasks = self.parsed(main, f"{where}: role {name}") if main else None
            if main is not None and tasks is not None:
                self.role_tasks.append(main.resolve())
                self.tasks(tasks, None, f"role {name}", main, depth + 1)
        meta = role / "meta" / "main.yml"
        deps = (self.parsed(meta, f"{where}: role {name}") or {}) if meta.is_file() else {}
        for dep in deps.get("dependencies") or [] if isinstance(deps, dict) else []:
            self.role(dep.get("role") or dep.get("name") if isinstance(dep, dict) else dep,
                      f"role {name}", depth + 1)

    def parsed(self, path: Path, where: str) -> Any:
        """A YAML file a role holds, or None (and said: not read) when it cannot be."""
        try:
            return parse_yaml(read_bytes(path), str(path))
        except (OSError, ValidationError):
            self.cannot_read(f"{where}: {path.name} (cannot be read)")
            return None

    def digest(self, name: Any, where: tuple[Path, ...]) -> None:
        """The first of ``where`` that has ``name`` (a file, or a directory's files): the
        digest of its bytes. What cannot count: a name decided when it runs, anything
        outside the project (the runbooks' directory's parent), what is not a regular
        file, and past the first ``MAX_FILES`` of a directory or ``MAX_BYTES`` of a file."""
        if not isinstance(name, str) or not name or "{{" in name or "{%" in name:
            return
        project = self.root.resolve().parent
        try:
            found = next((d / name for d in where if (d / name).exists()), None)
            if found is None or not found.resolve().is_relative_to(project):
                return
            files = sorted(found.rglob("*"))[:MAX_FILES] if found.is_dir() else [found]
            for file in files:
                real = file.resolve()
                if real.is_relative_to(project) and stat.S_ISREG(real.stat().st_mode):
                    self.files[real] = _digest(real)
        except OSError:  # a name too long, a directory it may not read: not counted
            return


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=8)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            if f.tell() >= MAX_BYTES:
                digest.update(str(path.stat().st_size).encode())  # and how large it is
                break
    return digest.hexdigest()


def _mode(node: dict[str, Any], inherited: Mode) -> Mode:
    return setting(node["check_mode"]) if "check_mode" in node else inherited


def included_paths(path: Path, included: dict[str, Any], files: dict[str, str]
                   ) -> list[Path]:
    """The files ``read_plays`` read for the runbook at ``path``: its task
    files, then the others."""
    return [path.parent.resolve() / name for name in (*included, *files)]


def version_of(plays: list[Any], included: dict[str, Any],
               files: dict[str, str] | None = None) -> str:
    """The digest of the plays and of the task files they include (by their path from
    the runbook), independent of comments, quoting, key order and layout, and of the
    words people read about it (its summary, its parameters' descriptions); and of the
    bytes of every other file they read (``files``: a template, a role)."""
    plays = copy.deepcopy(plays)
    meta = plays[0].get("vars", {}).get("gameday_runbook")
    if isinstance(meta, dict):
        meta.pop("summary", None)
        for spec in (meta.get("parameters") or {}).values():
            if isinstance(spec, dict):
                spec.pop("description", None)
    if files:
        shape: Any = [plays, included, files]
    else:  # as before other files counted: a runbook that reads none keeps its version
        shape = [plays, included] if included else plays
    canonical = json.dumps(shape, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=6).hexdigest()


# How the files read with a runbook look, without reading them: each one's path, inode,
# size and modification time.
Looks = tuple[tuple[str, int, int, int], ...]
SETTLED_NS = 2_000_000_000  # files written less lately may change within the same tick


def watched(path: Path, includes: tuple[Path, ...]) -> tuple[Path, ...]:
    """The files read with the runbook at ``path``, and their directories up to its
    own (a file added to a role changes its directory's)."""
    home = path.parent.resolve()
    folders = [d for p in includes for d in p.parents if d.is_relative_to(home) and d != home]
    return tuple(dict.fromkeys((*includes, *folders)))


def looked_at(paths: tuple[Path, ...]) -> Looks:
    seen = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            seen.append((str(p), 0, -1, 0))
            continue
        seen.append((str(p), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(seen)


def settled(seen: Looks) -> bool:
    """Whether none of them was written lately."""
    return all(mtime < clock.epoch_ns() - SETTLED_NS for *_, mtime in seen)
