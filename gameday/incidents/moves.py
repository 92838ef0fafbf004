"""What people do in an incident: answer a page, take or hand over a role, judge the
severity, escalate, post a status update, write a note, resolve.

One home for every move, so ``gameday incident ...``, the drill console and the JSON
API of ``gameday serve`` check the same things and record the same events. Each move
validates what a person typed (a ValidationError names the field) before anything is
recorded, and records who made it.
"""

from __future__ import annotations

from typing import Any

from gameday.core import events
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.events import Kind
from gameday.core.policy import ROLES, SEVERITIES
from gameday.core.spec import PERSON, PERSON_RULE
from gameday.incidents.comms import AUDIENCES
from gameday.incidents.incident import TERMINAL_STATES, Incident
from gameday.incidents.language import blame_warnings
from gameday.runbooks.routing import Route, route
from gameday.store import Event, clock_ns

MAX_TEXT = 4000    # a status update or a note
MAX_REASON = 500   # why the severity changed, why escalate, how it was resolved


def person(name: Any, field: str = "as") -> str:
    """A person's name as the timeline records it, or a ValidationError."""
    if not isinstance(name, str) or not PERSON.fullmatch(name):
        shown = repr(name)[:80]
        raise ValidationError(f"{shown} is not a person's handle ({PERSON_RULE})",
                              field=field)
    return name


def text(value: Any, field: str, *, limit: int, required: bool = True) -> str:
    """Free text a person typed: a string within ``limit`` characters, no control
    characters other than newlines and tabs."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError("must be text", field=field)
    cleaned: str = value.strip()
    if required and not cleaned:
        raise ValidationError("must not be empty", field=field)
    if len(cleaned) > limit:
        raise ValidationError(f"at most {limit:,} characters", field=field)
    if any(ord(c) < 32 and c not in "\n\t" for c in cleaned):
        raise ValidationError("control characters are not allowed", field=field)
    return cleaned


def one_of(value: Any, choices: tuple[str, ...], field: str) -> str:
    if value not in choices:
        raise ValidationError(f"{str(value)[:40]!r} is not one of {', '.join(choices)}",
                              field=field)
    return str(value)


def _open(inc: Incident, what: str) -> None:
    """Moves that change the incident's course end with it (notes and updates go on)."""
    if inc.state in TERMINAL_STATES:
        raise GamedayError(f"incident {inc.id} is {inc.state}: too late to {what}")


# -- the moves ------------------------------------------------------------------------------
def acknowledge(inc: Incident, who: str, via: str = "cli") -> list[Event]:
    """``who`` answers their pages: the incident is acknowledged and the roles they were
    paged for are theirs."""
    _open(inc, "answer a page")
    return inc.engage(person(who), via=via)


def assign(inc: Incident, role: Any, to: Any, who: str) -> list[Event]:
    """Give ``role`` to ``to``. Handing over command leaves the previous incident
    commander as deputy, so nobody loses track of who knows the story."""
    one_of(role, ROLES, "role")
    person(to, "person")
    person(who)
    _open(inc, "change roles")
    previous = inc.roles().get(role)
    if previous == to:
        raise GamedayError(f"{to} is already {role}")
    return inc.hand_over(role, to, who, reason="handoff" if previous else None)


def set_severity(inc: Incident, severity: Any, who: str, reason: Any) -> Event:
    one_of(severity, SEVERITIES, "severity")
    _open(inc, "change the severity")
    return inc.change_severity(severity, person(who),
                               text(reason, "reason", limit=MAX_REASON))


def escalate(inc: Incident, who: str, reason: Any) -> Event:
    _open(inc, "escalate")
    return inc.record(events.incident_escalated(text(reason, "reason", limit=MAX_REASON),
                                                None), person(who))


def declare_mitigated(inc: Incident, who: str, how: Any = "") -> Event:
    """The incident commander's call that the impact is contained (scored against the
    SLIs: declaring it while they are still outside the objective is a finding)."""
    _open(inc, "declare it mitigated")
    return inc.record(events.mitigation_declared(text(how, "how", limit=MAX_REASON,
                                                      required=False)), person(who))


def resolve(inc: Incident, who: str, how: Any = "") -> Event:
    _open(inc, "resolve it")
    return inc.resolve(person(who), how=text(how, "how", limit=MAX_REASON, required=False))


def draft_update(inc: Incident, audience: Any) -> str:
    """The audience's template, filled in from the incident as it stands now."""
    from gameday.incidents import comms

    return comms.render(one_of(audience, AUDIENCES, "audience"), _facts(inc))


def check_update(audience: Any, body: str) -> list[str]:
    """What an update leaves out that every update to ``audience`` must say."""
    from gameday.incidents import comms

    return comms.missing_fields(one_of(audience, AUDIENCES, "audience"), body)


def post_update(inc: Incident, audience: Any, who: str,
                body: Any = None) -> tuple[Event, list[str]]:
    """Post a status update: the template when ``body`` is None, else the person's own
    words, checked for the required fields (what is missing is recorded and scored)."""
    one_of(audience, AUDIENCES, "audience")
    person(who)
    if body is None:
        body, missing = draft_update(inc, audience), []
    else:
        body = text(body, "text", limit=MAX_TEXT)
        missing = check_update(audience, body)
    return inc.record(events.comms_posted(audience, body, False, missing=missing), who), missing


def check_note(body: str) -> list[dict[str, str]]:
    """Sentences that put the cause on a person (the review's blameless check)."""
    return blame_warnings({"note": body or ""})


def add_note(inc: Incident, who: str, body: Any) -> tuple[Event, list[dict[str, str]]]:
    body = text(body, "text", limit=MAX_TEXT)
    return inc.record(events.note_added(body), person(who)), check_note(body)


# -- what a responder needs at hand ----------------------------------------------------------
def linked(inc: Incident, timeline: list[Event] | None = None) -> Route | None:
    """The runbook the incident's alert links to, parameters filled in from its labels
    (``timeline``: the incident's events, when the caller has read them already)."""
    fired = next((e for e in (timeline if timeline is not None else  # only the first
                              inc.store.events(inc.id, kinds=[Kind.ALERT_FIRED], limit=1))
                  if e.kind == Kind.ALERT_FIRED), None)
    if fired is None:
        return None
    return route(fired.data.get("alertname", ""), fired.data.get("labels") or {},
                 fired.data.get("annotations") or {})


def _facts(inc: Incident) -> dict[str, Any]:
    """An update's facts from the incident's record (a game day's own updates use the
    live values)."""
    from gameday.incidents import comms

    store = inc.store  # the events the facts come from: not a storm's every alert
    sli = store.last_sli_window(inc.id) or next(
        (e.data.get("sli") or e.data.get("measured") for e in reversed(store.events(
            inc.id, kinds=[Kind.IMPACT_STARTED, Kind.ALERT_FIRED, Kind.INCIDENT_DECLARED],
            having=["$.sli", "$.measured"]))
         if e.data.get("sli") or e.data.get("measured")), None)
    started = next(iter(store.events(inc.id, kinds=[Kind.IMPACT_STARTED], limit=1)), None)
    runs = store.events(inc.id, kinds=[Kind.RUNBOOK_STARTED, Kind.RUNBOOK_FINISHED])
    runbook = None
    if runs:
        last = runs[-1]
        runbook = (last.data["runbook"], last.data.get("status") or "running")
    row = inc.row
    ago = (clock_ns(row) - started.at_monotonic_ns) / 1e9 if started else 0.0
    return comms.facts(row, roles=inc.roles(), sli=sli, runbook=runbook, every=None,
                       started_ago=ago, customer_summary=row.get("service") or "the service")
