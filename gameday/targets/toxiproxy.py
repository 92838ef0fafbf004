"""A team's own Toxiproxy, through its HTTP API: the one client the faults
(``gameday.activities.toxiproxy``) and the preflight use."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from gameday.core.errors import GamedayError

TIMEOUT_S = 10.0
GONE = object()  # what a DELETE of something that is not there answers
# Toxiproxy's 404s say what it did not find: "toxic not found", "proxy not found"
FOUND_NOT = {"toxics": "toxic not found", "proxies": "proxy not found"}


def toxics_path(proxy: str, toxic: str | None = None) -> str:
    """``/proxies/P/toxics[/T]``, each name one path segment whatever it holds (a ``/``
    or ``..`` in a name never reaches another of Toxiproxy's resources)."""
    path = f"/proxies/{quote(str(proxy), safe='')}/toxics"
    return path if toxic is None else f"{path}/{quote(str(toxic), safe='')}"


def _gone(path: str, answer: bytes) -> bool:
    """Whether Toxiproxy's 404 to a DELETE of ``path`` says that very thing is not there,
    or the proxy that held it (``/proxies/P/toxics/T``: toxic T, or proxy P with every
    toxic it had: a Toxiproxy restarted since the fault keeps neither). A game day's
    rollback names the fault's own proxy (``activities.faults``' ``acts_on``)."""
    try:
        said = json.loads(answer)
    except ValueError:
        return False
    kinds = path.rstrip("/").split("/")[1::2]  # proxies, toxics: what each name is
    return isinstance(said, dict) and said.get("error") in {FOUND_NOT[k] for k in kinds
                                                             if k in FOUND_NOT}


def call(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """``method path`` on the API at ``api``: the answer's JSON (None when empty,
    ``GONE`` for a DELETE of what Toxiproxy says is not there, not what holds it); a
    GamedayError otherwise."""
    request = urllib.request.Request(api.rstrip("/") + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as exc:
        answer = exc.read()[:2000]
        if method == "DELETE" and exc.code == 404 and _gone(path, answer):
            return GONE
        raise GamedayError(f"toxiproxy {method} {path}: {exc.code} "
                           f"{answer[:200].decode(errors='replace')}") from None
    except OSError as exc:
        raise GamedayError(f"toxiproxy at {api} unreachable: {exc}") from None
    return json.loads(raw) if raw else None


def toxics(api: str, proxy: str) -> list[dict[str, Any]]:
    return list(call(api, "GET", toxics_path(proxy)) or [])
