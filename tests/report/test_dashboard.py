"""The Grafana dashboard shipped in deploy/ reads what ``/metrics`` serves: every query
parses as PromQL (Prometheus's own ``promtool``), and every series it names is one
gameday exports, with each label it selects or groups by. A panel never adds a
rehearsal's numbers to real work's: a series with a ``kind`` is read for one kind, or
kept apart by kind."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
import test_insights as history  # noqa: E402 - the report tests' timelines
from test_metrics_kinds import scrape  # noqa: E402 - /metrics as Prometheus reads it

from gameday.core import clock  # noqa: E402
from gameday.incidents.incident import Incident  # noqa: E402
from gameday.runs import run as runs  # noqa: E402
from gameday.store import Store  # noqa: E402
from gameday.store.leases import owner  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "gameday-insights.json"
SERIES = re.compile(r"\b(gameday_[a-z_]+)\b")
SELECTED = re.compile(r"\b(gameday_[a-z_]+)\{([^}]*)\}")
GROUPED = re.compile(r"\bby \(([^)]*)\)")
AGGREGATE = re.compile(r"\b(sum|avg|min|max|count|quantile|topk|bottomk)\b\s*(by|\()")


def queries() -> list[str]:
    def panels(found: list[dict]) -> list[dict]:
        return [p for panel in found for p in [panel, *panels(panel.get("panels", []))]]

    return [t["expr"] for p in panels(json.loads(DASHBOARD.read_text())["panels"])
            for t in p.get("targets", []) if t.get("expr")]


def test_every_query_parses_as_promql(tmp_path: Path):
    """promtool comes with Prometheus, which scripts/system-deps installs."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries())]}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    checked = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_series_and_label_it_reads_is_served(tmp_path: Path):
    store = Store(tmp_path / "gameday.db")
    history.NOW = clock.now().replace(microsecond=0)
    run_dir = tmp_path / "run"  # scored against the scenario's targets, as it ran
    run_dir.mkdir()
    shutil.copy(ROOT / "scenarios" / "checkout-replica-crash.yaml", run_dir / "scenario.yaml")
    for kind in ("gameday", "drill"):
        game = history.gameday(store, scenario="checkout-replica-crash", kind=kind,
                               escalate=True)
        store.update_incident(game, run_dir=str(run_dir))
        store.upsert_action(game, "escalated", "Make the runbook contain it", "shop",
                            due="2000-01-01")  # overdue whatever the day
    history.alert_incident(store)
    for incident in (Incident(store, row["id"]) for row in store.incidents()):
        store.create_run(incident.id, "restart-replica", {}, "ana", False, owner=owner(),
                         kind=runs.kind(incident))
    labels: dict[str, set[str]] = {}
    for name, pairs in scrape(store, tmp_path):
        for series in {name, re.sub(r"_(bucket|count|sum|total)$", "", name)}:
            labels.setdefault(series, set()).update(k for k, _ in pairs)
    labels.setdefault("gameday_response_seconds_bucket", set()).add("le")
    for query in queries():
        for series in SERIES.findall(query):
            assert series in labels, f"{query!r}: /metrics serves no {series}"
        for series, selector in SELECTED.findall(query):
            wanted = {m.split("=")[0].strip().rstrip("!~") for m in selector.split(",")}
            assert wanted <= labels[series], f"{query!r}: {series} has {labels[series]}"
        kinds = [s for s in SERIES.findall(query) if "kind" in labels[s]]
        if kinds and AGGREGATE.search(query):
            apart = any("kind" in by for by in GROUPED.findall(query)) or all(
                "kind" in selector for series, selector in SELECTED.findall(query))
            assert apart and (GROUPED.findall(query) or SELECTED.findall(query)), \
                f"{query!r} adds up {kinds} across kinds: rehearsals with real work"
        for by in GROUPED.findall(query):
            named = {label.strip() for label in by.split(",")}
            read = set().union(*(labels[s] for s in SERIES.findall(query)))
            assert named <= read, f"{query!r}: grouped by {named}, served {read}"
    store.close()
