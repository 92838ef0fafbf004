"""``gameday schedule ...`` and ``gameday freeze``: scheduled game days and the lever
that stops them all."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gameday.cli.common import State, emit, pass_state, person
from gameday.core import clock

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from gameday.store.rows import ScheduleRow


@click.group()
def schedule() -> None:
    """Scheduled game days, run by `gameday serve` (or at once with run-now)."""


@schedule.command("add")
@click.argument("name")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cron", metavar="EXPR", help="A five-field cron expression: '0 3 * * 1-5'.")
@click.option("--tz", metavar="ZONE", help="The cron's time zone [default: UTC].")
@click.option("--every", metavar="DURATION", help="Or a fixed interval: 10s, 30m, 6h.")
@click.option("--jitter", metavar="DURATION",
              help="Start up to this much later, at random (the same in every process).")
@click.option("--blackout", "blackouts", multiple=True, metavar="WINDOW",
              help="When not to run (repeat): 2026-12-18..2027-01-04, sat,sun, "
                   "'mon-fri 00:00-07:00'.")
@click.option("--max-late", metavar="DURATION",
              help="Start a missed game day late only within this [default: 10m].")
@click.option("--notify", "notify_url", metavar="URL",
              help="POST a JSON summary here when a game day starts, ends or is skipped.")
@click.option("--notify-format", type=click.Choice(["json", "slack"]), default="json",
              show_default=True, help="slack: a {\"text\": ...} body for chat webhooks.")
@pass_state
def add(state: State, name: str, scenario: Path, cron: str | None, tz: str | None,
        every: str | None, jitter: str | None, blackouts: tuple[str, ...],
        max_late: str | None, notify_url: str | None, notify_format: str) -> None:
    """Schedule the game day in SCENARIO as NAME."""
    from gameday.core.audit import Audit
    from gameday.scenarios.scenario import load_scenario
    from gameday.schedules.schedule import make_schedule, redact, spec_of
    load_scenario(scenario)  # a schedule of a scenario that does not load would only skip
    made = make_schedule(name, state.settings.relative(scenario), cron=cron, tz=tz,
                         every=every, jitter=jitter, blackouts=blackouts, max_late=max_late,
                         notify_url=notify_url, notify_format=notify_format)
    state.store.add_schedule(made.name, made.scenario, spec_of(made),
                             made.created_at.isoformat())
    state.store.audit("cli", Audit.SCHEDULE_CHANGED,
                      {"schedule": name, "change": "added", "scenario": made.scenario,
                       "when": made.when, "notify": redact(made.notify_url)})
    following = made.next_fire(clock.now())
    click.echo(f"schedule {name}: {made.scenario}, {made.when}; next at "
               f"{following.astimezone(made.zone):%Y-%m-%d %H:%M:%S %Z} "
               "(gameday serve runs it)")


def _described(state: State, row: ScheduleRow, history: int) -> dict[str, Any]:
    from gameday.schedules.schedule import NeverFires, from_row

    made = from_row(row)
    now = clock.now()
    runs = state.store.schedule_runs(made.name, limit=history)
    try:
        following, never = made.next_moment(now).isoformat(), None
    except NeverFires as exc:  # shown for what it is: one bad schedule hides no other
        following, never = None, exc.why
    return made.as_dict() | {
        "next": following, "never_fires": never,
        "runs": [{"id": r["id"], "due_at": r["due_at"], "status": r["status"],
                  "reason": r["reason"], "score": r["score"], "incident_id": r["incident_id"],
                  "review": (str(Path(r["run_dir"]) / "review.html") if r["run_dir"]
                             else None),
                  "finished_at": r["finished_at"]} for r in runs]}


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--history", default=5, show_default=True, type=click.IntRange(0, 1000),
              help="How many of each schedule's latest runs to show.")
@pass_state
def list_schedules(state: State, as_json: bool, history: int) -> None:
    """Every schedule: when it runs next, and how its latest game days went."""
    from gameday.core.clock import shown_utc

    described = [_described(state, row, history) for row in state.store.schedules()]
    frozen = state.store.freeze()
    if as_json:
        emit({"frozen": frozen, "schedules": described})
        return
    if frozen:
        click.echo(f"FROZEN by {frozen['who']} since {shown_utc(frozen['at'])}: "
                   f"{frozen['reason'] or 'no reason given'}")
    if not described:
        click.echo("no schedules (gameday schedule add NAME SCENARIO --every 24h)")
    for s in described:
        if s["never_fires"]:
            state_word = ("paused, " if s["paused"] else "") + \
                f"never fires: {s['never_fires']}"
        else:
            state_word = "paused" if s["paused"] else f"next {shown_utc(s['next'])}"
        click.echo(f"{s['name']:20} {s['scenario']}  {s['when']}  {state_word}")
        for r in s["runs"]:
            score = f"score {r['score']:g}" if r["score"] is not None else ""
            detail = r["reason"] or (f"incident #{r['incident_id']}" if r["incident_id"]
                                     else "")
            click.echo(f"  {r['id']:>5} {shown_utc(r['due_at'])}  {r['status']:11} {score:10} "
                       f"{detail}")


def _set_paused(state: State, name: str, paused: bool) -> None:
    from gameday.core.audit import Audit

    state.store.update_schedule(name, paused=int(paused))
    state.store.audit("cli", Audit.SCHEDULE_CHANGED,
                      {"schedule": name, "change": "paused" if paused else "resumed"})
    click.echo(f"schedule {name}: {'paused' if paused else 'resumed'}")


@schedule.command()
@click.argument("name")
@pass_state
def pause(state: State, name: str) -> None:
    """Stop starting NAME's game days (a running one goes on)."""
    _set_paused(state, name, True)


