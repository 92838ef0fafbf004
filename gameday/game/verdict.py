"""A game day's verdict for CI: named checks, a status, an exit code, a JUnit report.

``judge`` reads a finished game day (its summary, its scenario and its stored timeline)
and answers a gate's questions, one ``Check`` each:

=============================  ===========================================================
steady state before the fault  ``steady_state.reached``, and the experiment's hypothesis
                               (``steady_state.checked``, phase ``before``) was not refuted
steady state after the fault   the experiment did not deviate (hypothesis ``after`` met),
                               no ``recovery.missed``, every rollback succeeded, the
                               incident was resolved, and the target was stopped (no
                               ``gameday.failed`` as the game day ended)
detected within target         TTD, no ``detection.missed``, within the scenario's
                               ``timeouts.detect`` (the policy has no detection target)
acknowledged within target     TTA, within the ``ack`` target when there is one
mitigated within target        TTM, within the ``mitigate`` target when there is one
runbook succeeded              a ``runbook.finished`` ``successful``; none failed, was
                               refused (``runbook.rejected``) or missing (``runbook.missing``)
score >= N                     only with ``min_score``
=============================  ===========================================================

Targets are the scorecard's (``scoring.score``: the final severity's, SEV-4 when none
was declared) and are compared the way the scorecard compares them, so a check fails
exactly where the score card deducts for lateness.

Exit codes:

====  ==================================================================================
0     passed: every check passed
1     failed: the response missed a target, a runbook failed, the score is below the
      minimum, the steady state was never reached before the fault, or the target
      could not be stopped (its lease stays: ``gameday recover`` stops it)
2     (reserved: a usage or validation error, raised before a verdict exists)
3     deviated: the steady state did not come back (the experiment deviated, the SLIs
      did not recover, or a rollback did not succeed); wins over 1
130   interrupted by SIGINT (Ctrl-C, or the freeze pulled during the game day)
143   interrupted by SIGTERM
====  ==================================================================================

An interrupted game day's exit code is ``signal_code`` when given, else ``128 + signal``
from its ``gameday.interrupted`` event, else 130. Its checks that passed stay passed,
a failure already on the record (a target measurably missed, a runbook that failed)
stays failed, and the checks it never got to are skipped.

``record`` judges every game day as it finishes (``game.conclude``) on its scenario's
own checks and puts the verdict on its timeline (``gameday.verdict``), so the report's
pass rate (``insights``) counts hand-run game days as well as scheduled ones.

``junit_xml`` and ``write_junit`` render a verdict as the JUnit XML that Jenkins, GitLab
(``artifacts:reports:junit``) and the GitHub Actions test reporters read: one
``testsuite`` per game day, one ``testcase`` per check.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gameday.core import clock
from gameday.core.errors import ValidationError
from gameday.core.events import UNDONE, Kind, gameday_verdict, in_time_order
from gameday.core.sentences import describe
from gameday.core.states import IncidentState, Outcome, RunStatus
from gameday.game import scoring
from gameday.game.scoring import Metrics, compute_metrics, first, span
from gameday.scenarios.scenario import Scenario, load_scenario
from gameday.store import Store

STEADY_BEFORE = "steady state before the fault"
STEADY_AFTER = "steady state after the fault"
DETECTED = "detected within target"
ACKNOWLEDGED = "acknowledged within target"
MITIGATED = "mitigated within target"
RUNBOOK = "runbook succeeded"

PASSED, FAILED, DEVIATED, INTERRUPTED, STOPPED = (
    Outcome.PASSED, Outcome.FAILED, Outcome.DEVIATED, Outcome.INTERRUPTED, Outcome.STOPPED)
EXIT_CODES = {PASSED: 0, FAILED: 1, DEVIATED: 3, STOPPED: 5}
INTERRUPTED_EXIT = 130  # SIGINT's, when nothing says which signal it was

# The JUnit ``failure type`` of each check (a score check is SCORE_TYPE).
FAILURE_TYPES = {
    STEADY_BEFORE: "SteadyStateNotReached",
    STEADY_AFTER: "SteadyStateNotRestored",
    DETECTED: "TargetMissed",
    ACKNOWLEDGED: "TargetMissed",
    MITIGATED: "TargetMissed",
    RUNBOOK: "RunbookFailed",
}
SCORE_TYPE = "ScoreBelowMinimum"


@dataclass(frozen=True)
class Check:
    """One question a gate asks of a game day. ``seconds`` is the measured time where
    there is one (TTD, TTA, TTM, the runbook's run). A skipped check (an interrupted
    game day never got to it) has ``passed`` false and ``skipped`` true."""

    name: str
    passed: bool
    message: str
    seconds: float | None
    skipped: bool = False

    @property
    def failed(self) -> bool:
        return not self.passed and not self.skipped


@dataclass(frozen=True)
class Verdict:
    """``status``: passed | failed | deviated | interrupted; ``exit_code`` as in the
    module's table. ``started_at`` (UTC, ISO 8601) and ``duration_s`` span the game
    day's timeline."""

    status: str
    exit_code: int
    checks: tuple[Check, ...]
    started_at: str | None = None
    duration_s: float | None = None

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.failed)

    @property
    def skipped(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code,
                "checks": [asdict(c) for c in self.checks],
                "started_at": self.started_at, "duration_s": self.duration_s}


