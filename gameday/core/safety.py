"""The blast radius: what a game day may touch of a system gameday does not own.

A team's own service is touched only where the project's allowlist (``[safety]`` in
``gameday.toml``) says: its entry points and the APIs faults call (``urls``, prefixes),
its Toxiproxy APIs and proxies (``toxiproxy``, ``proxies``), its hosts (``hosts``), its
clusters' kubeconfig contexts and the namespaces in them (``contexts``, ``namespaces``). A
scenario cannot widen it. ``gameday validate`` checks a scenario and its experiment
against it, and ``gameday run`` again before anything is injected (exit 2, naming the
file and field); a fault's own activity checks once more before it acts.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from gameday.core.errors import ValidationError
from gameday.core.settings import Safety, current

LISTS = ("urls", "toxiproxy", "proxies", "hosts", "contexts", "namespaces")


def _normal_url(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower(), parts.path or "/"


def _within(value: str, allowed: tuple[str, ...], kind: str) -> bool:
    if kind not in ("urls", "toxiproxy"):
        return value in allowed
    try:
        scheme, netloc, path = _normal_url(value)
        prefixes = [_normal_url(a) for a in allowed]
    except ValueError:
        return False
    if {".", ".."} & set(unquote(path).split("/")):  # a client would leave the prefix:
        return False  # ``/v1/faults/../../admin`` is sent as ``/admin``
    for p_scheme, p_netloc, p_path in prefixes:
        if (scheme, netloc) != (p_scheme, p_netloc):
            continue
        if kind == "toxiproxy":  # an API is named by its address, whatever the path
            return True
        base = p_path.rstrip("/")
        if path.rstrip("/") == base or path.startswith(base + "/"):
            return True
    return False


def allowed(kind: str, value: str, *, field: str, file: str | None = None,
            safety: Safety | None = None) -> str:
    """``value`` if the allowlist's ``kind`` list admits it; else a ``ValidationError``
    naming ``field`` and what the allowlist holds."""
    safety = safety or current().safety
    if kind not in LISTS:
        raise ValueError(f"no allowlist {kind!r}")
    permitted: tuple[str, ...] = getattr(safety, kind)
    if not safety.declared:
        raise ValidationError(
            f"{value!r} is outside gameday's own worlds, and this project has no allowlist: "
            "add a [safety] table to gameday.toml naming what game days may touch",
            file=file, field=field)
    if not isinstance(value, str) or not _within(value, permitted, kind):
        shown = ", ".join(permitted) or "nothing"
        raise ValidationError(
            f"{value!r} is outside the project's allowlist ([safety] {kind} in "
            f"gameday.toml: {shown})", file=file, field=field)
    return value
