"""Incident pages for people: the list, one incident (state, severity, roles, every
runbook run, the timeline as sentences), and its blameless review.

A timeline row says when (seconds from the incident's first event, and the UTC
clock), what kind of event, who, and the sentence ``sentences.describe`` gives it: the
same line the terminal and the review print. Payloads are never shown raw.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gameday.core.errors import NotFound, ValidationError
from gameday.core.events import Kind
from gameday.core.states import RunStatus
from gameday.drills.master import drill_scenarios
from gameday.incidents import storms
from gameday.incidents.incident import DRILL, GAMEDAY, INCIDENT, KINDS, Incident, kind_of_row
from gameday.runs.run import acted_on
from gameday.store import Store
from gameday.store.rows import IncidentRow
from gameday.web.context import PAGE, caller, csrf, identity, page, shared, whole

# The moments a reader scans for first stand out (as the terminal colours them);
# a runbook's individual tasks step back unless one failed (the run page has them all).
TONE = {Kind.FAULT_INJECTED: "k-bad", Kind.IMPACT_STARTED: "k-bad",
        Kind.CHAOS_ACTION_FAILED: "k-bad", Kind.RUNBOOK_REJECTED: "k-bad",
        Kind.ALERT_FIRED: "k-alert", Kind.INCIDENT_DECLARED: "k-alert",
        Kind.SEVERITY_CHANGED: "k-alert", Kind.INCIDENT_ESCALATED: "k-alert",
        Kind.MITIGATED: "k-good", Kind.INCIDENT_RESOLVED: "k-good", Kind.ALERT_RESOLVED: "k-good",
        Kind.FAULT_ROLLED_BACK: "k-good", Kind.RUNBOOK_QUEUED: "k-minor"}


def tone(event: dict[str, Any]) -> str:
    if event["kind"] == storms.STORM_LINE:  # a storm's rows, or its resolutions
        return "k-good" if event["ended"] else "k-alert"
    if event["kind"] == Kind.RUNBOOK_TASK:  # Ansible's words for a task
        task_status = event["data"].get("status")
        return "k-bad" if task_status in ("failed", "unreachable") else "k-minor"
    if event["kind"] == Kind.RUNBOOK_FINISHED:
        return "k-good" if event["data"].get("status") == RunStatus.SUCCESSFUL else "k-bad"
    return TONE.get(event["kind"], "")


# The review is a generated, self-contained document (styles and its SVG chart
# inline, no scripts): let the browser load nothing else for it.
REVIEW_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                 "frame-ancestors 'none'")


def review_file(incident: IncidentRow | dict[str, Any]) -> Path | None:
    """The review a game day wrote into its run directory, if there is one."""
    run_dir = incident.get("run_dir")
    if not run_dir:
        return None
    path = Path(run_dir) / "review.html"
    return path if path.is_file() else None


def timeline_rows(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events (already in time order) as the page shows them: ``storms.rows``
    (a storm folded) with each row's ``tone``."""
    return toned(storms.rows(timeline))


def page_timeline(store: Store, incident_id: int) -> tuple[list[dict[str, Any]], set[str]]:
    """``timeline_rows`` of the incident's events, read as they are shown
    (``storms.timeline``: not the rows a storm folds away), and the kinds among them."""
    rows, kinds = storms.timeline(store, incident_id)
    return toned(rows), kinds