@dataclass(frozen=True)
class _Outcome:
    """A check before the interruption rule: ``absent`` failures are about something
    that never happened (skipped if the game day was cut short); ``lost`` failures say
    the steady state did not come back (exit 3)."""

    check: Check
    absent: bool = False
    lost: bool = False


def _passed(name: str, message: str, seconds: float | None = None) -> _Outcome:
    return _Outcome(Check(name, True, message, seconds))


def _failed(name: str, message: str, seconds: float | None = None, *, absent: bool = False,
            lost: bool = False) -> _Outcome:
    return _Outcome(Check(name, False, message, seconds), absent=absent, lost=lost)


def _target(target: float | None) -> str:
    return "no target" if target is None else f"target {target:g}s"


def _timed(name: str, metric: str, value: float | None, target: float | None, what: str,
           never: str) -> _Outcome:
    """A metric against its target, compared by the scorecard's own rule."""
    if value is None:
        return _failed(name, f"{never} ({_target(target)})", absent=True)
    late = scoring.late(metric, value, target, 1, 1, what)
    if late is not None:
        return _failed(name, late.reason, value)
    return _passed(name, f"{what} took {value:.2f}s ({_target(target)})", value)


def _text(event: dict[str, Any]) -> str:
    return describe(event["kind"], event["actor"], event["data"])


# -- the checks -------------------------------------------------------------------------
def _steady_before(ev: list[dict[str, Any]]) -> _Outcome:
    refuted = first(ev, Kind.STEADY_STATE_CHECKED, phase="before", met=False)
    if refuted is not None:
        return _failed(STEADY_BEFORE, "the experiment's steady-state hypothesis was not met "
                                      "before the fault; nothing was injected")
    reached = first(ev, Kind.STEADY_STATE_REACHED)
    if reached is None:
        return _failed(STEADY_BEFORE, "the steady state was never reached", absent=True)
    met = first(ev, Kind.STEADY_STATE_CHECKED, phase="before", met=True)
    return _passed(STEADY_BEFORE, f"steady state reached ({_text(reached)})"
                   + ("; the experiment's hypothesis was met" if met else ""))


def _steady_after(ev: list[dict[str, Any]], summary: Mapping[str, Any]) -> _Outcome:
    refuted = first(ev, Kind.STEADY_STATE_CHECKED, phase="after", met=False)
    missed = first(ev, Kind.RECOVERY_MISSED)
    status = summary.get("status")
    resolved = status in (IncidentState.RESOLVED, IncidentState.REVIEWED)
    problems = []
    if refuted is not None or summary.get("experiment") == "deviated":
        problems.append("the experiment deviated: its steady-state hypothesis was not met "
                        "after the fault")
    if missed is not None:
        problems.append(_text(missed))
    if problems and resolved and missed is None:
        problems.append("the SLIs recovered only after the experiment's rollbacks")
    problems += _not_rolled_back(ev)
    left = [str(e["data"].get("error")) for e in ev if e["kind"] == Kind.GAMEDAY_FAILED]
    if problems:
        return _failed(STEADY_AFTER, "; ".join(problems + left), lost=True)
    met = first(ev, Kind.STEADY_STATE_CHECKED, phase="after", met=True)
    if not resolved:
        return _failed(STEADY_AFTER, ("the experiment's hypothesis was met, but " if met else "")
                       + f"the incident ended {status}; the SLIs' recovery was never observed"
                       + "".join(f"; {why}" for why in left), absent=True)
    if left:  # its target could not be stopped: it is still there (exit 1)
        return _failed(STEADY_AFTER, "the SLIs recovered and the incident was resolved, but "
                       + "; ".join(left))
    return _passed(STEADY_AFTER, "the SLIs recovered and the incident was resolved"
                   + ("; the experiment's hypothesis was met" if met else ""))


