"""The ``gameday`` command line: thin Click commands over the stage modules.

Domain errors (``GamedayError``) become Click errors here and nowhere else: exit 2
for usage and validation, 1 for the rest. Heavy modules are imported inside the
commands, so ``gameday --help`` stays fast.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import click

from gameday import __version__
from gameday.cli.common import ID, State, emit, pass_state, person
from gameday.core.errors import GamedayError, ValidationError


class GamedayGroup(click.Group):
    """Turns domain errors into Click errors with the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C before a command could handle it: no traceback
            raise SystemExit(130) from None
        except ValidationError as exc:
            raise UsageFailure(str(exc)) from None
        except GamedayError as exc:
            raise failure(exc.exit_code)(str(exc)) from None


def failure(code: int) -> type[click.ClickException]:
    """A Click error that exits ``code`` (1 for most domain errors, 4 when frozen)."""
    if code == 1:
        return click.ClickException
    return type(f"ExitWith{code}", (click.ClickException,), {"exit_code": code})


class UsageFailure(click.ClickException):
    exit_code = 2

    def format_message(self) -> str:
        return self.message


@click.group(cls=GamedayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gameday")
@click.option("--db", envvar="GAMEDAY_DB", metavar="PATH",
              help="The store: a SQLite file, sqlite:///PATH or a postgresql:// URL "
                   "[default: .gameday/gameday.db in the project; env GAMEDAY_DB].")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Chaos game days and runbook automation for incident response.

    Inject a real fault, run the incident, contain it with a runbook, score the
    response against ground truth and write the blameless review. Works from any
    directory of a game-day project (a gameday.toml; `gameday init` makes one).
    """
    from gameday.core import settings

    from_env = ctx.get_parameter_source("db") == click.core.ParameterSource.ENVIRONMENT
    resolved = settings.Settings.load(db=db, db_from="GAMEDAY_DB" if from_env else "--db")
    settings.use(resolved)
    ctx.obj = State(resolved)


def main() -> None:
    try:
        cli(prog_name="gameday")
    finally:
        # The process ends here: its objects are frozen, so that the interpreter's last
        # garbage collections do not walk every module's objects (tens of milliseconds
        # with SQLAlchemy, chaoslib and pydantic loaded) only to free memory at exit.
        gc.freeze()


# -- run and validate --------------------------------------------------------------------
@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
@click.option("--alerting", type=click.Choice(["builtin", "prometheus", "alertmanager"]),
              help="Where the alert comes from [default: the scenario's `alerting`, builtin]: "
                   "the SLO burn detector, gameday's own Prometheus and Alertmanager (the "
                   "sandbox), or the team's Alertmanager (a service target).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the verdict as JUnit XML, one test case per check, for CI.")
@click.option("--min-score", type=click.IntRange(0, 100),
              help="Fail (exit 1) when the score is below this.")
@click.option("--preflight", is_flag=True,
              help="Check the scenario, the freeze, the target and its steady state; "
                   "inject nothing, open no incident.")
@click.option("--schedule-run", type=ID, hidden=True)
@click.option("--drill", "drill_id", type=ID, hidden=True)
@pass_state
def run(state: State, scenario: Path, as_json: bool, alerting: str | None,
        junit: Path | None, min_score: int | None, preflight: bool,
        schedule_run: int | None, drill_id: int | None) -> None:
    """Run the game day described by SCENARIO (a scenarios/*.yaml file).

    Exit codes: 0 the response met its targets; 1 it missed a target (or --min-score);
    2 usage or a scenario that does not validate; 3 the steady state did not come back
    (or a rollback did not succeed: `gameday recover` plays it again);
    4 game days are frozen, or a real incident is open for the service or another game
    day holds it (its fault may still be in: `gameday recover`); 5 a stop
    condition (stop_when) ended it, its fault rolled back at once; 130 or 143 SIGINT or
    SIGTERM interrupted it (its faults rolled back, its processes stopped, the review
    written from what was recorded); 141 its output's reader went away (a broken pipe),
    stopped the same way.
    """
    from gameday.game import interrupts
    from gameday.scenarios.scenario import load_scenario

    interrupts.install()
    sc = load_scenario(scenario)
    if junit:
        from gameday.game.verdict import check_junit_path

        check_junit_path(junit)  # a report that cannot be written: exit 2, nothing injected
    if preflight:
        sys.exit(_preflight(state, sc, as_json))
    from gameday.drills.master import DrillRun
    from gameday.game.session import Occasion, Outcome, play
    from gameday.game.ui import Progress
    from gameday.schedules.scheduler import ScheduledRun

    ui = Progress(quiet=as_json)
    occasion: Occasion | None = None
    if schedule_run:
        occasion = scheduled = ScheduledRun(state.store, schedule_run)
        scheduled.say = ui.say
    elif drill_id:
        occasion = DrillRun(state.store, drill_id)

    def present(done: Outcome) -> None:
        verdict = done.verdict
        if as_json:
            emit(done.summary)
        elif verdict.exit_code:
            failed = [c.name for c in verdict.checks if not c.passed]
            click.echo(f"verdict: {verdict.status} ({', '.join(failed)})")

    done = play(sc, state.store, ui, runs_dir=state.settings.runs_dir, alerting=alerting,
                occasion=occasion, junit=junit, min_score=min_score, present=present)
    state.store.close()  # a signal meanwhile is remembered (``interrupts.settle``) ...
    code = done.verdict.exit_code or interrupts.exit_code()  # ... and never exits 0
    if code:
        sys.exit(code)


def _preflight(state: State, sc: Any, as_json: bool) -> int:
    from gameday.game.run import preflight

    say = (lambda text: None) if as_json else click.echo
    checks = preflight(sc, state.store, say=say, root=state.settings.runs_dir)
    if as_json:
        emit([c.__dict__ for c in checks])
    else:
        for c in checks:
            click.echo(f"{'ok ' if c.ok else 'NO '} {c.name}: {c.detail}")
    failed = {c.name for c in checks if not c.ok}
    if not failed:
        return 0
    if failed & {"SLIs inside the objective", "steady-state hypothesis"}:
        return 3
    return 4 if failed == {"not frozen"} else 1


@cli.command("recover")
@click.option("--by-hand", "by_hand", type=ID, metavar="GAME_DAY",
              help="Someone took out by hand what this game day (its incident's id) left "
                   "and `gameday recover` could not undo: record it and let it go.")
@click.option("--as", "who", callback=person, metavar="NAME",
              help="--by-hand: who did it.")
@click.option("--reason", help="--by-hand: what they did (one line).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def recover_command(state: State, by_hand: int | None, who: str | None,
                    reason: str | None, as_json: bool) -> None:
    """Finish game days that crashed: roll back their faults, stop what they left
    running, end their incidents (aborted). `gameday run` and `gameday serve` do this
    when they start. Exit 1 when a rollback did not succeed (the fault may still be in)
    or a target could not be stopped: the next recover tries again. Meanwhile no game
    day starts on that service of the team's (exit 4), until recover succeeds or
    `--by-hand` says a person did it."""
    from gameday.game.recovery import recover

    if by_hand is not None:
        _by_hand(state, by_hand, who, reason, as_json)
        return
    if who is not None or reason is not None:
        raise click.UsageError("--as and --reason go with --by-hand GAME_DAY")
    done = recover(state.store, say=(lambda text: None) if as_json else click.echo)
    if as_json:
        emit(done)
    elif not done:
        click.echo("nothing to recover")
    if any(not result["undone"] for result in done):
        raise click.ClickException("a rollback did not succeed: the fault may still be "
                                   "in; fix what stopped it, then run `gameday recover` "
                                   "again (or, once someone took it out by hand, `gameday "
                                   "recover --by-hand GAME_DAY --as NAME --reason TEXT`)")
    if any(result["errors"] for result in done):
        raise click.ClickException("a target could not be stopped: fix what stopped it, "
                                   "then run `gameday recover` again")


def _by_hand(state: State, game_day: int, who: str | None, reason: str | None,
             as_json: bool) -> None:
    from gameday.game.recovery import by_hand

    if who is None:
        raise click.BadParameter("who did it, by name", param_hint="--as")
    done = by_hand(state.store, game_day, who, reason or "")
    if as_json:
        emit(done)
        return
    what = [f"rollback {name} undone" for name in done["rollbacks"]]
    if done["target_stopped"]:
        what.append(f"its {done['target']} target stopped")
    click.echo(f"game day {game_day}: {', '.join(what) or 'nothing left to undo'}, by hand "
               f"by {who} ({done['reason']}); it holds nothing now")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check scenarios, and the experiments and runbooks they use (exit 2 on error)."""
    from gameday.game.validate import validate_paths

    for line in validate_paths(paths):
        click.echo(line)


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The project's name [default: the directory's name].")
@click.option("--for", "kind", type=click.Choice(["sandbox", "service"]), default="sandbox",
              show_default=True, help="A first game day on gameday's sandbox, or against a "
                                      "service your team runs (the options below).")
@click.option("--service", help="service: its name [default: checkout].")
@click.option("--url", help="service: its entry point [default: http://127.0.0.1:9898/].")
@click.option("--prometheus", help="service: your Prometheus [default: "
                                   "http://127.0.0.1:9090].")
@click.option("--alertmanager", help="service: your Alertmanager [default: "
                                     "http://127.0.0.1:9093].")
@click.option("--toxiproxy", help="service: the Toxiproxy API on its dependency path "
                                  "[default: http://127.0.0.1:8474].")
@click.option("--proxy", help="service: the Toxiproxy proxy to slow down "
                              "[default: checkout-dependency].")
def init(directory: Path, name: str | None, kind: str, **addresses: str | None) -> None:
    """Start a game-day project in DIRECTORY: gameday.toml, a first sandbox game day
    (scenarios/, experiments/), and the runbook and alert rules it uses; a Kubernetes
    game day and the Dockerfile of the project's image, for scheduled game days in a
    cluster (its README.md says how). With --for service: a game day against a service
    your team runs, its allowlist, the fault, the runbook and an alert rule for your
    Prometheus (docs: "Your own service")."""
    from gameday.core.project import init_project

    if kind == "sandbox" and any(addresses.values()):
        raise click.UsageError("--service, --url, --prometheus, --alertmanager, --toxiproxy "
                               "and --proxy go with --for service")
    written = init_project(directory, name, kind=kind, values=addresses)
    root = directory.resolve()
    for path in written:
        click.echo(f"  wrote {path.relative_to(root)}")
    first = "dependency-latency" if kind == "service" else "first-game-day"
    click.echo(f"game-day project in {root}. Next:\n"
               f"  cd {directory}\n  gameday validate scenarios/\n"
               f"  gameday run scenarios/{first}.yaml")
    if kind == "sandbox":
        click.echo("In a cluster, as a CronJob: README.md, \"Scheduled game days in a "
                   "cluster\"")


# -- experiments ---------------------------------------------------------------------------
@cli.group()
def experiment() -> None:
    """Run Chaos Toolkit experiments."""


@experiment.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write journal.json [default: a new directory under .gameday/runs].")
@pass_state
def experiment_run(state: State, file: Path, run_dir: Path | None) -> None:
    """Run any Chaos Toolkit experiment in-process and write its journal."""
    from gameday.game import chaos
    from gameday.game.run import new_run_dir

    exp = chaos.load_experiment(file, game_day=False)  # by hand: the user's own bounds
    if run_dir is None:
        run_dir = new_run_dir(state.settings.runs_dir, file.stem)
    run_dir.mkdir(parents=True, exist_ok=True)
    journal = chaos.run(exp, run_dir)
    status = "deviated" if journal.get("deviated") else journal.get("status")
    click.echo(f"{exp.get('title')}: {status}")
    click.echo(f"journal: {run_dir / 'journal.json'}")
    if status != "completed":
        sys.exit(1)


from gameday.cli.cluster import cluster  # noqa: E402
from gameday.cli.db import db  # noqa: E402
from gameday.cli.drill import drill  # noqa: E402
from gameday.cli.incident import incident  # noqa: E402
from gameday.cli.learning import actions, review, score  # noqa: E402
from gameday.cli.rbac import rbac  # noqa: E402
from gameday.cli.report import report  # noqa: E402
from gameday.cli.runbook import runbook  # noqa: E402
from gameday.cli.sandbox import sandbox  # noqa: E402
from gameday.cli.schedule import freeze, schedule  # noqa: E402
from gameday.cli.schema import schema  # noqa: E402
from gameday.cli.serve import serve  # noqa: E402
from gameday.cli.user import user  # noqa: E402

for command in (sandbox, incident, runbook, score, review, actions, report, serve, cluster, schema,
                schedule, freeze, drill, user, db, rbac):
    cli.add_command(command)
