"""``gameday validate``: scenarios, and the experiments and runbooks they use."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from gameday import chaos
from gameday.errors import ValidationError
from gameday.runbook import discover, load_runbook
from gameday.scenario import load_scenario


def validate_paths(paths: Iterable[Path]) -> Iterator[str]:
    """Yield one line per valid file; raise ValidationError at the first bad one."""
    for path in paths:
        files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
        for file in files:
            yield validate_file(file)


def validate_file(file: Path) -> str:
    if not file.exists():
        raise ValidationError("no such file", file=str(file))
    try:
        raw = yaml.safe_load(file.read_text(errors="replace"))
    except yaml.YAMLError:
        raw = None  # each loader reports its own parse error with the position
    if isinstance(raw, list):
        rb = load_runbook(file)
        return f"ok  runbook    {file} ({rb.name})"
    if isinstance(raw, dict) and "method" in raw:
        chaos.load_experiment(file)
        return f"ok  experiment {file}"
    sc = load_scenario(file)
    chaos.load_experiment(sc.experiment)
    from gameday.response import linked_runbook

    runbooks = {rb.name: rb for rb in discover()}
    if sc.response.runbook and sc.response.runbook not in runbooks:
        raise ValidationError(f"no runbook {sc.response.runbook!r} in runbooks/",
                              file=str(file), field="response.runbook")
    try:
        rb, _ = linked_runbook(sc.alert.name, sc.alert.annotations)
    except Exception as exc:
        raise ValidationError(str(exc), file=str(file),
                              field="alert.annotations.runbook_url") from None
    linked = f", runbook {rb.name}" if rb else ""
    return f"ok  scenario   {file} (experiment {sc.experiment.name}{linked})"