def _not_rolled_back(ev: list[dict[str, Any]]) -> list[str]:
    """Each rollback whose last run on the record did not succeed: the fault it undoes
    may still be in (the game day keeps its lease, and ``gameday recover`` plays it
    again)."""
    last: dict[str, dict[str, Any]] = {}
    for e in ev:
        if e["kind"] == Kind.FAULT_ROLLED_BACK:
            last[str(e["data"].get("activity"))] = e
    return [f"rollback {name} did not succeed ({e['data'].get('status')}): the fault may "
            "still be in; `gameday recover` plays it again"
            for name, e in last.items()
            if e["data"].get("status") not in UNDONE]


def _detected(ev: list[dict[str, Any]], m: Metrics, sc: Scenario) -> _Outcome:
    target = sc.timeouts.detect
    if first(ev, Kind.FAULT_INJECTED) is None:
        failed = first(ev, Kind.CHAOS_ACTION_FAILED)
        if failed is not None:
            return _failed(DETECTED, f"the fault was never injected: {_text(failed)}")
        return _failed(DETECTED, "the fault was never injected", absent=True)
    missed = first(ev, Kind.DETECTION_MISSED)
    if missed is not None:
        return _failed(DETECTED, f"detection missed: {_text(missed)}", m.TTD)
    return _timed(DETECTED, "TTD", m.TTD, target, "detection", "the fault was never detected")


def _runbook(ev: list[dict[str, Any]]) -> _Outcome:
    refused = [e for e in ev if e["kind"] in (Kind.RUNBOOK_REJECTED, Kind.RUNBOOK_MISSING)]
    finished = [e for e in ev if e["kind"] == Kind.RUNBOOK_FINISHED and not e["data"].get("check")]
    bad = [e for e in finished if e["data"].get("status") != RunStatus.SUCCESSFUL]
    if refused or bad:
        return _failed(RUNBOOK, "; ".join(_text(e) for e in (*refused, *bad)),
                       _run_seconds(ev, bad[0]) if bad else None)
    if finished:
        return _passed(RUNBOOK, "; ".join(_text(e) for e in finished),
                       _run_seconds(ev, finished[0]))
    started = next((e for e in ev if e["kind"] == Kind.RUNBOOK_STARTED
                    and not e["data"].get("check")), None)
    if started is not None:
        return _failed(RUNBOOK, f"runbook {started['data']['runbook']} never finished",
                       absent=True)
    dry = first(ev, Kind.RUNBOOK_STARTED)
    return _failed(RUNBOOK, "no runbook was run" + (
        f" for real (only a dry run of {dry['data']['runbook']})" if dry else ""),
        absent=True)


def _run_seconds(ev: list[dict[str, Any]], finished: dict[str, Any]) -> float | None:
    run_id = finished["data"].get("run_id")
    started = (first(ev, Kind.RUNBOOK_STARTED, run_id=run_id) if run_id is not None
               else first(ev, Kind.RUNBOOK_STARTED, runbook=finished["data"].get("runbook")))
    return span(started, finished)


def _score(summary: Mapping[str, Any], min_score: float) -> _Outcome:
    name = score_check_name(min_score)
    value = summary.get("score")
    if value is None:
        return _failed(name, f"no score (minimum {min_score:g})", absent=True)
    if value < min_score:
        return _failed(name, f"score {value} is below the minimum {min_score:g}")
    return _passed(name, f"score {value} (minimum {min_score:g})")


def score_check_name(min_score: float) -> str:
    return f"score >= {min_score:g}"


# -- the verdict ------------------------------------------------------------------------
def _interrupted_exit(ev: list[dict[str, Any]], signal_code: int | None) -> int:
    if signal_code is not None:
        return signal_code
    event = first(ev, Kind.GAMEDAY_INTERRUPTED)
    name = str(event["data"].get("signal")) if event else ""
    if name in signal.Signals.__members__:
        return 128 + signal.Signals[name].value
    return INTERRUPTED_EXIT


