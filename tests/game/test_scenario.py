from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import yaml

from gameday.core.errors import ValidationError
from gameday.core.policy import DEFAULT_TARGETS
from gameday.scenarios.scenario import load_scenario, parse_duration

ROOT = Path(__file__).resolve().parents[2]


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


def test_defaults_and_customer_facing(tmp_path):
    def strip(raw):
        for key in ("traffic", "timeouts", "targets", "response", "recovery_window",
                    "evaluation_interval", "customer_facing", "alerting"):
            raw.pop(key, None)
        raw["slo"].pop("window", None)
        raw["alert"].pop("for", None)

    sc = load_scenario(write_variant(tmp_path, strip))
    assert sc.customer_facing == sc.service
    assert (sc.traffic_rate, sc.traffic_timeout_s, sc.slo.window_s, sc.alert.for_s) == \
        (40, 3, 2, 0)
    assert (sc.recovery_window_s, sc.evaluation_interval_s) == (2, 0.25)
    assert sc.timeouts.steady == 15 and sc.timeouts.detect == 20
    assert sc.response.mode == "auto" and sc.response.runbook is None
    assert sc.targets == DEFAULT_TARGETS and sc.targets is not DEFAULT_TARGETS
    assert sc.alerting == "builtin" and sc.target == "sandbox"


def test_loaded_values_are_typed_and_frozen(tmp_path):
    def change(raw):
        raw["team"]["oncall"] = "ana"  # one name is a rotation of one
        raw["alert"]["labels"] = {"service": "checkout", "replicas": 3}
        raw["targets"] = {"SEV-1": {"ack": "2s"}}

    sc = load_scenario(write_variant(tmp_path, change))
    assert sc.team.oncall == ("ana",) and isinstance(sc.team.ic_rotation, tuple)
    assert sc.alert.labels == {"service": "checkout", "replicas": "3"}
    assert sc.target_for("SEV-1") == {**DEFAULT_TARGETS["SEV-1"], "ack": 2.0}
    assert sc.experiment.is_absolute() and sc.experiment.exists()
    with pytest.raises(FrozenInstanceError):
        sc.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("change,field", [
    (lambda r: r["team"].update(colour="blue"), "team.colour"),
    (lambda r: r["slo"].update(budget=1), "slo.budget"),
    (lambda r: r.update(traffic={"rate": 10, "burst": 2}), "traffic.burst"),
    (lambda r: r.update(workload={"namespace": "a", "pod": "b"}), "workload.pod"),
])
def test_unknown_keys_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(ValidationError, match="unknown field") as err:
        load_scenario(write_variant(tmp_path, change))
    assert err.value.field == field


@pytest.mark.parametrize("change,field", [
    (lambda r: r["slo"].update(window=0), "slo.window"),
    (lambda r: r["slo"].update(window="0s"), "slo.window"),
    (lambda r: r.update(traffic={"timeout": "0ms"}), "traffic.timeout"),
    (lambda r: r.update(timeouts={"detect": 0}), "timeouts.detect"),
    (lambda r: r.update(timeouts={"mitigate": "0s"}), "timeouts.mitigate"),
    (lambda r: r.update(recovery_window=0), "recovery_window"),
    (lambda r: r.update(recovery_window="25h"), "recovery_window"),
    (lambda r: r.update(timeouts={"steady": float("inf")}), "timeouts.steady"),
    (lambda r: r["alert"].update({"for": "48h"}), "alert.for"),
    (lambda r: r["targets"]["SEV-1"].update(ack="0s"), "targets.SEV-1.ack"),
    (lambda r: r.update(evaluation_interval="5ms"), "evaluation_interval"),
    (lambda r: r.update(traffic={"rate": 0}), "traffic.rate"),
    (lambda r: r.update(traffic={"rate": True}), "traffic.rate"),
    (lambda r: r["slo"].update(latency_p99_ms=0), "slo.latency_p99_ms"),
    (lambda r: r["slo"].update(success_ratio=float("nan")), "slo.success_ratio"),
])
def test_ranges(tmp_path, change, field):
    with pytest.raises(ValidationError) as err:
        load_scenario(write_variant(tmp_path, change))
    assert err.value.field == field
    assert "must be" in err.value.message


