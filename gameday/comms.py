"""Status updates for three audiences, rendered with Jinja2 from incident facts.

Internal (responders and stakeholders), executive (impact and who leads), customer
(plain words, no internals). Each posted update is a ``comms.posted`` event and a
file under ``comms/`` in the run directory.
"""

from __future__ import annotations

from functools import cache
from typing import Any

AUDIENCES = ("internal", "executive", "customer")


@cache
def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(loader=PackageLoader("gameday", "templates/comms"),
                       undefined=StrictUndefined, keep_trailing_newline=True,
                       autoescape=False)


def audiences_for(severity: str) -> tuple[str, ...]:
    """SEV-1/2 tell executives and customers too; SEV-3/4 stay internal."""
    return AUDIENCES if severity in ("SEV-1", "SEV-2") else ("internal",)


def render(audience: str, facts: dict[str, Any]) -> str:
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    return _env().get_template(f"{audience}.md.j2").render(**facts).strip() + "\n"


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
