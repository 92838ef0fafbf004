"""SLOs imported from an OpenSLO v1 file (``apiVersion: openslo/v1``) as PromQL.

A file holds one ratio SLO (its first objective's target is the success ratio) and,
optionally, one threshold SLO whose first objective bounds latency (``op: lt`` or
``lte``, ``value`` in milliseconds): its query must return milliseconds, e.g.
``histogram_quantile(0.99, ...) * 1000``. Indicators are inline (``spec.indicator``)
or an ``indicatorRef`` naming an SLI document of the same file; metric sources must be
inline Prometheus queries. Other kinds (Service, AlertPolicy, ...) are skipped, and so
are empty documents. Whatever the file gets wrong is a ValidationError naming it and
the field: ``documents[N].`` then the path inside, when the file holds several.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gameday.core.errors import ValidationError
from gameday.core.spec import quote, read_bytes

API_VERSION = "openslo/v1"
MAX_LATENCY_MS = 86_400_000.0  # a day: no latency bound is longer
# A metric name with optional matchers: rate() takes it as is; anything else is a subquery.
SELECTOR = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*\s*(\{[^{}]*\})?$")


@dataclass(frozen=True)
class Imported:
    name: str                       # the ratio SLO's metadata.name
    service: str                    # its spec.service, or ""
    success_ratio_query: str        # PromQL: the share of good events, 0..1
    success_ratio: float            # the objective's target, 0..1
    latency_query: str | None       # PromQL returning milliseconds
    latency_p99_ms: float | None    # the threshold objective's value
    queries: dict[str, str]         # good/bad/total/latency as written, for a review


@dataclass(frozen=True)
class _Doc:
    file: str
    prefix: str                     # "documents[N]" in a file of several, else ""
    body: dict[str, Any]

    def error(self, path: str, message: str) -> ValidationError:
        field = ".".join(p for p in (self.prefix, path) if p) or "(top level)"
        return ValidationError(message, file=self.file, field=field)


@dataclass(frozen=True)
class _Slo:
    doc: _Doc
    spec: dict[str, Any]
    where: str                      # the path of the indicator's spec in sli_doc
    sli_doc: _Doc                   # the SLO's own document, or the SLI one it names
    sli: dict[str, Any]


def load_openslo(path: Path, *, rate_window_s: float) -> Imported:
    """The ratio SLO (and latency SLO, if any) in ``path``; counters are read as rates
    over ``rate_window_s`` seconds (whole seconds, at least 1)."""
    window = _duration(rate_window_s)
    docs, slis = _openslo_documents(path)
    ratio: list[_Slo] = []
    latency: list[_Slo] = []
    for doc in docs:
        if doc.body["kind"] != "SLO":
            continue
        spec = _mapping(doc, _need(doc, doc.body, "", "spec"), "spec")
        slo = _Slo(doc, spec, *_indicator(doc, spec, slis))
        if "ratioMetric" in slo.sli and "thresholdMetric" in slo.sli:
            raise slo.sli_doc.error(slo.where, "has both a ratioMetric and a "
                                    "thresholdMetric: give one")
        if "ratioMetric" in slo.sli:
            ratio.append(slo)
        elif "thresholdMetric" in slo.sli:
            latency.append(slo)
        else:
            raise slo.sli_doc.error(slo.where, "needs a ratioMetric or a thresholdMetric")
    if not ratio:
        raise ValidationError("holds no ratio SLO (an SLO whose indicator has a "
                              "ratioMetric)", file=str(path))
    for found, what in ((ratio, "ratio"), (latency, "threshold (latency)")):
        if len(found) > 1:
            a, b = (_name(slo.doc) for slo in found[:2])
            raise found[1].doc.error("metadata.name", f"{quote(a)} and {quote(b)} are both "
                                     f"{what} SLOs: a file holds one ratio SLO and at "
                                     "most one threshold (latency) SLO")
    slo = ratio[0]
    query, queries = _ratio(slo.sli_doc, slo.sli["ratioMetric"],
                            f"{slo.where}.ratioMetric", window)
    target = _target(slo.doc, _first_objective(slo.doc, slo.spec))
    service = _text(slo.doc, slo.spec["service"], "spec.service") \
        if slo.spec.get("service") is not None else ""
    latency_query, latency_ms = _latency(latency[0]) if latency else (None, None)
    if latency_query is not None:
        queries["latency"] = latency_query
    return Imported(name=_name(slo.doc), service=service, success_ratio_query=query,
                    success_ratio=target, latency_query=latency_query,
                    latency_p99_ms=latency_ms, queries=queries)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 1:
        raise ValueError(f"rate_window_s must be at least 1 second, not {seconds}")
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _openslo_documents(path: Path) -> tuple[list[_Doc], dict[str, tuple[_Doc, Any]]]:
    """The file's non-empty documents, each checked to be an OpenSLO v1 one if it is an
    SLO or SLI; and the SLI documents' specs by metadata.name."""
    file = str(path)
    try:
        loaded = list(yaml.safe_load_all(read_bytes(path).decode("utf-8")))
    except UnicodeDecodeError as exc:
        raise ValidationError(f"is not UTF-8 text (byte {exc.start})", file=file) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ValidationError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                              file=file, field=f"line {mark.line + 1}" if mark else None) \
            from None
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise ValidationError(f"not valid YAML: {exc}", file=file) from None
    several = sum(body is not None for body in loaded) > 1
    docs: list[_Doc] = []
    slis: dict[str, tuple[_Doc, Any]] = {}
    for index, body in enumerate(loaded):
        if body is None:  # a trailing or doubled ---
            continue
        prefix = f"documents[{index}]" if several else ""
        doc = _Doc(file, prefix, _mapping(_Doc(file, prefix, {}), body, ""))
        kind = _text(doc, _need(doc, doc.body, "", "kind"), "kind")
        version = _text(doc, _need(doc, doc.body, "", "apiVersion"), "apiVersion")
        if kind not in ("SLO", "SLI"):
            continue
        if version != API_VERSION:
            raise doc.error("apiVersion", f"only {API_VERSION} is read, not {quote(version)}")
        name = _name(doc)
        if kind == "SLI" and name in slis:
            raise doc.error("metadata.name", f"a second SLI named {quote(name)}")
        if kind == "SLI":
            slis[name] = (doc, _need(doc, doc.body, "", "spec"))
        docs.append(doc)
    return docs, slis


