"""Hostile scenario documents, property-based: ``gameday validate`` accepts a file or
refuses it with a ``ValidationError`` naming the file (exit 2), and never crashes.

Documents come from three places:

- the shipped scenarios (and, for ``validate``'s other branches, a shipped experiment
  and runbook), mutated at random paths: values replaced by hostile ones (wrong types,
  huge, zero, negative, NaN and infinite numbers, empty, 5,000-character, control,
  bidi and exotic strings, shell and Jinja injections, deep nesting, None), keys
  removed, renamed or added, or values replaced by fresh ones drawn from the JSON
  Schema that ``gameday schema scenario`` prints, so that many mutants stay valid;
- whole documents drawn from that JSON Schema (a small generator over its types,
  properties, patterns and bounds; no ``hypothesis-jsonschema``);
- raw bytes: arbitrary bytes, YAML text in UTF-16 and UTF-32 with a BOM, alias bombs
  (bounded), tags such as ``!!python/object``, and deep nesting.

Every document is written as ``scenarios/hostile.yaml`` inside a copy of the project's
layout (``experiments/`` next to ``scenarios/``; runbooks come from the project, as
for any scenario), so the relative experiment paths of a still-valid document resolve
and the accepting branch runs too; each property counts both outcomes, so it cannot
pass vacuously. A few examples also go through the real CLI (Click's runner, and a
subprocess for a handful of fixed documents): exit 0 or 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gameday.cli.main import cli
from gameday.core import settings as gameday_settings
from gameday.core.errors import ValidationError
from gameday.game.validate import validate_file
from gameday.scenarios.scenario import scenario_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = scenario_schema()  # what `gameday schema scenario` prints
SCENARIOS = {p.name: p.read_text(encoding="utf-8")
             for p in sorted((ROOT / "scenarios").glob("*.yaml"))}
EXPERIMENT_REFS = sorted(f"../experiments/{p.name}"
                         for p in (ROOT / "experiments").glob("*.yaml"))
# validate's other branches: a mapping with `method` is an experiment, a list a runbook.
OTHERS = {"experiment": (ROOT / "experiments" / "checkout-replica-crash.yaml").read_text(),
          "runbook": (ROOT / "gameday" / "targets" / "sandbox" / "runbooks"
                      / "restart-replica.yml")
          .read_text()}
ALERT_NAMES = sorted({yaml.safe_load(t)["alert"]["name"] for t in SCENARIOS.values()})

PROFILE = {"database": None, "derandomize": True, "deadline": None,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much,
                                     HealthCheck.large_base_example]}


# -- hostile values ---------------------------------------------------------------------
HOSTILE_STRINGS = (
    "", " ", "\t", "\n", "   padded   ", "x" * 5000, "é" * 5000, "a b" * 2000,
    "\x00", "nul\x00byte", "\x07bell", "\x1b[31mred\x1b[0m", "two\nlines", "cr\rhere",
    "\x7f", "\x85next", "line\u2028sep", "\u0000\u0001\u0002",
    "\u202eevil\u202c", "\u2066isolate\u2069", "\u200b", "zero\u200dwidth", "\ufeffbom",
    "\ufffe", "\uffff", "\U0001f4a5", "\U0001d55f\U0001d560", "\uff21\uff22", "\ufb01",
    "\u0130", "\u00df", "e\u0301", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\ud800", "a\udcffb",  # lone surrogates: YAML escapes in the file, str after loading
    "$(id)", "`id`", "; rm -rf /", "| id", "{{ lookup('pipe','id') }}", "{% for x in y %}",
    "{#", "${HOME}", "%(x)s", "{0}", "<script>alert(1)</script>", "[fay](http://evil)",
    "../../../../etc/passwd", "/etc/passwd", "/dev/null", "/proc/self/status", ".", "..",
    "/", "~", "C:\\Windows", "hostile.yaml", "../scenarios/hostile.yaml",
    "http://[::1/runbooks/restart-replica", "http://a\uff03b/runbooks/restart-replica",
    "http://127.0.0.1:8080/runbooks/restart-replica?service=$(id)",
    "http://127.0.0.1:8080/runbooks/restart-replica?service=checkout&nope=1",
    "http://127.0.0.1:8080/runbooks/../../etc/passwd", "http://x/runbooks/",
    "/runbooks/disable-flag?flag={{x}}", "javascript:alert(1)",
    "null", "yes", "no", "on", "0x10", "1e400", "-1", "-1s", "0s", "0ms", "NaN", ".nan",
    ".inf", "-.inf", "500ms", "2s", "5m", "1h", "25h", "99999999999999999999h",
    "1" * 400 + "s", "2026-02-30", "SEV-1", "sandbox", "kind", "kwok", "auto", "drill",
    "none", "hybrid", "prometheus",
)
class HugeInt(int):
    """An integer too long for Python's decimal conversion (more than 4,300 digits):
    shown in hex, so that Hypothesis can print an example that holds one."""

    def __repr__(self) -> str:
        return ("-" if self < 0 else "") + hex(abs(self))


HOSTILE_NUMBERS = (
    0, -0.0, -1, 1, 0.5, 1e-300, 5e-324, 1e308, -1e308, math.inf, -math.inf, math.nan,
    2**31, 2**63, 2**64 + 1, -(2**63), 2**1024, 10**309, 10**400, -(10**400),
    HugeInt(16**5000), True, False,
)
# runbook_url values: parsed as URLs on the way from the alert to the runbook.
URLS = (
    "http://[::1/runbooks/restart-replica", "http://[/runbooks/x", "http://]/runbooks/x",
    "http://a\uff03b/runbooks/restart-replica", "http://a\uff1fb/runbooks/x",
    "http://\u2100/runbooks/restart-replica", "http://x:99999999/runbooks/restart-replica",
    "//runbooks/restart-replica", "runbooks/restart-replica", "/runbooks/",
    "/runbooks/restart-replica?service=" + "x" * 5000, "/runbooks/restart-replica?service=%00",
    "/runbooks/restart-replica?%zz=1", "/runbooks/restart-replica?service={{7*7}}",
    "/runbooks/%2e%2e/restart-replica", "/runbooks/restart-replica#frag",
    "/runbooks/restart-replica?service=checkout&service=fraud", "/runbooks/\u202erestart",
    "/runbooks/restart-replica?service=checkout", "/runbooks/disable-flag?flag=x&extra=1",
)
HOSTILE_KEYS = st.one_of(
    st.sampled_from(["colour", "", " ", "for_", "__class__", "__proto__", "$ref", "<<",
                     "x" * 5000, "\x00", "\u202ename", "\ud800", "nAmE", "name ", "for",
                     "runbook_url", "SEV-9", "tea"]),
    st.sampled_from(HOSTILE_STRINGS),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1,
            max_size=3),  # lone surrogates
    st.integers(), st.none(), st.booleans(), st.floats(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
)
# Fields whose values travel furthest (to the file system, the router, a runbook, the
# duration and number checks), with the values most likely to hurt there.
_DURATION_FIELDS = (("slo", "window"), ("alert", "for"), ("timeouts", "detect"),
                    ("recovery_window",), ("evaluation_interval",), ("traffic", "timeout"),
                    ("targets", "SEV-1", "ack"), ("traffic", "rate"), ("slo", "success_ratio"))
_TEXT_FIELDS = (("experiment",), ("response", "runbook"), ("alert", "name"),
                ("alert", "labels", "service"), ("response", "params", "service"),
                ("target",), ("workload", "namespace"), ("customer_facing",),
                ("team", "oncall"), ("title",))


def nested(depth: int, shape: str) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if shape == "list" else {"k": value}
    return value


_scalars = st.one_of(
    st.sampled_from(HOSTILE_STRINGS), st.sampled_from(HOSTILE_NUMBERS), st.none(),
    st.integers(), st.floats(), st.booleans(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
    st.text(st.characters(min_codepoint=0x80, exclude_categories=("Cs",)), min_size=1,
            max_size=20),
)
hostile_values = st.one_of(
    _scalars,
    st.builds(nested, st.integers(1, 150), st.sampled_from(["list", "dict"])),
    st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(HOSTILE_KEYS, inner, max_size=3), max_leaves=8),
)


# -- values from the JSON Schema -----------------------------------------------------------
def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    return kind if isinstance(kind, list) else [kind] if kind else []


def _number(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = node.get("minimum", node.get("exclusiveMinimum")), node.get("maximum")
    exclusive = "exclusiveMinimum" in node and low is not None
    floats = st.floats(low, high, exclude_min=exclusive, allow_nan=False,
                       allow_infinity=False)
    first = None if low is None else math.floor(low) + 1 if exclusive else math.ceil(low)
    last = None if high is None else math.floor(high)
    if first is not None and last is not None and first > last:
        return floats  # no integer in range (0.01 to 0.25)
    return floats | st.integers(first, last)


def _ascii(pattern: str) -> str:
    r"""``pattern`` with ``\w`` and ``\d`` as ASCII: JavaScript's meaning (editors), and
    the values most files hold. Python's own, the other half of the time, differs from
    the validator's (Rust's) on some letters: those documents are refused, fine too."""
    pattern = pattern.replace("[\\w", "[A-Za-z0-9_").replace("[\\d", "[0-9")
    return pattern.replace("\\w", "[A-Za-z0-9_]").replace("\\d", "[0-9]")


def _string(node: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = node.get("minLength", 0), node.get("maxLength")
    pattern = node.get("pattern")
    base = (st.from_regex(pattern, fullmatch=True) | st.from_regex(_ascii(pattern),
                                                                   fullmatch=True)) \
        if pattern else st.text(max_size=40)
    return base.filter(lambda s: len(s) >= low and (high is None or len(s) <= high))


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid by the schema ``node``: its types, properties, patterns, bounds."""
    return _from_schema(json.dumps(resolve(node), sort_keys=True))


