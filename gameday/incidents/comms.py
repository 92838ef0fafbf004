"""Status updates for three audiences, rendered from incident facts.

Internal (responders and stakeholders), executive (impact and who leads), customer
(plain words, no internals). Who hears about an incident of which severity is the
policy's (``policy.audiences_for``). Each posted update is a ``comms.posted`` event
and a file under ``comms/`` in the run directory.
"""

from __future__ import annotations

from typing import Any

from gameday.core.policy import AUDIENCES, audiences_for
from gameday.core.render import render as render_template
from gameday.store.rows import IncidentRow

__all__ = ["AUDIENCES", "audiences_for", "describe_impact", "facts", "human_duration",
           "missing_fields", "render"]

# What every update to an audience must say, checked on updates people write.
REQUIRED = {"internal": ("impact", "next update"), "executive": ("impact", "next update"),
            "customer": ("impact",)}


def render(audience: str, facts: dict[str, Any]) -> str:
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    return render_template(f"comms/{audience}.md.j2", **facts).strip() + "\n"


def facts(row: IncidentRow, *, roles: dict[str, str], sli: dict[str, Any] | None,
          runbook: tuple[str, str] | None, every: float | None, started_ago: float,
          customer_summary: str, service: str | None = None) -> dict[str, Any]:
    """What the templates fill in, from the incident's row and what is known now."""
    return {"id": row["id"], "title": row["title"], "severity": row["severity"] or "SEV-4",
            "state": row["state"], "service": service or row.get("service"),
            "impact": describe_impact(sli), "roles": roles,
            "runbook": runbook[0] if runbook else None,
            "runbook_status": runbook[1] if runbook else None,
            "next_update": human_duration(every or 1800),
            "started_ago": human_duration(started_ago), "customer_summary": customer_summary}


def missing_fields(audience: str, text: str) -> list[str]:
    """What an update written by a person leaves out (``REQUIRED``)."""
    low = text.lower()
    checks = {"impact": any(w in low for w in ("impact", "%", "fail", "error", "slow",
                                               "unavailable", "degraded")),
              "next update": "next update" in low}
    return [name for name in REQUIRED.get(audience, ()) if not checks[name]]


def describe_impact(sli: dict[str, Any] | None) -> str:
    if not sli or not sli.get("total"):
        return "no requests completing"
    ratio, p99 = sli.get("success_ratio"), sli.get("p99_ms")
    # a Prometheus reading with no number (NaN: a ratio of no requests) has none to show
    return (f"{ratio * 100:.1f}% of requests succeed" if ratio is not None
            else "no success ratio read") + (f", p99 latency {p99:.0f} ms" if p99 is not None
                                            else ", no p99 latency read")


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
