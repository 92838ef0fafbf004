from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gameday.errors import ValidationError
from gameday.scenario import load_scenario, parse_duration

ROOT = Path(__file__).resolve().parent.parent


def write_variant(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load((ROOT / "scenarios" / "checkout-replica-crash.yaml").read_text())
    raw["experiment"] = str(ROOT / "experiments" / "checkout-replica-crash.yaml")
    change(raw)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_every_shipped_scenario_loads():
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        sc = load_scenario(path)
        assert sc.experiment.exists()
        assert sc.evaluation_interval_s <= 0.25


@pytest.mark.parametrize("value,seconds", [("500ms", 0.5), ("2s", 2.0), ("5m", 300.0),
                                           (3, 3.0), ("1.5", 1.5)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["fast", "-1s", True, None, "2 weeks"])
def test_bad_durations(value):
    assert parse_duration(value) is None


@pytest.mark.parametrize("change,field", [
    (lambda r: r["slo"].update(success_ratio=1.5), "slo.success_ratio"),
    (lambda r: r["slo"].pop("latency_p99_ms"), "slo.latency_p99_ms"),
    (lambda r: r["team"].update(model="anarchy"), "team.model"),
    (lambda r: r["team"].update(oncall=[]), "team.oncall"),
    (lambda r: r["alert"].update({"for": "soon"}), "alert.for"),
    (lambda r: r["alert"].update(name="bad name!"), "alert.name"),
    (lambda r: r.update(experiment="missing.yaml"), "experiment"),
    (lambda r: r.update(target="mainframe"), "target"),
    (lambda r: r.update(colour="blue"), "colour"),
    (lambda r: r["targets"].update({"SEV-9": {"ack": "1s"}}), "targets.SEV-9"),
    (lambda r: r["targets"]["SEV-1"].update(tea="5s"), "targets.SEV-1.tea"),
    (lambda r: r.update(evaluation_interval="1s"), "evaluation_interval"),
    (lambda r: r["response"].update(mode="yolo"), "response.mode"),
])
def test_errors_name_file_and_field(tmp_path, change, field):
    path = write_variant(tmp_path, change)
    with pytest.raises(ValidationError) as err:
        load_scenario(path)
    assert err.value.file == str(path)
    assert err.value.field == field
    assert str(path) in str(err.value) and field in str(err.value)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nslo: {success_ratio: 0.9\n")
    with pytest.raises(ValidationError) as err:
        load_scenario(path)
    assert "not valid YAML" in str(err.value) and err.value.field.startswith("line")