@cache
def _from_schema(key: str) -> st.SearchStrategy[Any]:
    node = json.loads(key)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    if "anyOf" in node:
        return st.one_of(*(from_schema(branch) for branch in node["anyOf"]))
    kinds = _types(node)
    if len(kinds) != 1:
        return st.one_of(*(from_schema({**node, "type": k}) for k in kinds)) if kinds \
            else hostile_values
    kind = kinds[0]
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind in ("number", "integer"):
        return _number(node) if kind == "number" else st.integers(
            node.get("minimum"), node.get("maximum"))
    if kind == "string":
        return _string(node)
    if kind == "array":
        return st.lists(from_schema(node.get("items", {})), min_size=node.get("minItems", 0),
                        max_size=max(node.get("minItems", 0), 3))
    if kind == "object":
        props = node.get("properties", {})
        required = set(node.get("required", ()))
        fixed = st.fixed_dictionaries(
            {k: from_schema(v) for k, v in props.items() if k in required},
            optional={k: from_schema(v) for k, v in props.items() if k not in required})
        patterns = node.get("patternProperties", {})
        if not patterns:
            return fixed
        extra = st.one_of(*(st.dictionaries(st.from_regex(p, fullmatch=True),
                                            from_schema(v), max_size=3)
                            for p, v in patterns.items()))
        return st.builds(lambda a, b: {**b, **a}, fixed, extra)
    return hostile_values


