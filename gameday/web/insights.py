"""Insights for people (``/insights``) and for Prometheus (``/metrics``).

``/insights?since=30d&service=…&team=…&scenario=…`` is the report of ``gameday
report`` as a page: what needs attention first, then the trends as server-drawn SVG
(no script), tables with p50/p90 and n, runbook freshness and action items.
``/metrics`` is the same report in Prometheus' text format; it needs the bearer token
(Prometheus: ``authorization: {credentials_file: ...}``) and answers 401, not the
sign-in page, without it: every failure there is a line of plain text
(``exceptions``), never a page.

A report reads the whole store, so one is kept for ``CACHE_S`` per scope: a scrape
every 15 s and a person reloading the page cost one report between them.
"""

from __future__ import annotations

import asyncio
import threading
import time

from starlette.requests import Request
from starlette.responses import Response

from gameday.core import clock
from gameday.core.errors import ValidationError
from gameday.report import insights
from gameday.web.context import caller, page, shared

CACHE_S = 10.0
_cache: dict[tuple[object, ...], tuple[float, insights.Report]] = {}
_lock = threading.Lock()


def _build(request: Request, scope: insights.Scope) -> insights.Report:
    """The report for ``scope``, at most ``CACHE_S`` old (built in a worker thread)."""
    from gameday.core.settings import current
    from gameday.runbooks.routing import rule_files
    from gameday.runbooks.runbook import discover

    state = shared(request)
    key = (id(state.store), scope)
    with _lock:
        hit = _cache.get(key)
        if hit and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
    rules = rule_files(current().rules_dirs)
    report = insights.build(state.store, scope, runbooks=discover(state.runbook_dir),
                            rule_files=rules, policy=state.settings.automation)
    with _lock:
        now = time.monotonic()
        for stale in [k for k, (at, _) in _cache.items() if now - at >= CACHE_S]:
            del _cache[stale]  # a report holds every incident in scope: keep few
        _cache[key] = (now, report)
    return report


def _scope(request: Request) -> tuple[insights.Scope, dict[str, str]]:
    q = request.query_params
    form = {k: q.get(k, "").strip() for k in ("since", "service", "team", "scenario")}
    since = insights.parse_since(form["since"]) if form["since"] else None
    if since is not None:  # to the minute, so the cache can answer a reload
        since = since.replace(second=0, microsecond=0)
    return insights.Scope(since=since, service=form["service"] or None,
                          team=form["team"] or None,
                          scenario=form["scenario"] or None), form


async def insights_page(request: Request) -> Response:
    from gameday.report.page import context

    who = caller(request)
    error = None
    try:
        scope, form = _scope(request)
    except ValidationError as exc:
        error = str(exc)
        scope, form = insights.Scope(), {k: "" for k in ("since", "service", "team",
                                                        "scenario")}
    report = await asyncio.to_thread(_build, request, scope)
    return page("insights.html", who=who, form=form, error=error, **context(report))


async def metrics(request: Request) -> Response:
    from gameday.report.metrics import CONTENT_TYPE, exposition

    caller(request)
    report = await asyncio.to_thread(_build, request, insights.Scope())
    store = shared(request).store
    body = await asyncio.to_thread(
        lambda: exposition(report, insights.connection(store)))
    return Response(body, media_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store",
                             "Last-Modified": clock.now().strftime(
                                 "%a, %d %b %Y %H:%M:%S GMT")})
