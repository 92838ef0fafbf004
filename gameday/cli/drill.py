"""``gameday drill ...``: responder training drills from the terminal (the console in
``gameday serve`` does the same through the same calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gameday.cli.common import ID, State, emit, pass_state, person
from gameday.core.clock import shown_utc
from gameday.core.policy import ROLES
from gameday.core.settings import DEFAULT_URL, TARGET_KINDS

DRILL_TARGETS = ("sandbox", *TARGET_KINDS)

ME = click.option("--as", "person", required=True, callback=person, metavar="NAME",
                  help="Who you are.")


@click.group()
def drill() -> None:
    """Training drills: a real fault, people in the loop, injects, hints, a debrief."""


@drill.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option("--wheel", "pool", type=click.Path(exists=True, path_type=Path),
              help="Spin the Wheel of Misfortune: a random scenario from this directory "
                   "(or file list) and a random on-call from its rotation.")
@click.option("--difficulty", type=click.Choice(["easy", "normal", "hard"]), default="normal",
              show_default=True, help="hard: no hints; easy: hints cost nothing.")
@click.option("--from-history", "history", is_flag=True,
              help="The wheel spins only outages that happened here before: scenarios "
                   "past game days ran, or whose alert opened a real incident.")
@click.option("--seed", type=int, help="With --wheel: make its spin repeatable.")
@click.option("--from-incident", "incident", type=ID, metavar="ID",
              help="Replay real incident ID: its alert, service, severity and the "
                   "questions people asked, with a fault from the registry that produces "
                   "the same symptom.")
@click.option("--target", type=click.Choice(DRILL_TARGETS), default="sandbox",
              show_default=True, help="With --from-incident: where the fault goes (the "
                                      "project's drill scenario for the service there "
                                      "gives the team and the SLO).")
@click.option("--game-master", "game_master", default="game-master", show_default=True,
              callback=person, help="Who runs the drill (the console gives them its "
                                    "controls when they sign in with this name).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def start(state: State, scenario: Path | None, pool: Path | None, difficulty: str,
          history: bool, seed: int | None, incident: int | None, target: str,
          game_master: str, as_json: bool) -> None:
    """Start a drill of SCENARIO (or spin --wheel, or replay --from-incident ID): the
    fault runs in its own process; prints the drill's id, its incident and the join
    link (on [serve] url or GAMEDAY_URL, where ``gameday serve`` runs the console;
    without either, on its default address, and the output says so)."""
    from gameday.drills.master import spin, start_drill

    if sum(x is not None for x in (scenario, pool, incident)) != 1:
        raise click.UsageError("give a SCENARIO, --wheel POOL or --from-incident ID")
    if history and pool is None:
        raise click.UsageError("--from-history goes with --wheel POOL")
    if seed is not None and pool is None:
        raise click.UsageError("--seed goes with --wheel POOL (it makes the wheel's spin "
                               "repeatable; a SCENARIO or --from-incident spins nothing)")
    if target != "sandbox" and incident is None:
        raise click.UsageError("--target goes with --from-incident ID (a scenario says its "
                               "own target)")
    if incident is not None:
        _replay(state, incident, target, game_master, difficulty, as_json)
        return
    if scenario is not None:
        chosen, oncall = scenario, None
    else:
        assert pool is not None
        chosen, oncall = spin(pool, seed=seed, history=state.store if history else None)
    started = start_drill(state.store, state.settings, chosen, game_master=game_master,
                          difficulty=difficulty, oncall=oncall)
    if as_json:
        emit(started)
        _assumed(started)
        return
    click.echo(f"drill {started['drill_id']}: {started['scenario']} (incident "
               f"#{started['incident_id']}, {difficulty})")
    if started.get("oncall"):
        click.echo(f"the wheel picked {started['oncall']} as on-call")
    click.echo(f"join: {started['join_url']}")
    _assumed(started)
    click.echo(f"output: {started['log']}")


def _assumed(started: dict[str, Any]) -> None:
    """Where nobody said where ``gameday serve`` runs, the join link is on its default
    address: say so (on stderr, beside a script's JSON), and how to make it right."""
    if started.get("join_url_assumed"):
        click.echo("note: the join link assumes gameday serve at its default address "
                   f"({DEFAULT_URL}); where it runs elsewhere, set [serve] url in "
                   "gameday.toml or GAMEDAY_URL to its address", err=True)


def _replay(state: State, incident: int, target: str, game_master: str, difficulty: str,
            as_json: bool) -> None:
    """Replay a real incident: say which fault was chosen and why before anything else."""
    from gameday.drills.replay import start_replay

    started = start_replay(state.store, state.settings, incident, target=target,
                           game_master=game_master, difficulty=difficulty)
    if as_json:
        emit(started)
        _assumed(started)
        return
    r = started["replay"]
    click.echo(f"drill {started['drill_id']}: a rehearsal of incident #{incident} "
               f"({r['alert']}, service {r['service']}, team {r['team']}; run at "
               f"{r['severity_declared'] or 'no severity'}, measured "
               f"{r['severity_measured'] or 'never'})")
    click.echo(f"symptom: {r['symptom']}, from {r['evidence']}")
    click.echo(f"fault on the {r['target']}: {r['fault']}, because {r['why']}")
    click.echo(f"injects from its timeline: {', '.join(r['injects']) or 'none'}")
    for note in r["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"scenario: {started['scenario']} (incident #{started['incident_id']}, "
               f"{difficulty})")
    click.echo(f"join: {started['join_url']}")
    _assumed(started)
    click.echo(f"output: {started['log']}")


def _drill(state: State, drill_id: int) -> Any:
    from gameday.drills.master import Drill

    return Drill.load(state.store, state.settings, drill_id)


@drill.command()
@click.argument("drill_id", type=ID)
@ME
@click.option("--role", type=click.Choice(ROLES), required=True)
@pass_state
def join(state: State, drill_id: int, person: str, role: str) -> None:
    """Take ROLE in the drill."""
    _drill(state, drill_id).join(person, role)
    click.echo(f"{person} is {role} in drill {drill_id}")


@drill.command()
@click.argument("drill_id", type=ID)
@ME
@pass_state
def pause(state: State, drill_id: int, person: str) -> None:
    """Stop the drill clock (injects and time boxes wait)."""
    _drill(state, drill_id).pause(person)
    click.echo(f"drill {drill_id} paused")


@drill.command()
@click.argument("drill_id", type=ID)
@ME
@pass_state
def resume(state: State, drill_id: int, person: str) -> None:
    """Start the drill clock again."""
    _drill(state, drill_id).resume(person)
    click.echo(f"drill {drill_id} resumed")


@drill.command()
@click.argument("drill_id", type=ID)
@click.argument("name", required=False)
@ME
@click.option("--from", "sender", help="A hand-made inject: who it comes from.")
@click.option("--message", help="A hand-made inject: what they say.")
@pass_state
def inject(state: State, drill_id: int, name: str | None, person: str, sender: str | None,
           message: str | None) -> None:
    """Fire the scenario's inject NAME now, or a hand-made one (--from, --message)."""
    fired = _drill(state, drill_id).inject(person, name=name, sender=sender, message=message)
    click.echo(f"inject {fired['name']} ({fired['sender']}): {fired['message']}")


@drill.command()
@click.argument("drill_id", type=ID)
@ME
@click.option("--stage", help="The stage you are stuck at [default: the next hint].")
@pass_state
def hint(state: State, drill_id: int, person: str, stage: str | None) -> None:
    """Take a hint (recorded; it costs points in your scorecard)."""
    taken = _drill(state, drill_id).hint(person, stage)
    click.echo(f"hint ({taken['stage']}, costs {taken['cost']}): {taken['text']}")


@drill.command()
@click.argument("drill_id", type=ID)
@ME
@pass_state
def end(state: State, drill_id: int, person: str) -> None:
    """End the drill: the fault is rolled back and the debrief is ready."""
    drill = _drill(state, drill_id)
    if drill.end(person):
        click.echo(f"drill {drill_id} ending: its fault is rolled back")
    else:
        click.echo(f"drill {drill_id} is over already ({drill.incident.state})")


@drill.command()
@click.argument("drill_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def debrief(state: State, drill_id: int, as_json: bool) -> None:
    """The timeline, a scorecard per person, the injects and how each was answered."""
    from gameday.game.scoring import compute_metrics

    data = _drill(state, drill_id).debrief(lambda ev: compute_metrics(ev).as_dict())
    if as_json:
        emit(data)
        return
    click.echo(f"drill {drill_id}: {data['scenario']}  incident #{data['incident_id']} "
               f"({data['incident_state']})")
    if data["replay"]:
        _beside(data["replay"])
    for card in data["scorecards"]:
        click.echo(f"\n{card['person']} ({', '.join(card['roles']) or 'paged'}): "
                   f"{card['score']}/100")
        for d in card["deductions"]:
            click.echo(f"  -{d['points']:<3} {d['why']}")
    if data["injects"]:
        click.echo("\ninjects:")
        for i in data["injects"]:
            verdict = "" if i["met"] is None else ("answered" if i["met"] else "NOT answered")
            click.echo(f"  {i['at_s'] or 0:7.1f}s {i['name']} ({i['from']}): {i['message']} "
                       f"{verdict}")
    if data.get("review"):
        click.echo(f"\nreview: {data['review']}")


@drill.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_drills(state: State, as_json: bool) -> None:
    """Every drill, newest first."""
    rows = state.store.drills()
    if as_json:
        emit(rows)
        return
    for d in rows:
        click.echo(f"{d['id']:>4} {shown_utc(d['created_at'])}  {d['state']:8} incident "
                   f"#{d['incident_id'] or '-'}  {d['scenario']}")
    if not rows:
        click.echo("no drills yet (gameday drill start SCENARIO)")


def _beside(replay: dict[str, Any]) -> None:
    """A replay's timings: the real incident's beside the drill's."""
    click.echo(f"\na rehearsal of incident #{replay['incident']} ({replay['alert']}"
               f"{': ' + replay['title'] if replay.get('title') else ''})")
    if replay.get("missing"):
        click.echo(f"  {replay['missing']}")
    click.echo(f"  {'':50} {'real':>10} {'drill':>10}")
    for row in replay["timings"]:
        click.echo(f"  {row['what']:50} {_shown(row['real']):>10} {_shown(row['drill']):>10}")


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if isinstance(value, float | int) else str(value)
