"""A team's own Alertmanager, asked through its API (v2): which of its alerts are active."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from gameday.core.errors import GamedayError

TIMEOUT_S = 5.0


def active(alertmanager: str, matchers: dict[str, str]) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds active (not silenced or inhibited) that match."""
    return _alerts(alertmanager, matchers, active="true", silenced="false",
                   inhibited="false")


def held(alertmanager: str, matchers: dict[str, str], *,
         timeout_s: float = TIMEOUT_S) -> list[dict[str, Any]]:
    """Every alert Alertmanager holds that matches, silenced and inhibited ones too: each
    says why in its ``status`` (``state``: active, suppressed or unprocessed;
    ``silencedBy`` and ``inhibitedBy``: the silences' ids, the inhibiting alerts')."""
    return _alerts(alertmanager, matchers, timeout_s, active="true", silenced="true",
                   inhibited="true", unprocessed="true")


def _alerts(alertmanager: str, matchers: dict[str, str], timeout_s: float = TIMEOUT_S,
            **only: str) -> list[dict[str, Any]]:
    query = [*only.items(), *(("filter", f'{k}="{v}"') for k, v in matchers.items())]
    url = alertmanager.rstrip("/") + "/api/v2/alerts?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            found = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        raise GamedayError(f"Alertmanager at {alertmanager} unreachable: {exc}") from None
    return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []
