"""The objectives a game day is scored against: each scenario's targets (per severity)
and its SLO, read from the copy of the scenario its latest run directory keeps. The
kept facts (``facts``) are scored with them; a change of targets rescores."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from gameday.store import Connection


@dataclass(frozen=True)
class Targets:
    """What a scenario says about scoring its game days, and a fingerprint of it."""

    by_severity: dict[str, dict[str, float]]
    slo_success_ratio: float
    key: str


@lru_cache(maxsize=256)
def _targets(path: str, _mtime_ns: int) -> Targets | None:
    from gameday.scenarios.scenario import load_scenario

    try:
        sc = load_scenario(Path(path), check_experiment=False)
    except Exception:  # a run directory from an older scenario format: no score
        return None
    by = {k: dict(v) for k, v in sc.targets.items()}
    text = json.dumps([by, sc.slo.success_ratio], sort_keys=True)
    return Targets(by, sc.slo.success_ratio, hashlib.sha1(text.encode()).hexdigest()[:12])


def targets_of(run_dir: str | None) -> Targets | None:
    """The targets of the scenario a run directory kept a copy of."""
    if not run_dir:
        return None
    path = Path(run_dir) / "scenario.yaml"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _targets(str(path), mtime)


class ScenarioTargets(Mapping[str, "Targets | None"]):
    """Each scenario's targets, from the run directory of its latest game day, looked
    up when first asked for (``incidents_by_scenario``: one index probe and one file
    read per scenario); ``None`` for a scenario no run directory keeps."""

    def __init__(self, db: Connection) -> None:
        self._db = db
        self._found: dict[str, Targets | None] = {}

    def __getitem__(self, scenario: str) -> Targets | None:
        if scenario not in self._found:
            row = self._db.execute(
                "SELECT run_dir FROM incidents WHERE scenario = ? AND run_dir IS NOT NULL"
                " ORDER BY id DESC LIMIT 1", (scenario,)).fetchone() if scenario else None
            self._found[scenario] = targets_of(row[0]) if row else None
        return self._found[scenario]

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)


def scenario_targets(db: Connection) -> ScenarioTargets:
    """Each scenario's targets (``ScenarioTargets``)."""
    return ScenarioTargets(db)


AnyTargets = Mapping[str, Targets | None]