def schema_at(doc: Any, path: tuple[Any, ...]) -> dict[str, Any] | None:
    """The schema of the value at ``path`` in ``doc``, when the schema says."""
    node: dict[str, Any] | None = SCHEMA
    value = doc
    for key in path:
        node = _branch(resolve(node), value) if node is not None else None
        if node is None:
            return None
        if isinstance(value, dict):
            child = node.get("properties", {}).get(key)
            if child is None and isinstance(key, str):
                child = next((v for p, v in node.get("patternProperties", {}).items()
                              if re.search(p, key)), None)
            node = child
        elif isinstance(value, list):
            node = node.get("items")
        else:
            return None
        value = value[key]
    return resolve(node) if node is not None else None


def _branch(node: dict[str, Any], value: Any) -> dict[str, Any] | None:
    """The branch of an ``anyOf`` that describes ``value``'s container type."""
    wanted = "object" if isinstance(value, dict) else "array" if isinstance(value, list) \
        else None
    for candidate in [node, *(resolve(b) for b in node.get("anyOf", ()))]:
        if wanted in _types(candidate) or (wanted == "object" and "properties" in candidate):
            return candidate
    return None


# -- documents -------------------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    pass


def _represent_int(dumper: yaml.SafeDumper, value: int) -> yaml.ScalarNode:
    try:
        text = str(int(value))
    except ValueError:  # too many digits for Python's decimal conversion: YAML's hex form
        text = ("-" if value < 0 else "") + hex(abs(value))
    return dumper.represent_scalar("tag:yaml.org,2002:int", text)


