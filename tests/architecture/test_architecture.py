"""The architecture is checked, not hoped for: import-linter's contracts (pyproject.toml)
hold for the package, and break when a layer reaches where it must not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_contracts_hold():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module,line,broken", [
    # between features, and inside them
    ("web/__init__.py", "import gameday.cli.common", "never import each other"),
    ("web/__init__.py", "import gameday.game.responders", "stays out of a game day"),
    ("web/__init__.py", "import gameday.targets.kube", "stays out of a game day"),
    ("store/__init__.py", "import gameday.incidents.incident", "Layers: the edges"),
    ("core/events.py", "import gameday.cli.main", "Layers: the edges"),
    ("incidents/incident.py", "import gameday.runs.run", "Layers: the edges"),
    ("runbooks/runbook.py", "import gameday.incidents.moves", "Layers: the edges"),
    ("scenarios/scenario.py", "import gameday.targets.base", "Layers: the edges"),
    ("drills/master.py", "import gameday.game.run", "Layers: the edges"),
    ("core/events.py", "import gameday.core.render", "Layers inside the core"),
    ("game/scoring.py", "import gameday.game.verdict", "Layers inside a game day"),
    ("runs/run.py", "import gameday.runs.pool", "Layers inside runs"),
    ("incidents/incident.py", "import gameday.incidents.moves", "Layers inside incidents"),
    ("report/facts.py", "import gameday.report.insights", "Layers inside the report"),
    ("schedules/schedule.py", "import gameday.schedules.scheduler", "Layers inside schedules"),
    ("targets/kube.py", "import gameday.targets.base", "Layers inside targets"),
    ("runbooks/executor.py", "import gameday.runbooks.routing", "Layers inside runbooks"),
    # each third-party framework in its one place
    ("core/events.py", "import sqlalchemy", "SQLAlchemy, Alembic and psycopg only"),
    ("incidents/incident.py", "import click", "Click only"),
    ("game/run.py", "import starlette.responses", "Starlette and uvicorn only"),
    ("game/review.py", "import jinja2", "Jinja only"),
    ("game/recovery.py", "import chaoslib.activity", "chaoslib and chaosk8s only"),
    ("runs/run.py", "import ansible_runner", "Ansible and ansible-runner only"),
])
def test_a_reach_across_layers_breaks_a_contract(tmp_path, module, line, broken):
    shutil.copytree(ROOT / "gameday", tmp_path / "gameday",
                    ignore=shutil.ignore_patterns("__pycache__", "templates", "scaffold"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "gameday" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    proc = lint(tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert any(broken in ln and "BROKEN" in ln for ln in proc.stdout.splitlines()), proc.stdout


def test_now_comes_from_the_one_clock():
    """Code asks ``gameday.core.clock`` for the date and the time of day, so the tests that pin
    it (conftest.MOMENTS) pin everything; the monotonic clock measures durations."""
    # spelled in pieces, so that this file is not itself a reader of the clock
    reads = tuple(a + b for a, b in (
        ("datetime", ".now("), ("date", ".today("), ("datetime", ".today("),
        ("datetime", ".utcnow("), ("time", ".time()"), ("time", ".time_ns()"),
        ("time", ".localtime("), ("time", ".gmtime("), ("from time import", " time")))
    found = [f"{path.relative_to(ROOT)}: {needle}"
             for path in sorted((ROOT / "gameday").rglob("*.py")) if path.name != "clock.py"
             for needle in reads if needle in path.read_text()]
    assert found == []


# -- the typed vocabularies ------------------------------------------------------------------
def _vocabulary() -> set[str]:
    from gameday.core import states

    return {str(m) for enum in (states.IncidentState, states.IncidentKind, states.RunStatus,
                                states.DrillState, states.ScheduleRunStatus) for m in enum}


# Where a string compared with a ``status`` is another system's word, not ours: an
# Ansible task's, a sandbox replica's, Alertmanager's, a Chaos Toolkit journal's.
FOREIGN = ("task_status", "alert.status", "note.status", "rep.status", "replica", "journal")
FOREIGN_FILES = {"alerts.py": "Alertmanager's firing/resolved",
                 "alert_path.py": "Prometheus's pending/firing (its ALERTS series)",
                 "sandbox.py": "the sandbox's replicas (activities/, commands/)"}


def _bare_states(path: Path) -> list[str]:
    """String literals of the vocabularies compared with, or given as, a state, status or
    kind: ``x.status == "running"``, ``row["state"] in ("ended", ...)``,
    ``update(..., status="queued")``."""
    import ast

    words = _vocabulary()
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def about_state(node: ast.AST) -> bool:
        text = ast.unparse(node)
        return any(w in text for w in ("state", "status", "kind")) and \
            not any(f in text for f in FOREIGN)

    def literals(node: ast.AST) -> list[ast.Constant]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node]
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return [c for e in node.elts for c in literals(e)]
        return []

    for node in ast.walk(tree):
        hits: list[ast.Constant] = []
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(about_state(s) for s in sides if not literals(s)):
                hits = [c for s in sides for c in literals(s)]
        elif isinstance(node, ast.keyword) and node.arg in ("state", "status", "kind"):
            hits = literals(node.value)
        found += [f"{path.relative_to(ROOT)}:{c.lineno}: {c.value!r}" for c in hits
                  if c.value in words]
    return found


def test_states_are_named_by_their_enums_never_as_bare_strings():
    skip = {"states.py", *FOREIGN_FILES}
    found = [hit for path in sorted((ROOT / "gameday").rglob("*.py"))
             if path.name not in skip and "sandbox" not in path.parts
             and "migrations" not in path.parts for hit in _bare_states(path)]
    assert found == [], "\n".join(found)


# -- sizes -------------------------------------------------------------------------------------
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 600, 80


def test_no_module_or_function_grows_past_its_limit():
    import ast

    too_long = []
    for path in sorted((ROOT / "gameday").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {len(text.splitlines())} lines "
                            f"(at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                span = node.end_lineno - node.lineno + 1
                if span > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}: {span} lines")
    assert too_long == [], "\n".join(too_long)


def test_no_import_cycle_counting_type_checking_imports():
    """Modules import each other one way only, the imports made for type checking
    included (the layers contract cannot see a cycle inside one layer)."""
    import grimp

    graph = grimp.build_graph("gameday", exclude_type_checking_imports=False, cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(imports[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            if group:
                cycles.append(sorted([module, *group]))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    assert cycles == []


def test_event_kinds_are_the_timelines_words_not_module_paths():
    """Stored event kinds stay what existing stores hold: moving code never renames
    one (a kind that looks like a module path would be a rename by accident)."""
    from gameday.core.events import Kind

    modules = {p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
               for p in (ROOT / "gameday").rglob("*.py")}
    assert [k.value for k in Kind if k.value in modules] == []
    assert Kind.GAMEDAY_VERDICT == "gameday.verdict"
