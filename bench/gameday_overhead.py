"""The game day's own overhead: where the wall time of `gameday run` goes, stage by stage.

Runs a real game day on the embedded sandbox `--runs` times, each as its own process in
a fresh temporary project (its own store and run directories), timed from just before
the process starts to its exit. Then it reads what the game day recorded (`gameday
incident show --json`: the incident's own clock and its timeline; the review's files)
and splits the wall time at moments that happened, never at assumed ones:

  process start -> incident opened      imports, the store, recovery, validation
  -> target.ready                       the sandbox's processes up
  -> steady_state.reached               traffic, the first full SLI window
  -> fault.injected                     chaoslib, the steady-state hypothesis
  -> incident.resolved                  the fault's own time (detection, response,
                                        rollback, recovery): not overhead
  -> target.stopped                     traffic, detector and sandbox stopped
  -> review written                     score, chart, review (scorecard.json's mtime)
  -> last event                         the verdict on the timeline
  -> process exit                       the summary printed, the interpreter's exit

Prints the median and the max of each stage over the runs, and how much of the wall
time is not the fault's own. The game days run this checkout's gameday; `--before DIR`
also runs the gameday of another checkout (the code before a change), one run of each
in turn, so that both see the same load on a shared machine.

    .venv/bin/python bench/gameday_overhead.py [--runs 5] [--scenario FILE ...]
        [--before DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = ROOT / "scenarios" / "checkout-replica-crash.yaml"
FAULT = "fault's own time"

# (stage, the moment it ends): each stage starts where the one before it ended.
STAGES = (
    ("start -> incident opened", "opened"),
    ("-> target.ready", "target.ready"),
    ("-> steady_state.reached", "steady_state.reached"),
    ("-> fault.injected", "fault.injected"),
    (FAULT, "incident.resolved"),
    ("-> target.stopped", "target.stopped"),
    ("-> review written", "review"),
    ("-> last event", "last"),
    ("-> process exit", "exit"),
)


@dataclass(frozen=True)
class Run:
    """One game day's moments, in nanoseconds of the monotonic clock."""

    start: int
    moments: dict[str, int]
    code: int

    def stages(self) -> dict[str, float]:
        """Each stage's length in seconds, from the moment before it to its own."""
        out, before = {}, self.start
        for name, moment in STAGES:
            at = self.moments[moment]
            out[name] = (at - before) / 1e9
            before = at
        return out

    @property
    def wall(self) -> float:
        return (self.moments["exit"] - self.start) / 1e9


def environment(checkout: Path) -> dict[str, str]:
    """The bench's own environment, with ``checkout``'s gameday first on the import path
    (its subprocesses, the sandbox's included, inherit it) and this interpreter's bin/
    first on PATH, as `make gameday` has it."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def gameday(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def one_run(scenario: Path, project: Path, env: dict[str, str]) -> Run:
    """A game day in ``project``, timed from the outside, then its own record read."""
    (project / "gameday.toml").write_text('[project]\nname = "bench"\n')
    log = project / "gameday-run.log"
    with log.open("w") as out:
        start = time.monotonic_ns()
        proc = subprocess.Popen([sys.executable, "-m", "gameday", "run", str(scenario)],
                                cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        code = proc.wait()
        exited = time.monotonic_ns()
    if code != 0:
        raise RuntimeError(f"gameday run exited {code}; see {log}")
    moments = recorded_moments(project, env)
    moments["exit"] = exited
    return Run(start, moments, code)


def recorded_moments(project: Path, env: dict[str, str]) -> dict[str, int]:
    """The moments the game day recorded, on this host's monotonic clock: the incident's
    opening (its own clock), the first of each event kind, the last event, and when the
    review's last file was written (a wall-clock mtime, placed on the monotonic clock
    through the incident's pair of clock readings)."""
    (run_dir,) = (project / ".gameday" / "runs").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    shown = gameday("incident", "show", str(info["incident_id"]), "--json", cwd=project,
                    env=env)
    if shown.returncode != 0:
        raise RuntimeError(f"gameday incident show failed: {shown.stderr.strip()}")
    incident = json.loads(shown.stdout)
    moments = {"opened": incident["clock_mono_ns"]}
    for event in sorted(incident["timeline"], key=lambda e: (e["at_monotonic_ns"], e["seq"])):
        moments.setdefault(event["kind"], event["at_monotonic_ns"])
        moments["last"] = event["at_monotonic_ns"]
    to_monotonic = incident["clock_mono_ns"] - incident["clock_epoch_ns"]
    moments["review"] = (run_dir / "scorecard.json").stat().st_mtime_ns + to_monotonic
    missing = {moment for _, moment in STAGES} - moments.keys() - {"exit"}
    if missing:
        raise RuntimeError(f"the game day in {project} recorded no {', '.join(sorted(missing))}")
    return moments


def report(title: str, runs: list[Run]) -> None:
    print(f"\n{title}: gameday run, {len(runs)} runs  (median / max per stage)")
    per_stage = [run.stages() for run in runs]
    for name, _ in STAGES:
        values = [stages[name] for stages in per_stage]
        print(f"  {name:26} median {statistics.median(values) * 1000:7.0f} ms"
              f"   max {max(values) * 1000:7.0f} ms")
    walls = [run.wall for run in runs]
    print(f"  {'wall':26} median {statistics.median(walls) * 1000:7.0f} ms"
          f"   max {max(walls) * 1000:7.0f} ms")
    overhead = [run.wall - stages[FAULT] for run, stages in zip(runs, per_stage, strict=True)]
    shares = [o / run.wall for o, run in zip(overhead, runs, strict=True)]
    print(f"  not the fault's own time:  median {statistics.median(overhead) * 1000:7.0f} ms"
          f"   max {max(overhead) * 1000:7.0f} ms   "
          f"({statistics.median(shares):.0%} of the wall time at the median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", type=Path, action="append",
                        help="a sandbox scenario (repeatable; default: "
                             "scenarios/checkout-replica-crash.yaml)")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="a checkout of gameday to measure too, run by run in turn")
    parser.add_argument("--keep", action="store_true",
                        help="keep each run's project directory and say where it is")
    args = parser.parse_args()
    checkouts = {"this checkout": ROOT}
    if args.before:
        checkouts = {"before": args.before.resolve(), "after": ROOT}
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average before: {' '.join(load)}")
    for scenario in [s.resolve() for s in args.scenario or [DEFAULT_SCENARIO]]:
        runs: dict[str, list[Run]] = {label: [] for label in checkouts}
        for _ in range(args.runs):
            for label, checkout in checkouts.items():
                runs[label].append(measured(scenario, environment(checkout), args.keep))
        for label, checkout in checkouts.items():
            report(f"{scenario.name}, {label} ({checkout})", runs[label])
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nload average after: {' '.join(load)}")


def measured(scenario: Path, env: dict[str, str], keep: bool) -> Run:
    """One run in a project directory of its own, removed afterwards unless ``keep`` or
    the run failed (its log is there)."""
    project = Path(tempfile.mkdtemp(prefix="gameday-overhead-"))
    run = one_run(scenario, project, env)
    if keep:
        print(f"  kept {project}", flush=True)
    else:
        shutil.rmtree(project, ignore_errors=True)
    return run


if __name__ == "__main__":
    main()
