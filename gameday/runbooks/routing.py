"""From an alert to the runbook that contains it, with its parameters checked: the one
path used by game days, ``gameday serve`` and ``gameday validate``.

The runbook is the one the alert's ``runbook_url`` annotation names
(``…/runbooks/NAME?param=value``), else the runbook whose metadata lists the alert's
name; a scenario may name one outright. Parameters come from the alert's labels (each
parameter takes the label of its name, or the one its ``label:`` names), then the
URL's query, then explicit overrides, and are validated against the runbook's schema
before anything runs. A query parameter the runbook does not declare is refused, not
dropped: a typo in a ``runbook_url`` is a broken link, and ``gameday validate`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from gameday.core.errors import GamedayError, ValidationError
from gameday.runbooks.runbook import Dirs, Runbook, discover, find, validate_params


@dataclass(frozen=True)
class Route:
    """Where an alert leads: a runbook (or none), the raw values for its parameters,
    and either the validated extra vars or why they were refused."""

    alert: str
    runbook: Runbook | None
    raw: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] | None = None
    error: str | None = None
    refused: str | None = None  # the parameter whose value was refused, if one was

    @property
    def ok(self) -> bool:
        return self.runbook is not None and self.error is None

    def link(self, incident_id: int | None = None) -> str | None:
        """The one-click page for this runbook, parameters pre-filled."""
        if self.runbook is None:
            return None
        return runbook_link(self.runbook.name, self.raw, incident_id)


def runbook_link(name: str, params: Mapping[str, str], incident_id: int | None = None) -> str:
    query = dict(params) | ({"incident": str(incident_id)} if incident_id else {})
    return f"/runbooks/{name}" + (f"?{urlencode(query)}" if query else "")


def runbook_in_link(url: str) -> tuple[str, dict[str, str]] | None:
    """The runbook a link names and the parameters its query carries, when it is one of
    gameday's one-click pages (a URL or path ending in ``/runbooks/NAME``); None for any
    other link (a wiki page). A ValidationError for what is not a URL at all."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced [ in the host, and the like
        raise ValidationError(f"runbook_url is not a URL: {exc}",
                              field="annotations.runbook_url") from None
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) >= 2 and segments[-2] == "runbooks":
        return segments[-1], dict(parse_qsl(parts.query))
    return None


def linked_runbook(alert_name: str, annotations: Mapping[str, str],
                   dirs: Dirs = None) -> tuple[Runbook | None, dict[str, str]]:
    """The runbook an alert links to, and the parameters its ``runbook_url`` carries.
    Raises NotFound when the URL names a runbook that does not exist. A live alert's
    link elsewhere (a wiki) leaves the runbook to its name; a scenario's must be one of
    ours (``scenario``: ``alert.annotations.runbook_url``)."""
    url = annotations.get("runbook_url")
    linked = runbook_in_link(url) if url else None
    if linked:
        return find(linked[0], dirs), linked[1]
    for rb in discover(dirs):
        if alert_name in rb.alerts:
            return rb, {}
    return None, {}


def route(alert_name: str, labels: Mapping[str, str], annotations: Mapping[str, str], *,
          dirs: Dirs = None, runbook: str | None = None,
          overrides: Mapping[str, str] | None = None) -> Route:
    """Find the alert's runbook and check its parameters. Never raises for a bad
    alert: a missing runbook or refused values come back in the ``Route``."""
    book: Runbook | None
    query: dict[str, str]
    try:
        if runbook:
            book, query = find(runbook, dirs), {}
        else:
            book, query = linked_runbook(alert_name, annotations, dirs)
    except GamedayError as exc:
        return Route(alert_name, None, error=str(exc))
    if book is None:
        return Route(alert_name, None)
    raw = book.from_labels(dict(labels)) | query | dict(overrides or {})
    try:
        params = validate_params(book, raw)
    except ValidationError as exc:
        return Route(alert_name, book, raw, error=str(exc), refused=exc.field)
    return Route(alert_name, book, raw, params)


def rule_files(dirs: Sequence[Path] | None = None) -> list[Path]:
    """``*.rules.yml`` from the project's alerting directory and the built-in sandbox
    rules; a project file of the same name replaces the built-in one."""
    from gameday.core.settings import current, first_found

    found = first_found(current().rules_dirs if dirs is None else dirs, "*.rules.yml")
    return [found[name].resolve() for name in sorted(found)]