def judge(summary: Mapping[str, Any], scenario: Scenario, events: Iterable[Any], *,
          min_score: float | None = None, signal_code: int | None = None) -> Verdict:
    """The verdict on one game day: ``summary`` as ``gameday run --json`` prints it,
    its scenario, and its incident's stored events (``Store.events(incident_id)``;
    ``store.Event`` objects or their ``as_dict()``). A verdict already on the timeline
    (``record``) is not part of what is judged, nor of the game day's duration."""
    rows = list(events)
    _same_incident(rows, summary)
    ev = [e for e in in_time_order(rows) if e["kind"] != Kind.GAMEDAY_VERDICT]
    metrics = compute_metrics(ev, scenario.slo.success_ratio)
    targets = scoring.score(metrics, scenario.targets).targets
    mitigated = _timed(MITIGATED, "TTM", metrics.TTM, targets.get("mitigate"), "mitigation",
                       "the impact was never mitigated")
    if metrics.TTM is not None and metrics.contained_by:  # who contained it, on the record
        c = mitigated.check
        mitigated = _Outcome(Check(c.name, c.passed, f"{c.message}; contained by "
                                   f"{metrics.contained_by}", c.seconds))
    outcomes = [
        _steady_before(ev),
        _steady_after(ev, summary),
        _detected(ev, metrics, scenario),
        _timed(ACKNOWLEDGED, "TTA", metrics.TTA, targets.get("ack"), "acknowledgement",
               "the incident was never acknowledged"),
        mitigated,
        _runbook(ev),
    ]
    interrupted = bool(summary.get("interrupted"))
    if min_score is not None:
        # An interrupted game day's score counts what it got to: not a verdict on it.
        outcomes.append(_failed(score_check_name(min_score), "the score of an unfinished "
                                "game day", absent=True) if interrupted
                        else _score(summary, min_score))
    checks: list[Check] = []
    for o in outcomes:
        c = o.check
        if interrupted and not c.passed and o.absent:
            c = Check(c.name, False, f"not run: the game day was interrupted ({c.message})",
                      c.seconds, skipped=True)
        checks.append(c)

    if interrupted:
        status, code = INTERRUPTED, _interrupted_exit(ev, signal_code)
    elif summary.get("stopped"):
        status, code = STOPPED, EXIT_CODES[STOPPED]
    elif any(o.lost for o in outcomes):
        status, code = DEVIATED, EXIT_CODES[DEVIATED]
    elif any(c.failed for c in checks):
        status, code = FAILED, EXIT_CODES[FAILED]
    else:
        status, code = PASSED, EXIT_CODES[PASSED]
    started_at = ev[0]["at_utc"] if ev else None
    duration = span(ev[0], ev[-1]) if ev else None
    return Verdict(status, code, tuple(checks), started_at, duration)


def record(store: Store, summary: Mapping[str, Any], sc: Scenario | None = None) -> Verdict:
    """Judge a finished game day on its scenario's own checks (the copy in its run
    directory; no ``--min-score``: that is a gate's, not the game day's) and put the
    verdict on its timeline (``gameday.verdict``: passed or not, and each failed
    check's reason), so every game day counts in the report's pass rate, scheduled or
    run by hand. ``summary``: ``game.conclude``'s. An interrupted game day (a signal,
    the freeze) is judged on nothing it did not get to: its ``gameday.interrupted``
    event is its verdict on the record, and nothing is added after its target stopped.
    ``sc``: that copy, if the caller has read it already.
    """
    if sc is None:
        sc = load_scenario(Path(summary["run_dir"]) / "scenario.yaml", check_experiment=False)
    found = judge(summary, sc, store.events(summary["incident_id"]))
    if not summary.get("interrupted"):
        entry = gameday_verdict(found.status, found.exit_code,
                                {c.name: c.message for c in found.failures},
                                [c.name for c in found.skipped])
        store.append(summary["incident_id"], entry.kind, "gameday", entry.data)
    return found


def _same_incident(rows: list[Any], summary: Mapping[str, Any]) -> None:
    wanted = summary.get("incident_id")
    for row in rows:
        found = row.get("incident_id") if isinstance(row, Mapping) else getattr(
            row, "incident_id", None)
        if wanted is not None and found is not None and found != wanted:
            raise ValueError(f"events of incident {found} given for incident {wanted}")