def toned(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with ``tone``, the class that makes the moments that matter stand out."""
    for row in rows:
        row["tone"] = tone(row)
    return rows


SHOWN = (INCIDENT, GAMEDAY, DRILL)  # the list's filter, real incidents first
LISTED = 100  # incidents a page of the list shows: a year of game days and alerts is many


async def incident_list(request: Request) -> Response:
    """``/incidents[?kind=incident|gameday|drill][&before=ID]``: the newest ``LISTED``
    (opened before incident ``before``, when given), newest first, each marked real
    incident, game day or drill, with a link to the older ones; the filter keeps one
    kind."""
    who = caller(request)
    kind = request.query_params.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"one of {', '.join(KINDS)}, not {kind[:40]!r}", field="kind")
    before = whole(request, "before", 0) or None
    store = shared(request).store
    # beside the event loop, which goes on answering Alertmanager meanwhile
    rows = (await asyncio.to_thread(store.incidents, kind=kind, before=before,
                                    limit=LISTED + 1))[::-1]
    older = rows[LISTED - 1]["id"] if len(rows) > LISTED else None
    return page("incidents.html", who=who, kind=kind, kinds=SHOWN, before=before,
                older=older, incidents=[{**r, "kind": kind_of_row(r)} for r in rows[:LISTED]])


async def incident_page(request: Request) -> Response:
    who = caller(request)
    store = shared(request).store

    def read() -> tuple[dict[str, Any], list[dict[str, Any]], set[str],
                     list[dict[str, Any]]]:
        found = Incident(store, request.path_params["id"])
        row = found.row
        inc = {**row, "roles": found.roles(), "kind": kind_of_row(row)}
        timeline, kinds = page_timeline(store, found.id)
        return inc, timeline, kinds, [{**r, "acted_on": acted_on(r["world"], row["run_dir"])}
                                      for r in store.runs(incident_id=found.id)]

    # Beside the event loop, which goes on answering Alertmanager meanwhile.
    inc, timeline, kinds, runs = await asyncio.to_thread(read)
    return page("incident.html", who=who, inc=inc, timeline=timeline, runs=runs,
                has_review=review_file(inc) is not None,
                room=await asyncio.to_thread(room_messages, request, inc["id"]),
                replay=await asyncio.to_thread(replay_offer, request, inc, kinds),
                csrf=csrf(request))


def replay_offer(request: Request, inc: dict[str, Any], kinds: set[str]
                 ) -> dict[str, Any] | None:
    """What the page offers to rehearse a real incident opened by an alert (one of the
    ``kinds`` of its events), to people who may start drills: the targets the project
    has a drill scenario of its service on (the sandbox first), or why there is none."""
    if inc["kind"] != INCIDENT or not identity(request).may("start"):
        return None
    if Kind.ALERT_FIRED not in kinds:
        return None
    settings = shared(request).settings
    service = inc.get("service") or "(none)"
    targets = sorted({sc.target for _, sc in drill_scenarios(settings)
                      if sc.service == service}, key=lambda t: (t != "sandbox", t))
    if not targets:
        return {"targets": [], "missing": f"no drill scenario in scenarios/ is for service "
                                          f"{service}: a replay takes the team and the SLO "
                                          "from one"}
    return {"targets": targets, "missing": None}


ROOM_LINES = 60  # the room's last messages the incident page shows


def room_messages(request: Request, incident_id: int) -> dict[str, Any] | None:
    """The incident's room in chat, as the chat has it now (its last messages, who
    said each: a person's gameday name when their account is linked); None when it
    has none. A chat that does not answer is said, not fatal."""
    from gameday.chat.base import ChatDown
    from gameday.core.clock import iso

    state = shared(request)
    room = state.store.chat_room(incident_id)
    if state.relay is None or room is None or not room["room"]:
        return None
    relay = state.relay
    shown: dict[str, Any] = {"chat": room["chat"], "messages": [], "error": None,
                             "name": relay.room_name(dict(state.store.incident(incident_id)))}
    try:
        said = relay.chat.history(room["room"], ROOM_LINES)
    except ChatDown as exc:
        shown["error"] = f"the room's messages could not be read: {exc}"
        return shown
    bot = getattr(relay.chat, "user", None)
    for m in said:
        person = state.store.chat_person(m.account)
        shown["messages"].append({"at": iso(m.at_epoch_ns), "text": m.text,
                                  "gameday": m.account == bot,
                                  "who": "gameday" if m.account == bot
                                  else f"{person} ({m.account})" if person else m.account})
    return shown


async def review(request: Request) -> Response:
    """``/incidents/ID/review``: the review itself, served from the run directory."""
    caller(request)
    inc = shared(request).store.incident(request.path_params["id"])
    path = review_file(inc)
    if path is None and not inc.get("run_dir"):
        raise NotFound(f"Incident {inc['id']} has no review: only game days write one, "
                       "into their run directory.")
    if path is None:
        raise NotFound(f"Incident {inc['id']} has no review yet: its game day writes one "
                       "when it ends (`gameday review RUN_DIR` writes it again).")
    return HTMLResponse(path.read_text(encoding="utf-8"),
                        headers={**PAGE, "Content-Security-Policy": REVIEW_POLICY})
