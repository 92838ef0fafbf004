"""``gameday score``, ``gameday review`` and ``gameday actions``: learning from runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gameday.cli.common import COUNT, ID, Since, State, emit, pass_state
from gameday.core import clock

RUN = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command()
@click.argument("run_dir", type=RUN)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def score(state: State, run_dir: Path, as_json: bool) -> None:
    """Recompute RUN_DIR's score from its stored events."""
    summary = _rescore(state, run_dir)
    if as_json:
        return emit(summary)
    click.echo(f"score {summary['score']}/100 (incident #{summary['incident_id']})")
    for name in ("TTD", "TTA", "TTE", "TTFC", "TTM", "TTR"):
        value = summary["metrics"][name]
        click.echo(f"  {name:5} {'-' if value is None else f'{value:.3f}s'}")
    for d in summary["deductions"]:
        click.echo(f"  -{d['points']} {d['metric']}: {d['reason']}")


@click.command()
@click.argument("run_dir", type=RUN)
@pass_state
def review(state: State, run_dir: Path) -> None:
    """Regenerate RUN_DIR's review.md, review.html and chart from the store."""
    summary = _rescore(state, run_dir)
    click.echo(f"{summary['review']}\n{Path(summary['review']).with_suffix('.html')}")


def _rescore(state: State, run_dir: Path) -> dict[str, Any]:
    """``rescore``, its run.json checked first: one that is not what a game day wrote
    is a ValidationError naming the file (exit 2), before anything is written."""
    from gameday.game.review import run_info
    from gameday.game.run import rescore

    run_info(run_dir)
    return rescore(run_dir, state.store)


@click.group()
def actions() -> None:
    """Action items from reviews."""


@actions.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include done items.")
@click.option("--incident", "incident_id", type=ID, help="Only this incident's items.")
@click.option("--owner", help="Only this owner's items.")
@click.option("--overdue", is_flag=True, help="Only open items past their due date.")
@click.option("--since", type=Since(), metavar="AGE|DATE",
              help="Only items opened since: 30d, 2w, or a date.")
@click.option("--limit", type=COUNT, help="At most this many.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_(state: State, show_all: bool, incident_id: int | None, owner: str | None,
          overdue: bool, since: datetime | None, limit: int | None, as_json: bool) -> None:
    """List open action items (owner, due date); overdue ones are marked, and with
    --overdue come oldest due first."""
    today = clock.now().date().isoformat()
    rows = state.store.actions(incident_id=incident_id,
                               status=None if show_all and not overdue else "open")
    if owner:
        rows = [a for a in rows if a["owner"] == owner]
    if since:
        rows = [a for a in rows if a["created_at"] >= since.astimezone(UTC).isoformat()]
    if overdue:
        rows = sorted((a for a in rows if a["due"] < today), key=lambda a: (a["due"], a["id"]))
    rows = rows[:limit] if limit else rows
    if as_json:
        return emit([{**a, "overdue": a["status"] == "open" and a["due"] < today}
                     for a in rows])
    if not rows:
        click.echo("no overdue action items" if overdue else "no action items")
    for a in rows:
        late = "OVERDUE" if a["status"] == "open" and a["due"] < today else ""
        click.echo(f"{a['id']:>4}  #{a['incident_id']:<4} {a['status']:5} due {a['due']} "
                   f"{late:7} {a['owner']:8} {a['title']}")


@actions.command()
@click.argument("action_id", type=ID)
@pass_state
def done(state: State, action_id: int) -> None:
    """Mark an action item done."""
    state.store.close_action(action_id)
    click.echo(f"action item {action_id} done")
