"""Status updates for three audiences, rendered from incident facts.

Internal (responders and stakeholders), executive (impact and who leads), customer
(plain words, no internals). Who hears about an incident of which severity is the
policy's (``policy.audiences_for``). Each posted update is a ``comms.posted`` event
and a file under ``comms/`` in the run directory.
"""

from __future__ import annotations

from typing import Any

from gameday.policy import AUDIENCES, audiences_for
from gameday.render import render as render_template

__all__ = ["AUDIENCES", "audiences_for", "describe_impact", "human_duration", "render"]


def render(audience: str, facts: dict[str, Any]) -> str:
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    return render_template(f"comms/{audience}.md.j2", **facts).strip() + "\n"


def describe_impact(sli: dict[str, Any] | None) -> str:
    if not sli or not sli.get("total"):
        return "no requests completing"
    return (f"{sli['success_ratio'] * 100:.1f}% of requests succeed, "
            f"p99 latency {sli['p99_ms']:.0f} ms")


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
