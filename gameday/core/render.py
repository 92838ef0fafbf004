"""The one Jinja environment: reviews, status updates and web pages.

Templates live in ``gameday/templates``: ``review.*.j2``, ``comms/*.md.j2`` and
``web/*.html``. HTML (``.html``, ``.html.j2``) is autoescaped, Markdown is not;
undefined names fail loudly. Filters every template may use: ``secs`` (a duration or
a dash), ``event`` (an event as a person reads it, the same line as the terminal's).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment


def secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


@cache
def templates() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    from gameday.core.sentences import describe_event
    from gameday.core.states import KIND_LABELS

    def autoescape(name: str | None) -> bool:
        return name is not None and name.endswith((".html", ".html.j2"))

    env = Environment(loader=PackageLoader("gameday", "templates"), undefined=StrictUndefined,
                      autoescape=autoescape, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["secs"] = secs
    env.filters["event"] = describe_event
    env.filters["kind_label"] = lambda kind: KIND_LABELS.get(kind or "incident", kind)
    return env


def render(name: str, **context: Any) -> str:
    return templates().get_template(name).render(**context)
