"""A drill under way, as its game day's process leaves it in the store, for the tests of
what reads it (the drill API, the console, its streams): the shipped checkout drill's
scenario (its experiment by absolute path), the drill's record, its incident opened and
the drill started on its timeline. ``paged`` goes on to the fault, the alert, a SEV-3
declared with SEV-2 measured, and ana paged as incident commander."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gameday.core import events
from gameday.incidents.incident import Incident
from gameday.store import Store

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Drill:
    id: int
    incident: Incident
    raw: dict[str, Any]   # the scenario as written
    run_dir: Path


def running(store: Store, tmp_path: Path, *, game_master: str = "gm",
            title: str | None = None) -> Drill:
    raw = yaml.safe_load((ROOT / "scenarios/checkout-replica-crash.yaml").read_text())
    raw["experiment"] = str(ROOT / "experiments/checkout-replica-crash.yaml")
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    drill_id = store.create_drill(str(scenario), game_master=game_master,
                                  difficulty="normal", oncall=None)
    inc = Incident.open(store, title or raw["title"], service="checkout",
                        scenario=raw["name"], run_dir=str(run_dir), kind="drill")
    store.update_drill(drill_id, incident_id=inc.id, run_dir=str(run_dir), state="running")
    inc.record(events.drill_started(drill_id, game_master, "normal", None), game_master)
    return Drill(drill_id, inc, raw, run_dir)


def paged(store: Store, tmp_path: Path, *, title: str | None = None) -> Drill:
    drill = running(store, tmp_path, title=title)
    inc = drill.incident
    inc.record(events.Entry(events.Kind.FAULT_INJECTED, {
        "activity": "kill-checkout-replica-2", "status": "succeeded", "provider": {}}), "chaos")
    inc.record(events.Entry(events.Kind.ALERT_FIRED, {
        "alertname": "CheckoutAvailabilityBurn", "labels": {"service": "checkout"},
        "annotations": drill.raw["alert"]["annotations"]}), "detector")
    inc.declare("SEV-3", "gameday", alert="CheckoutAvailabilityBurn",
                measured_severity="SEV-2")
    inc.page("ana", "incident_commander", "CheckoutAvailabilityBurn fired")
    return drill