def _indicator(doc: _Doc, spec: dict[str, Any],
               slis: dict[str, tuple[_Doc, Any]]) -> tuple[str, _Doc, dict[str, Any]]:
    """The SLO's indicator spec: its path, the document holding it, and the mapping."""
    if "indicator" in spec and "indicatorRef" in spec:
        raise doc.error("spec.indicatorRef", "give spec.indicator or spec.indicatorRef, "
                        "not both")
    if "indicatorRef" in spec:
        ref = _text(doc, spec["indicatorRef"], "spec.indicatorRef")
        if ref not in slis:
            raise doc.error("spec.indicatorRef", f"names no SLI in this file: {quote(ref)} "
                            f"(SLIs here: {', '.join(sorted(slis)) or 'none'})")
        sli_doc, sli_spec = slis[ref]
        return "spec", sli_doc, _mapping(sli_doc, sli_spec, "spec")
    if "indicator" not in spec:
        raise doc.error("spec.indicator", "is required (or spec.indicatorRef naming an SLI "
                        "document of this file)")
    indicator = _mapping(doc, spec["indicator"], "spec.indicator")
    where = "spec.indicator.spec"
    return where, doc, _mapping(doc, _need(doc, indicator, "spec.indicator", "spec"), where)


def _ratio(doc: _Doc, metric: Any, where: str, window: str) -> tuple[str, dict[str, str]]:
    """The success ratio query of a ratioMetric, and its queries as written."""
    metric = _mapping(doc, metric, where)
    if "raw" in metric:
        raise doc.error(f"{where}.raw", "raw ratio metrics are not read: give good or bad, "
                        "and total")
    if ("good" in metric) == ("bad" in metric):
        raise doc.error(f"{where}.good", "give good or bad (one of them) and total")
    _need(doc, metric, where, "total")
    counter = metric.get("counter", False)
    if not isinstance(counter, bool):
        raise doc.error(f"{where}.counter", f"must be true or false, not {quote(counter)}")
    queries = {key: _prometheus(doc, metric[key], f"{where}.{key}")
               for key in ("good", "bad", "total") if key in metric}

    def summed(query: str) -> str:
        if not counter:
            return f"sum({query})"
        if SELECTOR.match(query):
            return f"sum(rate({query}[{window}]))"
        return f"sum(rate(({query})[{window}:]))"

    total = summed(queries["total"])
    if "good" in queries:
        return f"{summed(queries['good'])} / {total}", queries
    return f"1 - ({summed(queries['bad'])} / {total})", queries


