"""The review's SLI chart as a person sees it: real game days' ``sli-chart.svg``, and
their samples with the response's moments crowded together, measured in headless
Chromium. No label covers another label or a line, none sits on the plot's data, all
stay on the chart, and the time axis counts round seconds to past the last moment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gameday.game.review import MARKERS, chart_svg
from tests.chromium import browser, needs_chromium

pytestmark = [pytest.mark.slow, needs_chromium]
ROOT = Path(__file__).resolve().parents[2]
PLAYED = ("checkout-replica-crash", "checkout-bad-deploy-wrong-runbook")
SHOTS = os.environ.get("GAMEDAY_SCREENSHOTS")  # set to refresh docs/img

MEASURE = """
const svg = document.querySelector('svg');
const frame = document.querySelector('rect').getBBox();
return {
  width: +svg.getAttribute('width'), height: +svg.getAttribute('height'),
  plot: [frame.x, frame.y, frame.x + frame.width, frame.y + frame.height],
  texts: [...document.querySelectorAll('text')].map(t => {
    const b = t.getBBox(); return [t.textContent, b.x, b.y, b.x + b.width, b.y + b.height];
  }),
  lines: [...document.querySelectorAll('line')].map(l =>
    ['x1', 'y1', 'x2', 'y2'].map(a => +l.getAttribute(a))),
};
"""


def play(name: str, tmp: Path) -> Path:
    env = {**os.environ, "GAMEDAY_DB": str(tmp / "gameday.db"), "GAMEDAY_RUNS": str(tmp / "runs")}
    proc = subprocess.run([sys.executable, "-m", "gameday", "run", f"scenarios/{name}.yaml",
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]
    return Path(json.loads(proc.stdout)["run_dir"])


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: play(name, tmp_path_factory.mktemp(name)) for name in PLAYED}


@pytest.fixture(scope="module")
def look(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Open an SVG file in Chromium and measure it: every text's box as drawn, every
    line, the plot's frame."""
    driver = browser(tmp_path_factory.mktemp("chromium"), size="1000,900")

    def measure(svg: Path, shot: str | None = None) -> dict[str, Any]:
        driver.get(svg.resolve().as_uri())
        if shot and SHOTS:
            driver.find_element("tag name", "svg").screenshot(str(Path(SHOTS) / shot))
        return driver.execute_script(MEASURE)

    yield measure
    driver.quit()


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def crosses(line: list[float], box: list[float]) -> bool:
    """Whether an axis-parallel line passes through the box (its edges spared)."""
    x1, y1, x2, y2 = line
    left, top, right, bottom = box[0] + 0.5, box[1] + 0.5, box[2] - 0.5, box[3] - 0.5
    return (min(x1, x2) < right and max(x1, x2) > left
            and min(y1, y2) < bottom and max(y1, y2) > top)


def assert_readable(drawn: dict[str, Any], moments: set[str]) -> None:
    texts = drawn["texts"]
    boxes = [t[1:] for t in texts]
    for i, (name, *box) in enumerate(texts):
        assert box[0] >= 0 and box[2] <= drawn["width"] and box[1] >= 0 \
            and box[3] <= drawn["height"], f"{name!r} leaves the chart: {box}"
        assert not overlap(box, drawn["plot"]), f"{name!r} covers the plot: {box}"
        for other, *box2 in texts[i + 1:]:
            assert not overlap(box, box2), f"{name!r} {box} covers {other!r} {box2}"
        for line in drawn["lines"]:
            assert not crosses(line, box), f"a line {line} crosses {name!r} {box}"
    named = {word for t in texts for word in t[0].split(", ")}
    assert moments <= named, moments - named
    ticks = [(float(m[1]), (t[1] + t[3]) / 2) for t in texts
             if (m := re.fullmatch(r"(\d+(?:\.\d+)?) s", t[0]))]
    values = [v for v, _ in ticks]
    steps = {round(b - a, 6) for a, b in zip(values, values[1:], strict=False)}
    assert values[0] == 0 and len(values) >= 4 and len(steps) == 1, values
    assert steps.pop() in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)
    left, right = drawn["plot"][0], drawn["plot"][2]
    for value, middle in ticks:   # each under its place on the axis
        assert middle == pytest.approx(left + value / values[-1] * (right - left), abs=1)
    assert boxes   # and the chart is not empty


@pytest.mark.parametrize("name", PLAYED)
def test_a_game_days_chart_is_readable(played, look, name):
    """The chart a real game day wrote: the fault, alert, runbook and rollback named,
    none of their names on another's or on a line, seconds along the bottom."""
    svg = played[name] / "sli-chart.svg"
    shot = "review-sli-chart.png" if name == PLAYED[0] else None
    assert_readable(look(svg, shot), {"fault", "alert", "runbook start", "rollback"})


def moments_at(*seconds: float, start: int) -> list[dict[str, Any]]:
    """The response's moments (``MARKERS``), the n-th at ``seconds[n]`` after ``start``."""
    first = [{"kind": "target.ready", "at_monotonic_ns": start}]
    return first + [{"kind": kind, "at_monotonic_ns": start + int(s * 1e9)}
                    for (kind, _, _), s in zip(MARKERS, seconds, strict=False)]


@pytest.mark.parametrize("seconds", [
    (1.0,) * 7,                                          # all at once
    (1.0, 1.004, 1.008, 1.05, 1.1, 1.15, 1.2),           # all in a fifth of a second
    (6.9, 6.92, 6.94, 6.96, 6.98, 7.0, 7.0),             # all at the very end
    (0.0, 0.3, 0.6, 3.0, 3.02, 6.99, 7.0),               # at the start and at the end
    (2.0, 2.15, 2.3, 2.45, 2.6, 2.75, 2.9),              # a staircase
    (1.0, 2.0, 3.0, 7.98, 5.0, 5.5, 7.7),                # a long name last, a line before
], ids=["at-once", "in-a-fifth", "at-the-end", "both-ends", "staircase", "long-name-last"])
def test_crowded_moments_keep_their_names_apart(played, look, tmp_path, seconds):
    """A real game day's samples with its moments crowded as a fast runbook or a quick
    rollback crowd them: still every name readable."""
    run_dir = played["checkout-replica-crash"]
    start = json.loads((run_dir / "sli.jsonl").read_text().splitlines()[0])["at_ns"]
    svg = tmp_path / "crowded.svg"
    svg.write_text(chart_svg(run_dir, moments_at(*seconds, start=start), 0.99, 300))
    assert_readable(look(svg), {label for _, label, _ in MARKERS})