@schedule.command()
@click.argument("name")
@pass_state
def resume(state: State, name: str) -> None:
    """Start NAME's game days again, from the next moment on (missed ones are not run)."""
    state.store.update_schedule(name, last_due=clock.now().isoformat())
    _set_paused(state, name, False)


@schedule.command()
@click.argument("name")
@pass_state
def remove(state: State, name: str) -> None:
    """Remove NAME (its history stays in the store)."""
    from gameday.core.audit import Audit

    state.store.remove_schedule(name)
    state.store.audit("cli", Audit.SCHEDULE_CHANGED, {"schedule": name, "change": "removed"})
    click.echo(f"schedule {name}: removed")


@schedule.command("run-now")
@click.argument("name")
@pass_state
def run_now(state: State, name: str) -> None:
    """Run NAME's game day now, here, with its guardrails, notifications and history
    (exits as `gameday run` does: 2 when its scenario does not load, 4 when a guardrail
    skipped it; either skip is on its history)."""
    import getpass

    from gameday.core.audit import Audit
    from gameday.scenarios.scenario import load_scenario
    from gameday.schedules.schedule import from_row
    from gameday.schedules.scheduler import Scheduler

    made = from_row(state.store.schedule(name))
    scheduler = Scheduler(state.store, state.settings, say=click.echo)
    now = clock.now()
    run_id = scheduler.begin(made, now, now=now, manual=True, attach=True)
    if run_id is not None:
        state.store.audit(getpass.getuser(), Audit.GAMEDAY_STARTED, {
            "schedule": name, "run_id": run_id,
            "status": state.store.schedule_run(run_id)["status"]})
    if run_id is None:  # cannot happen: a manual moment is this instant
        sys.exit(1)
    child = scheduler.children.get(run_id)
    if child is None:  # skipped, on the record, the reason printed
        # A scenario that does not load is bad input, as for `gameday run`: its error
        # (the file named), exit 2. Otherwise a guardrail said no: exit 4.
        load_scenario(state.settings.resolve(made.scenario))
        sys.exit(4)
    sys.exit(child.wait())


@schedule.command("export")
@click.argument("name")
@click.option("--kubernetes", is_flag=True, required=True,
              help="Print a CronJob with its ServiceAccount and least-privilege RBAC.")
@click.option("--image", required=True, metavar="IMAGE",
              help="The project's image, as the cluster pulls it "
                   "(REGISTRY/NAME:TAG): gameday's base image with this project's "
                   "gameday.toml, scenarios/, experiments/ and runbooks/ in /app, built by "
                   "the project's Dockerfile (`gameday init` writes one): `docker build -t "
                   "IMAGE .` in the project. The printed header has every step.")
@click.option("--namespace", default="gameday", show_default=True)
@click.option("--history", default=3, show_default=True, type=click.IntRange(0, 100))
@pass_state
def export(state: State, name: str, kubernetes: bool, image: str, namespace: str,
           history: int) -> None:
    """Print NAME as Kubernetes manifests (kind and kwok scenarios): a CronJob that runs
    the game day from the project's image, in the cluster it targets."""
    from gameday.scenarios.scenario import load_scenario
    from gameday.schedules.cronjob import manifests, to_yaml
    from gameday.schedules.schedule import from_row

    made = from_row(state.store.schedule(name))
    scenario = load_scenario(state.settings.resolve(made.scenario))
    root = state.settings.root
    click.echo(to_yaml(manifests(
        name=made.name, scenario=scenario, scenario_path=made.scenario, cron=made.cron,
        every_s=made.every_s, tz=made.tz, image=image, namespace=namespace,
        max_late_s=made.max_late_s, history=history, jitter_s=made.jitter_s,
        project=root)), nl=False)
    if not (root / "Dockerfile").is_file():
        click.echo(f"note: {root} has no Dockerfile to build {image} from: `gameday init "
                   "DIR` writes one (with .dockerignore) into a new project, to copy here",
                   err=True)


# -- the safety lever --------------------------------------------------------------------
@click.command()
@click.argument("switch", required=False, type=click.Choice(["on", "off"]))
@click.option("--reason", help="Why: shown to whoever is blocked, and recorded.")
@click.option("--who", envvar="USER", default="someone", show_default=False,
              callback=person,
              help="Who pulls the lever [default: $USER].")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def freeze(state: State, switch: str | None, reason: str | None, who: str,
           as_json: bool) -> None:
    """The safety lever: `freeze on` blocks every new game day and stops the running
    ones with their rollbacks (they exit 130); `freeze off` lifts it. Without ON/OFF:
    whether game days are frozen."""
    from gameday.core.clock import shown_utc
    from gameday.core.errors import ValidationError
    from gameday.schedules.scheduler import set_freeze

    store = state.store
    if switch is not None:
        try:
            set_freeze(store, switch == "on", reason, who)
        except ValidationError as exc:
            raise click.BadParameter(exc.message, param_hint="--reason") from None
    frozen = store.freeze()
    running = [lease["incident_id"] for lease in store.running_leases()]
    if as_json:
        emit({"frozen": frozen, "running_game_days": running})
    elif frozen:
        click.echo(f"game days are FROZEN by {frozen['who']} since {shown_utc(frozen['at'])}: "
                   f"{frozen['reason'] or 'no reason given'}")
        if running and switch == "on":
            click.echo(f"stopping {len(running)} running game day(s) "
                       f"(incidents {', '.join(map(str, running))}) with their rollbacks")
    else:
        click.echo("game days are not frozen")

