"""Terminal output: a game day's progress and live runbook output, with rich."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape

from gameday.core.events import Entry, Kind
from gameday.core.sentences import describe
from gameday.store import Event

# Keyed by str: Event.kind is a plain str read back from the store.
STYLE: dict[str, str] = {
    Kind.FAULT_INJECTED: "bold red", Kind.IMPACT_STARTED: "red",
    Kind.ALERT_FIRED: "bold yellow", Kind.INCIDENT_DECLARED: "bold magenta",
    Kind.SEVERITY_CHANGED: "bold magenta", Kind.INCIDENT_ESCALATED: "bold magenta",
    Kind.MITIGATED: "bold green", Kind.INCIDENT_RESOLVED: "bold green",
    Kind.RUNBOOK_FINISHED: "cyan", Kind.RUNBOOK_STARTED: "cyan",
    Kind.FAULT_ROLLED_BACK: "green"}


class Progress:
    def __init__(self, quiet: bool = False):
        self.console = Console(stderr=quiet, highlight=False, soft_wrap=True)
        self.t0 = time.monotonic_ns()

    def _at(self, ns: int | None = None) -> str:
        return f"{((ns or time.monotonic_ns()) - self.t0) / 1e9:7.2f}s"

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{self._at()}[/]  {escape(text)}")

    def event(self, e: Event) -> None:
        style = STYLE.get(e.kind, "")
        text = escape(describe(e.kind, e.actor, e.data))
        kind = f"[{style}]{e.kind:22}[/]" if style else f"{e.kind:22}"
        self.console.print(f"[dim]{self._at(e.at_monotonic_ns)}[/]  {kind} {text}")
        if e.kind == Kind.RUNBOOK_TASK and e.data.get("stdout"):
            for line in e.data["stdout"].splitlines()[-12:]:
                self.console.print(f"[dim]{'':33}| {escape(line)}[/]")

    def finish(self, result: Any, summary: dict[str, Any]) -> dict[str, Any]:
        c = self.console
        c.print()
        c.print(f"[bold]incident #{result.incident_id}: {result.status}[/]"
                f"  (experiment: {result.experiment_status})")
        if summary.get("score") is not None:
            c.print(f"[bold]score {summary['score']}/100[/]")
            for name, value in (summary.get("metrics") or {}).items():
                if name in ("TTD", "TTA", "TTE", "TTFC", "TTM", "TTR"):
                    c.print(f"  {name:5} {'-' if value is None else f'{value:.2f}s'}")
        if summary.get("review"):
            c.print(f"review: {summary['review']}")
        c.print(f"run directory: {result.run_dir}")
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
