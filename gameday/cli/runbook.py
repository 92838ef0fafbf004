"""``gameday runbook``: list, read and run runbooks."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gameday.cli.common import State, emit, pass_state, person
from gameday.core import clock


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
    found = standing(state.store, state.settings, [rb.name for rb in books])
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
    params = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="-e")
        params[key] = value
    return params


@runbook.command("run")
@click.argument("name")
@click.option("-e", "--extra", "extra", multiple=True, metavar="KEY=VALUE",
              help="A parameter (repeatable).")
@click.option("--check", is_flag=True, help="Ansible check mode: show, change nothing.")
@click.option("--incident", "incident_id", type=int,
              help="Record the run on this incident's timeline (drills).")
@click.option("--as", "actor", default=None, callback=person,
              help="Who runs it [default: $USER].")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where ansible-runner's artifacts go.")
@pass_state
def run(state: State, name: str, extra: tuple[str, ...], check: bool,
        incident_id: int | None, actor: str | None, run_dir: Path | None) -> None:
    """Run runbook NAME with its parameters validated; output is live."""
    import os

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
    result = runs.run(state.store, rb, params,
                      (base / "runbooks" / f"{stamp}-{rb.name}").resolve(), incident=inc,
                      who=actor, check=check, env=env, on_event=runbook_printer())
    click.echo(f"{rb.name}: {result.status} (rc {result.rc}); artifacts {result.artifacts}")
    if not result.ok:
        sys.exit(1)