_Dumper.add_representer(int, _represent_int)
_Dumper.add_representer(HugeInt, _represent_int)


def dump(doc: Any) -> str:
    """YAML text for ``doc``: exotic characters as they are, the unprintable ones (NUL,
    lone surrogates...) as escapes, keys of any type in their order."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def nodes(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path in ``doc``, the root first."""
    found = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += nodes(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += nodes(value, (*path, i))
    return found


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    at(doc, path[:-1])[path[-1]] = value
    return doc


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A shipped scenario (sometimes the shipped experiment or runbook), mutated at
    random paths with hostile values, or with fresh values drawn from the schema."""
    base = draw(st.sampled_from([*SCENARIOS.values()] * 4 + [*OTHERS.values()]))
    doc = yaml.safe_load(base)
    if isinstance(doc, dict) and "method" not in doc and draw(st.integers(0, 2)) == 0:
        # one hostile value in a field that travels far, the rest still valid
        kind = draw(st.sampled_from(["url", "number", "text"]))
        if kind == "url":
            where, value = ("alert", "annotations", "runbook_url"), draw(st.sampled_from(URLS))
        elif kind == "number":
            where = draw(st.sampled_from(_DURATION_FIELDS))
            value = draw(st.sampled_from(HOSTILE_NUMBERS))
        else:
            where = draw(st.sampled_from(_TEXT_FIELDS))
            value = draw(st.sampled_from(HOSTILE_STRINGS) | hostile_values)
        parent = doc
        for key in where[:-1]:
            parent = parent.setdefault(key, {})
        parent[where[-1]] = value
        return doc
    for _ in range(draw(st.integers(0, 4))):
        paths = nodes(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["hostile", "hostile", "schema", "schema", "delete",
                                   "add", "rename"]))
        target = at(doc, path)
        if op == "schema":
            node = schema_at(doc, path) if isinstance(doc, dict) else None
            value = draw(from_schema(node)) if node is not None else draw(hostile_values)
            doc = _put(doc, path, value)
        elif op == "hostile":
            doc = _put(doc, path, draw(hostile_values))
        elif op == "delete" and path:
            parent = at(doc, path[:-1])
            del parent[path[-1]]
        elif op == "add" and isinstance(target, dict):
            node = schema_at(doc, path) if isinstance(doc, dict) else None
            missing = sorted(set((node or {}).get("properties", {})) - set(target))
            if missing and draw(st.booleans()):  # an optional field the file left out
                key = draw(st.sampled_from(missing))
                target[key] = draw(from_schema(node["properties"][key]))
            else:
                target[draw(HOSTILE_KEYS)] = draw(hostile_values)
        elif op == "add" and isinstance(target, list):
            target.append(draw(hostile_values))
        elif op == "rename" and path and isinstance(at(doc, path[:-1]), dict):
            parent = at(doc, path[:-1])
            parent[draw(HOSTILE_KEYS)] = parent.pop(path[-1])
    return doc


@st.composite
def schema_documents(draw: st.DrawFn) -> Any:
    """A whole document drawn from the scenario's JSON Schema, nudged towards the ones
    that get far: an experiment that exists, a workload for a cluster, none of a
    service's own pieces elsewhere, objectives of its own, an alert that routes to a
    runbook."""
    doc = draw(from_schema(SCHEMA))
    if draw(st.integers(0, 3)):
        doc.pop("replay", None)  # written by `gameday drill start --from-incident`
    if draw(st.integers(0, 3)):
        doc["experiment"] = draw(st.sampled_from(EXPERIMENT_REFS))
    if doc.get("target", "sandbox") != "sandbox" and draw(st.booleans()):
        doc["workload"] = {"namespace": "shop", "deployment": "frontend"}
    if doc.get("target", "sandbox") != "service" and draw(st.booleans()):
        # what only a team's own service reads (its entry point, Prometheus, Alertmanager,
        # inventory)
        for key in ("sli", "alertmanager", "stop_when", "inventory"):
            doc.pop(key, None)
        if isinstance(doc.get("traffic"), dict):
            doc["traffic"].pop("url", None)
        if doc.get("alerting") == "alertmanager":
            doc["alerting"] = "builtin"
    if draw(st.integers(0, 3)) and isinstance(doc.get("slo"), dict):
        # the scenario's own objectives, not a team's OpenSLO file (the schema asks for
        # them only when that file is absent, which the drawing does not know)
        doc["slo"].pop("openslo", None)
        for key, value in (("success_ratio", 0.99), ("latency_p99_ms", 300)):
            if doc["slo"].get(key) is None:
                doc["slo"][key] = value
    if draw(st.booleans()):
        doc["alert"]["name"] = draw(st.sampled_from(ALERT_NAMES))
    if draw(st.booleans()):
        annotations = doc["alert"].setdefault("annotations", {})
        annotations["runbook_url"] = draw(st.sampled_from(
            ["http://127.0.0.1:8080/runbooks/restart-replica", "/runbooks/disable-flag",
             "http://x/runbooks/nope", "http://x/runbooks/k8s-rollout-undo?namespace=a"]
            + list(URLS))
            | st.text(max_size=40))
    return doc


def _bomb(width: int, depth: int) -> str:
    """A flow sequence of aliases, ``width ** depth`` leaves deep inside (bounded)."""
    text = "&a0 lol"
    for level in range(1, depth + 1):
        text = f"&a{level} [{text}" + f", *a{level - 1}" * (width - 1) + "]"
    return text


TAGGED = (
    "!!python/object/apply:os.system ['id']", "!!python/name:os.system",
    "!!python/object:gameday.core.errors.ValidationError {message: x}",
    "!!python/object/new:type [x, [], {}]", "!!python/tuple [1, 2]",
    "!!binary aGVsbG8=", "!!binary '!!!'", "!!set {a, b}", "!!omap [a: 1, b: 2]",
    "!!pairs [a: 1, a: 2]", "!!timestamp 2026-01-01", "2026-02-30", "2026-01-01 10:00:00+99:00",
    "!!float nan", "!!float '1e400'", "!!int '0x" + "f" * 5000 + "'", "0x" + "f" * 5000,
    "0o" + "7" * 6000, "0b" + "1" * 20000, ":".join(["59"] * 3000), "1" + "0" * 400,
    "!!str 1", "!!int nope", "!custom x", "!<tag:yaml.org,2002:python/none> ''",
    "!!map [1, 2]", "*undefined", "&a [*a]", "{<<: [1, 2]}", "{<<: *undefined}",
    "{? [a, b]: c}", "{? {a: 1}: c}", '"\\ud800"', '"\\x00"', '"\\U0010ffff"',
    '"\\u202e\\u2066"', "'" + "x" * 5000 + "'",
)
ENCODINGS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
             "utf-8-sig", "latin-1", "cp1252")


@st.composite
def raw_documents(draw: st.DrawFn) -> bytes:
    """Bytes that a scenario file might hold, most of them not a scenario at all."""
    kind = draw(st.sampled_from(["bytes", "encoded", "bomb", "tag", "deep", "yaml"]))
    event(f"raw: {kind}")
    base = yaml.safe_load(draw(st.sampled_from([*SCENARIOS.values(), *OTHERS.values()])))
    if kind == "bytes":
        return draw(st.binary(max_size=4096))
    if kind == "encoded":
        encoding = draw(st.sampled_from(ENCODINGS))
        text = dump(base) + draw(st.sampled_from(["", "customer_facing: caf\u00e9\n"]))
        bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff",
               "utf-32-le": b"\xff\xfe\x00\x00", "utf-32-be": b"\x00\x00\xfe\xff"}
        if encoding in ("latin-1", "cp1252"):
            text += "title: caf\u00e9\n"
        return bom.get(encoding, b"") + text.encode(encoding, "replace")
    if kind == "deep":
        n = draw(st.sampled_from([50, 300, 990, 1000, 5000]))
        shape = draw(st.sampled_from(["[", "{a: ", "- ", "block", "key"]))
        if shape == "[":
            return ("[" * n + "]" * n).encode()
        if shape == "{a: ":
            return ("{a: " * n + "1" + "}" * n).encode()
        if shape == "- ":
            return ("- " * min(n, 3000) + "x\n").encode()
        if shape == "block":
            n = min(n, 700)  # indentation grows with depth: stay under the size limit
            return "".join(" " * i + "a:\n" for i in range(n)).encode() + b" " * n + b"1\n"
        fragment = "[" * n + "]" * n
        return dump({**base, "description": "@@HOLE@@"}).replace("'@@HOLE@@'", fragment) \
            .encode() if isinstance(base, dict) else fragment.encode()
    if kind == "yaml":
        return draw(st.sampled_from([
            b"", b"---\n", b"~\n", b"[]\n", b"{}\n", b"- \n", b"...\n", b"--- 1\n--- 2\n",
            b"%YAML 1.1\n---\nname: x\n", b"%YAML 9.9\n---\nname: x\n",
            b"%TAG ! tag:evil.com,2000:\n---\n!x y\n", b"name: x\n\tteam: y\n",
            b"a: b: c\n", b"name: x\nname: y\n", b"? complex\n: key\n", b"'unterminated\n",
            b"\xef\xbb\xbf\xef\xbb\xbfname: x\n", b"name: x\x00\n", b"\r\n\r\n", b"\x85",
            "name: x\ntitle: \u2028\n".encode(), b"key: |\n  a\n b\n",
        ]))
    # an alias bomb or a tagged value at a random path of a real document
    fragment = _bomb(draw(st.integers(2, 10)), draw(st.integers(1, 6))) if kind == "bomb" \
        else draw(st.sampled_from(TAGGED))
    paths = nodes(base)
    path = draw(st.sampled_from(paths))
    if not path:
        return fragment.encode()
    doc = _put(base, path, "@@HOLE@@")
    return dump(doc).replace("'@@HOLE@@'", fragment).encode()


def as_bytes(doc: Any) -> bytes:
    return doc if isinstance(doc, bytes) else dump(doc).encode("utf-8")


any_document = st.one_of(mutated_documents(), schema_documents(), raw_documents())


# -- the property ------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _no_constants_from_loaded_modules():
    """The same documents alone and in the whole suite. Hypothesis mixes into what it
    draws constants it finds in the source of every local module loaded so far (and
    stops looking after 100 ms), so the documents, and how many are accepted, would
    follow which other test modules ran first and how loaded the machine is. Here that
    pool is empty: what is drawn follows this file alone."""
    from hypothesis.internal.conjecture import providers

    empty = providers.Constants(integers=providers.SortedSet(),
                                floats=providers.SortedSet(key=providers.float_to_int),
                                bytes=providers.SortedSet(), strings=providers.SortedSet())
    saved = providers._get_local_constants
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()
    yield
    providers._get_local_constants = saved
    providers.CONSTANTS_CACHE.cache.clear()


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``scenarios/hostile.yaml`` in a copy of the project's layout: the shipped
    scenarios' ``../experiments/...`` resolve next to it."""
    base = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "experiments", base / "experiments")
    (base / "scenarios").mkdir()
    return base / "scenarios" / "hostile.yaml"


