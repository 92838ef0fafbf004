"""Starting a game-day project: ``gameday init DIR``.

Writes ``gameday.toml`` (which marks the project), a first sandbox game day (a scenario
and its Chaos Toolkit experiment), and copies of the runbook and alert rules it uses
from the ones built into the package, so the new project runs as it is and shows what
to edit. For scheduled game days in a cluster it adds a Kubernetes game day with its
runbook, and the ``Dockerfile`` (with ``.dockerignore``) that builds the project's image
on gameday's base image (``gameday:VERSION``, this gameday's version): what
``gameday schedule export --kubernetes`` runs. Nothing is overwritten: a directory that
is already a project is refused.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from gameday import __version__
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.settings import (
    BUILTIN_RULES,
    BUILTIN_RUNBOOKS,
    PROJECT_FILE,
    PROJECT_NAME,
    PROJECT_NAME_RULE,
)

SCAFFOLD = "scaffold"
SERVICE_SCAFFOLD = "scaffold_service"  # gameday init --for service
COPIED = ((BUILTIN_RUNBOOKS / "restart-replica.yml", Path("runbooks") / "restart-replica.yml"),
          (BUILTIN_RULES / "sandbox.rules.yml", Path("alerting") / "sandbox.rules.yml"))
# A service project's addresses: the placeholder each fills, and its default.
SERVICE_VALUES = {
    "service": ("SERVICE_NAME", "checkout"),
    "url": ("SERVICE_URL", "http://127.0.0.1:9898/"),
    "prometheus": ("PROMETHEUS_URL", "http://127.0.0.1:9090"),
    "alertmanager": ("ALERTMANAGER_URL", "http://127.0.0.1:9093"),
    "toxiproxy": ("TOXIPROXY_API", "http://127.0.0.1:8474"),
    "proxy": ("TOXIPROXY_PROXY", "checkout-dependency"),
}
URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
PROXY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Stored without their dot (package data leaves dotfiles out).
RENAMED = {"gitignore": ".gitignore", "dockerignore": ".dockerignore"}


def service_values(given: dict[str, str | None]) -> dict[bytes, bytes]:
    """A service project's placeholders and their values (checked: each is written
    into YAML and TOML as it is, so nothing but what its pattern allows)."""
    values = {}
    for key, (placeholder, default) in SERVICE_VALUES.items():
        value = given.get(key) or default
        pattern = {"service": SERVICE, "proxy": PROXY}.get(key, URL)
        if not pattern.fullmatch(value):
            raise ValidationError(f"{value[:200]!r} must match {pattern.pattern}",
                                  field=f"--{key}")
        values[placeholder.encode()] = value.encode()
    return values


def init_project(directory: Path, name: str | None = None, *, kind: str = "sandbox",
                 values: dict[str, str | None] | None = None) -> list[Path]:
    """Scaffold a project in ``directory`` (created if missing); returns what it wrote.
    ``kind``: ``sandbox`` (a first game day on the embedded sandbox, and a Kubernetes
    one) or ``service`` (a game day against a service the team runs, at ``values``'
    addresses)."""
    directory = directory.resolve()
    name = name or directory.name
    if not PROJECT_NAME.fullmatch(name):
        raise ValidationError(PROJECT_NAME_RULE, field="--name")
    extra = service_values(values or {}) if kind == "service" else {}
    if (directory / PROJECT_FILE).exists():
        raise GamedayError(f"{directory} is already a game-day project ({PROJECT_FILE})")
    if directory.exists() and not directory.is_dir():
        raise GamedayError(f"{directory} exists and is not a directory")
    # Placeholders in the scaffold's files, and what they become.
    placeholders = {b"PROJECT_NAME": name.encode(), b"GAMEDAY_VERSION": __version__.encode(),
                    **extra}
    plan: list[tuple[Path, bytes]] = []
    root = resources.files("gameday").joinpath(SERVICE_SCAFFOLD if kind == "service"
                                               else SCAFFOLD)
    for item in _walk(root):
        relative = Path(*item[0])
        relative = relative.with_name(RENAMED.get(relative.name, relative.name))
        content = item[1]
        for placeholder, value in placeholders.items():
            content = content.replace(placeholder, value)
        plan.append((relative, content))
    if kind != "service":
        plan += [(target, source.read_bytes()) for source, target in COPIED]
    clashes = [str(rel) for rel, _ in plan if (directory / rel).exists()]
    if clashes:
        raise GamedayError(f"{directory} already has {', '.join(clashes)}; nothing written")
    written = []
    for relative, content in plan:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


def _walk(node: Traversable,
          prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], bytes]]:
    found: list[tuple[tuple[str, ...], bytes]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name.startswith(("__", ".")):
            continue
        if child.is_dir():
            found += _walk(child, (*prefix, child.name))
        else:
            found.append(((*prefix, child.name), child.read_bytes()))
    return found

