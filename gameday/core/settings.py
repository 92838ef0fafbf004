"""Settings: where the store, the runs, the runbooks and the sandbox are, resolved once.

A game-day project is a directory with a ``gameday.toml`` (``gameday init`` writes
one). gameday looks for it from the working directory upwards, so commands work from
anywhere inside the project, and paths written in it resolve against the project (a
scenario's against the scenario file), never against the working directory. Without a
project file the working directory is the project.

Precedence: a command-line option, then an environment variable, then
``gameday.toml``, then the default. A path given on the command line or in the
environment is taken relative to the working directory, as a shell user means it.
Every setting is declared once, in ``SETTINGS`` (its variable, its key in
``gameday.toml``, its default and what it is for); the
configuration page (docs/configuration.md) is checked against it, and ``gameday.toml``
keys it does not declare are refused.

The server's address is where people reach ``gameday serve`` (the drill console's join
links are made of it).

The runbooks and alert rules that drive the embedded sandbox ship inside the package;
a project's own directories come first, and a file of the same name there replaces
the built-in one.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from gameday.core.errors import ValidationError

PROJECT_FILE = "gameday.toml"
PACKAGE = Path(__file__).resolve().parent.parent
BUILTIN_RUNBOOKS = PACKAGE / "targets" / "sandbox" / "runbooks"
BUILTIN_RULES = PACKAGE / "targets" / "sandbox" / "alerting"
DEFAULT_URL = "http://127.0.0.1:8080"


class Setting(NamedTuple):
    """One setting, declared once: the ``Settings`` field it fills, where it can be
    given (an option, an environment variable, a ``gameday.toml`` section and key),
    its default as people read it, and what it is for."""

    field: str
    option: str | None
    variable: str | None
    section: str
    key: str
    default: str
    help: str


SETTINGS = (
    Setting("db", "--db", "GAMEDAY_DB", "store", "db", ".gameday/gameday.db",
            "the store: a SQLite file, `sqlite:///PATH`, or "
            "`postgresql://USER@HOST[:PORT]/DB` (`postgresql+psycopg://` too); other URLs, "
            "and what only starts like one (`sqlite:gd.db`), are refused (exit 2)"),
    Setting("runs_dir", None, "GAMEDAY_RUNS", "paths", "runs", ".gameday/runs",
            "where run directories go"),
    Setting("runbooks_dir", None, "GAMEDAY_RUNBOOKS", "paths", "runbooks", "runbooks",
            "the project's runbooks (then the built-in ones)"),
    Setting("alerting_dir", None, "GAMEDAY_ALERTING", "paths", "alerting", "alerting",
            "the project's Prometheus rules (then the built-in ones)"),
    Setting("sandbox_dir", "--state-dir", "GAMEDAY_SANDBOX", "paths", "sandbox",
            ".gameday/sandbox", "the sandbox for `gameday sandbox …`"),
    Setting("state_dir", None, None, "paths", "state", ".gameday",
            "the state directory the defaults above live in"),
    Setting("url", None, "GAMEDAY_URL", "serve", "url", DEFAULT_URL,
            "where people reach `gameday serve`: drill join links (notifications link to "
            "the review only when it is set), and the origin a browser's sign-in may come "
            "from besides the `Host` it reached (behind a proxy that rewrites it)"),
    Setting("name", None, None, "project", "name", "the project directory's name",
            "the project's name"),
)
BY_FIELD = {s.field: s for s in SETTINGS}


def reference() -> list[str]:
    """The settings as the configuration page (docs/configuration.md) lists them."""
    def code(text: str | None) -> str:
        return f"`{text}`" if text else ""

    return [f"| {', '.join(code(w) for w in (s.option, s.variable) if w)} | "
            f"`[{s.section}] {s.key}` | "
            f"{code(s.default) if s.field != 'name' else s.default} | {s.help} |"
            for s in SETTINGS]
KNOWN: dict[str, set[str]] = {}
for _setting in SETTINGS:
    KNOWN.setdefault(_setting.section, set()).add(_setting.key)

# ``[safety]``: what game days may touch of a system gameday does not own, lists of
# strings (docs/own-service.md). Without the table, nothing outside gameday's own
# worlds (the sandbox, its clusters) is touched.
SAFETY_KEYS = {
    "urls": "URL prefixes a target's entry points and the APIs faults call may start with",
    "toxiproxy": "Toxiproxy APIs (http://HOST:PORT) faults may call",
    "proxies": "Toxiproxy proxies faults may put toxics on",
    "hosts": "inventory hosts runbooks and process faults may act on",
    "contexts": "kubeconfig contexts of a team's clusters game days may act in",
    "namespaces": "Kubernetes namespaces faults and runbooks may act in",
}


@dataclass(frozen=True)
class Safety:
    """The project's allowlist (``[safety]`` in ``gameday.toml``)."""

    declared: bool = False
    urls: tuple[str, ...] = ()
    toxiproxy: tuple[str, ...] = ()
    proxies: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    contexts: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()


