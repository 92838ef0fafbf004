"""The intake's routing: ``routing.route`` for each alert, its answer kept while the
runbooks on disk stay as they are (``Routes``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gameday.core import clock
from gameday.core.errors import GamedayError
from gameday.runbooks.dry_run import watched
from gameday.runbooks.routing import Route, route
from gameday.runbooks.runbook import Dirs, Runbook, discover, runbook_files
from gameday.runs.alerts import AlertInstance

# A file changed this recently may change again within the same timestamp (the kernel
# stamps files from a clock that ticks every few milliseconds): it is read, not trusted.
RECENT_NS = 2_000_000_000
Signature = tuple[tuple[str, int, int, int], ...]


class Routes:
    """``routing.route`` for the intake, each answer kept while the runbooks stay as
    they are (``check``, once a batch). The runbook an alert leads to depends on its
    name and ``runbook_url`` only, and its parameters on the labels that runbook reads
    (``Runbook.from_labels``): alerts that agree on those get the same answer, without
    the runbook files being read again for each of them."""

    MAX = 4096  # answers kept; past that, forgotten all at once

    def __init__(self, dirs: Dirs) -> None:
        self.dirs = dirs
        self._books: list[Runbook] | None = None
        self._answers: dict[tuple[Any, ...], Route] = {}
        self._seen: Signature | None = None

    def check(self) -> None:
        """Read the runbooks as they are now, unless no runbook file was added, removed,
        replaced or written since the last check that found none of them written in
        the two seconds before it (the files' names, inodes, sizes and modification
        times).
        ``discover`` hands back the very same objects while a file's bytes stay the
        same: any other object (a file changed, added or removed; another directory)
        forgets every answer. Runbooks that do not load are routed alert by alert, as
        ``route`` reports them."""
        if len(self._answers) > self.MAX:
            self._answers.clear()
        included = [p for book in self._books or () for p in watched(book.path, book.includes)]
        seen, settled = _signature(self.dirs, included), clock.epoch_ns() - RECENT_NS
        if seen is not None and seen == self._seen:
            return
        # Trusted from the next check on only if no file was written lately: a file
        # written again within the same tick would look the same.
        self._seen = seen if seen is not None and \
            all(mtime < settled for _, _, _, mtime in seen) else None
        self._read()

    def _read(self) -> None:
        try:
            books: list[Runbook] | None = discover(self.dirs)
        except GamedayError:
            books = None
        same = (books is not None and self._books is not None and len(books) == len(self._books)
                and all(a is b for a, b in zip(books, self._books, strict=True)))
        if not same:
            self._answers.clear()
        self._books = books  # held, so that no object's identity is reused meanwhile

    def route(self, alert: AlertInstance) -> Route:
        if self._books is None:
            return route(alert.name, alert.labels, alert.annotations, dirs=self.dirs)
        link = alert.annotations.get("runbook_url")
        first = self._answers.get((alert.name, link))
        if first is None:
            first = route(alert.name, alert.labels, alert.annotations, dirs=self.dirs)
            self._answers[(alert.name, link)] = first
        if first.runbook is None:
            return first
        key = (alert.name, link, tuple(sorted(first.runbook.from_labels(alert.labels).items())))
        found = self._answers.get(key)
        if found is None:
            found = route(alert.name, alert.labels, alert.annotations, dirs=self.dirs)
            self._answers[key] = found
        return found


def _signature(dirs: Dirs, included: Sequence[Path] = ()) -> Signature | None:
    """What the runbook files, and the task files they include, are on disk without
    reading them; None if that cannot be told (a directory or a file that cannot be
    listed or looked at)."""
    try:
        files = [*runbook_files(dirs), *included]
        stats = [(str(path), os.stat(path)) for path in files]
    except (OSError, GamedayError):
        return None
    return tuple((path, st.st_ino, st.st_size, st.st_mtime_ns) for path, st in stats)