def _names(path: Path, data: bytes) -> set[str]:
    """Files an error may name: the scenario, or the experiment or OpenSLO file it
    references (an error in one of those names that file)."""
    names = {str(path)}
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except Exception:  # not text, not YAML: only the file itself can be named
        return names
    experiment = raw.get("experiment") if isinstance(raw, dict) else None
    slo = raw.get("slo") if isinstance(raw, dict) else None
    openslo = slo.get("openslo") if isinstance(slo, dict) else None
    for other in (experiment, openslo):  # files the scenario names, read in turn
        if isinstance(other, str):
            names |= {str(path.parent / other), str(path.parent / other.strip())}
    return names


def check(path: Path, data: bytes) -> str:
    """Validate ``data`` as ``path`` the way ``gameday validate`` does: accepted, or a
    ValidationError naming the file. Anything else propagates and fails the test."""
    path.write_bytes(data)
    try:
        validate_file(path)
    except ValidationError as exc:
        assert exc.exit_code == 2
        assert exc.file == str(path) or exc.file in _names(path, data), (exc.file, str(exc))
        assert str(exc).startswith(f"{exc.file}: "), str(exc)
        return "rejected"
    return "accepted"


def test_every_shipped_scenario_is_accepted_in_the_copied_layout(hostile_file):
    for text in SCENARIOS.values():
        assert check(hostile_file, text.encode()) == "accepted"
    assert check(hostile_file, OTHERS["experiment"].encode()) == "accepted"
    assert check(hostile_file, OTHERS["runbook"].encode()) == "accepted"