AUTOMATION_KEYS = {
    "require": "proven (an automatic runbook runs by itself only while a game day has "
               "proven it) or any [default: any]",
    "max_age_days": "how recent that proof must be, in days [default: 30]",
    "same_target": "the proof must come from the same kind of target as the alert's "
                   "(true or false) [default: true]",
}
TRUST_LEVELS = ("proven", "any")


@dataclass(frozen=True)
class Automation:
    """The trust policy for automatic runs (``[automation]`` in ``gameday.toml``):
    ``gameday.report.trust`` judges each runbook against it."""

    require: str = "any"
    max_age_days: int = 30
    same_target: bool = True

    @property
    def needs_proof(self) -> bool:
        return self.require == "proven"


TARGET_KINDS = ("kubernetes", "service")
TARGET_KEYS = {"name": "what it is called (its runs' world)",
               "kind": "kubernetes (a cluster) or service (hosts in an inventory)",
               "match": "the alert labels that say an alert is about it (each must equal)",
               "kubeconfig": "kubernetes: the kubeconfig [default: $KUBECONFIG, else "
                             "~/.kube/config]",
               "context": "kubernetes: the context its runbooks act in",
               "inventory": "service: the Ansible inventory its runbooks act on"}


@dataclass(frozen=True)
class AlertTarget:
    """One of the team's own systems a real alert's runbook may act on (``[[targets]]``
    in ``gameday.toml``): chosen by the alert's labels, never by a value the alert
    carries alone; its runs get its environment, and a cluster's context label."""

    name: str
    kind: str
    match: tuple[tuple[str, str], ...]
    kubeconfig: str | None = None
    context: str | None = None
    inventory: str | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match)

    @property
    def env(self) -> dict[str, str]:
        if self.kind == "kubernetes":
            assert self.kubeconfig and self.context
            return {"KUBECONFIG": self.kubeconfig, "KUBERNETES_CONTEXT": self.context}
        return {"GAMEDAY_INVENTORY": self.inventory} if self.inventory else {}

    @property
    def labels(self) -> dict[str, str]:
        """What the target adds to its alerts' labels (over the alert's own)."""
        return {"context": self.context} if self.context else {}


