"""Charts as inline SVG, drawn on the server: no script, no chart library, nothing for
a strict Content-Security-Policy to refuse. The review's SLI chart and the Insights
page's trends are both built from these pieces.

Coordinates: an ``int`` is written as it is, a ``float`` with one decimal (what the
review has always written). ``line_chart`` draws series over a shared x axis (weeks,
say) with a y axis that starts at zero, gridlines, a legend, and a point per value
whose ``<title>`` is its tooltip; a missing value breaks the line rather than
pretending to be zero. ``bar_rows`` draws one horizontal stacked bar per row.
``time_ticks`` puts round seconds on a time axis, and ``flags`` finds where the labels of
moments on it go (``Mark``: a vertical line and its name) so that none covers another or
another's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind-safe (Okabe-Ito), in the order series are given.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")


def num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def svg_open(width: int, height: int, *, font_size: int = 11, label: str | None = None) -> str:
    """The opening tag; ``label`` makes the chart an image a screen reader names."""
    aria = f' role="img" aria-label="{escape(label)}"' if label else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" '
            f'font-size="{font_size}"{aria}>')


def empty(width: int, message: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60">'
            f'<text x="10" y="30">{escape(message)}</text></svg>')


def rect(x: float, y: float, width: float, height: float, fill: str,
         stroke: str | None = None, title: str | None = None) -> str:
    edge = f' stroke="{stroke}"' if stroke else ""
    head = (f'<rect x="{num(x)}" y="{num(y)}" width="{num(width)}" height="{num(height)}" '
            f'fill="{fill}"{edge}')
    return f"{head}><title>{escape(title)}</title></rect>" if title else f"{head}/>"


def _stroke(color: str, width: float | None, dash: str | None) -> str:
    out = f' stroke="{color}"'
    if width is not None:
        out += f' stroke-width="{num(width)}"'
    if dash:
        out += f' stroke-dasharray="{dash}"'
    return out


def line(x1: float, x2: float, y1: float, y2: float, color: str, *,
         width: float | None = None, dash: str | None = None) -> str:
    return (f'<line x1="{num(x1)}" x2="{num(x2)}" y1="{num(y1)}" y2="{num(y2)}"'
            f'{_stroke(color, width, dash)}/>')


def polyline(points: Sequence[tuple[float, float]], color: str, *, width: float | None = None,
             dash: str | None = None) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline points="{coords}" fill="none"{_stroke(color, width, dash)}/>'


def text(x: float, y: float, content: str, *, fill: str | None = None,
         anchor: str | None = None, weight: str | None = None) -> str:
    attrs = f' fill="{fill}"' if fill else ""
    attrs += f' text-anchor="{anchor}"' if anchor else ""
    attrs += f' font-weight="{weight}"' if weight else ""
    return f'<text x="{num(x)}" y="{num(y)}"{attrs}>{escape(content)}</text>'


def spans(x: float, y: float, parts: Sequence[tuple[str, str]], *,
          anchor: str | None = None) -> str:
    """One line of text in several colours: ``parts`` are (content, fill)."""
    attrs = f' text-anchor="{anchor}"' if anchor else ""
    inner = "".join(f'<tspan fill="{fill}">{escape(content)}</tspan>' for content, fill in parts)
    return f'<text x="{num(x)}" y="{num(y)}"{attrs}>{inner}</text>'


def text_width(content: str, font_size: float) -> float:
    """How wide ``content`` is drawn, a little over: a sans-serif's characters average
    well under 0.62 em (DejaVu Sans, Arial, Helvetica)."""
    return 0.62 * font_size * len(content)


def dot(x: float, y: float, color: str, title: str) -> str:
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
            f"<title>{escape(title)}</title></circle>")


@dataclass(frozen=True)
class Frame:
    """The drawing area inside the margins."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def inner_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> int:
        return self.height - self.top - self.bottom

    def box(self, fill: str = "#fafafa", stroke: str = "#ccc") -> str:
        return rect(self.left, self.top, self.inner_width, self.inner_height, fill, stroke)


