"""Blameless language: the sentences that put the cause on a person rather than a
system or process (checked in notes as people type them, and in the review)."""

from __future__ import annotations

import re

BLAME = re.compile(
    r"\b(human error|operator error|careless(ly|ness)?|neglig\w+|forgot|should have (known|"
    r"noticed|caught)|fault of|(?:to )?blame[sd]?|screw(ed)? up|incompeten\w+|sloppy|"
    r"didn'?t bother|failed to notice|mistake by)\b", re.IGNORECASE)


def blame_warnings(texts: dict[str, str]) -> list[dict[str, str]]:
    """Sentences that put the cause on a person rather than a system or process."""
    found = []
    for source, text in texts.items():
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", text or ""):
            match = BLAME.search(sentence)
            if match:
                found.append({"source": source, "sentence": sentence.strip(),
                              "phrase": match.group(0)})
    return found