# -- JUnit XML --------------------------------------------------------------------------
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: Any) -> str:
    """XML 1.0 has no escape for most control characters (runbook output has them)."""
    return _NOT_XML.sub("\ufffd", str(text))


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.3f}"


def _timestamp(at_utc: str | None) -> str:
    """ISO 8601 without a zone, in UTC: the form Ant's JUnit schema allows."""
    at = datetime.fromisoformat(at_utc) if at_utc else clock.now()
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _failure_type(check: Check) -> str:
    return FAILURE_TYPES.get(check.name, SCORE_TYPE)


def junit_xml(verdict: Verdict, *, suite: str, summary: Mapping[str, Any]) -> bytes:
    """The verdict as JUnit XML (UTF-8, with its declaration): ``suite`` is the
    scenario's name. Failures carry the check's message as both ``message`` and text
    (GitLab shows the text, Jenkins and the GitHub reporters the message)."""
    failures = len(verdict.failures)
    skipped = len(verdict.skipped)
    tests = len(verdict.checks)
    counts = {"tests": str(tests), "failures": str(failures), "errors": "0",
              "skipped": str(skipped), "time": _seconds(verdict.duration_s)}
    root = ET.Element("testsuites", {"name": "gameday", **counts})
    ts = ET.SubElement(root, "testsuite", {
        "name": _clean(f"gameday: {suite}"), **counts,
        "timestamp": _timestamp(verdict.started_at), "hostname": _clean(socket.gethostname())})
    props = ET.SubElement(ts, "properties")
    for key in ("incident_id", "score", "run_dir", "review", "status", "experiment"):
        value = summary.get(key)
        ET.SubElement(props, "property", {"name": key,
                                          "value": "" if value is None else _clean(value)})
    ET.SubElement(props, "property", {"name": "verdict", "value": verdict.status})
    ET.SubElement(props, "property", {"name": "exit_code", "value": str(verdict.exit_code)})
    classname = _clean(f"gameday.{suite}")
    review = summary.get("review")
    for check in verdict.checks:
        case = ET.SubElement(ts, "testcase", {"classname": classname,
                                              "name": _clean(check.name),
                                              "time": _seconds(check.seconds)})
        if check.skipped:
            ET.SubElement(case, "skipped", {"message": _clean(check.message)})
        elif check.failed:
            failure = ET.SubElement(case, "failure", {"message": _clean(check.message),
                                                      "type": _failure_type(check)})
            details = [check.message]
            if check.seconds is not None:
                details.append(f"measured: {check.seconds:.3f}s")
            if review:
                details.append(f"review: {review}")
            failure.text = _clean("\n".join(details))
    out = ET.SubElement(ts, "system-out")
    lines = [f"verdict: {verdict.status} (exit {verdict.exit_code})",
             f"incident #{summary.get('incident_id')}: {summary.get('status')} "
             f"(experiment: {summary.get('experiment')})",
             f"score: {summary.get('score')}"]
    lines += [f"  -{d.get('points')} {d.get('metric')}: {d.get('reason')}"
              for d in summary.get("deductions") or []]
    lines += [f"{'PASS' if c.passed else 'SKIP' if c.skipped else 'FAIL'} {c.name}: "
              f"{c.message}" for c in verdict.checks]
    if review:
        lines.append(f"review: {review}")
    if summary.get("run_dir"):
        lines.append(f"run directory: {summary['run_dir']}")
    out.text = _clean("\n".join(lines) + "\n")
    ET.SubElement(ts, "system-err")
    ET.indent(root)
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n")


def _unwritable(path: Path, exc: OSError) -> ValidationError:
    return ValidationError(f"cannot write the JUnit report {path}: {exc.strerror or exc}",
                           field="--junit")


def check_junit_path(path: Path) -> Path:
    """Before a game day starts: that ``write_junit`` will be able to write ``path``
    (its directory is created, a file can be made in it, ``path`` is not a directory).
    A ``ValidationError`` of ``--junit`` otherwise."""
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    return path


def write_junit(path: Path, verdict: Verdict, *, suite: str,
                summary: Mapping[str, Any]) -> Path:
    """Write the report atomically (a temporary file beside it, then renamed over it),
    creating its directory. A path that cannot be written is a ``ValidationError`` of
    ``--junit``."""
    path = Path(path)
    data = junit_xml(verdict, suite=suite, summary=summary)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # a report for others to read, not mkstemp's 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _unwritable(path, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path
