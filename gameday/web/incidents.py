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
from gameday.incidents.incident import DRILL, GAMEDAY, INCIDENT, KINDS, Incident, kind_of_row
from gameday.store import Store
from gameday.store.rows import IncidentRow, RunRow
from gameday.web.context import caller, csrf, identity, page, shared

# The moments a reader scans for first stand out (as the terminal colours them);
# a runbook's individual tasks step back unless one failed (the run page has them all).
TONE = {Kind.FAULT_INJECTED: "k-bad", Kind.IMPACT_STARTED: "k-bad",
        Kind.CHAOS_ACTION_FAILED: "k-bad", Kind.RUNBOOK_REJECTED: "k-bad",
        Kind.ALERT_FIRED: "k-alert", Kind.INCIDENT_DECLARED: "k-alert",
        Kind.SEVERITY_CHANGED: "k-alert", Kind.INCIDENT_ESCALATED: "k-alert",
        Kind.MITIGATED: "k-good", Kind.INCIDENT_RESOLVED: "k-good", Kind.ALERT_RESOLVED: "k-good",
        Kind.FAULT_ROLLED_BACK: "k-good", Kind.RUNBOOK_QUEUED: "k-minor"}


def tone(event: dict[str, Any]) -> str:
    if event["kind"] == Kind.RUNBOOK_TASK:  # Ansible's words for a task
        task_status = event["data"].get("status")
        return "k-bad" if task_status in ("failed", "unreachable") else "k-minor"
    if event["kind"] == Kind.RUNBOOK_FINISHED:
        return "k-good" if event["data"].get("status") == RunStatus.SUCCESSFUL else "k-bad"
    return TONE.get(event["kind"], "")


# The review is a generated, self-contained document (styles and its SVG chart
# inline, no scripts): let the browser load nothing else for it.
REVIEW_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def review_file(incident: IncidentRow | dict[str, Any]) -> Path | None:
    """The review a game day wrote into its run directory, if there is one."""
    run_dir = incident.get("run_dir")
    if not run_dir:
        return None
    path = Path(run_dir) / "review.html"
    return path if path.is_file() else None


