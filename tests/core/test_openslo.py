"""OpenSLO v1 files imported as PromQL: ratio SLOs (counters as rates, good or bad over
total), a threshold SLO as the latency bound, SLIs referenced by name, and every broken
document a ValidationError at its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.core.errors import ValidationError
from gameday.slis.openslo import Imported, load_openslo

GOOD = 'http_requests_total{job="podinfo",status!~"5.."}'
BAD = 'http_requests_total{job="podinfo",status=~"5.."}'
TOTAL = 'http_requests_total{job="podinfo"}'
LATENCY = ('histogram_quantile(0.99, sum by (le) (rate('
           'http_request_duration_seconds_bucket{job="podinfo"}[1m]))) * 1000')
RATIO = "spec.indicator.spec.ratioMetric"


def prometheus(query: str, kind: str = "Prometheus") -> dict[str, Any]:
    return {"metricSource": {"type": kind, "spec": {"query": query}}}


def ratio_slo(name: str = "podinfo-availability") -> dict[str, Any]:
    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": name, "displayName": "podinfo availability"},
        "spec": {
            "description": "99% of podinfo's requests succeed",
            "service": "podinfo",
            "budgetingMethod": "Occurrences",
            "timeWindow": [{"duration": "28d", "isRolling": True}],
            "indicator": {
                "metadata": {"name": "podinfo-success"},
                "spec": {"ratioMetric": {"counter": True, "good": prometheus(GOOD),
                                         "total": prometheus(TOTAL)}},
            },
            "objectives": [{"displayName": "good requests", "target": 0.99}],
        },
    }


def latency_slo(op: str = "lte", value: Any = 250) -> dict[str, Any]:
    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": "podinfo-latency"},
        "spec": {
            "service": "podinfo",
            "budgetingMethod": "Timeslices",
            "indicator": {"metadata": {"name": "podinfo-p99"},
                          "spec": {"thresholdMetric": prometheus(LATENCY)}},
            "objectives": [{"op": op, "value": value, "target": 0.95,
                            "timeSliceTarget": 0.95, "timeSliceWindow": "1m"}],
        },
    }


SERVICE = {"apiVersion": "openslo/v1", "kind": "Service",
           "metadata": {"name": "podinfo"}, "spec": {"description": "the demo app"}}


def write(tmp_path: Path, *docs: Any) -> Path:
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


DROP = object()


def changed(path: str, value: Any, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """``doc`` (a ratio SLO by default) with the field at dotted ``path`` (list items
    by number) set to ``value``, or removed when ``value`` is DROP."""
    doc = copy.deepcopy(doc or ratio_slo())
    node: Any = doc
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    if value is DROP:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


def balanced(promql: str) -> bool:
    """Parentheses, brackets and braces nest properly outside quoted strings."""
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote = ""
    for ch in promql:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in closing and (not stack or stack.pop() != closing[ch]):
            return False
    return not stack and not quote


# -- what is read ------------------------------------------------------------------------------
def test_a_counter_ratio_slo_becomes_rates_of_good_over_total(tmp_path):
    got = load_openslo(write(tmp_path, ratio_slo()), rate_window_s=30)
    assert got == Imported(
        name="podinfo-availability", service="podinfo",
        success_ratio_query=(f"sum(rate({GOOD}[30s])) / sum(rate({TOTAL}[30s]))"),
        success_ratio=0.99, latency_query=None, latency_p99_ms=None,
        queries={"good": GOOD, "total": TOTAL})


def test_bad_over_total_is_one_minus_it_and_an_expression_becomes_a_subquery(tmp_path):
    total = f"sum by (job) ({TOTAL})"
    doc = changed(RATIO, {"counter": True, "bad": prometheus(BAD), "total": prometheus(total)})
    doc = changed("spec.objectives", [{"targetPercent": 99.5}, {"target": 0.9}], doc)
    got = load_openslo(write(tmp_path, doc), rate_window_s=60)
    assert got.success_ratio_query == (
        f"1 - (sum(rate({BAD}[1m])) / sum(rate(({total})[1m:])))")
    assert got.success_ratio == pytest.approx(0.995)  # the first objective only
    assert got.queries == {"bad": BAD, "total": total}


def test_a_ratio_of_gauges_is_summed_as_is(tmp_path):
    doc = changed(f"{RATIO}.counter", False)
    got = load_openslo(write(tmp_path, doc), rate_window_s=90)
    assert got.success_ratio_query == f"sum({GOOD}) / sum({TOTAL})"
    del doc["spec"]["indicator"]["spec"]["ratioMetric"]["counter"]  # false when absent
    assert load_openslo(write(tmp_path, doc), rate_window_s=90) == got


@pytest.mark.parametrize(("seconds", "window"), [(5, "5s"), (60, "1m"), (90, "90s"),
                                                 (300, "5m"), (7200, "2h"), (29.9, "30s")])
def test_the_rate_window_is_a_prometheus_duration(tmp_path, seconds, window):
    got = load_openslo(write(tmp_path, ratio_slo()), rate_window_s=seconds)
    assert f"[{window}]" in got.success_ratio_query


def test_a_window_under_a_second_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="at least 1 second"):
        load_openslo(write(tmp_path, ratio_slo()), rate_window_s=0.2)


def test_an_indicator_ref_names_an_sli_and_a_threshold_slo_is_the_latency_bound(tmp_path):
    sli = {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": "podinfo-success"},
           "spec": {"ratioMetric": {"counter": True, "good": prometheus(GOOD, "prometheus"),
                                    "total": prometheus(TOTAL, "prometheus")}}}
    slo = changed("spec.indicator", DROP)
    slo["spec"]["indicatorRef"] = "podinfo-success"
    alert = {"apiVersion": "openslo/v1", "kind": "AlertPolicy", "metadata": {"name": "page"},
             "spec": {"conditions": []}}
    path = write(tmp_path, SERVICE, sli, slo, latency_slo(value=250), alert)
    path.write_text(path.read_text() + "---\n")  # a trailing separator is no document
    got = load_openslo(path, rate_window_s=30)
    assert got.name == "podinfo-availability" and got.service == "podinfo"
    assert got.success_ratio_query == f"sum(rate({GOOD}[30s])) / sum(rate({TOTAL}[30s]))"
    assert got.latency_query == LATENCY and got.latency_p99_ms == 250.0
    assert got.queries == {"good": GOOD, "total": TOTAL, "latency": LATENCY}


def test_a_service_is_optional(tmp_path):
    got = load_openslo(write(tmp_path, changed("spec.service", DROP)), rate_window_s=30)
    assert got.service == ""


@pytest.mark.parametrize("metric", [
    {"counter": True, "good": prometheus(GOOD), "total": prometheus(TOTAL)},
    {"counter": True, "bad": prometheus(f"sum({BAD})"), "total": prometheus(TOTAL)},
    {"counter": False, "good": prometheus(f"({GOOD}) or vector(0)"),
     "total": prometheus(TOTAL)},
])
def test_the_success_ratio_query_is_well_formed(tmp_path, metric):
    got = load_openslo(write(tmp_path, changed(RATIO, metric)), rate_window_s=30)
    query = got.success_ratio_query
    assert balanced(query), query
    assert query.count(" / ") == 1 and query.count("sum(") >= 2
    assert not balanced("sum(rate(x[1m])"), "the check itself finds what is missing"


# -- what is refused ---------------------------------------------------------------------------
SOURCE = f"{RATIO}.good.metricSource"
CASES: list[tuple[str, list[Any] | str, str | None, str]] = [
    ("v1alpha", [changed("apiVersion", "openslo/v1alpha")], "apiVersion",
     "only openslo/v1 is read, not 'openslo/v1alpha'"),
    ("no kind", [changed("kind", DROP)], "kind", "is required"),
    ("no apiVersion", [changed("apiVersion", DROP)], "apiVersion", "is required"),
    ("no name", [changed("metadata.name", DROP)], "metadata.name", "is required"),
    ("a list", "- apiVersion: openslo/v1\n", "(top level)", "must be a mapping, not [{"),
    ("no spec", [changed("spec", DROP)], "spec", "is required"),
    ("service a number", [changed("spec.service", 5)], "spec.service",
     "must be a non-empty string, not 5"),
    ("no indicator", [changed("spec.indicator", DROP)], "spec.indicator", "indicatorRef"),
    ("indicator and ref", [changed("spec.indicatorRef", "x")], "spec.indicatorRef",
     "not both"),
    ("ref to nothing", [changed("spec.indicator", DROP, changed("spec.indicatorRef", "gone"))],
     "spec.indicatorRef", "names no SLI in this file: 'gone' (SLIs here: none)"),
    ("indicator spec a string", [changed("spec.indicator.spec", "ratio")],
     "spec.indicator.spec", "must be a mapping, not 'ratio'"),
    ("neither metric", [changed(RATIO, DROP)], "spec.indicator.spec",
     "needs a ratioMetric or a thresholdMetric"),
    ("raw", [changed(f"{RATIO}.raw", prometheus(GOOD))], f"{RATIO}.raw", "not read"),
    ("good and bad", [changed(f"{RATIO}.bad", prometheus(BAD))], f"{RATIO}.good",
     "give good or bad (one of them) and total"),
    ("neither good nor bad", [changed(f"{RATIO}.good", DROP)], f"{RATIO}.good",
     "give good or bad"),
    ("no total", [changed(f"{RATIO}.total", DROP)], f"{RATIO}.total", "is required"),
    ("counter a string", [changed(f"{RATIO}.counter", "yes")], f"{RATIO}.counter",
     "must be true or false, not 'yes'"),
    ("a source ref", [changed(f"{RATIO}.total", {"metricSourceRef": "prom"})],
     f"{RATIO}.total.metricSourceRef", "only an inline metricSource is read"),
    ("no source", [changed(f"{RATIO}.good", {})], SOURCE, "is required"),
    ("Datadog", [changed(f"{SOURCE}.type", "Datadog")], f"{SOURCE}.type",
     "only Prometheus sources are read, not 'Datadog'"),
    ("no type", [changed(f"{SOURCE}.type", DROP)], f"{SOURCE}.type", "is required"),
    ("source spec a list", [changed(f"{SOURCE}.spec", [GOOD])], f"{SOURCE}.spec",
     "must be a mapping"),
    ("empty query", [changed(f"{SOURCE}.spec.query", "  ")], f"{SOURCE}.spec.query",
     "must be a non-empty string, not '  '"),
    ("query a list", [changed(f"{SOURCE}.spec.query", [GOOD])], f"{SOURCE}.spec.query",
     "must be a non-empty string"),
    ("no objectives", [changed("spec.objectives", DROP)], "spec.objectives", "is required"),
    ("objectives empty", [changed("spec.objectives", [])], "spec.objectives",
     "must be a non-empty list, not []"),
    ("objective a string", [changed("spec.objectives", ["99%"])], "spec.objectives[0]",
     "must be a mapping, not '99%'"),
    ("no target", [changed("spec.objectives.0.target", DROP)], "spec.objectives[0].target",
     "is required"),
    ("target above 1", [changed("spec.objectives.0.target", 99)],
     "spec.objectives[0].target", "must be a number more than 0 and at most 1, not 99"),
    ("target 0", [changed("spec.objectives.0.target", 0)], "spec.objectives[0].target",
     "more than 0"),
    ("target a string", [changed("spec.objectives.0.target", "0.99")],
     "spec.objectives[0].target", "not '0.99'"),
    ("target a boolean", [changed("spec.objectives.0.target", True)],
     "spec.objectives[0].target", "not True"),
    ("target percent above 100", [changed("spec.objectives.0", {"targetPercent": 150})],
     "spec.objectives[0].targetPercent", "at most 100, not 150"),
    ("both targets", [changed("spec.objectives.0.targetPercent", 99)],
     "spec.objectives[0].targetPercent", "give target or targetPercent, not both"),
    # Files of several documents: each field after documents[N].
    ("a query in the second document", [SERVICE, changed(f"{RATIO}.total.metricSource.spec"
                                                         ".query", "")],
     f"documents[1].{RATIO}.total.metricSource.spec.query", "must be a non-empty string"),
    ("a string document", [ratio_slo(), "just words"], "documents[1]",
     "must be a mapping, not 'just words'"),
    ("an SLI of v1alpha", [{**SERVICE, "kind": "SLI", "apiVersion": "openslo/v1alpha"},
                           ratio_slo()], "documents[0].apiVersion", "only openslo/v1 is read"),
    ("an unnamed SLI", [{**SERVICE, "kind": "SLI", "metadata": {}}, ratio_slo()],
     "documents[0].metadata.name", "is required"),
    ("two SLIs of a name", [{**SERVICE, "kind": "SLI"}, {**SERVICE, "kind": "SLI"},
                            ratio_slo()], "documents[1].metadata.name",
     "a second SLI named 'podinfo'"),
    ("two ratio SLOs", [ratio_slo("one"), ratio_slo("two")], "documents[1].metadata.name",
     "'one' and 'two' are both ratio SLOs"),
    ("two latency SLOs", [ratio_slo(), latency_slo(), latency_slo()],
     "documents[2].metadata.name", "'podinfo-latency' and 'podinfo-latency' are both"),
    ("a lower bound", [ratio_slo(), latency_slo(op="gte")], "documents[1].spec.objectives[0].op",
     "'gte' is not a latency bound"),
    ("an unknown op", [ratio_slo(), latency_slo(op="under")],
     "documents[1].spec.objectives[0].op", "must be lt or lte, not 'under'"),
    ("a negative bound", [ratio_slo(), latency_slo(value=-1)],
     "documents[1].spec.objectives[0].value", "more than 0"),
    ("a bound of years", [ratio_slo(), latency_slo(value=10**400)],
     "documents[1].spec.objectives[0].value", "at most 86400000"),
    ("no ratio SLO", [SERVICE, latency_slo()], None, "holds no ratio SLO"),
    ("nothing", "", None, "holds no ratio SLO"),
    ("broken YAML", "apiVersion: openslo/v1\nkind: [SLO\n", "line 3", "not valid YAML"),
    ("a tab", "a:\n\tb: 1\n", "line 2", "not valid YAML"),
]


@pytest.mark.parametrize(("docs", "field", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_broken_document_is_refused_at_its_field(tmp_path, docs, field, words):
    if isinstance(docs, str):
        path = tmp_path / "slo.yaml"
        path.write_text(docs)
    else:
        path = write(tmp_path, *docs)
    with pytest.raises(ValidationError) as caught:
        load_openslo(path, rate_window_s=30)
    err = caught.value
    assert (err.file, err.field) == (str(path), field)
    assert words in err.message
    assert str(err) == ": ".join(p for p in (str(path), field, err.message) if p)
    # readable: one line, short, no Python internals
    assert "\n" not in err.message and len(err.message) < 200
    assert "Error" not in err.message and "object at 0x" not in err.message


def test_an_unreadable_file_is_refused_by_name(tmp_path):
    for path, words in ((tmp_path / "none.yaml", "no such file"),
                        (tmp_path, "is a directory")):
        with pytest.raises(ValidationError, match=words) as caught:
            load_openslo(path, rate_window_s=30)
        assert caught.value.file == str(path)
    binary = tmp_path / "slo.yaml"
    binary.write_bytes("kind: SLO\n".encode("utf-16"))
    with pytest.raises(ValidationError, match="not UTF-8"):
        load_openslo(binary, rate_window_s=30)
