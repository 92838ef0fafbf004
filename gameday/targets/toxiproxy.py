"""A team's own Toxiproxy, through its HTTP API: the one client the faults
(``gameday.activities.toxiproxy``) and the preflight use."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from gameday.core.errors import GamedayError

TIMEOUT_S = 10.0
GONE = object()  # what a DELETE of something that is not there answers


def call(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """``method path`` on the API at ``api``: the answer's JSON (None when empty,
    ``GONE`` for a DELETE of what is not there); a GamedayError otherwise."""
    request = urllib.request.Request(api.rstrip("/") + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as exc:
        if method == "DELETE" and exc.code == 404:
            return GONE
        raise GamedayError(f"toxiproxy {method} {path}: {exc.code} "
                           f"{exc.read()[:200].decode(errors='replace')}") from None
    except OSError as exc:
        raise GamedayError(f"toxiproxy at {api} unreachable: {exc}") from None
    return json.loads(raw) if raw else None


def toxics(api: str, proxy: str) -> list[dict[str, Any]]:
    return list(call(api, "GET", f"/proxies/{proxy}/toxics") or [])
