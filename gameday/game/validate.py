"""``gameday validate``: scenarios, and the experiments and runbooks they use.

A scenario is checked as far as it can be without running it: its experiment, and the
way from its alert to a runbook (``routing.route``, the path game days take), with the
alert's labels, the target's own labels and the scenario's overrides validated against
that runbook's parameter schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from gameday.core.errors import ValidationError
from gameday.core.spec import read_yaml
from gameday.game import chaos
from gameday.game.reach import within_cluster, within_hosts
from gameday.runbooks.routing import route
from gameday.runbooks.runbook import load_runbook, syntax_check
from gameday.scenarios.scenario import load_scenario
from gameday.targets.base import TARGETS, target_labels


def validate_paths(paths: Iterable[Path]) -> Iterator[str]:
    """Yield one line per valid file; raise ValidationError at the first bad one."""
    for path in paths:
        files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
        if not files:  # checking nothing is no "ok"
            raise ValidationError("is a directory with no .yaml or .yml file in it",
                                  file=str(path))
        for file in files:
            yield validate_file(file)


def validate_file(file: Path) -> str:
    raw = read_yaml(file)  # unreadable, binary, broken or absurd: ValidationError
    if isinstance(raw, list):
        rb = load_runbook(file)
        syntax_check(rb)
        return f"ok  runbook    {file} ({rb.name})"
    if isinstance(raw, dict) and "method" in raw:
        chaos.load_experiment(file, game_day=False)  # as `gameday experiment run` runs it
        return f"ok  experiment {file}"
    sc = load_scenario(file)
    TARGETS[sc.target].check(sc)  # a team's own system: only what the allowlist admits
    experiment = chaos.load_experiment(sc.experiment)
    if sc.drill:
        chaos.with_drill_faults(experiment, sc.drill, str(file))
    found = route(sc.alert.name, {**sc.alert.labels, **target_labels(sc)}, sc.alert.annotations,
                  runbook=sc.response.runbook, overrides=sc.response.params)
    if found.error:
        where = ("response.runbook" if sc.response.runbook and found.runbook is None
                 else "alert.annotations.runbook_url" if found.runbook is None
                 else f"response.params.{found.refused}"
                 if found.refused in (sc.response.params or {}) else "alert.labels")
        raise ValidationError(found.error, file=str(file), field=where)
    if found.runbook is not None:
        syntax_check(found.runbook)
        within_hosts(sc, found.runbook)
    within_cluster(sc)
    linked = f", runbook {found.runbook.name}" if found.runbook else ""
    return f"ok  scenario   {file} (experiment {sc.experiment.name}{linked})"