def test_zero_alert_delay_is_fine(tmp_path):
    sc = load_scenario(write_variant(tmp_path, lambda r: r["alert"].update({"for": 0})))
    assert sc.alert.for_s == 0


@pytest.mark.parametrize("name", ["ana", "jose.nunez", "obrien", "ana.b", "mary-jane",
                                  "ops_bot", "2nd-line"])
def test_people_names(tmp_path, name):
    """A roster names people by the handle they sign in with (one rule everywhere)."""
    sc = load_scenario(write_variant(tmp_path, lambda r: r["team"].update(scribe=name)))
    assert sc.team.scribe == name


@pytest.mark.parametrize("change,field", [
    (lambda r: r["team"].update(scribe="José Ñúñez"), "team.scribe"),
    (lambda r: r["team"].update(scribe="Mary-Jane Watson"), "team.scribe"),
    (lambda r: r["team"].update(scribe="ana.b@example.com"), "team.scribe"),
    (lambda r: r["team"].update(oncall=["10 parsecs"]), "team.oncall.0"),
    (lambda r: r["team"].update(scribe="eli\x1b[31m"), "team.scribe"),
    (lambda r: r["team"].update(scribe="eli\n"), "team.scribe"),
    (lambda r: r["team"].update(comms=" fay"), "team.comms"),
    (lambda r: r["team"].update(comms=""), "team.comms"),
    (lambda r: r["team"].update(comms="x" * 65), "team.comms"),
    (lambda r: r["team"].update(comms="[fay](http://evil)"), "team.comms"),
    (lambda r: r["team"].update(oncall=["ana", 7]), "team.oncall.1"),
    (lambda r: r["team"].update(ic_rotation=["chidi", "<b>dana</b>"]), "team.ic_rotation.1"),
    (lambda r: r["team"].update(responders=["ok", "bad\tname"]), "team.responders.1"),
    (lambda r: r["team"].update(name="Shop Checkout"), "team.name"),
    (lambda r: r.update(name="checkout\n"), "name"),
    (lambda r: r.update(service="a" * 64), "service"),
    (lambda r: r.update(title="two\nlines"), "title"),
    (lambda r: r["alert"].update(labels={"bad-label": "x"}), "alert.labels.bad-label"),
    (lambda r: r["alert"].update(labels={"team": ["a", "b"]}), "alert.labels.team"),
    (lambda r: r["response"].update(runbook="../../etc/passwd"), "response.runbook"),
])
def test_bad_names_and_text(tmp_path, change, field):
    with pytest.raises(ValidationError) as err:
        load_scenario(write_variant(tmp_path, change))
    assert err.value.field == field


def test_a_cluster_target_names_its_workload(tmp_path):
    def kind(raw):
        raw["target"] = "kind"
        raw["workload"] = {"namespace": "shop"}

    with pytest.raises(ValidationError, match="required when the target is kind") as err:
        load_scenario(write_variant(tmp_path, kind))
    assert err.value.field == "workload.deployment"
    sc = load_scenario(write_variant(tmp_path, lambda r: r.update(
        target="kwok", workload={"namespace": "shop", "deployment": "frontend"})))
    assert sc.workload == {"namespace": "shop", "deployment": "frontend"}


def test_messages_are_words_not_pydantic(tmp_path):
    changes = [lambda r: r["slo"].update(success_ratio=1.5),
               lambda r: r.update(slo="fast"), lambda r: r.update(title=3),
               lambda r: r["team"].update(oncall=[]), lambda r: r.update(colour="blue"),
               lambda r: r["team"].update(model="anarchy"), lambda r: r.pop("alert")]
    messages = []
    for change in changes:
        with pytest.raises(ValidationError) as err:
            load_scenario(write_variant(tmp_path, change))
        messages.append(err.value.message)
    assert messages == [
        "must be a number between 0.5 and 1, not 1.5",
        "must be a mapping, not 'fast'",
        "must be a string, not 3",
        "must not be empty",
        "unknown field (expected one of alert, alerting, alertmanager, cluster, "
        "customer_facing, description, drill, evaluation_interval, experiment, inventory, "
        "name, recovery_window, replay, "
        "response, service, sli, slo, stop_when, target, targets, team, timeouts, title, "
        "traffic, workload)",
        "must be one of centralized, distributed, hybrid, not 'anarchy'",
        "is required",
    ]