def test_mutated_shipped_scenarios_never_crash_the_validator(hostile_file):
    seen: Counter[str] = Counter()

    @settings(max_examples=400, **PROFILE)
    @given(doc=mutated_documents())
    def prop(doc: Any) -> None:
        outcome = check(hostile_file, as_bytes(doc))
        event(outcome)
        seen[outcome] += 1

    prop()
    assert seen["accepted"] >= 20 and seen["rejected"] >= 100, seen


def test_schema_shaped_documents_never_crash_the_validator(hostile_file):
    seen: Counter[str] = Counter()

    @settings(max_examples=200, **PROFILE)
    @given(doc=schema_documents())
    def prop(doc: Any) -> None:
        outcome = check(hostile_file, as_bytes(doc))
        event(outcome)
        seen[outcome] += 1

    prop()
    # Random documents are mostly refused; some get through (9 of 200, alone and in the
    # whole suite alike: _no_constants_from_loaded_modules), which keeps the property
    # from passing vacuously.
    assert seen["accepted"] >= 1 and seen["rejected"] >= 50, seen


def test_raw_bytes_never_crash_the_validator(hostile_file):
    seen: Counter[str] = Counter()

    @settings(max_examples=250, **PROFILE)
    @given(data=raw_documents())
    def prop(data: bytes) -> None:
        outcome = check(hostile_file, data)
        event(outcome)
        seen[outcome] += 1

    prop()
    assert seen["accepted"] >= 1 and seen["rejected"] >= 100, seen


