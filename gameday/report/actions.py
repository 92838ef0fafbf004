"""Action items across reviews: how many are open and overdue by the kind of incident
they came from, how fast they get done, and who holds the overdue ones."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from itertools import compress, repeat
from operator import eq, itemgetter
from typing import Any

from gameday.core import clock
from gameday.incidents.incident import KINDS
from gameday.report.facts import NO_VALUE, Table
from gameday.report.freshness import age_days
from gameday.store import Connection


def action_items(db: Connection, t: Table, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """Completion rate, overdue items (open, due before today) per owner and per team,
    the oldest open item's age, for the action items of the incidents in ``t`` (per
    kind). Two range scans of ``action_items_by_incident`` (the done ones; the open ones
    with owner, due date and opening), counted against the table's incidents by id: no
    join and no sort in SQL. An item is open or done (``Store.close_action``)."""
    now = now or clock.now()
    code_of = dict(zip(t.ids, t.code, strict=True))
    span = (t.ids[0], t.ids[-1]) if len(t) else (0, -1)  # in id order
    done_codes = Counter(map(code_of.get, map(itemgetter(0), db.tuples(
        "SELECT incident_id FROM action_items WHERE incident_id BETWEEN ? AND ? AND"
        " status = 'done'", span))))
    still_open = db.tuples(
        "SELECT incident_id, owner, due < ?, created_at FROM action_items WHERE"
        " incident_id BETWEEN ? AND ? AND status = 'open'", (now.date().isoformat(), *span))
    open_codes = list(map(code_of.get, map(itemgetter(0), still_open)))
    owned = Counter(zip(open_codes, map(itemgetter(1), still_open),
                        map(itemgetter(2), still_open), strict=True))
    done: Counter[str] = Counter()
    for code, n in done_codes.items():
        if code is not None:
            done[t.facets[code].kind] += n
    n_open: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    by_team: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    by_owner: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    open_by_owner: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    for (code, owner, late), n in owned.items():
        if code is None:
            continue
        f = t.facets[code]
        n_open[f.kind] += n
        open_by_owner[f.kind][owner] += n
        if late:
            overdue[f.kind] += n
            by_owner[f.kind][owner] += n
            by_team[f.kind][f.team or NO_VALUE] += n
    kind_of = [f.kind for f in t.facets]
    open_kinds = [None if code is None else kind_of[code] for code in open_codes]
    oldest = {kind: first for kind in KINDS if (first := min(
        compress(map(itemgetter(3), still_open), map(eq, repeat(kind), open_kinds)),
        default=None)) is not None}
    total = done + n_open
    return {kind: {
        "total": total[kind], "done": done[kind], "open": n_open[kind],
        "overdue": overdue[kind],
        "completion_rate": round(done[kind] / total[kind], 3) if total[kind] else None,
        "oldest_open_days": max(0.0, age_days(oldest[kind], now)) if kind in oldest
        else None,
        "overdue_by_owner": dict(sorted(by_owner[kind].items())),
        "overdue_by_team": dict(sorted(by_team[kind].items())),
        "open_by_owner": dict(sorted(open_by_owner[kind].items())),
    } for kind in KINDS}