def timeline_rows(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events (already in time order) as the page shows them (``shown``), an alert
    storm's thousands of rows folded into a few (``fold_storms``)."""
    t0 = timeline[0]["at_monotonic_ns"] if timeline else 0
    return fold_storms([shown(e, t0) for e in timeline])


def shown(event: dict[str, Any], t0: int) -> dict[str, Any]:
    """A timeline row: the event with ``t``, seconds since the first one (at ``t0``), and
    ``tone``, the class that makes the moments that matter stand out."""
    return {**event, "t": (event["at_monotonic_ns"] - t0) / 1e9, "tone": tone(event),
            "summary": None}


STORM = (Kind.ALERT_FIRED, Kind.RUNBOOK_COALESCED)
STORM_SHOWN = 4  # rows of a storm shown as they are; the rest become one line
# What a storm's line names of the rows it stands for: the alerts', the runs' they joined.
STORM_WORDS: dict[str, str] = {Kind.ALERT_FIRED: "$.alertname",
                               Kind.RUNBOOK_COALESCED: "$.run_id"}
Word = tuple[str, str | None]  # an event's kind, and its ``STORM_WORDS`` value as text


def storm_folds(kinds: list[str]) -> list[tuple[int, int]]:
    """Where a timeline (its events' kinds, in time order) folds: for each run of
    consecutive alert instances firing (and joining a run already under way) longer
    than ``STORM_SHOWN`` + 1, the range of its rows past the first ``STORM_SHOWN``."""
    folds: list[tuple[int, int]] = []
    start = None
    for i, kind in enumerate([*kinds, ""]):
        if kind in STORM:
            start = i if start is None else start
            continue
        if start is not None and i - start > STORM_SHOWN + 1:
            folds.append((start + STORM_SHOWN, i))
        start = None
    return folds


def storm_line(rest: list[Word], first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """The one row that counts the folded rows ``rest`` (``first`` and ``last`` of them
    as rows): how many alert instances fired, which alerts, and the runs they joined."""
    fired = sorted({"?" if word is None else word for kind, word in rest
                    if kind == Kind.ALERT_FIRED})
    count = sum(1 for kind, _ in rest if kind == Kind.ALERT_FIRED)
    text = f"{count} more alert instances fired ({', '.join(fired)})"
    joined = [str(word) for kind, word in rest if kind == Kind.RUNBOOK_COALESCED]
    if joined:
        text += (f"; {len(joined)} joined run {', '.join(sorted(set(joined)))} instead of "
                 "starting it again")
    return {**last, "kind": "alert storm", "summary": f"{text} (until t = {last['t']:.2f} s)",
            "tone": "k-alert", "t": first["t"], "at_utc": first["at_utc"]}


def fold_storms(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive alert instances firing (and joining a run already under way) show
    their first few rows, then one line that counts the rest."""
    out: list[dict[str, Any]] = []
    at = 0
    for start, end in storm_folds([row["kind"] for row in rows]):
        rest = rows[start:end]
        out += rows[at:start]
        out.append(storm_line([(e["kind"], _word(e)) for e in rest], rest[0], rest[-1]))
        at = end
    return out + rows[at:]


def _word(event: dict[str, Any]) -> str | None:
    value = event["data"].get(STORM_WORDS[event["kind"]].removeprefix("$."))
    return None if value is None else str(value)


def page_timeline(store: Store, incident_id: int) -> tuple[list[dict[str, Any]], set[str]]:
    """``timeline_rows`` of the incident's events, and the kinds among them, without
    reading the events a storm folds away: their kinds, times and ``STORM_WORDS`` are
    read, not their payloads. A storm's incident page reads a few rows, not hundreds
    of thousands."""
    outline = store.outline(incident_id, STORM_WORDS)
    folds = storm_folds([kind for _, _, kind, _ in outline])
    wanted, at = [], 0  # the rows shown, and each fold's first and last
    for start, end in folds:
        wanted += [*range(at, start), start, end - 1]
        at = end
    wanted += range(at, len(outline))
    full = {e.seq: e.as_dict() for e in store.events(incident_id,
                                                      seqs=[outline[i][0] for i in wanted])}
    t0 = outline[0][1] if outline else 0

    def row(i: int) -> dict[str, Any]:
        return shown(full[outline[i][0]], t0)

    rows: list[dict[str, Any]] = []
    at = 0
    for start, end in folds:
        rows += [row(i) for i in range(at, start)]
        rows.append(storm_line([(kind, word) for _, _, kind, word in outline[start:end]],
                               row(start), row(end - 1)))
        at = end
    rows += [row(i) for i in range(at, len(outline))]
    return rows, {kind for _, _, kind, _ in outline}


SHOWN = (INCIDENT, GAMEDAY, DRILL)  # the list's filter, real incidents first


async def incident_list(request: Request) -> Response:
    """``/incidents[?kind=incident|gameday|drill]``: newest first, each marked real
    incident, game day or drill; the filter keeps one kind."""
    who = caller(request)
    kind = request.query_params.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"one of {', '.join(KINDS)}, not {kind[:40]!r}", field="kind")
    rows = shared(request).store.incidents(kind=kind)[::-1]
    return page("incidents.html", who=who, kind=kind, kinds=SHOWN,
                incidents=[{**r, "kind": kind_of_row(r)} for r in rows])


async def incident_page(request: Request) -> Response:
    who = caller(request)
    store = shared(request).store

    def read() -> tuple[dict[str, Any], list[dict[str, Any]], set[str], list[RunRow]]:
        found = Incident(store, request.path_params["id"])
        inc = {**found.row, "roles": found.roles(), "kind": kind_of_row(found.row)}
        timeline, kinds = page_timeline(store, found.id)
        return inc, timeline, kinds, store.runs(incident_id=found.id)

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
                        headers={"Content-Security-Policy": REVIEW_POLICY})
