"""Runbooks: Ansible playbooks with a metadata block, run through ansible-runner.

A runbook is a plain playbook (it runs with ``ansible-playbook`` too) whose first
play carries ``vars.gameday_runbook``: a summary, the alerts it serves, whether it is
automatic and destructive, and a schema for its parameters. Parameters are checked
against that schema here and handed to Ansible as extra vars; they never become part
of a shell string, and anything that looks like a template is refused because Ansible
templates extra vars. Every task's start and result is reported as it happens.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gameday.errors import NotFound, RunbookError, ValidationError

DEFAULT_DIR = Path("runbooks")
TYPES = ("string", "integer", "boolean")
SAFE_STRING = re.compile(r"^[A-Za-z0-9_.:/=@+-]{1,128}$")
MAX_LEN = 128

OnEvent = Callable[[str, dict[str, Any]], None]


# Names Jinja defines in every template: a parameter called so would not fail as undefined.
JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace"})


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str = "string"
    required: bool = False
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    default: str | None = None
    description: str = ""
    label: str | None = None  # the alert label it comes from, when not its own name


@dataclass(frozen=True)
class Runbook:
    name: str
    path: Path
    summary: str
    alerts: tuple[str, ...]
    auto: bool
    destructive: bool
    parameters: tuple[Parameter, ...]
    tasks: tuple[dict[str, Any], ...] = field(default=())

    def from_labels(self, labels: dict[str, str]) -> dict[str, str]:
        """The parameter values an alert's labels carry: each parameter takes the label
        named by its ``label`` key, else the label of its own name."""
        return {p.name: labels[p.label or p.name] for p in self.parameters
                if (p.label or p.name) in labels}

    def commands(self) -> list[tuple[str, str]]:
        """Each task's name and the command it runs, for people to read."""
        shown = []
        for task in self.tasks:
            spec = task.get("ansible.builtin.command") or task.get("command") or {}
            argv = spec.get("argv") if isinstance(spec, dict) else None
            shown.append((task.get("name", "?"), " ".join(map(str, argv)) if argv
                          else yaml.safe_dump({k: v for k, v in task.items() if k != "name"},
                                              default_flow_style=True).strip()))
        return shown

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "summary": self.summary,
                "alerts": list(self.alerts), "auto": self.auto,
                "destructive": self.destructive,
                "parameters": [p.__dict__ | {"choices": list(p.choices)}
                               for p in self.parameters]}


# -- loading --------------------------------------------------------------------------
def runbook_dir() -> Path:
    return Path(os.environ.get("GAMEDAY_RUNBOOKS", DEFAULT_DIR))


def discover(directory: Path | None = None) -> list[Runbook]:
    directory = directory or runbook_dir()
    return [load_runbook(p) for p in sorted(directory.glob("*.y*ml"))]


def find(name: str, directory: Path | None = None) -> Runbook:
    directory = directory or runbook_dir()
    for suffix in (".yml", ".yaml"):
        path = directory / f"{name}{suffix}"
        if path.exists():
            return load_runbook(path)
    known = ", ".join(r.name for r in discover(directory)) or "none"
    raise NotFound(f"no runbook {name!r} in {directory}/ (known: {known})")


