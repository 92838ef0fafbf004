"""Terminal output: a game day's progress and live runbook output, with rich."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from gameday.store import Event

STYLE = {"fault.injected": "bold red", "impact.started": "red", "alert.fired": "bold yellow",
         "incident.declared": "bold magenta", "severity.changed": "bold magenta",
         "incident.escalated": "bold magenta", "mitigated": "bold green",
         "incident.resolved": "bold green", "runbook.finished": "cyan",
         "runbook.started": "cyan", "fault.rolled_back": "green"}


def describe(kind: str, actor: str, data: dict[str, Any]) -> str:
    d = data
    match kind:
        case "fault.injected" | "fault.rolled_back" | "chaos.action_failed":
            return f"{d.get('activity')} ({d.get('status')})"
        case "impact.started":
            return f"first bad request: status {d.get('status')}, {d.get('latency_ms')} ms"
        case "alert.fired":
            sli = d.get("sli", {})
            ratio = sli.get("success_ratio")
            return (f"{d.get('alertname')}: success "
                    f"{'-' if ratio is None else f'{ratio:.1%}'}, "
                    f"p99 {sli.get('p99_ms') or 0:.0f} ms")
        case "incident.declared":
            return f"{d['severity']} ({d.get('model')} model, {d.get('mode')} response)"
        case "page.sent":
            return f"{d['person']} as {d['role'].replace('_', ' ')}: {d['reason']}"
        case "incident.acknowledged":
            return f"by {actor}"
        case "role.assigned":
            return f"{d['role'].replace('_', ' ')}: {d['person']}"
        case "severity.changed":
            return f"{d.get('previous')} -> {d['severity']}: {d.get('reason')}"
        case "comms.posted":
            return f"{d['audience']} update by {actor}"
        case "runbook.started":
            return f"{d['runbook']} {d.get('params')}" + (" --check" if d.get("check") else "")
        case "k8s.event":
            return f"{d.get('type')} {d.get('reason')} {d.get('object')}: {d.get('message')}"
        case "runbook.task":
            return f"{d['status']:8} {d.get('task')}"
        case "runbook.finished":
            return f"{d['runbook']}: {d['status']} (rc {d.get('rc')})"
        case "mitigated":
            return f"SLIs inside the objective; {d.get('bad_requests')} of " \
                   f"{d.get('requests')} requests missed it"
        case "steady_state.checked":
            return f"{d['phase']}: {'met' if d['met'] else 'NOT met'}"
        case _:
            return ", ".join(f"{k}={v}" for k, v in d.items()
                             if isinstance(v, str | int | float | bool))[:120]


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
        if e.kind == "runbook.task" and e.data.get("stdout"):
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


def runbook_printer():
    console = Console(highlight=False, soft_wrap=True)

    def show(kind: str, data: dict[str, Any]) -> None:
        console.print(f"[cyan]{kind:18}[/] {escape(describe(kind, '', data))}")
        if kind == "runbook.task" and data.get("stdout"):
            for line in data["stdout"].splitlines():
                console.print(f"[dim]{'':18} | {escape(line)}[/]")
        if kind == "runbook.task" and data.get("stderr"):
            for line in data["stderr"].splitlines():
                console.print(f"[red]{'':18} ! {escape(line)}[/]")

    return show
