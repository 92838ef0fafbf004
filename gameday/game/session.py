"""A game day as ``gameday run`` runs it, from the first line to the verdict: what crashed
before is recovered, the game day runs, its result is concluded (score, review) and
judged (checks, exit code, the JUnit report).

A game day may run *for* something: a scheduled run (``schedules.scheduler.ScheduledRun``)
or a drill (``drills.master.DrillRun``). That is an ``Occasion``: it may change the
scenario (a drill's people respond), and it hears when the incident opens, if the game
day fails, how it finished, and that it is over, however it ended. The command line
only parses and presents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gameday.core.errors import GamedayError
from gameday.game import interrupts
from gameday.game.recovery import recover
from gameday.game.run import conclude, release_runbook_executor, run_gameday
from gameday.game.ui import Progress
from gameday.game.verdict import INTERRUPTED_EXIT, Verdict, judge, write_junit
from gameday.scenarios.scenario import Scenario
from gameday.store import Store


class Occasion(Protocol):
    kind: str  # the incident's kind: "gameday" or "drill"

    def scenario(self, sc: Scenario) -> Scenario:
        """The scenario as this occasion runs it."""

    def opened(self, incident_id: int, run_dir: Path) -> None:
        """The incident and the run directory exist."""

    def failed(self, error: Exception) -> None:
        """The game day could not run (``GamedayError``)."""

    def finished(self, summary: dict[str, Any], status: str) -> None:
        """It ran: its summary and its verdict's status."""

    def over(self) -> None:
        """However it ended (after ``failed`` or before ``finished``)."""


@dataclass(frozen=True)
class Outcome:
    summary: dict[str, Any]
    verdict: Verdict


def play(sc: Scenario, store: Store, ui: Progress, *, runs_dir: Path,
         alerting: str | None = None, occasion: Occasion | None = None,
         junit: Path | None = None, min_score: int | None = None,
         present: Callable[[Outcome], None] | None = None) -> Outcome:
    """Run ``sc`` to its verdict. A signal during the game day rolls its faults back and
    is judged as one (``verdict.exit_code`` 130 or 143). From the end of the game day on,
    a signal is remembered, not raised, through ``present`` (what the caller shows) and
    after it (``interrupts.settle``: the caller's way out)."""
    on_open: Callable[[int, Path], None] | None = None
    if occasion is not None:
        sc, on_open = occasion.scenario(sc), occasion.opened
    recover(store, say=ui.say)  # game days that crashed before this one
    try:
        result = run_gameday(sc, store, say=ui.say, on_event=ui.event, alerting=alerting,
                             root=runs_dir, on_open=on_open,
                             kind=occasion.kind if occasion else "gameday")
    except GamedayError as exc:
        if occasion is not None:
            occasion.failed(exc)
        raise
    finally:
        if occasion is not None:
            occasion.over()
    with interrupts.shielded():
        summary = ui.finish(result, conclude(result, store))
        signal_code = interrupts.exit_code()
        if result.interrupted and signal_code is None:
            signal_code = INTERRUPTED_EXIT  # the freeze, or chaoslib saw the signal first
        verdict = judge(summary, sc, store.events(result.incident_id),
                        min_score=min_score, signal_code=signal_code)
        summary["verdict"] = verdict.as_dict()
        if junit:
            write_junit(junit, verdict, suite=sc.name, summary=summary)
        if occasion is not None:
            occasion.finished(summary, verdict.status)
        done = Outcome(summary, verdict)
        if present is not None:
            present(done)
        interrupts.settle()  # from here on, a signal can only cut the way out short
    if sc.response.mode == "auto":  # its runbook ran in the warm executor
        release_runbook_executor()
    return done
