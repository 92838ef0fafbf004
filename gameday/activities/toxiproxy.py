"""Network faults through Toxiproxy (a team's own proxy on its service's dependency path).

Use them from an experiment with a ``python`` provider, module
``gameday.activities.toxiproxy``: ``add_toxic`` puts a toxic (``latency``, ``timeout``,
``reset_peer``, ``bandwidth``, ``slow_close``, ``limit_data``, ``slicer``) on a proxy
through Toxiproxy's HTTP API, ``remove_toxic`` takes it away again (and is a rollback that
does not fail when a runbook got there first, or a restarted Toxiproxy lost the proxy and
its toxics with it; only when Toxiproxy cannot be reached). Both act on the toxic by its
name on the proxy at
the API (``acts_on``): a rollback that removes another toxic is refused before anything
runs. Only proxies on the project's allowlist
are touched (``[safety]`` in ``gameday.toml``: ``toxiproxy`` API addresses and
``proxies``), checked before the request is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gameday.activities.faults import fault

__all__ = ["add_toxic", "remove_toxic", "toxics"]

TYPES = ("latency", "timeout", "reset_peer", "bandwidth", "slow_close", "limit_data",
         "slicer")
TIMEOUT_S = 10.0


def _call(api: str, method: str, path: str, body: dict[str, Any] | None = None,
          proxy: str | None = None) -> Any:
    from chaoslib.exceptions import ActivityFailed

    from gameday.core import safety
    from gameday.core.errors import GamedayError, ValidationError
    from gameday.targets import toxiproxy

    try:  # once more, as it acts: nothing outside the allowlist
        safety.allowed("toxiproxy", api, field="api")
        if proxy is not None:
            safety.allowed("proxies", proxy, field="proxy")
        return toxiproxy.call(api, method, path, body)
    except (ValidationError, GamedayError) as exc:
        raise ActivityFailed(str(exc)) from None


TOUCHES = {"api": "toxiproxy", "proxy": "proxies"}


def toxic_name(name: str | None, type: str | None) -> str:
    """The toxic's name: ``name``, else ``gameday-TYPE`` (what add_toxic calls it)."""
    return name or f"gameday-{type}"


def _toxic(arguments: Mapping[str, Any]) -> list[tuple[tuple[str, Any], ...]]:
    """What a toxic activity acts on: the toxic, by name, on its proxy, at its API."""
    return [(("name", toxic_name(arguments.get("name"), arguments.get("type"))),
             ("proxy", arguments.get("proxy")), ("api", str(arguments.get("api")).rstrip("/")))]


@fault(local=True, rollback=("remove_toxic",), touches=TOUCHES, acts_on=_toxic,
       factor="A dependency on the request path has no timeout budget or fallback: when it "
              "slows down or drops connections, every request waits on it.",
       action="Give the dependency call a timeout below the latency objective and a "
              "fallback")
def add_toxic(proxy: str, type: str, attributes: dict[str, Any] | None = None,
              name: str | None = None, stream: str = "downstream", toxicity: float = 1.0,
              api: str = "http://127.0.0.1:8474") -> dict[str, Any]:
    """Add toxic ``name`` (default ``gameday-TYPE``) of ``type`` to ``proxy``."""
    from chaoslib.exceptions import ActivityFailed

    if type not in TYPES:
        raise ActivityFailed(f"unknown toxic type {type!r} (known: {', '.join(TYPES)})")
    body = {"name": toxic_name(name, type), "type": type, "stream": stream,
            "toxicity": toxicity, "attributes": dict(attributes or {})}
    from gameday.targets.toxiproxy import toxics_path

    return dict(_call(api, "POST", toxics_path(proxy), body, proxy=proxy))


@fault(local=True, touches=TOUCHES, acts_on=_toxic)
def remove_toxic(proxy: str, name: str | None = None, type: str | None = None,
                 api: str = "http://127.0.0.1:8474") -> dict[str, Any]:
    """Remove toxic ``name`` (or ``gameday-TYPE``) from ``proxy``; a toxic already gone
    is not an error, nor is its proxy gone (every toxic on it went with it: a restarted
    Toxiproxy); a Toxiproxy that does not answer is."""
    toxic = toxic_name(name, type)
    from gameday.targets.toxiproxy import GONE, toxics_path

    answer = _call(api, "DELETE", toxics_path(proxy, toxic), proxy=proxy)
    return {"proxy": proxy, "toxic": toxic, "removed": answer is not GONE}


@fault(local=True, probe=True, touches=TOUCHES)
def toxics(proxy: str, api: str = "http://127.0.0.1:8474") -> list[dict[str, Any]]:
    """The toxics on ``proxy`` now."""
    from gameday.targets.toxiproxy import toxics_path

    return list(_call(api, "GET", toxics_path(proxy), proxy=proxy) or [])