# -- through the command line ------------------------------------------------------------------
def test_the_cli_exits_0_or_2_without_a_traceback(hostile_file):
    seen: Counter[int] = Counter()

    @settings(max_examples=40, **PROFILE)
    @given(doc=any_document)
    @example(doc=SCENARIOS["checkout-replica-crash.yaml"].encode())  # accepted: exit 0
    @example(doc=OTHERS["runbook"].encode())
    def prop(doc: Any) -> None:
        data = as_bytes(doc)
        hostile_file.write_bytes(data)
        try:
            result = CliRunner().invoke(cli, ["validate", str(hostile_file)])
        finally:
            gameday_settings.use(None)  # the CLI makes its settings the process's
        assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            assert result.output.startswith("Error: "), result.output
            assert any(name in result.output for name in _names(hostile_file, data)), \
                result.output
        seen[result.exit_code] += 1

    prop()
    assert seen[0] >= 1 and seen[2] >= 10, seen


def _fixed(name: str) -> bytes:
    text = SCENARIOS["checkout-replica-crash.yaml"]
    url = "runbook_url: http://127.0.0.1:8080/runbooks/restart-replica"
    return {
        "valid": text.encode(),
        "binary": bytes(range(256)) * 4,
        "utf-16": text.encode("utf-16"),
        "utf-32": text.encode("utf-32"),
        "bidi and control characters": text.replace(
            "name: checkout-replica-crash", 'name: "\\u202echeckout\\x1b[31m"').encode(),
        "a surrogate as an unknown key": (text + '\n"\\ud800": 1\n').encode(),
        "an unbalanced IPv6 runbook_url": text.replace(
            url, "runbook_url: 'http://[::1/runbooks/restart-replica'").encode(),
        "an integer of 6,000 digits": text.replace(
            "rate: 40", "rate: 0x" + "f" * 5000).encode(),
        "a window of 10**400 seconds": text.replace("window: 2s", "window: 1" + "0" * 400)
        .encode(),
        "deep nesting": ("[" * 20_000 + "]" * 20_000).encode(),
        "an alias bomb": text.replace('title: "Game day: a checkout replica crashes"',
                                      "title: " + _bomb(10, 6)).encode(),
        "a python tag": b"!!python/object/apply:os.system ['id']\n",
        # a link the game day would pass over, silently routing by the alert's name
        "a runbook_url that is a number": text.replace(url, "runbook_url: 42").encode(),
        "an empty runbook_url": text.replace(url, "runbook_url: ''").encode(),
        "a runbook_url that is a shell": text.replace(url, "runbook_url: '$(id)'").encode(),
        "a runbook_url out of the tree": text.replace(
            url, "runbook_url: ../../../../etc/passwd").encode(),
        "a runbook_url to no runbook": text.replace(
            url, "runbook_url: http://127.0.0.1:8080/runbooks/no-such-runbook").encode(),
        # people are named by one rule: the handle they sign in to gameday serve with
        "an on-call that cannot sign in": text.replace(
            "oncall: [ana, ben]", "oncall: ['10 parsecs']").encode(),
        "a comms lead in capitals": text.replace("comms: fay", "comms: Fay").encode(),
    }[name]


