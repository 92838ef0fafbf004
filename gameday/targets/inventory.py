"""A team's Ansible inventory, as Ansible itself reads it: its hosts, its groups, and the
hosts a simple host pattern names.

``ansible-inventory --list`` does the reading, so every inventory format and plugin Ansible
knows is read the way a playbook run will read it; an inventory it cannot parse is refused
rather than read as empty. Reading costs a Python start and Ansible's import, so a
result is remembered for the file as long as its modification time stays the same.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gameday.core.errors import ValidationError

__all__ = ["Inventory", "load_inventory", "reachable"]

TIMEOUT_S = 60.0
UNRESOLVABLE = re.compile(r"\{\{|\{%|[~*?\[]")  # templates, regexes, wildcards, ranges


@dataclass(frozen=True)
class Inventory:
    """The hosts of the inventory at ``path`` and its groups (each with every host in
    it, its child groups' included; ``all`` and ``ungrouped`` always there)."""

    path: Path
    hosts: frozenset[str]
    groups: dict[str, frozenset[str]]

    def _named(self, name: str) -> frozenset[str]:
        # a group and a host may share a name: Ansible takes both
        found = set(self.groups.get(name, ()))
        if name in self.hosts:
            found.add(name)
        return frozenset(found)

    def resolve(self, pattern: str) -> frozenset[str] | None:
        """The hosts an Ansible host pattern names: names and groups separated by ``:``
        or ``,``, ``all`` or ``*``, ``&name`` intersections and ``!name`` exclusions
        (applied in Ansible's order: the union, then intersections, then exclusions).
        None for a pattern only Ansible can resolve (a template, a regex, a wildcard,
        a range). A name that is neither a host nor a group names nothing."""
        parts = [p.strip() for p in re.split(r"[:,]", pattern) if p.strip()]
        union: list[str] = []
        meet: list[str] = []
        drop: list[str] = []
        for part in parts:
            kind, name = (part[0], part[1:].strip()) if part[0] in "&!" else ("", part)
            if not name or (name != "*" and UNRESOLVABLE.search(name)):
                return None
            name = "all" if name == "*" else name
            {"": union, "&": meet, "!": drop}[kind].append(name)
        chosen: set[str] = set()
        for name in union or ["all"]:
            chosen |= self._named(name)
        for name in meet:
            chosen &= self._named(name)
        for name in drop:
            chosen -= self._named(name)
        return frozenset(chosen)


def load_inventory(path: Path) -> Inventory:
    """The inventory at ``path`` (a file or a directory), as ``ansible-inventory`` reads
    it; a ValidationError naming the file when it is missing, cannot be parsed or has no
    hosts."""
    path = Path(path).expanduser().resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise ValidationError("no such inventory", file=str(path), field="inventory") from None
    return _load(path, mtime)


@lru_cache(maxsize=16)
def _load(path: Path, _mtime: int) -> Inventory:
    listing = _list(path)
    groups = _groups(listing)
    hosts = groups["all"]
    if not hosts:
        raise ValidationError("the inventory has no hosts", file=str(path), field="inventory")
    return Inventory(path, hosts, groups)


def _list(path: Path) -> dict[str, Any]:
    """``ansible-inventory --list``'s answer for ``path``."""
    binary = Path(sys.executable).parent / "ansible-inventory"
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
           "ANSIBLE_NOCOLOR": "1", "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([str(binary), "-i", str(path), "--list"], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ValidationError(f"ansible-inventory did not answer within {TIMEOUT_S:.0f} s",
                              file=str(path), field="inventory") from None
    except OSError as exc:
        raise ValidationError(f"ansible-inventory could not run: {exc}", file=str(path),
                              field="inventory") from None
    if proc.returncode != 0:
        raise ValidationError(f"Ansible cannot parse it: {_first_error(proc.stderr)}",
                              file=str(path), field="inventory")
    try:
        listing = json.loads(proc.stdout)
    except ValueError:
        listing = None
    if not isinstance(listing, dict):
        raise ValidationError("ansible-inventory's answer is not an inventory",
                              file=str(path), field="inventory")
    return listing


def reachable(path: Path, hosts: list[str]) -> dict[str, tuple[bool, str]]:
    """Whether Ansible reaches each of ``hosts`` (``ansible -m ping``, a preflight):
    host -> (answered, what Ansible said), one run for all of them."""
    binary = Path(sys.executable).parent / "ansible"
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "PYTHONWARNINGS": "ignore",
           "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_HOST_KEY_CHECKING": "True"}
    try:
        proc = subprocess.run([str(binary), "-i", str(path), ",".join(hosts), "-o",
                               "-m", "ansible.builtin.ping"], env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, OSError) as exc:
        return {h: (False, f"ansible could not ping it: {exc}") for h in hosts}
    found: dict[str, tuple[bool, str]] = {}
    for line in proc.stdout.splitlines():
        host, _, rest = line.partition(" | ")
        if host.strip() in hosts and rest:
            found[host.strip()] = (rest.startswith("SUCCESS"), rest[:200])
    return {h: found.get(h, (False, _first_error(proc.stderr))) for h in hosts}


def _first_error(stderr: str) -> str:
    """Ansible's first line saying what went wrong, short."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    said = next((ln for ln in lines if "Failed to parse" in ln or "ERROR" in ln),
                lines[-1] if lines else "no output")
    said = re.sub(r"^\[(WARNING|ERROR)\]:\s*|^ERROR!\s*", "", said)
    return said if len(said) <= 200 else said[:199] + "…"


def _groups(listing: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Each group's hosts, its children's included (``_meta`` left out)."""
    own = {name: set(entry.get("hosts") or ()) for name, entry in listing.items()
           if name != "_meta" and isinstance(entry, dict)}
    children = {name: set(entry.get("children") or ()) for name, entry in listing.items()
                if name != "_meta" and isinstance(entry, dict)}
    hostvars = (listing.get("_meta") or {}).get("hostvars") or {}
    for name in ("all", "ungrouped"):
        own.setdefault(name, set())
        children.setdefault(name, set())
    for kids in list(children.values()):
        for kid in kids:
            own.setdefault(kid, set())
            children.setdefault(kid, set())

    def members(name: str, seen: frozenset[str]) -> set[str]:
        found = set(own[name])
        for kid in children[name] - seen:
            found |= members(kid, seen | {kid})
        return found

    groups = {name: frozenset(members(name, frozenset({name}))) for name in own}
    groups["all"] = groups["all"].union(*groups.values(), hostvars)
    return groups
