"""Runbooks: Ansible playbooks with a metadata block, run by Ansible itself in a child of
the warm executor (``gameday.runbooks.executor``), or else through ansible-runner.

A runbook is a plain playbook (it runs with ``ansible-playbook`` too) whose first
play carries ``vars.gameday_runbook``: a summary, the alerts it serves, whether it is
automatic and destructive, and a schema for its parameters. The block's rules are
declared once, as pydantic models (``RunbookSpec``, ``ParameterSpec``), which
``runbook_schema`` prints as JSON Schema for editors. Parameters are checked
against that schema here and handed to Ansible as extra vars; they never become part
of a shell string, and anything that looks like a template is refused because Ansible
templates extra vars. Every task's start and result is reported as it happens, and
ansible-runner's artifacts are written under the run's directory either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, StringConstraints
from pydantic import ValidationError as PydanticError
from pydantic_core import PydanticCustomError

from gameday.core import events
from gameday.core.errors import GamedayError, NotFound, RunbookError, ValidationError
from gameday.core.events import Entry
from gameday.core.spec import (
    IDENTIFIER,
    Between,
    Identifier,
    Line,
    OneOf,
    Scalar,
    Spec,
    Text,
    first_error,
    json_schema,
    parse_yaml,
    read_bytes,
)
from gameday.core.states import RunStatus
from gameday.runbooks.dry_run import (
    Looks,
    included_paths,
    looked_at,
    read_plays,
    settled,
    version_of,
    watched,
)

TYPES = ("string", "integer", "boolean")
SAFE_STRING = re.compile(r"^[A-Za-z0-9_.:/=@+-]{1,128}$")
MAX_LEN = 128

log = logging.getLogger(__name__)

OnEvent = Callable[[Entry], None]
Dirs = Path | Sequence[Path] | None


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
    concurrency: int = 1  # runs of it at once under gameday serve; more wait their turn
    # The plays as Ansible reads them (comments and layout aside), digested: what a run
    # ran, and what a game day's proof holds for (``report.trust``: a runbook changed
    # since it was proven is not proven).
    version: str = ""
    includes: tuple[Path, ...] = ()  # the task files and other files read with it
    task_files: tuple[Path, ...] = ()  # of those, the task lists (included, roles')
    unread: tuple[str, ...] = ()  # tasks it names that cannot be read here (``dry_run``)
    # What runs for real even in check mode (``dry_run``: a ``check_mode: false`` task,
    # or one gameday cannot read), one line each: a dry run of it changes things.
    dry_run_acts: tuple[str, ...] = ()

    @property
    def dry_run_changes_nothing(self) -> bool:
        return not self.dry_run_acts

    def changes_nothing(self, check: bool) -> bool:
        """Whether a run of it changes nothing, so that it may skip four eyes and the
        commander role: a check-mode run, of a runbook whose dry run is dry."""
        return check and self.dry_run_changes_nothing

    def from_labels(self, labels: dict[str, str]) -> dict[str, str]:
        """The parameter values an alert's labels carry: each parameter takes the label
        named by its ``label`` key, else the label of its own name."""
        return {p.name: labels[p.label or p.name] for p in self.parameters
                if (p.label or p.name) in labels}

    def commands(self, params: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
        """Each task's name and the command it runs, for people to read: with
        ``params`` (validated values), each ``{{ name }}`` of a parameter is shown with
        its value, quoted as a shell would need it; anything else stays as written."""
        values = {k: str(v) for k, v in (params or {}).items()}
        shown = []
        for task in self.tasks:
            spec = task.get("ansible.builtin.command") or task.get("command") or {}
            argv = spec.get("argv") if isinstance(spec, dict) else None
            shown.append((task.get("name", "?"), _shown_argv(argv, values) if argv
                          else yaml.safe_dump({k: v for k, v in task.items() if k != "name"},
                                              default_flow_style=True).strip()))
        return shown

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "version": self.version,
                "summary": self.summary,
                "alerts": list(self.alerts), "auto": self.auto,
                "destructive": self.destructive, "concurrency": self.concurrency,
                "dry_run_changes_nothing": self.dry_run_changes_nothing,
                "dry_run_acts": list(self.dry_run_acts),
                "parameters": [p.__dict__ | {"choices": list(p.choices)}
                               for p in self.parameters]}


# -- loading --------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _shown_argv(argv: list[Any], values: Mapping[str, str]) -> str:
    """A command line as a person reads it: placeholders of known parameters filled."""
    words = []
    for arg in map(str, argv):
        filled = _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), arg)
        rest = _PLACEHOLDER.sub("x", filled)  # a placeholder left is one word, unquoted
        words.append(filled if "{%" in filled or ("{{" in filled and shlex.quote(rest) == rest)
                     else shlex.quote(filled))
    return " ".join(words)


def runbook_dirs(dirs: Dirs = None) -> tuple[Path, ...]:
    """Where to look, first match wins: the given directories, else the project's
    runbooks and then the ones built into the package (``settings``)."""
    if dirs is None:
        from gameday.core.settings import current

        return current().runbook_dirs
    return (dirs,) if isinstance(dirs, Path) else tuple(dirs)


def _files(dirs: Dirs) -> dict[str, Path]:
    from gameday.core.settings import first_found

    return first_found(runbook_dirs(dirs), "*.yml", "*.yaml", key=lambda path: path.stem)


def runbook_files(dirs: Dirs = None) -> list[Path]:
    """The runbook files ``discover`` reads, in its order."""
    return [path for _, path in sorted(_files(dirs).items())]


def discover(dirs: Dirs = None) -> list[Runbook]:
    return [load_runbook(path) for path in runbook_files(dirs)]


def find(name: str, dirs: Dirs = None) -> Runbook:
    files = _files(dirs)
    if name in files:
        return load_runbook(files[name])
    where = ", ".join(f"{d}/" for d in runbook_dirs(dirs))
    raise NotFound(f"no runbook {name!r} in {where} (known: {', '.join(files) or 'none'})")


def load_runbook(path: Path) -> Runbook:
    """The runbook in the playbook at ``path``; ValidationError naming the file and the
    dotted field (``vars.gameday_runbook.parameters.n.type``) if it is not one. The file
    is read every time, and parsed again only when its bytes change (an alert storm
    routes thousands of alerts a second through the same few runbooks)."""
    data = read_bytes(path)
    key = (path, hashlib.blake2b(data, digest_size=16).digest())
    cached = _PARSED.get(key)
    if cached is not None and cached[1] == looked_at(watched(cached[0].path, cached[0].includes)):
        return cached[0]
    found = _load_runbook(path, data)
    if len(_PARSED) >= 256:
        _PARSED.clear()
    seen = looked_at(watched(found.path, found.includes))
    if settled(seen):  # one written again within the same tick would look the same
        _PARSED[key] = (found, seen)
    return found


_PARSED: dict[tuple[Path, bytes], tuple[Runbook, Looks]] = {}


def _load_runbook(path: Path, data: bytes) -> Runbook:
    """The runbook in ``data``, read from ``path``, with the files it reads."""
    plays = parse_yaml(data, str(path))
    if not isinstance(plays, list) or not plays or not isinstance(plays[0], dict):
        raise ValidationError("a runbook is a playbook: a list of plays", file=str(path),
                              field="(top level)")
    play_vars = plays[0].get("vars")
    meta = play_vars.get("gameday_runbook") if isinstance(play_vars, dict) else None
    if meta is None:
        raise ValidationError("is required in the first play", file=str(path),
                              field="vars.gameday_runbook")
    try:
        spec = RunbookSpec.model_validate(meta)
    except PydanticError as exc:
        raise first_error(exc, path, ("vars", "gameday_runbook")) from None
    params = tuple(Parameter(name=name, type=p.type, required=p.required, pattern=p.pattern,
                             choices=tuple(p.choices), default=p.default,
                             description=p.description, label=p.label)
                   for name, p in (spec.parameters or {}).items())
    tasks = tuple(task for play in plays if isinstance(play, dict)
                  for task in _as_list(play.get("tasks")) if isinstance(task, dict))
    reading = read_plays(plays, path)
    included, files = reading.included, reading.files
    runbook = Runbook(name=path.stem, path=path, summary=spec.summary,
                      alerts=tuple(spec.alerts), auto=spec.auto, destructive=spec.destructive,
                      parameters=params, tasks=tasks, concurrency=spec.concurrency,
                      version=version_of(plays, included, files),
                      dry_run_acts=reading.acts, task_files=reading.task_files,
                      unread=reading.unread,
                      includes=tuple(included_paths(path, included, files)))
    for p in params:  # a default is a value like any other: it must pass its own checks
        if p.default is not None:
            try:
                validate_params(replace(runbook, parameters=(p,)), {p.name: p.default})
            except ValidationError as exc:
                raise ValidationError(f"the default {exc.message}", file=str(path),
                                      field=f"vars.gameday_runbook.parameters.{p.name}."
                                            "default") from None
    return runbook


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# -- the metadata block, declared once ------------------------------------------------------
def _a_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PydanticCustomError("regex", "not a valid regular expression: {error}",
                                  {"error": str(exc)}) from None
    return pattern


def _not_a_jinja_global(name: str) -> str:
    if name in JINJA_GLOBALS:
        raise PydanticCustomError(
            "jinja_global", "shadows Jinja's global {quoted}: if it is ever missing, the "
            "playbook renders the global instead of failing; name it otherwise and add "
            "`label: {name}` to fill it from that alert label", {"quoted": repr(name),
                                                                  "name": name})
    return name


ParameterName = Annotated[str, StringConstraints(pattern=IDENTIFIER.pattern),
                          AfterValidator(_not_a_jinja_global)]


class ParameterSpec(Spec):
    """One parameter: how a value (from the command line, an alert's labels, a form) is
    checked before the playbook gets it as an extra var."""

    type: Annotated[str, OneOf(TYPES)] = Field(default="string", description=(
        "string (checked against pattern or choices, else a safe default pattern), "
        "integer or boolean."))
    required: bool = Field(default=False, description="Whether a value must be given.")
    pattern: Annotated[Line, AfterValidator(_a_regex)] | None = Field(
        default=None, json_schema_extra={"format": "regex"},
        description="A Python regular expression the whole value must match.")
    choices: list[Scalar] = Field(default=[], description="The only values allowed.")
    default: Scalar | None = Field(default=None, description="The value when none is given.")
    description: Text = Field(default="", description="What it is, for people.")
    label: Identifier | None = Field(default=None, description=(
        "The alert label it is filled from, when that is not its own name."))


class RunbookSpec(Spec):
    """The vars.gameday_runbook block of a runbook's first play: what the runbook is for,
    and how its parameters are checked."""

    summary: Line = Field(description="What the runbook does, in one line.")
    alerts: list[Identifier] = Field(default=[], description="The alerts it answers.")
    auto: bool = Field(default=False, description="Whether a game day may run it without "
                                                  "asking.")
    destructive: bool = Field(default=False, description=(
        "Whether it takes something away (the web page asks for a confirmation)."))
    concurrency: Annotated[int, Between(1, 32)] = Field(default=1, description=(
        "How many runs of it gameday serve lets run at once; more wait their turn. A run "
        "with the same parameters as one queued or running is never started twice."))
    parameters: dict[ParameterName, ParameterSpec] | None = Field(default={}, description=(
        "Its parameters by name: each an Ansible variable name, and none of Jinja's "
        f"globals ({', '.join(sorted(JINJA_GLOBALS))})."))


def runbook_schema() -> dict[str, Any]:
    """The JSON Schema of runbook files: a playbook whose first play holds the
    ``gameday_runbook`` block (``$defs/RunbookMetadata``); the rest is Ansible's."""
    meta = json_schema(RunbookSpec, "gameday_runbook")
    dialect = meta.pop("$schema")
    defs = meta.pop("$defs", {})
    first_play = {"type": "object", "required": ["vars"], "properties": {"vars": {
        "type": "object", "required": ["gameday_runbook"],
        "properties": {"gameday_runbook": {"$ref": "#/$defs/RunbookMetadata"}}}}}
    return {"$schema": dialect, "title": "gameday runbook",
            "description": "An Ansible playbook whose first play declares the runbook in "
                           "vars.gameday_runbook.",
            "type": "array", "minItems": 1, "prefixItems": [first_play],
            "items": {"type": "object"}, "$defs": {**defs, "RunbookMetadata": meta}}


def syntax_check(runbook: Runbook) -> None:
    """Ansible's own reading of the playbook (``ansible-playbook --syntax-check``): a task
    of a module it cannot resolve, or tasks that are not a list, fail here, not in a
    run whose failure would count against the runbook's trust. Its parameters are given
    (each one's default, first choice, or a value of its type), as a run gives them, and
    it is read from a directory of its own, as runs are (no ``ansible.cfg`` beside the
    runbook that a run would not read); a variable only a run's inventory or facts
    define (``... is undefined``) is left for the run."""
    import subprocess
    import sys
    import tempfile

    from gameday.runbooks.executor import ansible_envvars

    path = runbook.path.resolve()
    seen = path.stat()
    key = (str(path), seen.st_mtime_ns, seen.st_size)
    if key in _SYNTAX_OK:  # one process validating many scenarios of one runbook
        return
    values = {p.name: (p.default if p.default is not None else p.choices[0] if p.choices
                       else {"integer": "1", "boolean": "true"}.get(p.type, "x"))
              for p in runbook.parameters}
    with tempfile.TemporaryDirectory(prefix="gameday-syntax-") as scratch:
        extra = Path(scratch) / "params.json"
        extra.write_text(json.dumps(values))
        try:  # this interpreter's Ansible, as the warm executor runs it (no script needed)
            done = subprocess.run(
                [sys.executable, "-m", "ansible.cli.playbook", "--syntax-check",
                 "-e", f"@{extra}", str(path)], capture_output=True, text=True,
                timeout=120, cwd=scratch, env={**os.environ, **ansible_envvars(None)})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GamedayError(f"cannot check {runbook.path} with Ansible: {exc}") from None
    said = [line.strip() for line in (done.stderr + done.stdout).splitlines()
            if line.startswith(("[ERROR]", "ERROR!"))]
    if done.returncode != 0 and not any("is undefined" in line for line in said):
        raise ValidationError("Ansible cannot run it: " + " ".join(
            (said or [(done.stderr or done.stdout).strip()[-300:]])[:2])[:500],
            file=str(runbook.path))
    _SYNTAX_OK.add(key)


_SYNTAX_OK: set[tuple[str, int, int]] = set()  # runbook files Ansible read, as they were


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
        if value.startswith("-"):  # data from an alert is never a command's option
            raise ValidationError(f"{value!r} starts with '-': a command would read it "
                                  "as an option", file=where, field=p.name)
        if p.type == "integer":
            if not re.fullmatch(r"\d{1,9}", value):
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
    # which path ran it: "mitogen" (the warm executor's fast path), "warm" (the warm
    # executor, Ansible's own strategy) or "ansible-runner" (gameday.runbooks.executor)
    executor: str = "ansible-runner"

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCESSFUL


def _task_event(event: dict[str, Any]) -> dict[str, Any] | None:
    kinds = {"playbook_on_task_start": "started", "runner_on_ok": "ok",
             "runner_on_failed": "failed", "runner_on_skipped": "skipped",
             "runner_on_unreachable": "unreachable"}
    task_status = kinds.get(event.get("event", ""))
    if task_status is None:
        return None
    data = event.get("event_data", {})
    res = data.get("res") or {}
    out: dict[str, Any] = {"task": data.get("task") or data.get("name"), "status": task_status}
    if task_status != "started":
        out["rc"] = res.get("rc")
        if res.get("cmd"):
            out["cmd"] = res["cmd"] if isinstance(res["cmd"], str) else " ".join(res["cmd"])
        out["stdout"] = (res.get("stdout") or "")[-2000:]
        if task_status == "failed":
            out["stderr"] = (res.get("stderr") or res.get("msg") or "")[-2000:]
            out["ignored"] = bool(data.get("ignore_errors"))
    return out


def prewarm() -> None:
    """Start the warm executor in the background (``gameday.runbooks.executor``): the first
    runbook of this process then starts warm instead of importing Ansible."""
    from gameday.runbooks import executor

    executor.prewarm()


def run_runbook(runbook: Runbook, params: dict[str, Any], data_dir: Path, *,
                check: bool = False, env: dict[str, str] | None = None,
                on_event: OnEvent | None = None,
                cancel: threading.Event | None = None,
                tick: Callable[[], None] | None = None) -> RunbookResult:
    """Run a runbook with validated ``params``; reports ``runbook.started``,
    ``runbook.task`` (each task start and result) and ``runbook.finished``. ``tick`` is
    called about every 100 ms while it runs (the incident keeps being watched).

    It runs in a child of the warm executor (``gameday.runbooks.executor``); where that cannot
    take it, through ``ansible_runner.run_async``, and a log line says why. Both write
    ansible-runner's artifacts under ``data_dir`` and report the same events."""
    from gameday.runbooks import executor

    report: OnEvent = on_event or (lambda entry: None)
    cancel = cancel or threading.Event()
    data_dir.mkdir(parents=True, exist_ok=True)
    counts = {"ok": 0, "failed": 0, "skipped": 0, "unreachable": 0}

    def handler(event: dict[str, Any]) -> bool:
        task = _task_event(event)
        if task:
            if task["status"] in counts:
                counts[task["status"]] += 1
            report(events.runbook_task(runbook.name, **task))
        return True

    def could_not_start(exc: Exception) -> RunbookError:  # ansible-runner's set-up errors
        report(events.runbook_finished(runbook.name, "error", None, check=check,
                                       error=str(exc)))
        return RunbookError(f"runbook {runbook.name} could not start: {exc}")

    kwargs = executor.runner_kwargs(runbook.path, data_dir, params, env=env, check=check)
    kwargs.update(event_handler=handler, cancel_callback=cancel.is_set)
    report(events.runbook_started(runbook.name, params, check, str(data_dir),
                                  version=runbook.version))
    try:
        status, rc, used = _run_warm(kwargs, cancel, tick, could_not_start)
    except executor.Unavailable as exc:
        expected = isinstance(exc, executor.NotStarted) or not executor.enabled()[0]
        (log.info if expected else log.warning)(
            "runbook %s runs through ansible-runner: %s", runbook.name, exc)
        status, rc = _run_async(kwargs, cancel, tick, could_not_start)
        used = "ansible-runner"
        if isinstance(exc, executor.NotStarted) and exc.start_now:
            executor.prewarm()  # for this process's next runbooks
    result = RunbookResult(runbook.name, status, rc, data_dir / "artifacts" / "run", counts,
                           used)
    report(events.runbook_finished(runbook.name, result.status, result.rc, tasks=counts,
                                   check=check, artifacts=str(result.artifacts)))
    return result


SetUpError = Callable[[Exception], RunbookError]


def _run_warm(kwargs: dict[str, Any], cancel: threading.Event,
              tick: Callable[[], None] | None,
              could_not_start: SetUpError) -> tuple[str, int | None, str]:
    """In a forked child of the warm executor; Unavailable when it cannot take the run
    (nothing ran)."""
    from ansible_runner.exceptions import AnsibleRunnerException
    from ansible_runner.interface import init_runner

    from gameday.runbooks import executor

    on, why = executor.enabled()
    if not on:
        raise executor.Unavailable(why)
    warm = executor.default()
    if not warm.started:
        raise warm.not_started()
    warm.ensure()  # before anything is written: a run it cannot take starts afresh
    try:
        runner = init_runner(**kwargs)
    except (AnsibleRunnerException, OSError) as exc:
        raise could_not_start(exc) from exc
    used = warm.run(runner, cancel=cancel, tick=tick)
    return runner.status, runner.rc, used


def _run_async(kwargs: dict[str, Any], cancel: threading.Event,
               tick: Callable[[], None] | None,
               could_not_start: SetUpError) -> tuple[str, int | None]:
    """Through ansible-runner's own ``run_async`` (``ansible-playbook`` started afresh)."""
    import ansible_runner
    from ansible_runner.exceptions import AnsibleRunnerException

    from gameday.runbooks import trees

    def canceled() -> bool:  # the playbook's whole tree killed at once, then ansible-runner
        if not cancel.is_set():
            return False
        trees.kill_fallback_run(kwargs["private_data_dir"])
        return True

    done = threading.Event()
    try:
        thread, runner = ansible_runner.run_async(
            **{**kwargs, "cancel_callback": canceled}, finished_callback=lambda _: done.set())
    except (AnsibleRunnerException, OSError) as exc:
        raise could_not_start(exc) from exc
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
    return runner.status, runner.rc
