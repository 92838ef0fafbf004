"""Terminal output: a game day's progress and live runbook output, with rich."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

from gameday.core.events import Entry, Kind
from gameday.core.sentences import describe
from gameday.game import interrupts
from gameday.store import Event

# Keyed by str: Event.kind is a plain str read back from the store.
STYLE: dict[str, str] = {
    Kind.FAULT_INJECTED: "bold red", Kind.IMPACT_STARTED: "red",
    Kind.ALERT_FIRED: "bold yellow", Kind.INCIDENT_DECLARED: "bold magenta",
    Kind.SEVERITY_CHANGED: "bold magenta", Kind.INCIDENT_ESCALATED: "bold magenta",
    Kind.MITIGATED: "bold green", Kind.INCIDENT_RESOLVED: "bold green",
    Kind.RUNBOOK_FINISHED: "cyan", Kind.RUNBOOK_STARTED: "cyan",
    Kind.FAULT_ROLLED_BACK: "green"}


def reader_went_away(exc: BaseException) -> bool:
    """Whether printing failed because whoever read the output went away (a broken pipe,
    which rich turns into ``SystemExit(1)``)."""
    return isinstance(exc, BrokenPipeError) or isinstance(exc.__context__, BrokenPipeError)


def write_nowhere(stream: IO[str]) -> None:
    """What is written to ``stream`` from now on goes to /dev/null, rather than failing
    again (the next line, a summary, the interpreter's last flush)."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (a test's runner)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


class Progress:
    def __init__(self, quiet: bool = False):
        self.console = Console(stderr=quiet, highlight=False, soft_wrap=True)
        # The game day's first event: lines count from it, as its review's timeline does
        # (what is said before it has no time).
        self.t0: int | None = None
        self._gone = False

    def _print(self, *args: Any, stop: bool = True) -> None:
        """Print, from any thread; a reader that went away (a broken pipe, which rich
        turns into ``SystemExit(1)``) stops the game day as a signal would
        (``interrupts.reader_gone``), and what follows goes nowhere: the clean-up that
        undoes the fault never fails on the output it reports."""
        if self._gone:
            return
        try:
            self.console.print(*args)
        except (BrokenPipeError, SystemExit) as exc:
            if not reader_went_away(exc):
                raise
            self._gone = True
            write_nowhere(self.console.file)
            if stop:  # the game day's own summary, once it is over, stops nothing
                interrupts.reader_gone()

    def _at(self, ns: int | None = None) -> str:
        if self.t0 is None:
            return " " * 8
        return f"{((ns or time.monotonic_ns()) - self.t0) / 1e9:7.2f}s"

    def say(self, text: str) -> None:
        self._print(f"[dim]{self._at()}[/]  {escape(text)}")

    def event(self, e: Event) -> None:
        if self.t0 is None:
            self.t0 = e.at_monotonic_ns
        style = STYLE.get(e.kind, "")
        text = escape(describe(e.kind, e.actor, e.data))
        kind = f"[{style}]{e.kind:22}[/]" if style else f"{e.kind:22}"
        self._print(f"[dim]{self._at(e.at_monotonic_ns)}[/]  {kind} {text}")
        if e.kind == Kind.RUNBOOK_TASK and e.data.get("stdout"):
            for line in e.data["stdout"].splitlines()[-12:]:
                self._print(f"[dim]{'':33}| {escape(line)}[/]")

    def finish(self, result: Any, summary: dict[str, Any]) -> dict[str, Any]:
        lines = ["", f"[bold]incident #{result.incident_id}: {result.status}[/]"
                     f"  (experiment: {result.experiment_status})"]
        if summary.get("score") is not None:
            lines.append(f"[bold]score {summary['score']}/100[/]")
            for name, value in (summary.get("metrics") or {}).items():
                if name in ("TTD", "TTA", "TTE", "TTFC", "TTM", "TTR"):
                    lines.append(f"  {name:5} {'-' if value is None else f'{value:.2f}s'}")
        if summary.get("review"):
            lines.append(f"review: {summary['review']}")
        lines.append(f"run directory: {result.run_dir}")
        for line in lines:  # the game day is over: a reader gone now stops nothing
            self._print(line, stop=False)
        return summary


def runbook_printer() -> Callable[[Entry], None]:
    console = Console(highlight=False, soft_wrap=True)

    def show(entry: Entry) -> None:
        kind, data = entry.kind, entry.data
        console.print(f"[cyan]{kind:18}[/] {escape(describe(kind, '', data))}")
        if kind == Kind.RUNBOOK_TASK and data.get("stdout"):
            for line in data["stdout"].splitlines():
                console.print(f"[dim]{'':18} | {escape(line)}[/]")
        if kind == Kind.RUNBOOK_TASK and data.get("stderr"):
            for line in data["stderr"].splitlines():
                console.print(f"[red]{'':18} ! {escape(line)}[/]")

    return show
