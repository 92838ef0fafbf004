"""``gameday incident``: read incidents and answer pages during drills."""

from __future__ import annotations

from typing import Any

import click

from gameday.commands import State, emit, pass_state, person
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
    for role, held_by in data["roles"].items():
        click.echo(f"  {role.replace('_', ' ')}: {held_by}")
    from gameday.events import describe_event

    t0 = data["timeline"][0]["at_monotonic_ns"] if data["timeline"] else 0
    for e in data["timeline"]:
        click.echo(f"  {(e['at_monotonic_ns'] - t0) / 1e9:8.3f}s  {e['kind']:22} "
                   f"{e['actor']:10} {describe_event(e)[:120]}")


@incident.command()
@click.argument("incident_id", type=int)
@click.option("--as", "person", required=True, callback=person,
              help="Who answers the page.")
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
@click.option("--by", "actor", required=True, callback=person,
              help="Who makes the assignment.")
@pass_state
def assign(state: State, incident_id: int, role: str, person: str, actor: str) -> None:
    """Give ROLE to PERSON (incident commanders hand over this way)."""
    from gameday.incident import Incident

    Incident(state.store, incident_id).assign(role, person, actor)
    click.echo(f"{role} is {person}")


@incident.command()
@click.argument("incident_id", type=int)
@click.argument("severity", type=click.Choice(["SEV-1", "SEV-2", "SEV-3", "SEV-4"]))
@click.option("--as", "person", required=True, callback=person,
              help="Who decides (the incident commander).")
@click.option("--reason", required=True, help="What the impact is that warrants it.")
@pass_state
def severity(state: State, incident_id: int, severity: str, person: str, reason: str) -> None:
    """Set the incident's SEVERITY: judge it by the measured impact, never downplay it."""
    from gameday.incident import Incident

    Incident(state.store, incident_id).change_severity(severity, person, reason)
    click.echo(f"incident {incident_id} is {severity}")


@incident.command()
@click.argument("incident_id", type=int)
@click.option("--as", "person", required=True, callback=person,
              help="Who escalates (the incident commander).")
@click.option("--reason", required=True, help="Why: the time box ran out, the fix failed...")
@pass_state
def escalate(state: State, incident_id: int, person: str, reason: str) -> None:
    """Escalate: bring in more help when containment is not working."""
    from gameday.events import incident_escalated
    from gameday.incident import Incident

    Incident(state.store, incident_id).record(incident_escalated(reason, None), person)
    click.echo(f"incident {incident_id} escalated")


@incident.command()
@click.argument("incident_id", type=int)
@click.option("--as", "person", required=True, callback=person,
              help="Who resolves (the incident commander).")
@click.option("--how", default="", help="How it was resolved.")
@pass_state
def resolve(state: State, incident_id: int, person: str, how: str) -> None:
    """Resolve the incident once its impact is over."""
    from gameday.incident import Incident

    Incident(state.store, incident_id).resolve(person, how=how)
    click.echo(f"incident {incident_id} resolved")


@incident.command()
@click.argument("incident_id", type=int)
@click.option("--audience", type=click.Choice(["internal", "executive", "customer"]),
              required=True)
@click.option("--as", "person", required=True, callback=person,
              help="Who posts (the comms lead).")
@click.option("--text", help="Your own words [default: the audience's template, filled in "
                             "from the incident as it stands].")
@pass_state
def comms(state: State, incident_id: int, audience: str, person: str,
          text: str | None) -> None:
    """Post a status update to AUDIENCE; updates in your own words are checked for
    what every update must say."""
    from gameday import comms as updates
    from gameday.events import comms_posted
    from gameday.incident import Incident

    inc = Incident(state.store, incident_id)
    missing: list[str] = []
    if text is None:
        text = updates.render(audience, _facts(inc))
    else:
        if len(text) > 4000:
            raise click.BadParameter("at most 4,000 characters", param_hint="--text")
        missing = updates.missing_fields(audience, text)
    inc.record(comms_posted(audience, text, False, missing=missing), person)
    click.echo(text.rstrip())
    for field in missing:
        click.echo(f"warning: the update does not say the {field}", err=True)


def _facts(inc: Any) -> dict[str, Any]:
    """An update's facts from the incident's record (the game day's own updates use the
    live values)."""
    import time

    from gameday import comms as updates
    from gameday.events import Kind

    timeline = inc.events()
    sli = next((e.data.get("sli") or e.data.get("measured") for e in reversed(timeline)
                if e.kind in (Kind.IMPACT_STARTED, Kind.ALERT_FIRED, Kind.INCIDENT_DECLARED)
                and (e.data.get("sli") or e.data.get("measured"))), None)
    started = next((e for e in timeline if e.kind == Kind.IMPACT_STARTED), None)
    runs = [e for e in timeline if e.kind in (Kind.RUNBOOK_STARTED, Kind.RUNBOOK_FINISHED)]
    runbook = None
    if runs:
        last = runs[-1]
        runbook = (last.data["runbook"], last.data.get("status") or "running")
    ago = (time.monotonic_ns() - started.at_monotonic_ns) / 1e9 if started else 0.0
    row = inc.row
    return updates.facts(row, roles=inc.roles(), sli=sli, runbook=runbook, every=None,
                         started_ago=ago, customer_summary=row.get("service") or "the service")


@incident.command()
@click.argument("incident_id", type=int)
@click.argument("text")
@click.option("--as", "person", required=True, callback=person,
              help="Who writes the note (the scribe, say).")
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