def nice_max(value: float) -> float:
    """A round top for an axis: 1, 2, 2.5 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while power > value:
        power /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _tick(value: float, unit: str) -> str:
    shown = f"{value:g}" if value >= 10 or value == int(value) else f"{value:.1f}"
    return f"{shown}{unit}"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    notes: Sequence[str] = ()  # per point, added to its tooltip (``n=12``, say)


def line_chart(labels: Sequence[str], series: Sequence[Series], *, unit: str = "",
               title: str, width: int = 860, height: int = 260,
               y_max: float | None = None, ticks: Sequence[str] = ()) -> str:
    """Series over shared x labels (oldest first), y from zero. Every point carries a
    tooltip with its label, value and note; every series is named in the legend.
    ``ticks``: shorter labels to print under the axis (the tooltips keep ``labels``)."""
    present = [v for s in series for v in s.values if v is not None]
    if not labels or not present:
        return empty(width, f"{title}: no data yet")
    f = Frame(width, height, left=64, right=40, top=34, bottom=44)
    top_value = y_max if y_max is not None else nice_max(max(present))
    step = f.inner_width / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return f.left + (i * step if len(labels) > 1 else f.inner_width / 2)

    def y(v: float) -> float:
        return f.top + (1 - v / top_value) * f.inner_height

    parts = [svg_open(width, height, font_size=13, label=title), f.box(fill="#ffffff")]
    for k in range(5):  # gridlines and the y axis' values
        value = top_value * k / 4
        parts.append(line(f.left, f.width - f.right, round(y(value), 1), round(y(value), 1),
                          "#e3e3e3"))
        parts.append(text(f.left - 6, round(y(value) + 4, 1), _tick(value, unit),
                          fill="#444", anchor="end"))
    shown = ticks or labels
    every = -(-len(labels) // 12)  # at most twelve x labels
    for i, label in enumerate(shown):
        if i % every == 0:
            parts.append(text(round(x(i), 1), f.height - f.bottom + 18, label, fill="#444",
                              anchor="middle"))
    legend_x = f.left
    for n, s in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        parts.append(rect(legend_x, 10, 14, 4, color))
        parts.append(text(legend_x + 19, 16, s.name, fill="#222"))
        legend_x += 34 + 8 * len(s.name)
        run: list[tuple[float, float]] = []
        for i, point in enumerate([*s.values, None]):
            if point is None:
                if len(run) > 1:
                    parts.append(polyline(run, color, width=2.5,
                                          dash="6 3" if n % 2 else None))
                run = []
                continue
            run.append((x(i), y(point)))
        for i, point in enumerate(s.values):
            if point is not None:
                note = f" ({s.notes[i]})" if i < len(s.notes) and s.notes[i] else ""
                parts.append(dot(x(i), y(point), color,
                                 f"{s.name} {labels[i]}: {_tick(point, unit)}{note}"))
    parts.append("</svg>")
    return "\n".join(parts)


@dataclass(frozen=True)
class Segment:
    label: str
    color: str


def bar_rows(rows: Sequence[tuple[str, Sequence[int]]], segments: Sequence[Segment], *,
             title: str, width: int = 860, row_height: int = 30) -> str:
    """One horizontal bar per row, its parts stacked by ``segments`` and scaled to the
    row's total (shares, with the counts in the tooltips and at the end of the bar)."""
    rows = [(name, counts) for name, counts in rows if sum(counts)]
    if not rows:
        return empty(width, f"{title}: no data yet")
    longest = max(len(name) for name, _ in rows)
    label_w, count_w = min(max(8 * longest + 16, 120), width // 2), 70
    height = 34 + row_height * len(rows) + 8
    bar_w = width - label_w - count_w
    parts = [svg_open(width, height, font_size=13, label=title)]
    legend_x = label_w
    for seg in segments:
        parts.append(rect(legend_x, 8, 12, 12, seg.color))
        parts.append(text(legend_x + 17, 18, seg.label, fill="#222"))
        legend_x += 30 + 8 * len(seg.label)
    for r, (name, counts) in enumerate(rows):
        top = 34 + r * row_height
        total = sum(counts)
        fits = (label_w - 16) // 8
        shown = name if len(name) <= fits else name[:fits - 1] + "…"
        parts.append(text(label_w - 8, top + row_height / 2 + 4, shown, fill="#222",
                          anchor="end"))
        at = float(label_w)
        for seg, count in zip(segments, counts, strict=True):
            if not count:
                continue
            w = bar_w * count / total
            parts.append(rect(round(at, 1), top + 4, round(w, 1), row_height - 8, seg.color,
                              title=f"{name}: {count} of {total} {seg.label}"))
            at += w
        parts.append(text(label_w + bar_w + 8, top + row_height / 2 + 4, f"n={total}",
                          fill="#444"))
    parts.append("</svg>")
    return "\n".join(parts)


STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def time_ticks(span_s: float, most: int = 10) -> list[float]:
    """Round seconds for a time axis that starts at 0 and shows ``span_s``: a step a
    person counts in (1, 2, 5, 10, 15, 30 s, 1, 2, 5 min...), at most ``most`` ticks,
    and the last tick at or past ``span_s`` (where the axis ends)."""
    step = next((s for s in STEPS_S if span_s / s <= most - 1), None)
    if step is None:
        step = 3600 * nice_max(span_s / 3600 / (most - 1))
    count = int(span_s // step) + 1 if span_s % step else int(span_s // step)
    return [round(k * step, 6) for k in range(count + 1)]


@dataclass(frozen=True)
class Mark:
    """A moment on a time axis: a vertical line at ``x``, named ``label``."""

    x: float
    label: str
    color: str


@dataclass(frozen=True)
class Flag:
    """Where the name of one or more marks (closer together than a label's gap) is
    written: in ``lane`` (0 is next to the plot, each lane one line of text further),
    from ``left`` to ``right``, beside their lines, which reach up to it."""

    marks: tuple[Mark, ...]
    lane: int
    left: float
    right: float

    @property
    def low(self) -> float:
        return self.marks[0].x

    @property
    def high(self) -> float:
        return self.marks[-1].x


def flags(marks: Sequence[Mark], *, width: float, font_size: float,
          gap: float = 6.0) -> list[Flag]:
    """Lanes for the names of ``marks`` so that no name covers another, nor the line of
    another mark on its way up to its own name. Marks closer than ``gap`` share a name
    (``alert, ack``). A name is written after its line; where it would leave the
    chart (``width``), before it if it covers no other line there, else after it all
    the same: the chart is made wider (its right edge: the largest ``right``). Names
    are placed from the right, so an earlier one climbs over the lines it covers."""
    groups: list[list[Mark]] = []
    for m in sorted(marks, key=lambda m: m.x):
        if groups and m.x - groups[-1][-1].x < gap:
            groups[-1].append(m)
        else:
            groups.append([m])
    placed: list[Flag] = []
    for group in reversed(groups):
        w = text_width(", ".join(m.label for m in group), font_size)
        at = group[-1].x + 3
        before = group[0].x - 3 - w
        if at + w > width - 1 and before >= 1 and not any(
                before - gap / 2 <= m.x <= group[0].x for g in groups if g is not group
                for m in g):
            at = before
        lane = 0
        while not _free(placed, Flag(tuple(group), lane, at, at + w), gap):
            lane += 1
        placed.append(Flag(tuple(group), lane, at, at + w))
    return sorted(placed, key=lambda f: f.low)


def _free(placed: Sequence[Flag], new: Flag, gap: float) -> bool:
    """Whether ``new`` covers no placed name in its lane and no placed line, and its own
    lines pass no placed name below it."""
    for p in placed:
        if p.lane == new.lane and new.left < p.right + gap and p.left < new.right + gap:
            return False
        if p.lane >= new.lane and new.left - gap / 2 <= p.high and p.low <= new.right + gap / 2:
            return False
        if p.lane <= new.lane and p.left - gap / 2 <= new.high and new.low <= p.right + gap / 2:
            return False
    return True