@dataclass(frozen=True)
class Settings:
    root: Path                       # the project directory
    project_file: Path | None        # its gameday.toml, if there is one
    db: str                          # a SQLite path (or sqlite:/// URL), or postgresql://
    state_dir: Path
    runs_dir: Path
    runbooks_dir: Path               # the project's own runbooks
    alerting_dir: Path               # the project's own alert rules
    sandbox_dir: Path                # the sandbox of ``gameday sandbox ...``
    name: str
    url: str = DEFAULT_URL           # where people reach ``gameday serve``
    url_given: bool = False          # ``url`` was set (environment or file), not the default
    safety: Safety = Safety()        # the allowlist of what game days may touch
    targets: tuple[AlertTarget, ...] = ()  # the team's systems real alerts act on
    chat: dict[str, Any] | None = None    # ``[chat]`` as written (``gameday.chat.config``)
    automation: Automation = Automation()  # the trust policy for automatic runs

    @property
    def runbook_dirs(self) -> tuple[Path, ...]:
        """Where runbooks are found, first match wins: the project's, then built-in."""
        return (self.runbooks_dir, BUILTIN_RUNBOOKS)

    @property
    def rules_dirs(self) -> tuple[Path, ...]:
        return (self.alerting_dir, BUILTIN_RULES)

    @property
    def db_path(self) -> Path:
        return store_path(self.db)

    @property
    def serve_dir(self) -> Path:
        return self.state_dir / "serve"

    @property
    def k8s_bin(self) -> Path:
        return self.state_dir / "k8s" / "bin"

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` as the project names it (a schedule, a drill): relative to the root
        when inside the project, else absolute."""
        resolved = Path(path).resolve()
        try:
            return str(resolved.relative_to(self.root))
        except ValueError:
            return str(resolved)

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A path written in the project (gameday.toml, a scenario): under the root."""
        return (self.root / path).resolve()

    @classmethod
    def load(cls, *, cwd: Path | None = None, environ: Mapping[str, str] | None = None,
             db: str | None = None, db_from: str = "--db") -> Settings:
        """``db``: the store given on the command line, or by ``db_from`` (the
        environment variable the command line's option read)."""
        cwd = (cwd or Path.cwd()).resolve()
        env = os.environ if environ is None else environ
        project_file = find_project(cwd)
        root = project_file.parent if project_file else cwd
        conf = read_project(project_file) if project_file else {}

        def given(field: str) -> tuple[str, str] | None:
            """The value set for ``field`` and where: the environment, else the file."""
            setting = BY_FIELD[field]
            if setting.variable and env.get(setting.variable):
                return env[setting.variable], setting.variable
            value = conf.get(setting.section, {}).get(setting.key)
            return (str(value), f"[{setting.section}] {setting.key}") if value else None

        def file_of(where: str) -> str | None:
            """The project file, for a value given there (``[section] key``)."""
            return str(project_file) if where.startswith("[") else None

        def pick(field: str, default: Path) -> Path:
            found = given(field)
            if found is None:
                return default
            value, where = found
            path = ((cwd if where == BY_FIELD[field].variable else root) / value).resolve()
            file = file_of(where)
            if path.exists() and not path.is_dir():
                raise ValidationError(f"{path} is not a directory", file=file, field=where)
            if field in READ and not path.exists() and value != BY_FIELD[field].default:
                # given (other than the default ``gameday init`` writes), and not there
                raise ValidationError(f"{path} does not exist", file=file, field=where)
            return path

        state = pick("state_dir", root / ".gameday")
        db_value, db_where = (db, db_from) if db is not None else given("db") or ("", "")
        if db_value or db_where:
            # refuse what is not a store before anything else, naming where it was given
            file = file_of(db_where)
            store_target(db_value, db_where, file, exists=False)
            if "://" not in db_value:
                base = root if file else cwd
                db_value = str(store_path(str((base / db_value).resolve()), db_where, file))
        else:
            db_value = str(state / "gameday.db")
        url_found = given("url")
        url, url_where = url_found or (DEFAULT_URL, "[serve] url")
        name = given("name")
        return cls(
            root=root, project_file=project_file, db=db_value, state_dir=state,
            runs_dir=pick("runs_dir", state / "runs"),
            runbooks_dir=pick("runbooks_dir", root / "runbooks"),
            alerting_dir=pick("alerting_dir", root / "alerting"),
            sandbox_dir=pick("sandbox_dir", state / "sandbox"),
            name=name[0] if name else root.name,
            url=_url(url, url_where, file_of(url_where)),
            url_given=url_found is not None, safety=_safety(conf.get("safety")),
            targets=_targets(conf.get("targets") or [], root), chat=conf.get("chat"),
            automation=Automation(**conf.get("automation", {})))


def _targets(tables: list[dict[str, Any]], root: Path) -> tuple[AlertTarget, ...]:
    """``[[targets]]``, checked by ``read_project``; paths resolve against the project."""
    found = []
    for table in tables:
        kubeconfig = None
        if table["kind"] == "kubernetes":
            listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
            given = table.get("kubeconfig") or (listed[0] if listed else "~/.kube/config")
            kubeconfig = str((root / Path(given).expanduser()).resolve())
        inventory = table.get("inventory")
        found.append(AlertTarget(
            table["name"], table["kind"], tuple(sorted(table["match"].items())),
            kubeconfig=kubeconfig, context=table.get("context"),
            inventory=str((root / inventory).resolve()) if inventory else None))
    return tuple(found)


def _safety(table: dict[str, list[str]] | None) -> Safety:
    if table is None:
        return Safety()
    return Safety(True, **{key: tuple(table.get(key) or ()) for key in SAFETY_KEYS})


def _url(value: str, field: str, file: str | None = None) -> str:
    """The server's address: an http(s) URL with a host, without a trailing slash."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok or any(c.isspace() for c in value):
        raise ValidationError(f"{value[:200]!r} is not an http(s) URL like "
                              f"{DEFAULT_URL}", file=file, field=field)
    return value.rstrip("/")


def first_found(dirs: Iterable[Path], *patterns: str,
                key: Callable[[Path], str] = lambda path: path.name) -> dict[str, Path]:
    """Files matching ``patterns`` in ``dirs``, by ``key``: a file in an earlier
    directory (the project's) hides one with the same key in a later (the built-in)."""
    found: dict[str, Path] = {}
    for directory in dirs:
        for path in _listing(directory, patterns):
            found.setdefault(key(path), path)
    return found


def _listing(directory: Path, patterns: tuple[str, ...]) -> tuple[Path, ...]:
    """The directory's files matching ``patterns``, sorted (hidden ones left out, as
    glob does). The names are read every time; only matching them is remembered."""
    try:
        names = os.listdir(directory)
    except OSError:
        return ()
    return _matching(directory, tuple(sorted(names)), patterns)


@lru_cache(maxsize=128)
def _matching(directory: Path, names: tuple[str, ...],
              patterns: tuple[str, ...]) -> tuple[Path, ...]:
    return tuple(directory / name for name in names if not name.startswith(".")
                 and any(fnmatch(name, pattern) for pattern in patterns))


def find_project(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def read_project(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"not valid TOML: {exc}", file=str(path)) from None
    for section, value in data.items():
        if section not in KNOWN and section not in OWN_SECTIONS:
            raise ValidationError(f"unknown section (expected {', '.join(KNOWN)}, "
                                  f"{', '.join(OWN_SECTIONS)})", file=str(path),
                                  field=section)
        if section == "targets":
            _check_targets(value, path)
            continue
        if not isinstance(value, dict):
            raise ValidationError("must be a table", file=str(path), field=section)
        if section == "safety":
            _check_safety(value, path)
            continue
        if section == "chat":
            continue  # its keys are gameday.chat.config's to read
        if section == "automation":
            _check_automation(value, path)
            continue
        for key, item in value.items():
            if key not in KNOWN[section]:
                raise ValidationError(
                    f"unknown key (expected {', '.join(sorted(KNOWN[section]))})",
                    file=str(path), field=f"{section}.{key}")
            if not isinstance(item, str) or not item.strip():
                raise ValidationError("must be a non-empty string", file=str(path),
                                      field=f"{section}.{key}")
            if (section, key) == ("project", "name") and not PROJECT_NAME.fullmatch(item):
                raise ValidationError(PROJECT_NAME_RULE, file=str(path), field="project.name")
    return data


def _check_targets(tables: Any, path: Path) -> None:
    """``[[targets]]``: an array of tables, each a known kind with what it needs."""
    file = str(path)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValidationError("must be an array of tables ([[targets]])", file=file,
                              field="targets")
    names: set[str] = set()
    for i, table in enumerate(tables):
        where = f"targets[{i}]"
        for key, value in table.items():
            if key not in TARGET_KEYS:
                raise ValidationError(f"unknown key (expected {', '.join(TARGET_KEYS)})",
                                      file=file, field=f"{where}.{key}")
            if key != "match" and (not isinstance(value, str) or not value.strip()):
                raise ValidationError("must be a non-empty string", file=file,
                                      field=f"{where}.{key}")
        for key in ("name", "kind", "match"):
            if key not in table:
                raise ValidationError("is required", file=file, field=f"{where}.{key}")
        if table["name"] in names:
            raise ValidationError(f"another target is called {table['name']!r}", file=file,
                                  field=f"{where}.name")
        names.add(table["name"])
        if table["kind"] not in TARGET_KINDS:
            raise ValidationError(f"must be one of {', '.join(TARGET_KINDS)}", file=file,
                                  field=f"{where}.kind")
        match = table["match"]
        if not isinstance(match, dict) or not match or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in match.items()):
            raise ValidationError("must be a table of labels and their values "
                                  "({service = \"checkout\"})", file=file,
                                  field=f"{where}.match")
        needed = {"kubernetes": ("context",), "service": ()}[table["kind"]]
        wrong = {"kubernetes": ("inventory",), "service": ("kubeconfig", "context")}
        for key in needed:
            if key not in table:
                raise ValidationError(f"is required for a {table['kind']} target", file=file,
                                      field=f"{where}.{key}")
        for key in wrong[table["kind"]]:
            if key in table:
                raise ValidationError(f"is not for a {table['kind']} target", file=file,
                                      field=f"{where}.{key}")


def _check_automation(table: dict[str, Any], path: Path) -> None:
    file = str(path)
    for key, value in table.items():
        field = f"automation.{key}"
        if key not in AUTOMATION_KEYS:
            raise ValidationError(f"unknown key (expected {', '.join(AUTOMATION_KEYS)})",
                                  file=file, field=field)
        if key == "require" and value not in TRUST_LEVELS:
            raise ValidationError(f"must be one of {', '.join(TRUST_LEVELS)}", file=file,
                                  field=field)
        if key == "max_age_days" and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
            raise ValidationError("must be a whole number of days, at least 1", file=file,
                                  field=field)
        if key == "same_target" and not isinstance(value, bool):
            raise ValidationError("must be true or false", file=file, field=field)


def _check_safety(table: dict[str, Any], path: Path) -> None:
    for key, items in table.items():
        if key not in SAFETY_KEYS:
            raise ValidationError(f"unknown key (expected {', '.join(SAFETY_KEYS)})",
                                  file=str(path), field=f"safety.{key}")
        if not isinstance(items, list) or not all(
                isinstance(i, str) and i.strip() and i == i.strip() for i in items):
            raise ValidationError("must be a list of non-empty strings", file=str(path),
                                  field=f"safety.{key}")


OWN_SECTIONS = ("safety", "targets", "chat", "automation")  # checked by their own rules
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")


PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,62}$")  # as ``gameday init`` names
PROJECT_NAME_RULE = "must be letters, digits, spaces, '.', '_' or '-' (at most 63)"
# given, a directory gameday reads and never makes must be there (the project's alert
# rules may be left out: a CronJob's image holds none)
READ = ("runbooks_dir",)

SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")  # ``mysql:``, ``sqlite:``: a URL's start


def store_target(db: str, where: str = "--db", file: str | None = None, *,
                 exists: bool = True) -> str:
    """What a store setting names: a SQLite file (as a path) or a PostgreSQL URL
    (``postgresql://`` or ``postgresql+psycopg://``, as given). Anything else is refused,
    naming ``where`` it was given (``--db``, ``GAMEDAY_DB``, ``[store] db`` of ``file``)."""
    if "://" in db and db.split("://", 1)[0] in POSTGRES_SCHEMES:
        try:
            parts = urlsplit(db)
            parts.port  # noqa: B018  (a port that is not a number raises)
        except ValueError as exc:
            raise ValidationError(f"is not a valid PostgreSQL URL: {exc}", file=file,
                                  field=where) from None
        if not (parts.hostname or "host=" in parts.query) or parts.path in ("", "/"):
            raise ValidationError("a PostgreSQL URL is postgresql://USER[:PASSWORD]@HOST"
                                  "[:PORT]/DATABASE", file=file, field=where)
        return db
    return str(store_path(db, where, file, exists=exists))


def store_path(db: str, where: str = "--db", file: str | None = None, *,
               exists: bool = True) -> Path:
    """The SQLite file a store setting names. A URL of another kind, or what starts like
    one (``sqlite:gd.db``, ``mysql:x``), is refused, never taken for a file name; so is
    what exists and is not a file (a directory, a device; ``exists``: looked at, for a
    path already resolved where it is meant)."""
    def refuse(message: str) -> ValidationError:
        return ValidationError(message, file=file, field=where)

    if "://" not in db:
        if not db.strip() or "\0" in db:
            raise refuse("is not a file name or a sqlite:/// URL")
        if SCHEME.match(db):
            raise refuse(f"{db[:40]!r} starts like a URL but is not one: give a SQLite file "
                         "name, a sqlite:///PATH URL or a postgresql:// URL")
        path = Path(db)
    else:
        try:
            parts = urlsplit(db)
        except ValueError as exc:
            raise refuse(f"is not a file name or a URL: {exc}") from None
        if parts.scheme != "sqlite":
            raise refuse(f"{parts.scheme}:// stores are not supported; give a SQLite file "
                         "name, a sqlite:///PATH URL or a postgresql:// URL")
        named = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc or not named.strip("/"):
            raise refuse("a SQLite URL is sqlite:///relative/path or "
                         "sqlite:////absolute/path")
        path = Path(named)
    if exists and path.exists() and not path.is_file():
        raise refuse(f"{db[:80]} is {'a directory' if path.is_dir() else 'not a regular file'},"
                     " not a SQLite store")
    return path


_current: Settings | None = None


def use(settings: Settings | None) -> None:
    """Make ``settings`` the process's settings (the CLI does, once it has resolved
    them); ``None`` goes back to resolving from the environment."""
    global _current
    _current = settings


@contextmanager
def overridden(**changes: Any) -> Iterator[Settings]:
    """The process's settings with ``changes`` while the block runs (a game day points
    the chaos activities running in this process at its own sandbox)."""
    global _current
    previous = _current
    _current = replace(current(), **changes)
    try:
        yield _current
    finally:
        _current = previous


def current() -> Settings:
    """The process's settings: the CLI's, else resolved from the working directory and
    the environment (cached per directory and environment, so tests can vary them)."""
    if _current is not None:
        return _current
    keys = tuple(s.variable for s in SETTINGS if s.variable)
    return _cached(str(Path.cwd()), tuple(os.environ.get(k) for k in keys))


@cache
def _cached(cwd: str, _env: tuple[str | None, ...]) -> Settings:
    return Settings.load(cwd=Path(cwd))
