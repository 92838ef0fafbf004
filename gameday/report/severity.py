"""Severity accuracy across incidents: the severity each was run at against the one
its SLIs measured, per kind, team and response model (part of ``insights``' report)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from gameday.core.policy import downplayed, rank, worse
from gameday.incidents.incident import KINDS
from gameday.report.facts import NO_VALUE, Table, group_order


def _accuracy(combos: Iterable[tuple[tuple[str | None, str | None, str | None], int]]
              ) -> dict[str, Any]:
    """Run at (the final severity, as the scorecard judges it) against measured, over
    ``((final, measured, declared), count)``."""
    out: dict[str, Any] = {"n": 0, "accurate": 0, "too_low": 0, "too_high": 0,
                           "unmeasured": 0, "declared_too_low": 0}
    for (final, measured, declared), count in combos:
        if final is None:
            continue
        out["n"] += count
        if measured is None:
            out["unmeasured"] += count
        elif downplayed(final, measured):
            out["too_low"] += count
        elif worse(final, measured):
            out["too_high"] += count
        else:
            out["accurate"] += count
        if downplayed(declared, measured):
            out["declared_too_low"] += count
    measured_n = out["n"] - out["unmeasured"]
    out["too_low_share"] = round(out["too_low"] / measured_n, 3) if measured_n else None
    return out


def severity_accuracy(t: Table) -> dict[str, Any]:
    """Per kind: declared vs measured severity as a matrix (declared -> measured ->
    count), and the share run too low (downplayed) overall, per team and per response
    model. ``declared`` is the severity the incident was run at (its final one);
    ``declared_too_low`` counts the first declaration. Counted once per distinct
    facets (a few hundred), not per incident."""
    combos: Counter[tuple[Any, ...]] = Counter()
    for code, n in t.per_code.items():
        f = t.facets[code]
        combos[(f.kind, f.team, f.model, f.severity_final, f.severity_measured,
                f.severity_declared)] += n
    out: dict[str, Any] = {}
    for kind in KINDS:
        mine = [(c[1:], n) for c, n in combos.items() if c[0] == kind]
        matrix: dict[str, dict[str, int]] = {}
        for (_, _, final, measured, _), count in mine:
            if final is not None:
                row = matrix.setdefault(final, {})
                row[measured or "unmeasured"] = row.get(measured or "unmeasured", 0) + count
        by: dict[str, dict[str, Any]] = {}
        for dimension, at in (("team", 0), ("model", 1)):
            groups: dict[str, list[Any]] = defaultdict(list)
            for c, count in mine:
                groups[c[at] or NO_VALUE].append((c[2:], count))
            by[f"by_{dimension}"] = {k: _accuracy(groups[k])
                                     for k in sorted(groups, key=group_order)}
        out[kind] = {"overall": _accuracy((c[2:], n) for c, n in mine),
                     "matrix": {s: dict(sorted(matrix[s].items())) for s in
                                sorted(matrix, key=rank)}, **by}
    return out
