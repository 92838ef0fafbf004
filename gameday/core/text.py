"""What a JSON body may carry into the store.

JSON can spell text no store keeps: a lone surrogate (``"\\udfff"``), which SQLite
cannot encode and no page can render, and a NUL (``"\\u0000"``), which PostgreSQL
refuses; and whole numbers past the 64 bits an id or a count is stored in. Taken in,
the one fails the write (a 500) or, worse, a later read of every page that shows it.
``unkept`` names the first such value of a parsed body, for a ValidationError (422)
before anything is recorded.

``suspect`` looks at the raw bytes first, so that a webhook's body is walked only when
it spells a NUL or a surrogate at all (an emoji escaped as a surrogate pair is text,
found fine by the walk).
"""

from __future__ import annotations

import re
from typing import Any

_SPELLED = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})|\xed[\xa0-\xbf]")
LARGEST = 2**63 - 1  # a whole number the store keeps (SQLite's and PostgreSQL's BIGINT)
WHY = "must be text without a NUL or a lone surrogate (\\u0000, \\ud800-\\udfff)"


def suspect(body: bytes) -> bool:
    """Whether ``body`` (UTF-8) spells a NUL or a surrogate anywhere (escaped or raw)."""
    if b"\\u" not in body and b"\xed" not in body:  # most bodies: no search at all
        return False
    return _SPELLED.search(body) is not None


def bad_text(value: str) -> bool:
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unkept(value: Any, field: str = "") -> tuple[str, str] | None:
    """The first text or number in ``value`` (parsed JSON) the store cannot keep: its
    field (``alerts[0].labels.service``; ``body`` for the whole) and why; else None."""
    if isinstance(value, str):
        return (field or "body", WHY) if bad_text(value) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -LARGEST <= value <= LARGEST else \
            (field or "body", f"must be a number from {-LARGEST} to {LARGEST}")
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{field}.{key}" if field else str(key)
            if bad_text(key):
                return (field or "body", f"has a key that {WHY}")
            found = unkept(item, name)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = unkept(item, f"{field}[{i}]")
            if found:
                return found
    return None