def _prometheus(doc: _Doc, events: Any, where: str) -> str:
    """The query of one inline Prometheus metricSource (good, bad, total, threshold)."""
    events = _mapping(doc, events, where)
    if "metricSourceRef" in events and "metricSource" not in events:
        raise doc.error(f"{where}.metricSourceRef", "only an inline metricSource is read: "
                        "write the Prometheus source here instead of a reference")
    source = _mapping(doc, _need(doc, events, where, "metricSource"), f"{where}.metricSource")
    where = f"{where}.metricSource"
    kind = _text(doc, _need(doc, source, where, "type"), f"{where}.type")
    if kind.lower() != "prometheus":
        raise doc.error(f"{where}.type", f"only Prometheus sources are read, not {quote(kind)}")
    spec = _mapping(doc, _need(doc, source, where, "spec"), f"{where}.spec")
    return _text(doc, _need(doc, spec, f"{where}.spec", "query"), f"{where}.spec.query")


def _first_objective(doc: _Doc, spec: dict[str, Any]) -> dict[str, Any]:
    objectives = _need(doc, spec, "spec", "objectives")
    if not isinstance(objectives, list) or not objectives:
        raise doc.error("spec.objectives", f"must be a non-empty list, not {quote(objectives)}")
    return _mapping(doc, objectives[0], "spec.objectives[0]")


def _target(doc: _Doc, objective: dict[str, Any]) -> float:
    where = "spec.objectives[0]"
    if "target" in objective and "targetPercent" in objective:
        raise doc.error(f"{where}.targetPercent", "give target or targetPercent, not both")
    if "targetPercent" in objective:
        return _number(doc, objective["targetPercent"], f"{where}.targetPercent", 100) / 100
    return _number(doc, _need(doc, objective, where, "target"), f"{where}.target", 1)


def _latency(slo: _Slo) -> tuple[str, float]:
    """The threshold SLO's query (milliseconds) and its bound."""
    query = _prometheus(slo.sli_doc, slo.sli["thresholdMetric"],
                        f"{slo.where}.thresholdMetric")
    objective, where = _first_objective(slo.doc, slo.spec), "spec.objectives[0]"
    op = _text(slo.doc, _need(slo.doc, objective, where, "op"), f"{where}.op")
    if op in ("gt", "gte"):
        raise slo.doc.error(f"{where}.op", f"{quote(op)} is not a latency bound: "
                            "a latency objective is op: lt or lte")
    if op not in ("lt", "lte"):
        raise slo.doc.error(f"{where}.op", f"must be lt or lte, not {quote(op)}")
    value = _need(slo.doc, objective, where, "value")
    return query, _number(slo.doc, value, f"{where}.value", MAX_LATENCY_MS)


# -- fields, each checked where it is read ------------------------------------------------
def _need(doc: _Doc, parent: dict[str, Any], where: str, key: str) -> Any:
    if parent.get(key) is None:
        raise doc.error(f"{where}.{key}" if where else key, "is required")
    return parent[key]


def _mapping(doc: _Doc, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(where, f"must be a mapping, not {quote(value)}")
    return value


def _text(doc: _Doc, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error(where, f"must be a non-empty string, not {quote(value)}")
    return value.strip()


def _number(doc: _Doc, value: Any, where: str, high: float) -> float:
    """A number more than 0 and at most ``high``."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= high:
        raise doc.error(where, f"must be a number more than 0 and at most {high:.10g}, "
                        f"not {quote(value)}")
    return float(value)


def _name(doc: _Doc) -> str:
    metadata = _mapping(doc, _need(doc, doc.body, "", "metadata"), "metadata")
    return _text(doc, _need(doc, metadata, "metadata", "name"), "metadata.name")
