"""``gameday incident``: read incidents and answer pages during drills."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from gameday.cli.common import COUNT, ID, Since, State, emit, pass_state, person
from gameday.core.clock import shown_utc
from gameday.core.policy import AUDIENCES, ROLES, SEVERITIES


@click.group()
def incident() -> None:
    """Incidents and their timelines."""


@incident.command("list")
@click.option("--since", type=Since(), metavar="AGE|DATE",
              help="Only incidents opened since: 30d, 2w, or a date.")
@click.option("--limit", type=COUNT,
              help="Only the newest this many (still listed oldest first).")
@click.option("--kind", type=click.Choice(["incident", "gameday", "drill"]),
              help="Only real incidents, game days or drills.")
@click.option("--before", type=ID, metavar="ID",
              help="Only incidents opened before incident ID (with --limit: the page "
                   "before it).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_(state: State, since: datetime | None, limit: int | None, kind: str | None,
          before: int | None, as_json: bool) -> None:
    """List incidents, oldest first, each marked real incident, game day or drill."""
    from gameday.core.states import KIND_LABELS

    rows = state.store.incidents(
        since=since.astimezone(UTC).isoformat() if since else None, limit=limit, kind=kind,
        before=before)
    if as_json:
        return emit(rows)
    if not rows:
        click.echo("no incidents yet")
    for r in rows:
        label = KIND_LABELS.get(r["kind"] or "incident", r["kind"])
        click.echo(f"{r['id']:>4}  {label:13} {r['severity'] or '-':6} {r['state']:12} "
                   f"{shown_utc(r['created_at'])}  {r['title']}")


@incident.command()
@click.argument("incident_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Everything, every event included.")
@click.option("--all", "every", is_flag=True,
              help="Every event, an alert storm's too (folded into one line by default).")
@pass_state
def show(state: State, incident_id: int, as_json: bool, every: bool) -> None:
    """Show an incident with its roles and timeline (an alert storm's first few alerts,
    then one line that counts the rest, as the incident page shows it)."""
    from gameday.core.sentences import describe_event
    from gameday.incidents import storms
    from gameday.incidents.incident import Incident

    found = Incident(state.store, incident_id)
    if as_json:
        return emit(found.as_dict())
    row = found.row
    rows = storms.rows(found.timeline(), folded=False) if every else \
        storms.timeline(state.store, incident_id)[0]
    click.echo(f"#{row['id']} {row['title']} [{row['severity'] or '-'}] {row['state']}")
    for role, held_by in found.roles().items():
        click.echo(f"  {role.replace('_', ' ')}: {held_by}")
    for e in rows:
        click.echo(f"  {e['t']:8.3f}s  {e['kind']:22} {e['actor']:10} "
                   f"{(e['summary'] or describe_event(e))[:120]}")


@incident.command()
@click.argument("incident_id", type=ID)
@click.option("--as", "person", required=True, callback=person,
              help="Who answers the page.")
@pass_state
def ack(state: State, incident_id: int, person: str) -> None:
    """Answer your page: acknowledge the incident and take the roles you were paged for."""
    from gameday.incidents import moves

    for e in moves.acknowledge(_incident(state, incident_id), person):
        click.echo(f"{e.kind} {e.data.get('role', '')} {e.data.get('person', person)}".strip())


@incident.command()
@click.argument("incident_id", type=ID)
@click.argument("role", type=click.Choice(ROLES))
@click.argument("person", callback=person)
@click.option("--by", "actor", required=True, callback=person,
              help="Who makes the assignment.")
@pass_state
def assign(state: State, incident_id: int, role: str, person: str, actor: str) -> None:
    """Give ROLE to PERSON. Handing over command leaves the previous incident commander
    as deputy."""
    from gameday.incidents import moves

    for e in moves.assign(_incident(state, incident_id), role, person, actor):
        click.echo(f"{e.data['role']} is {e.data['person']}")


@incident.command()
@click.argument("incident_id", type=ID)
@click.argument("severity", type=click.Choice(SEVERITIES))
@click.option("--as", "person", required=True, callback=person,
              help="Who decides (the incident commander).")
@click.option("--reason", required=True, help="What the impact is that warrants it.")
@pass_state
def severity(state: State, incident_id: int, severity: str, person: str, reason: str) -> None:
    """Set the incident's SEVERITY: judge it by the measured impact, never downplay it."""
    from gameday.incidents import moves

    moves.set_severity(_incident(state, incident_id), severity, person, reason)
    click.echo(f"incident {incident_id} is {severity}")


@incident.command()
@click.argument("incident_id", type=ID)
@click.option("--as", "person", required=True, callback=person,
              help="Who escalates (the incident commander).")
@click.option("--reason", required=True, help="Why: the time box ran out, the fix failed...")
@pass_state
def escalate(state: State, incident_id: int, person: str, reason: str) -> None:
    """Escalate: bring in more help when containment is not working."""
    from gameday.incidents import moves

    moves.escalate(_incident(state, incident_id), person, reason)
    click.echo(f"incident {incident_id} escalated")


@incident.command()
@click.argument("incident_id", type=ID)
@click.option("--as", "person", required=True, callback=person,
              help="Who declares it (the incident commander).")
@click.option("--how", default="", help="What contained it.")
@pass_state
def mitigated(state: State, incident_id: int, person: str, how: str) -> None:
    """Declare the impact contained (the SLIs are the judge: the debrief compares)."""
    from gameday.incidents import moves

    moves.declare_mitigated(_incident(state, incident_id), person, how)
    click.echo(f"incident {incident_id}: mitigation declared")


@incident.command()
@click.argument("incident_id", type=ID)
@click.option("--as", "person", required=True, callback=person,
              help="Who resolves (the incident commander).")
@click.option("--how", default="", help="How it was resolved.")
@pass_state
def resolve(state: State, incident_id: int, person: str, how: str) -> None:
    """Resolve the incident once its impact is over."""
    from gameday.incidents import moves

    moves.resolve(_incident(state, incident_id), person, how)
    click.echo(f"incident {incident_id} resolved")


@incident.command()
@click.argument("incident_id", type=ID)
@click.option("--audience", type=click.Choice(AUDIENCES), required=True)
@click.option("--as", "person", required=True, callback=person,
              help="Who posts (the comms lead).")
@click.option("--text", help="Your own words [default: the audience's template, filled in "
                             "from the incident as it stands].")
@pass_state
def comms(state: State, incident_id: int, audience: str, person: str,
          text: str | None) -> None:
    """Post a status update to AUDIENCE; updates in your own words are checked for
    what every update must say."""
    from gameday.incidents import moves

    posted, missing = moves.post_update(_incident(state, incident_id), audience, person, text)
    click.echo(posted.data["text"].rstrip())
    for field in missing:
        click.echo(f"warning: the update does not say the {field}", err=True)


@incident.command()
@click.argument("incident_id", type=ID)
@click.argument("text")
@click.option("--as", "person", required=True, callback=person,
              help="Who writes the note (the scribe, say).")
@pass_state
def note(state: State, incident_id: int, text: str, person: str) -> None:
    """Add a note to the timeline; the review checks notes for blaming language."""
    from gameday.incidents import moves

    _, warnings = moves.add_note(_incident(state, incident_id), person, text)
    for w in warnings:
        click.echo(f"warning: “{w['phrase']}” puts the cause on a person; describe the "
                   "system or process instead", err=True)
    click.echo("noted")


def _incident(state: State, incident_id: int) -> Any:
    from gameday.incidents.incident import Incident

    return Incident(state.store, incident_id)
