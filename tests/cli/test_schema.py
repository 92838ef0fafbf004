"""``gameday schema``: JSON Schema for scenario and runbook files, from the loaders' models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gameday.cli.schema import schema
from gameday.core.errors import ValidationError
from gameday.runbooks.runbook import discover, load_runbook
from gameday.scenarios.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def printed(kind: str) -> dict:
    result = CliRunner().invoke(schema, [kind])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def validator(document: dict):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def described(document: dict) -> list[str]:
    """Every property of every object in the schema, without a description."""
    missing = []
    for name, node in [("(root)", document), *document.get("$defs", {}).items()]:
        assert node.get("description"), f"{name} has no description"
        for prop, spec in node.get("properties", {}).items():
            if not spec.get("description") and "$ref" not in spec:
                missing.append(f"{name}.{prop}")
    return missing


def shipped_scenarios() -> list[Path]:
    return sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("kind,title", [("scenario", "gameday scenario"),
                                        ("runbook", "gameday runbook")])
def test_schema_is_a_described_2020_12_document(kind, title):
    document = printed(kind)
    assert document["$schema"] == DIALECT
    assert document["title"] == title and document["description"]
    assert described(document) == []


def test_unknown_kind_is_a_usage_error():
    result = CliRunner().invoke(schema, ["experiment"])
    assert result.exit_code == 2 and "scenario" in result.output


def test_scenario_schema_structure():
    document = printed("scenario")
    props = document["properties"]
    assert document["additionalProperties"] is False
    assert {"name", "title", "experiment", "service", "team", "slo", "alert"} <= \
        set(document["required"])
    assert props["target"]["enum"] == ["sandbox", "kind", "kwok", "service", "kubernetes"]
    team = document["$defs"]["TeamSpec"]
    assert team["properties"]["model"]["enum"] == ["centralized", "distributed", "hybrid"]
    targets = props["targets"]
    assert list(targets["properties"]) == ["SEV-1", "SEV-2", "SEV-3", "SEV-4"]
    assert targets["additionalProperties"] is False
    assert "ack" in targets["properties"]["SEV-1"]["properties"]
    window = document["$defs"]["SloSpec"]["properties"]["window"]
    assert {"type": "string", "pattern": r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$"} in window["anyOf"]
    assert window["anyOf"][0]["exclusiveMinimum"] == 0


def test_every_shipped_scenario_matches_the_schema():
    check = validator(printed("scenario"))
    for path in shipped_scenarios():
        errors = [e.message for e in check.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], path


@pytest.mark.parametrize("change", [
    lambda r: r["slo"].update(success_ratio=1.5),
    lambda r: r.update(colour="blue"),
    lambda r: r["team"].update(oncall=[]),
    lambda r: r["team"].update(scribe="eli\x07"),
    lambda r: r["targets"].update({"SEV-9": {"ack": "1s"}}),
    lambda r: r["targets"]["SEV-1"].update(tea="5s"),
    lambda r: r["slo"].update(window=0),
    lambda r: r["alert"].update({"for": "soon"}),
    lambda r: r.update(target="kind"),  # and no workload
    lambda r: r.update(target="service"),  # and no entry point (traffic.url)
    lambda r: r["traffic"].update(url="http://127.0.0.1:9898/"),  # not a service target
    lambda r: r.update(target="service", traffic={"url": "ftp://x/"}),
    lambda r: r["alert"].update(labels={"bad-label": "x"}),
    lambda r: r.update(target="kubernetes"),  # and no cluster
    lambda r: r.update(cluster={"context": "staging"}),  # not a kubernetes target
    lambda r: r.update(target="kubernetes", cluster={"context": "a b"},
                       workload={"namespace": "shop", "deployment": "api"}),
])
def test_schema_and_loader_refuse_the_same_files(tmp_path, change):
    check = validator(printed("scenario"))
    raw = yaml.safe_load((ROOT / "scenarios" / "checkout-replica-crash.yaml").read_text())
    raw["experiment"] = str(ROOT / "experiments" / "checkout-replica-crash.yaml")
    change(raw)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert list(check.iter_errors(raw)), "the schema lets it through"
    with pytest.raises(ValidationError):
        load_scenario(path)


def test_runbook_schema_describes_the_metadata_block():
    document = printed("runbook")
    meta = document["$defs"]["RunbookMetadata"]
    assert set(meta["properties"]) == {"summary", "alerts", "auto", "destructive",
                                       "concurrency", "parameters"}
    assert meta["required"] == ["summary"] and meta["additionalProperties"] is False
    first_play = document["prefixItems"][0]
    assert first_play["properties"]["vars"]["properties"]["gameday_runbook"] == \
        {"$ref": "#/$defs/RunbookMetadata"}
    param = document["$defs"]["ParameterSpec"]["properties"]
    assert set(param) == {"type", "required", "pattern", "choices", "default",
                          "description", "label"}
    assert param["type"]["enum"] == ["string", "integer", "boolean"]


def test_every_shipped_runbook_matches_the_schema():
    check = validator(printed("runbook"))
    books = discover()
    assert books
    for rb in books:
        errors = [e.message for e in check.iter_errors(yaml.safe_load(rb.path.read_text()))]
        assert errors == [], rb.path


def test_runbook_schema_and_loader_refuse_a_bad_type(tmp_path):
    check = validator(printed("runbook"))
    playbook = [{"hosts": "localhost", "vars": {"gameday_runbook": {
        "summary": "x", "parameters": {"n": {"type": "float"}}}}}]
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(playbook))
    assert list(check.iter_errors(playbook))
    with pytest.raises(ValidationError):
        load_runbook(path)


def test_the_command_module_does_not_import_pydantic():
    code = ("import sys; import gameday.cli.main, gameday.cli.schema; "
            "print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
