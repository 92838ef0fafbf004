"""An incident's timeline as people read it: an alert storm's thousands of rows folded
into a few, on the incident page and in ``gameday incident show`` alike.

A row is an event (in time order: when it happened, ties by sequence) with ``t``,
seconds since the incident's first event, and ``summary``: None, or for the one row
that stands for a storm's folded rows (kind ``STORM_LINE``), what it counts (and
``ended``: they are all resolutions).
Consecutive alert instances firing (and joining a run already under way), or resolving
when the storm is over, show their first ``STORM_SHOWN`` rows, then that one row.

``timeline`` reads an incident's rows from the store without reading what it folds:
the folded events' kinds, times and ``STORM_WORDS``, and the payloads of the rows
shown. The same rows as ``fold`` over every event, whatever the storm's size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gameday.core.events import Kind
from gameday.store import Store

STORM = (Kind.ALERT_FIRED, Kind.RUNBOOK_COALESCED, Kind.ALERT_RESOLVED)
STORM_SHOWN = 4  # rows of a storm shown as they are; the rest become one line
STORM_LINE = "alert storm"  # the kind of that line
# What the line names of the rows it stands for: their alerts, and the runs they joined.
STORM_WORDS: dict[str, str] = {Kind.ALERT_FIRED: "$.alertname",
                               Kind.RUNBOOK_COALESCED: "$.run_id",
                               Kind.ALERT_RESOLVED: "$.alertname"}
Word = tuple[str, str | None]  # an event's kind, and its ``STORM_WORDS`` value as text


def row(event: dict[str, Any], t0: int) -> dict[str, Any]:
    """The event as a row, ``t0`` being its incident's first event's time."""
    return {**event, "t": (event["at_monotonic_ns"] - t0) / 1e9, "summary": None}


def rows(timeline: list[dict[str, Any]], *, folded: bool = True) -> list[dict[str, Any]]:
    """Every event (already in time order) as a row, a storm folded unless not
    ``folded``."""
    t0 = timeline[0]["at_monotonic_ns"] if timeline else 0
    every = [row(e, t0) for e in timeline]
    return fold(every) if folded else every


def folds(kinds: list[str]) -> list[tuple[int, int]]:
    """Where rows (their kinds, in time order) fold: for each run of storm rows longer
    than ``STORM_SHOWN`` + 1, the range of its rows past the first ``STORM_SHOWN``."""
    found: list[tuple[int, int]] = []
    start = None
    for i, kind in enumerate([*kinds, ""]):
        if kind in STORM:
            start = i if start is None else start
            continue
        if start is not None and i - start > STORM_SHOWN + 1:
            found.append((start + STORM_SHOWN, i))
        start = None
    return found


@dataclass
class Tally:
    """What a storm's line counts, as its rows come: how many of each kind, and their
    words (``STORM_WORDS``). The incident page and ``incident show`` tally a storm's
    folded rows at once (``line``); a chat room as they arrive (``chat.relay``)."""

    counts: Counter[str] = field(default_factory=Counter)
    words: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, word: str | None) -> None:
        self.counts[kind] += 1
        self.words.setdefault(kind, set()).add("?" if word is None else word)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        """As JSON holds it (``of`` reads it back)."""
        return {"counts": dict(self.counts),
                "words": {kind: sorted(said) for kind, said in self.words.items()}}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Tally:
        return cls(Counter(data["counts"]), {kind: set(said)
                                             for kind, said in data["words"].items()})

    def summary(self) -> tuple[str, bool]:
        """What the line says: how many alert instances fired, which alerts, the runs
        they joined, and how many resolved; and whether they were all resolutions (the
        storm is over)."""
        def counted(of: str) -> tuple[int, str]:
            return self.counts[of], ", ".join(sorted(self.words.get(of, ())))

        (fired, names), (joined, runs), (resolved, gone) = (
            counted(Kind.ALERT_FIRED), counted(Kind.RUNBOOK_COALESCED),
            counted(Kind.ALERT_RESOLVED))
        said = []
        if fired or not (joined or resolved):
            said.append(f"{fired} more alert instances fired ({names})")
        if joined:
            said.append(f"{joined} joined run {runs} instead of starting it again")
        if resolved:
            said.append(f"{resolved} {'resolved' if said else 'more alert instances resolved'}"
                        f" ({gone})")
        return "; ".join(said), not (fired or joined)


def line(rest: list[Word], first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """The one row that counts the folded rows ``rest`` (``first`` and ``last`` of them
    as rows): ``Tally.summary`` of them, until when."""
    tally = Tally()
    for kind, word in rest:
        tally.add(kind, word)
    said, ended = tally.summary()
    return {**last, "kind": STORM_LINE, "summary": f"{said} (until t = {last['t']:.2f} s)",
            "t": first["t"], "at_utc": first["at_utc"], "ended": ended}


def fold(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with each storm's rows past its first few as one line."""
    return _folded(len(rows), folds([r["kind"] for r in rows]), rows.__getitem__,
                   lambda start, end: [(r["kind"], word(r["kind"], r["data"]))
                                       for r in rows[start:end]])


def _folded(count: int, found: list[tuple[int, int]], shown: Callable[[int], dict[str, Any]],
            words: Callable[[int, int], list[Word]]) -> list[dict[str, Any]]:
    """The ``count`` rows (the ``i``-th: ``shown(i)``) with each range in ``found`` as
    one line (what it counts: ``words(start, end)``)."""
    out: list[dict[str, Any]] = []
    at = 0
    for start, end in found:
        out += [shown(i) for i in range(at, start)]
        out.append(line(words(start, end), shown(start), shown(end - 1)))
        at = end
    return out + [shown(i) for i in range(at, count)]


def word(kind: str, data: dict[str, Any]) -> str | None:
    """A storm event's ``STORM_WORDS`` value, as text."""
    value = data.get(STORM_WORDS[kind].removeprefix("$."))
    return None if value is None else str(value)


def timeline(store: Store, incident_id: int) -> tuple[list[dict[str, Any]], set[str]]:
    """``rows`` of the incident's events, read as they are shown, and the kinds among
    them."""
    outline = store.outline(incident_id, STORM_WORDS)
    found = folds([kind for _, _, kind, _ in outline])
    wanted, at = [], 0  # the rows shown, and each fold's first and last
    for start, end in found:
        wanted += [*range(at, start), start, end - 1]
        at = end
    wanted += range(at, len(outline))
    full = {e.seq: e.as_dict() for e in store.events(incident_id,
                                                      seqs=[outline[i][0] for i in wanted])}
    t0 = outline[0][1] if outline else 0

    def shown(i: int) -> dict[str, Any]:
        return row(full[outline[i][0]], t0)

    return (_folded(len(outline), found, shown,
                    lambda start, end: [(kind, word) for _, _, kind, word in outline[start:end]]),
            {kind for _, _, kind, _ in outline})