def test_long_values_are_cut_short_in_messages(tmp_path):
    with pytest.raises(ValidationError) as err:
        load_scenario(write_variant(tmp_path, lambda r: r.update(target="x" * 10_000)))
    assert len(str(err.value)) < 200 + len(str(err.value.file))


def hostile(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "hostile.yaml"
    if kind == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "utf-16":
        path.write_text("name: x\ntitle: y\n", encoding="utf-16")
    elif kind == "utf-16 without BOM":
        path.write_bytes("name: x\n".encode("utf-16-le"))
    elif kind == "nested lists":
        path.write_text("[" * 10_000 + "]" * 10_000)
    elif kind == "nested mappings":
        path.write_text("{a: " * 10_000 + "1" + "}" * 10_000)
    elif kind == "too long a path":
        path = tmp_path / ("x" * 5000 + ".yaml")
    elif kind == "too long a directory chain":
        path = tmp_path.joinpath(*["d" * 200] * 40, "s.yaml")
    elif kind == "a NUL in the path":
        path = tmp_path / "a\x00b.yaml"
    elif kind == "a directory":
        path.mkdir()
    elif kind == "a list":
        path.write_text("- name: x\n")
    elif kind == "a string":
        path.write_text("just words\n")
    elif kind == "empty":
        path.write_text("")
    elif kind == "an impossible date":
        path.write_text("name: x\ntitle: 2026-02-30\n")
    elif kind == "a python tag":
        path.write_text("!!python/object/apply:os.system ['true']\n")
    elif kind == "huge":
        path.write_text("# padding\n" * 200_000)
    return path


HOSTILE = ["binary", "utf-16", "utf-16 without BOM", "nested lists", "nested mappings",
           "too long a path", "too long a directory chain", "a NUL in the path",
           "a directory", "a list", "a string", "empty", "an impossible date",
           "a python tag", "huge"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_files_are_validation_errors(tmp_path, kind):
    path = hostile(tmp_path, kind)
    with pytest.raises(ValidationError) as err:
        load_scenario(path)
    assert err.value.file == str(path)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("kind", ["binary", "nested lists", "too long a path", "a list"])
def test_hostile_files_exit_2_at_the_cli(tmp_path, kind):
    from click.testing import CliRunner

    from gameday.cli.main import cli

    path = hostile(tmp_path, kind)
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit


RATIO_SLO = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: shop-availability}
spec:
  service: shop
  indicator:
    metadata: {name: shop-good}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'requests_total{code!~"5.."}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: requests_total}}}
  objectives: [{target: 0.995}]
"""


def test_objectives_come_from_the_teams_openslo_file(tmp_path):
    (tmp_path / "slo.yaml").write_text(RATIO_SLO)

    def openslo(r):
        r["slo"] = {"openslo": "slo.yaml", "latency_p99_ms": 250, "window": "2s"}

    sc = load_scenario(write_variant(tmp_path, openslo))
    assert (sc.slo.success_ratio, sc.slo.latency_p99_ms) == (0.995, 250)
    assert sc.sli["openslo"]["slo"] == "shop-availability"


@pytest.mark.parametrize("change,field,words", [
    (lambda r: r["slo"].update(success_ratio=0.99), "slo.success_ratio", "also given by"),
    (lambda r: r["slo"].pop("latency_p99_ms"), "slo.latency_p99_ms", "no latency SLO"),
    (lambda r: r["slo"].update(openslo="nowhere.yaml"), "slo.openslo", "no such file"),
    (lambda r: r.update(inventory="hosts.ini"), "inventory", "service target"),
])
def test_what_an_openslo_file_or_inventory_leaves_wrong_is_named(tmp_path, change, field,
                                                                  words):
    (tmp_path / "slo.yaml").write_text(RATIO_SLO)

    def both(r):
        r["slo"] = {"openslo": "slo.yaml", "latency_p99_ms": 250, "window": "2s"}
        change(r)

    with pytest.raises(ValidationError) as err:
        load_scenario(write_variant(tmp_path, both))
    assert err.value.field == field and words in str(err.value), str(err.value)