def load_runbook(path: Path) -> Runbook:
    def fail(fld: str, message: str) -> ValidationError:
        return ValidationError(message, file=str(path), field=fld)

    try:
        plays = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise fail("(top level)", f"not valid YAML: {exc}") from None
    if not isinstance(plays, list) or not plays or not isinstance(plays[0], dict):
        raise fail("(top level)", "a runbook is a playbook: a list of plays")
    play = plays[0]
    meta = (play.get("vars") or {}).get("gameday_runbook")
    if not isinstance(meta, dict):
        raise fail("vars.gameday_runbook", "is required in the first play")
    prefix = "vars.gameday_runbook."
    if not isinstance(meta.get("summary"), str):
        raise fail(prefix + "summary", "must be a string")
    alerts = meta.get("alerts", [])
    if not isinstance(alerts, list) or not all(isinstance(a, str) for a in alerts):
        raise fail(prefix + "alerts", "must be a list of alert names")
    for flag in ("auto", "destructive"):
        if not isinstance(meta.get(flag, False), bool):
            raise fail(prefix + flag, "must be true or false")
    params = []
    raw_params = meta.get("parameters") or {}
    if not isinstance(raw_params, dict):
        raise fail(prefix + "parameters", "must be a mapping of parameter names")
    for pname, spec in raw_params.items():
        where = f"{prefix}parameters.{pname}"
        if not isinstance(spec, dict):
            raise fail(where, "must be a mapping")
        unknown = set(spec) - {"type", "required", "pattern", "choices", "default",
                               "description", "label"}
        if unknown:
            raise fail(where, f"unknown keys: {', '.join(sorted(unknown))}")
        if pname in JINJA_GLOBALS:
            raise fail(where, f"shadows Jinja's global {pname!r}: if it is ever missing, "
                              "the playbook renders the global instead of failing; name it "
                              f"otherwise and add `label: {pname}` to fill it from that "
                              "alert label")
        ptype = spec.get("type", "string")
        if ptype not in TYPES:
            raise fail(where + ".type", f"must be one of {', '.join(TYPES)}")
        if spec.get("pattern") is not None:
            try:
                re.compile(spec["pattern"])
            except re.error as exc:
                raise fail(where + ".pattern", f"not a valid regular expression: {exc}") from None
        choices = spec.get("choices", [])
        if not isinstance(choices, list):
            raise fail(where + ".choices", "must be a list")
        default = spec.get("default")
        params.append(Parameter(name=pname, type=ptype, required=bool(spec.get("required")),
                                pattern=spec.get("pattern"),
                                choices=tuple(str(c) for c in choices),
                                default=None if default is None else str(default),
                                description=str(spec.get("description", "")),
                                label=None if spec.get("label") is None else str(spec["label"])))
    tasks = tuple(t for p in plays if isinstance(p, dict) for t in (p.get("tasks") or []))
    return Runbook(name=path.stem, path=path, summary=meta["summary"], alerts=tuple(alerts),
                   auto=meta.get("auto", False), destructive=meta.get("destructive", False),
                   parameters=tuple(params), tasks=tasks)


