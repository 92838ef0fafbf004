"""``gameday incident``: read incidents and answer pages during drills."""

from __future__ import annotations

import click

from gameday.commands import State, emit, pass_state
from gameday.policy import ROLES


@click.group()
def incident() -> None:
    """Incidents and their timelines."""


@incident.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_(state: State, as_json: bool) -> None:
    """List incidents, oldest first."""
    rows = state.store.incidents()
    if as_json:
        return emit(rows)
    if not rows:
        click.echo("no incidents yet")
    for r in rows:
        click.echo(f"{r['id']:>4}  {r['severity'] or '-':6} {r['state']:12} "
                   f"{r['created_at'][:19]}  {r['title']}")


@incident.command()
@click.argument("incident_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def show(state: State, incident_id: int, as_json: bool) -> None:
    """Show an incident with its roles and timeline."""
    from gameday.incident import Incident

    data = Incident(state.store, incident_id).as_dict()
    if as_json:
        return emit(data)
    click.echo(f"#{data['id']} {data['title']} [{data['severity'] or '-'}] {data['state']}")
    for role, person in data["roles"].items():
        click.echo(f"  {role.replace('_', ' ')}: {person}")
    from gameday.events import describe_event

    t0 = data["timeline"][0]["at_monotonic_ns"] if data["timeline"] else 0
    for e in data["timeline"]:
        click.echo(f"  {(e['at_monotonic_ns'] - t0) / 1e9:8.3f}s  {e['kind']:22} "
                   f"{e['actor']:10} {describe_event(e)[:120]}")


@incident.command()
@click.argument("incident_id", type=int)
@click.option("--as", "person", required=True, help="Who answers the page.")
@pass_state
def ack(state: State, incident_id: int, person: str) -> None:
    """Answer your page: acknowledge the incident and take the roles you were paged for."""
    from gameday.incident import Incident

    for e in Incident(state.store, incident_id).engage(person, via="cli"):
        click.echo(f"{e.kind} {e.data.get('role', '')} {e.data.get('person', person)}".strip())


@incident.command()
@click.argument("incident_id", type=int)
@click.argument("role", type=click.Choice(ROLES))
@click.argument("person")
@click.option("--by", "actor", required=True, help="Who makes the assignment.")
@pass_state
def assign(state: State, incident_id: int, role: str, person: str, actor: str) -> None:
    """Give ROLE to PERSON (incident commanders hand over this way)."""
    from gameday.incident import Incident

    Incident(state.store, incident_id).assign(role, person, actor)
    click.echo(f"{role} is {person}")


@incident.command()
@click.argument("incident_id", type=int)
@click.argument("text")
@click.option("--as", "person", required=True, help="Who writes the note (the scribe, say).")
@pass_state
def note(state: State, incident_id: int, text: str, person: str) -> None:
    """Add a note to the timeline; the review checks notes for blaming language."""
    from gameday.events import note_added
    from gameday.incident import Incident
    from gameday.review import blame_warnings

    Incident(state.store, incident_id).record(note_added(text), person)
    for w in blame_warnings({"note": text}):
        click.echo(f"warning: “{w['phrase']}” puts the cause on a person; describe the "
                   "system or process instead", err=True)
    click.echo("noted")
