"""``gameday runbook``: list, read and run runbooks."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gameday.cli.common import ID, State, emit, pass_state, person
from gameday.core import clock

if TYPE_CHECKING:
    from gameday.core.events import Entry


@click.group()
def runbook() -> None:
    """Runbooks: Ansible playbooks run through ansible-runner.

    Found in the project's runbooks/ (env GAMEDAY_RUNBOOKS), then among the ones built
    in for the embedded sandbox.
    """


@runbook.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_(state: State, as_json: bool) -> None:
    """List runbooks with the alerts they serve, and each one's trust: whether a game
    day has proven it lately (the project's [automation] policy decides whether an
    automatic one may run by itself), and what would restore it."""
    from gameday.report.trust import standing
    from gameday.runbooks.runbook import discover

    books = discover()
    policy = state.settings.automation
    found = standing(state.store, state.settings, books)
    trust = {name: t for name, (t, _) in found.items()}
    restore = {name: r for name, (_, r) in found.items()}
    if as_json:
        return emit([rb.as_dict() | {"trust": trust[rb.name].as_dict()
                                     | {"restore": restore[rb.name]}} for rb in books])
    for rb in books:
        tags = ", ".join(t for t, on in (("auto", rb.auto), ("destructive", rb.destructive))
                         if on)
        click.echo(f"{rb.name:20} {rb.summary}" + (f" [{tags}]" if tags else ""))
        if rb.alerts:
            click.echo(f"{'':20} alerts: {', '.join(rb.alerts)}")
        t = trust[rb.name]
        held = rb.auto and policy.needs_proof and not t.proven
        click.echo(f"{'':20} trust: {t.level}: {t.why}"
                   + (" (runs by itself: held for one click)" if held else ""))
        if not t.proven:
            click.echo(f"{'':20} to restore: {restore[rb.name]}")


@runbook.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def show(name: str, as_json: bool) -> None:
    """Show a runbook's parameters and the commands it runs."""
    from gameday.runbooks.runbook import find

    rb = find(name)
    if as_json:
        return emit(rb.as_dict() | {"commands": rb.commands()})
    click.echo(f"{rb.name}: {rb.summary}")
    click.echo(f"  file: {rb.path}   auto: {rb.auto}   destructive: {rb.destructive}")
    for p in rb.parameters:
        rule = f"one of {', '.join(p.choices)}" if p.choices else (p.pattern or p.type)
        click.echo(f"  -e {p.name}=...  {p.description} ({rule}"
                   f"{', required' if p.required else ''}"
                   f"{f', from alert label {p.label}' if p.label else ''})")
    for i, (task, cmd) in enumerate(rb.commands(), 1):
        click.echo(f"  {i}. {task}\n     $ {cmd}")


def parse_extra(values: tuple[str, ...]) -> dict[str, str]:
    """``-e KEY=VALUE`` as a dict; a key given twice is refused, not the last one taken."""
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="-e")
        if key in params:
            raise click.BadParameter(
                f"{key!r} is given twice ({key}={params[key][:40]!r} and "
                f"{key}={value[:40]!r}): give each parameter once", param_hint="-e")
        params[key] = value
    return params


SIGPIPE_EXIT = 141  # 128 + SIGPIPE, as a shell reports a tool its broken pipe ended


class _ReaderGone(Exception):
    """Whoever read the run's output went away: stdout's pipe broke (``| head -1``)."""


class _Output:
    """The run's live output, shown by ``show`` (on ansible-runner's thread, or the warm
    executor's loop). Showing it must never end that thread: a thread that dies leaves
    the run waiting for it forever, ``running`` on the record. So a failure to show is
    remembered, the output stops, and ``tick`` (the main thread, every 100 ms while the
    run waits or runs) raises it there, where it stops the playbook as Ctrl-C does: the
    run ends ``canceled`` on the record. A broken pipe is ``_ReaderGone``."""

    def __init__(self, show: Callable[[Entry], None]) -> None:
        self.show = show
        self.failed: BaseException | None = None

    def __call__(self, entry: Entry) -> None:
        if self.failed is not None:
            return
        try:
            self.show(entry)
        except (Exception, SystemExit) as exc:  # rich turns EPIPE into SystemExit(1)
            from gameday.game.ui import reader_went_away, write_nowhere

            if reader_went_away(exc):
                write_nowhere(sys.stdout)
                self.failed = _ReaderGone()
            else:
                self.failed = exc

    def tick(self) -> None:
        if self.failed is not None:
            raise self.failed


@runbook.command("run")
@click.argument("name")
@click.option("-e", "--extra", "extra", multiple=True, metavar="KEY=VALUE",
              help="A parameter (repeatable).")
@click.option("--check", is_flag=True, help="Ansible check mode: show, change nothing.")
@click.option("--incident", "incident_id", type=ID,
              help="Record the run on this incident's timeline (drills).")
@click.option("--as", "actor", default=None, callback=person,
              help="Who runs it [default: $USER].")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where ansible-runner's artifacts go.")
@pass_state
def run(state: State, name: str, extra: tuple[str, ...], check: bool,
        incident_id: int | None, actor: str | None, run_dir: Path | None) -> None:
    """Run runbook NAME with its parameters validated; output is live. Should its reader
    go away (`| head`: a broken pipe), the run is cancelled, ended on the record, and
    the command exits 141 at once, as a Unix tool ends on SIGPIPE."""
    from gameday.core.spec import PERSON
    from gameday.game.ui import runbook_printer
    from gameday.incidents.incident import Incident
    from gameday.runbooks.runbook import find, validate_params
    from gameday.runs import run as runs

    rb = find(name)
    params = validate_params(rb, parse_extra(extra))
    if actor is None:  # $USER, when it is a handle gameday knows people by
        user = os.environ.get("USER", "")
        actor = user if PERSON.fullmatch(user) else "responder"
    inc = Incident(state.store, incident_id) if incident_id is not None else None
    env, game_dir = runs.environment(inc)  # a drill's run acts on its game day's sandbox
    base = run_dir or game_dir or state.settings.state_dir / "runbook-runs"
    stamp = clock.now().strftime("%Y%m%dT%H%M%S%fZ")
    output = _Output(runbook_printer())
    try:
        result = runs.run(state.store, rb, params,
                          (base / "runbooks" / f"{stamp}-{rb.name}").resolve(), incident=inc,
                          who=actor, check=check, env=env, on_event=output,
                          tick=output.tick)
    except _ReaderGone:
        click.echo(f"{rb.name}: canceled: its output's reader went away (broken pipe)",
                   err=True)
        sys.exit(SIGPIPE_EXIT)
    if output.failed is not None and not isinstance(output.failed, _ReaderGone):
        raise output.failed  # showing its last lines failed: the run itself is recorded
    click.echo(f"{rb.name}: {result.status} (rc {result.rc}); artifacts {result.artifacts}")
    if not result.ok:
        sys.exit(1)