# -- parameters -----------------------------------------------------------------------
def validate_params(runbook: Runbook, given: dict[str, Any]) -> dict[str, Any]:
    """Check raw values (from a CLI, an alert's labels, a form) against the schema.
    Returns typed extra vars; raises ValidationError naming the parameter."""
    where = f"runbook {runbook.name}"
    specs = {p.name: p for p in runbook.parameters}
    for name in given:
        if name not in specs:
            raise ValidationError(f"unknown parameter (known: {', '.join(specs) or 'none'})",
                                  file=where, field=name)
    out: dict[str, Any] = {}
    for p in runbook.parameters:
        raw = given.get(p.name, p.default)
        if raw is None:
            if p.required:
                raise ValidationError("is required", file=where, field=p.name)
            continue
        value = str(raw)
        if len(value) > MAX_LEN:
            raise ValidationError(f"is longer than {MAX_LEN} characters", file=where,
                                  field=p.name)
        if "{{" in value or "{%" in value or "{#" in value or any(
                ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValidationError("must not contain template markers or control characters",
                                  file=where, field=p.name)
        if p.type == "integer":
            if not re.fullmatch(r"-?\d{1,9}", value):
                raise ValidationError(f"must be an integer, not {value!r}", file=where,
                                      field=p.name)
            out[p.name] = int(value)
        elif p.type == "boolean":
            if value.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                raise ValidationError(f"must be true or false, not {value!r}", file=where,
                                      field=p.name)
            out[p.name] = value.lower() in ("true", "yes", "on", "1")
        else:
            if p.choices and value not in p.choices:
                raise ValidationError(f"must be one of {', '.join(p.choices)}, not {value!r}",
                                      file=where, field=p.name)
            if not p.choices and not re.fullmatch(p.pattern or SAFE_STRING.pattern, value):
                raise ValidationError(f"{value!r} does not match "
                                      f"{p.pattern or SAFE_STRING.pattern}",
                                      file=where, field=p.name)
            out[p.name] = value
    return out


# -- running ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunbookResult:
    name: str
    status: str
    rc: int | None
    artifacts: Path
    tasks: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.status == "successful"


def _task_event(event: dict[str, Any]) -> dict[str, Any] | None:
    kinds = {"playbook_on_task_start": "started", "runner_on_ok": "ok",
             "runner_on_failed": "failed", "runner_on_skipped": "skipped",
             "runner_on_unreachable": "unreachable"}
    status = kinds.get(event.get("event", ""))
    if status is None:
        return None
    data = event.get("event_data", {})
    res = data.get("res") or {}
    out: dict[str, Any] = {"task": data.get("task") or data.get("name"), "status": status}
    if status != "started":
        out["rc"] = res.get("rc")
        if res.get("cmd"):
            out["cmd"] = res["cmd"] if isinstance(res["cmd"], str) else " ".join(res["cmd"])
        out["stdout"] = (res.get("stdout") or "")[-2000:]
        if status == "failed":
            out["stderr"] = (res.get("stderr") or res.get("msg") or "")[-2000:]
            out["ignored"] = bool(data.get("ignore_errors"))
    return out


def run_runbook(runbook: Runbook, params: dict[str, Any], data_dir: Path, *,
                check: bool = False, env: dict[str, str] | None = None,
                on_event: OnEvent | None = None,
                cancel: threading.Event | None = None,
                tick: Callable[[], None] | None = None) -> RunbookResult:
    """Run a runbook with validated ``params``; reports ``runbook.started``,
    ``runbook.task`` (each task start and result) and ``runbook.finished``. ``tick`` is
    called about every 100 ms while it runs (the incident keeps being watched)."""
    import ansible_runner
    from ansible_runner.exceptions import AnsibleRunnerException

    report = on_event or (lambda kind, data: None)
    cancel = cancel or threading.Event()
    done = threading.Event()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(env or {})
    bindir = str(Path(sys.executable).parent)  # ansible-playbook and gameday live here
    path = env.pop("PATH", os.environ.get("PATH", ""))
    envvars = {"PATH": f"{bindir}{os.pathsep}{path}",
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False",
               "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", **env}
    inventory = {"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    counts = {"ok": 0, "failed": 0, "skipped": 0, "unreachable": 0}

    def handler(event: dict[str, Any]) -> bool:
        task = _task_event(event)
        if task:
            if task["status"] in counts:
                counts[task["status"]] += 1
            report("runbook.task", {"runbook": runbook.name, **task})
        return True

    report("runbook.started", {"runbook": runbook.name, "params": params, "check": check,
                               "artifacts": str(data_dir)})
    try:
        thread, runner = ansible_runner.run_async(
            private_data_dir=str(data_dir), playbook=str(runbook.path.resolve()),
            inventory=inventory, extravars=params, envvars=envvars, quiet=True,
            cmdline="--check --diff" if check else None, event_handler=handler,
            cancel_callback=cancel.is_set, finished_callback=lambda _: done.set(), ident="run")
    except (AnsibleRunnerException, OSError) as exc:  # ansible-runner's set-up errors
        report("runbook.finished", {"runbook": runbook.name, "status": "error", "rc": None,
                                    "error": str(exc)})
        raise RunbookError(f"runbook {runbook.name} could not start: {exc}") from exc
    except BaseException:  # an interrupt while starting: cancel whatever did start
        cancel.set()
        raise
    try:
        # Wait on an Event, not Thread.join: an interrupted join can leave a running
        # thread looking finished (CPython), and the playbook would outlive us.
        while not done.wait(0.1):
            if tick:
                tick()
    except BaseException:  # Ctrl-C, SIGTERM: stop the playbook before unwinding
        cancel.set()
        done.wait(15)
        raise
    thread.join()
    result = RunbookResult(runbook.name, runner.status, runner.rc,
                           data_dir / "artifacts" / "run", counts)
    report("runbook.finished", {"runbook": runbook.name, "status": result.status,
                                "rc": result.rc, "tasks": counts, "check": check,
                                "artifacts": str(result.artifacts)})
    return result