# the field each of those names (the rest name whatever they break first)
FIELDS = {"a runbook_url that is a number": "alert.annotations",
          "an empty runbook_url": "alert.annotations",
          "a runbook_url that is a shell": "alert.annotations",
          "a runbook_url out of the tree": "alert.annotations",
          "a runbook_url to no runbook": "alert.annotations.runbook_url",
          "an on-call that cannot sign in": "team.oncall.0",
          "a comms lead in capitals": "team.comms"}


FIXED = ["valid", "binary", "utf-16", "utf-32", "bidi and control characters",
         "a surrogate as an unknown key", "an unbalanced IPv6 runbook_url",
         "an integer of 6,000 digits", "a window of 10**400 seconds", "deep nesting",
         "an alias bomb", "a python tag", *FIELDS]


@pytest.mark.parametrize("name", FIXED)
def test_fixed_hostile_documents_in_process(hostile_file, name):
    assert check(hostile_file, _fixed(name)) == ("accepted" if name == "valid" else "rejected")
    if name in FIELDS:
        with pytest.raises(ValidationError) as refused:
            validate_file(hostile_file)
        assert refused.value.field == FIELDS[name], str(refused.value)


def test_a_person_is_named_by_one_rule_everywhere(tmp_path):
    """What a scenario's roster accepts, `gameday user add` and a move's --as accept,
    and the reverse."""
    from gameday.incidents.moves import person

    for name in ("ana", "ben.o-neil_2", "x" * 63):
        assert person(name) == name
        assert CliRunner().invoke(cli, ["user", "add", name, "--role", "viewer"]).exit_code == 0
    for name in ("10 parsecs", "Ana", "ana@example.com", "", "-ana", "x" * 64, "ana\n"):
        with pytest.raises(ValidationError):
            person(name)
        refused = CliRunner().invoke(cli, ["user", "add", "--role", "viewer", "--", name])
        assert refused.exit_code == 2 and "as people sign in" in refused.output, name


@pytest.mark.parametrize("name", ["valid", "binary", "a surrogate as an unknown key",
                                  "an unbalanced IPv6 runbook_url",
                                  "an integer of 6,000 digits", "deep nesting",
                                  "a runbook_url that is a shell",
                                  "an on-call that cannot sign in"])
def test_fixed_hostile_documents_through_a_real_process(hostile_file, name):
    hostile_file.write_bytes(_fixed(name))
    proc = subprocess.run([sys.executable, "-m", "gameday", "validate", str(hostile_file)],
                          capture_output=True, text=True, errors="backslashreplace",
                          timeout=60)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    if name == "valid":
        assert proc.returncode == 0 and output.startswith("ok  scenario"), output
    else:
        assert proc.returncode == 2, output
        assert proc.stderr.startswith(f"Error: {hostile_file}: "), output
