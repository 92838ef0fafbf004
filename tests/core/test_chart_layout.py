"""The pieces of a chart's layout that keep it readable: a time axis in round seconds,
and the names of moments on it placed so that none covers another name or another
moment's line (tests/game/test_sli_chart.py measures the drawn result in Chromium)."""

from __future__ import annotations

import random

import pytest

from gameday.core.charts import Mark, flags, text_width, time_ticks


@pytest.mark.parametrize("span, step, last", [
    (1.0, 0.2, 1.0), (7.0, 1, 7), (7.2, 1, 8), (18.4, 5, 20), (45, 5, 45), (90, 10, 90),
    (600, 120, 600), (3599, 600, 3600), (7200, 900, 7200), (86_400, 18_000, 90_000),
])
def test_time_ticks_are_round_seconds_to_past_the_end(span, step, last):
    ticks = time_ticks(span)
    assert ticks[0] == 0 and ticks[-1] == pytest.approx(last) and ticks[-1] >= span
    assert {round(b - a, 6) for a, b in zip(ticks, ticks[1:], strict=False)} == {step}
    assert 2 <= len(ticks) <= 10


@pytest.mark.parametrize("seed", range(200))
def test_names_of_moments_never_cover_each_other(seed):
    """Moments anywhere on an 860-pixel chart, crowded or not, at its edges too: every
    name on the chart (or past its right edge, which the chart then moves), none on
    another in its lane nor on another moment's line, every moment named once."""
    rng = random.Random(seed)
    names = ["fault", "alert", "ack", "runbook start", "runbook end", "mitigated", "rollback"]
    marks = [Mark(rng.choice([56, 796, rng.uniform(56, 796), rng.uniform(700, 796)]), name,
                  "#000") for name in rng.sample(names, rng.randint(1, len(names)))]
    placed = flags(marks, width=860, font_size=11)
    assert sorted(m.label for f in placed for m in f.marks) == sorted(m.label for m in marks)
    for f in placed:  # after its line, or before it where that covers no other line
        assert f.left >= 0 and (f.right <= 860 or f.left == f.high + 3), f
        assert f.right - f.left == pytest.approx(
            text_width(", ".join(m.label for m in f.marks), 11))
    for a in placed:
        for b in placed:
            if a is b:
                continue
            if a.lane == b.lane:
                assert a.right + 6 <= b.left or b.right + 6 <= a.left, (a, b)
            if a.lane <= b.lane:  # b's lines pass a's lane on their way up to b's name
                assert all(not a.left - 3 <= m.x <= a.right + 3 for m in b.marks), (a, b)
